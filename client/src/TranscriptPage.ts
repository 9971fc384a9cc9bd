import type { ErrorBody } from "../../shared/protocol.js";
import { $, h } from "./dom.js";

interface Opened {
	meeting: { id: string; title: string };
	sessionId: string;
	expiresAt: string;
	disclaimer: string;
	files: { json: string; vtt: string };
	urlsExpireInSeconds: number;
}

/**
 * `/t/{id}`: a transcript link. Asks the gateway with the person's own token; the host and the
 * people who were in the meeting get the accuracy disclaimer and short-lived links to the
 * transcript in their organisation's bucket; anyone else, or an expired or revoked link, gets why.
 */
export async function showTranscriptPage(linkId: string, token: string | undefined): Promise<void> {
	const screen = $("#transcript-screen");
	for (const s of document.querySelectorAll<HTMLElement>(".screen")) s.hidden = s !== screen;
	const body = $("#transcript-body");
	const fail = (code: string, message: string) => {
		screen.dataset.code = code;
		body.replaceChildren(h("p", { class: "error", "data-testid": "transcript-error", role: "alert" }, message));
	};
	if (!token) {
		fail("token_missing", "Open this link from the meeting (signed in with your organisation's link).");
		return;
	}
	let res: Response;
	try {
		res = await fetch(`/api/transcripts/${encodeURIComponent(linkId)}`, {
			headers: { authorization: `Bearer ${token}` },
		});
	} catch {
		fail("network", "The gateway could not be reached. Try again.");
		return;
	}
	const data = (await res.json().catch(() => ({}))) as Opened & Partial<ErrorBody>;
	if (!res.ok) {
		fail(data.code ?? "error", data.message ?? "This transcript cannot be opened.");
		return;
	}
	screen.dataset.code = "ok";
	$("#transcript-title").textContent = `Transcript — ${data.meeting.title}`;
	body.replaceChildren(
		h("p", { class: "notice", "data-testid": "transcript-disclaimer" }, data.disclaimer),
		h(
			"p",
			null,
			h("a", { href: data.files.json, "data-testid": "transcript-json", rel: "noreferrer" }, "Transcript (JSON)"),
			" · ",
			h("a", { href: data.files.vtt, "data-testid": "transcript-vtt", rel: "noreferrer" }, "Captions (WebVTT)"),
		),
		h(
			"p",
			{ class: "hint" },
			`These links work for ${Math.round(data.urlsExpireInSeconds / 60)} minutes; this page gives new ones until ${new Date(data.expiresAt).toLocaleDateString()}.`,
		),
	);
}

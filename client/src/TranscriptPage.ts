import { $, h } from "./dom.js";
import { formatDate, locale, onLocaleChange, t, tMaybe } from "./i18n/index.js";
import { getWithToken } from "./token.js";

interface Opened {
	meeting: { id: string; title: string };
	sessionId: string;
	expiresAt: string;
	disclaimer: string;
	/** The disclaimer in each language (newer gateways). */
	disclaimers?: Partial<Record<"en" | "fr", string>>;
	files: { json: string; vtt: string };
	/** False while transcription still runs: the files are written at its end (older gateways: absent). */
	ready?: boolean;
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
	$("#transcript-title").textContent = t("transcript.title");
	document.title = t("transcript.title");
	/** What the page shows, drawn again when the language changes. */
	let render: () => void = () => undefined;
	onLocaleChange(() => render());
	const fail = (code: string, serverMessage: string) => {
		screen.dataset.code = code;
		render = () => {
			const message =
				(code === "token_missing"
					? t("transcript.noToken")
					: code === "network"
						? t("transcript.network")
						: undefined) ??
				tMaybe(`error.${code}`) ??
				(code.startsWith("token_") ? t("error.token") : undefined) ??
				(serverMessage && locale() === "en" ? serverMessage : t("transcript.cannotOpen"));
			$("#transcript-title").textContent = t("transcript.title");
			body.replaceChildren(h("p", { class: "error", "data-testid": "transcript-error", role: "alert" }, message));
		};
		render();
	};
	const got = await getWithToken<Opened>(`/api/transcripts/${encodeURIComponent(linkId)}`, token);
	if (!got.ok) {
		fail(got.code, got.message);
		return;
	}
	const data = got.data;
	screen.dataset.code = "ok";
	render = () => {
		const title = t("transcript.titleOf", { title: data.meeting.title });
		$("#transcript-title").textContent = title;
		document.title = title;
		body.replaceChildren(
			// The accuracy disclaimer is the gateway's text, in the page's language.
			h(
				"p",
				{ class: "notice", "data-testid": "transcript-disclaimer" },
				data.disclaimers?.[locale()] ?? data.disclaimer,
			),
			...(data.ready === false
				? [h("p", { class: "hint", "data-testid": "transcript-in-progress" }, t("transcript.inProgress"))]
				: []),
			h(
				"p",
				null,
				h("a", { href: data.files.json, "data-testid": "transcript-json", rel: "noreferrer" }, t("transcript.json")),
				" · ",
				h("a", { href: data.files.vtt, "data-testid": "transcript-vtt", rel: "noreferrer" }, t("transcript.vtt")),
			),
			h(
				"p",
				{ class: "hint" },
				t("transcript.expiry", {
					minutes: Math.round(data.urlsExpireInSeconds / 60),
					date: formatDate(data.expiresAt),
				}),
			),
		);
	};
	render();
}

import { $, h } from "./dom.js";
import { formatDate, formatTime, locale, onLocaleChange, t, tMaybe } from "./i18n/index.js";
import { getWithToken } from "./token.js";

interface Listed {
	recordings: {
		sessionId: string;
		startedAt: string;
		endedAt: string | null;
		ready: boolean;
		revoked: boolean;
		page: string;
	}[];
}

/**
 * `/recordings/{meetingId}`: a meeting's recordings, each a link to its playback page (`/r/{sessionId}`), for the
 * host and the people who were in the meeting (the gateway decides, with the person's own token).
 */
export async function showRecordingsPage(meetingId: string, token: string | undefined): Promise<void> {
	const screen = $("#playback-screen");
	for (const s of document.querySelectorAll<HTMLElement>(".screen")) s.hidden = s !== screen;
	const body = $("#playback-body");
	let render: () => void = () => undefined;
	onLocaleChange(() => render());
	const show = (fn: () => void) => {
		render = () => {
			$("#playback-title").textContent = t("recordings.title");
			document.title = t("recordings.title");
			fn();
		};
		render();
	};
	const fail = (code: string, serverMessage: string) => {
		screen.dataset.code = code;
		show(() => {
			const message =
				(code === "token_missing" ? t("playback.noToken") : code === "network" ? t("transcript.network") : undefined) ??
				tMaybe(`error.${code}`) ??
				(code.startsWith("token_") ? t("error.token") : undefined) ??
				(serverMessage && locale() === "en" ? serverMessage : t("playback.cannotOpen"));
			body.replaceChildren(h("p", { class: "error", "data-testid": "playback-error", role: "alert" }, message));
		});
	};
	const got = await getWithToken<Listed>(`/api/meetings/${encodeURIComponent(meetingId)}/recordings`, token);
	if (!got.ok) return fail(got.code, got.message);
	const data = got.data;
	screen.dataset.code = "ok";
	show(() => {
		const items = data.recordings.map((r) => {
			const label = t("recordings.item", {
				date: formatDate(r.startedAt),
				from: formatTime(r.startedAt),
				to: r.endedAt ? formatTime(r.endedAt) : "…",
			});
			const state = r.revoked ? t("recordings.revoked") : r.ready ? null : t("recordings.notReady");
			return h(
				"li",
				{ "data-testid": "recording-item" },
				r.ready && !r.revoked ? h("a", { href: r.page }, label) : label,
				state ? ` (${state})` : null,
			);
		});
		body.replaceChildren(
			items.length
				? h("ol", { class: "pb-list", "data-testid": "recordings-list" }, ...items)
				: h("p", { class: "note", "data-testid": "recordings-list" }, t("recordings.none")),
		);
	});
}

import { clock } from "./clock.js";
import { $, h } from "./dom.js";
import { formatDate, locale, onLocaleChange, t, tMaybe } from "./i18n/index.js";
import { getWithToken } from "./token.js";

/** What `GET /api/transcripts/{id}` answers (server/http/TranscriptsApi.ts; the OpenAPI document). */
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
	/** While it runs: the transcript so far, a page of checkpoint parts after the cursor (older gateways: absent). */
	live?: LiveParts | null;
	urlsExpireInSeconds: number;
}

/** A page of a running session's checkpoint parts (`?after=N`). */
interface LiveParts {
	after: number;
	/** Numbered above `after`, in order; a number skipped is a part missing from the bucket. */
	parts: { part: number; url: string }[];
	/** Ask next with `after=next`. */
	next: number;
	/** More are there already: ask again at once. */
	more: boolean;
	pollSeconds: number;
}

/** One line of a transcript (an entry of transcript.json or of a checkpoint part). */
interface Line {
	speaker: string;
	displayName: string;
	start: string;
	end: string;
	text: string;
}

/** What the page reads of a part (`transcript.part-NNNNNN.json`) or of transcript.json. */
interface TranscriptFile {
	startedAt?: string;
	checkpointedAt?: string;
	entries?: Line[];
}

/** Parts read from the bucket at once. */
const FETCHES = 6;
/** After a network failure, ask the gateway again this long after. */
const RETRY_MS = 5000;
/** Answers of the gateway that pass: the page keeps what it shows and asks again. */
const TRANSIENT = new Set(["network", "rate_limited", "storage_unavailable", "store_unavailable"]);
/** While nothing new comes (nobody speaks), the page asks less often, up to this. */
const IDLE_POLL_MS = 10_000;
/** When the bucket refused to be read, read the parts again this long after. */
const UNREADABLE_RETRY_MS = 30_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A file of the bucket through its presigned URL: its JSON, `gone` (deleted meanwhile), or `unreadable`. */
async function readFile(url: string): Promise<TranscriptFile | "gone" | "unreadable"> {
	let res: Response;
	try {
		res = await fetch(url);
	} catch {
		// The bucket refused the page (no CORS rule for the gateway's origin) or could not be reached.
		return "unreadable";
	}
	if (res.status === 404 || res.status === 403) return "gone";
	if (!res.ok) return "unreadable";
	try {
		return (await res.json()) as TranscriptFile;
	} catch {
		return "unreadable";
	}
}

/**
 * `/t/{id}`: a transcript link. Asks the gateway with the person's own token; the host and the
 * people who were in the meeting get the accuracy disclaimer and the transcript, read straight from
 * their organisation's bucket through short-lived presigned URLs; anyone else, or an expired or
 * revoked link, gets why. While transcription runs the page shows the transcript so far (its
 * checkpoint parts, merged by time; a part missing from the bucket is marked) and follows the
 * meeting, asking for the parts after the last one it has; once the session has ended it shows the
 * final transcript and its files instead.
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
	let failed = false;
	const fail = (code: string, serverMessage: string) => {
		failed = true;
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
	const ask = (after?: number) =>
		getWithToken<Opened>(
			`/api/transcripts/${encodeURIComponent(linkId)}${after === undefined ? "" : `?after=${after}`}`,
			token,
		);
	const got = await ask();
	if (!got.ok) {
		fail(got.code, got.message);
		return;
	}
	let data = got.data;
	screen.dataset.code = "ok";
	// The lines are a log of their own (new ones are announced); the page around them is not read out on each poll.
	body.setAttribute("aria-live", "off");

	/** `live`: following the parts; `final`: transcript.json shown; `waiting`: an older gateway, files not written yet. */
	let state: "live" | "final" | "waiting" = data.ready === false ? (data.live ? "live" : "waiting") : "final";
	let startedAt: number | undefined;
	let unreadable = false;
	let retrying = false;
	/** The lines shown, and the parts found missing, in time order; each keeps its element. */
	const items: { at: string; seq: number; el: HTMLElement }[] = [];
	let seq = 0;
	const list = h("ol", { class: "pb-lines" });
	/** The lines are a log: a screen reader announces the new ones. */
	const log = h("div", { class: "tr-lines", "data-testid": "transcript-lines", role: "log" }, list);

	const lineEl = (l: Line) => {
		const at = h("span", { class: "pb-at" });
		const el = h(
			"li",
			{ class: "tr-line", "data-testid": "transcript-line" },
			at,
			" ",
			h("strong", null, l.displayName || l.speaker),
			" ",
			h("span", { class: "tr-text" }, l.text),
		);
		el.dataset.start = l.start;
		return el;
	};
	const gapEl = () => h("li", { class: "tr-gap hint", "data-testid": "transcript-gap" });
	/** Puts an element in time order (stable: later arrivals after earlier ones of the same time). */
	const insert = (at: string, el: HTMLElement) => {
		const item = { at, seq: seq++, el };
		let i = items.length;
		while (i > 0 && (items[i - 1] as { at: string }).at > at) i--;
		items.splice(i, 0, item);
		list.insertBefore(el, items[i + 1]?.el ?? null);
	};
	/** Texts that depend on the language or on the session's start: the times and the gap notes. */
	const drawItems = () => {
		for (const { el } of items) {
			if (el.classList.contains("tr-gap")) el.textContent = t("transcript.gap");
			else {
				const at = el.querySelector(".pb-at");
				const start = Date.parse(el.dataset.start ?? "");
				if (at) at.textContent = startedAt !== undefined && !Number.isNaN(start) ? clock(start - startedAt) : "";
			}
		}
	};

	/** What was drawn last: a poll that brought nothing new draws nothing. */
	let drawn = "";
	const redraw = () => {
		if (drawn !== `${state} ${items.length} ${unreadable} ${retrying}`) render();
	};
	render = () => {
		drawn = `${state} ${items.length} ${unreadable} ${retrying}`;
		const title = t("transcript.titleOf", { title: data.meeting.title });
		$("#transcript-title").textContent = title;
		document.title = title;
		screen.dataset.state = state;
		drawItems();
		const shown: (Node | null)[] = [
			// The accuracy disclaimer is the gateway's text, in the page's language.
			h(
				"p",
				{ class: "notice", "data-testid": "transcript-disclaimer" },
				data.disclaimers?.[locale()] ?? data.disclaimer,
			),
			state === "final"
				? h("p", { class: "hint", "data-testid": "transcript-final" }, t("transcript.final"))
				: h(
						"p",
						{ class: "hint", "data-testid": "transcript-in-progress" },
						t(state === "live" ? "transcript.inProgress" : "transcript.notWritten"),
					),
			retrying ? h("p", { class: "hint", role: "status" }, t("transcript.retrying")) : null,
			unreadable
				? h("p", { class: "error", "data-testid": "transcript-unreadable", role: "alert" }, t("transcript.unreadable"))
				: null,
			state === "live" && items.length === 0 && !unreadable
				? h("p", { class: "hint", "data-testid": "transcript-empty" }, t("transcript.empty"))
				: null,
			items.length ? log : null,
			...(state === "final"
				? [
						h(
							"p",
							null,
							h(
								"a",
								{ href: data.files.json, "data-testid": "transcript-json", rel: "noreferrer" },
								t("transcript.json"),
							),
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
					]
				: []),
		];
		body.replaceChildren(...shown.filter((n): n is Node => n !== null));
	};

	/** The final transcript replaces the lines so far (the parts are deleted once it is written). */
	const showFinal = async () => {
		state = "final";
		const doc = await readFile(data.files.json);
		if (typeof doc === "object") {
			items.length = 0;
			list.replaceChildren();
			if (doc.startedAt) startedAt = Date.parse(doc.startedAt);
			for (const l of doc.entries ?? []) insert(l.start, lineEl(l));
			unreadable = false;
		} else unreadable = true;
		render();
	};

	/** Parts read so far (their numbers) and the highest number seen. */
	const read = new Set<number>();
	let highest = 0;
	/**
	 * Reads a page of parts from the bucket and shows their lines: `ok`, or `gone` (a part listed a moment ago was
	 * deleted: the session has ended) or `unreadable` (the bucket refused the page or could not be reached) — then
	 * nothing of this page is shown, and it is read again.
	 */
	const readParts = async (live: LiveParts): Promise<"ok" | "gone" | "unreadable"> => {
		let outcome: "ok" | "gone" | "unreadable" = "ok";
		const todo = live.parts.filter((p) => !read.has(p.part));
		let next = 0;
		const got = new Map<number, TranscriptFile>();
		const worker = async () => {
			while (next < todo.length && outcome === "ok") {
				const p = todo[next++] as { part: number; url: string };
				const doc = await readFile(p.url);
				if (typeof doc === "object") got.set(p.part, doc);
				else outcome = doc;
			}
		};
		await Promise.all(Array.from({ length: Math.min(FETCHES, todo.length) }, worker));
		if (outcome !== "ok") return outcome;
		// A number skipped in the listing is a part missing from the bucket: marked where it would have been.
		let prevAt: string | undefined;
		for (const p of live.parts) {
			const doc = got.get(p.part);
			if (!doc) continue;
			if (startedAt === undefined && doc.startedAt) startedAt = Date.parse(doc.startedAt);
			if (p.part > highest + 1) insert(prevAt ?? doc.startedAt ?? "", gapEl());
			for (const l of doc.entries ?? []) insert(l.start, lineEl(l));
			read.add(p.part);
			highest = Math.max(highest, p.part);
			prevAt = doc.checkpointedAt;
		}
		return "ok";
	};

	/** Follows the running session: parts after the last one read, until the final transcript is there. */
	const follow = async (first: Opened) => {
		let answer: Opened | undefined = first;
		let after = 0;
		/** The last page of parts could not be read: asked again once at once before saying so. */
		let failedOnce = false;
		/** Answers in a row that brought no new part. */
		let idle = 0;
		for (;;) {
			if (!answer) {
				const next = await ask(after);
				if (failed) return;
				if (!next.ok) {
					// What passes (no network, too many requests from this address, the bucket or the store out for a
					// moment) keeps the lines shown and asks again; anything else (expired, revoked, …) is said instead.
					if (!TRANSIENT.has(next.code)) return fail(next.code, next.message);
					retrying = true;
					redraw();
					await sleep(RETRY_MS);
					continue;
				}
				retrying = false;
				answer = next.data;
			}
			data = answer;
			answer = undefined;
			if (data.ready !== false) return showFinal();
			const live = data.live;
			if (!live) {
				state = "waiting";
				render();
				return;
			}
			const outcome = await readParts(live);
			if (outcome === "ok") {
				failedOnce = false;
				unreadable = false;
				redraw();
				after = live.next;
				idle = live.parts.length ? 0 : idle + 1;
				if (!live.more) await sleep(Math.min(IDLE_POLL_MS, live.pollSeconds * 1000 * 2 ** Math.min(idle, 3)));
				continue;
			}
			// A part listed a moment ago is gone, or could not be read (a bucket whose CORS rule does not cover its
			// error answers makes a deleted part look so): the session may have ended and its parts been deleted.
			// Ask again soon; the answer then says the final transcript is there.
			if (outcome === "gone" || !failedOnce) {
				failedOnce = true;
				await sleep(500);
				continue;
			}
			// Twice unreadable: the bucket refuses this page (no CORS rule) or cannot be reached. Said; tried again later.
			unreadable = true;
			redraw();
			await sleep(UNREADABLE_RETRY_MS);
		}
	};

	render();
	if (state === "final") await showFinal();
	else if (state === "live") await follow(data);
}

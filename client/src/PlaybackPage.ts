import { clock } from "./clock.js";
import { $, h } from "./dom.js";
import { formatDate, locale, localeTag, type MessageKey, onLocaleChange, t, tMaybe } from "./i18n/index.js";
import { getWithToken } from "./token.js";

/** What `GET /api/recordings/{sessionId}` answers (server/recording/PlaybackTypes.ts), as far as the page reads it. */
interface ManifestObject {
	key: string;
	startedAt: string;
	endedAt: string;
	firstFrameAt?: number;
}
interface ManifestTrack {
	trackId: string;
	person: string;
	kind: "audio" | "camera" | "screen";
	objects: ManifestObject[];
	holes: { from: string; to: string; cause: string }[];
}
interface EvidencePerson {
	person: string;
	displayName: string | null;
	role: string | null;
	you: boolean;
	notifiedAt: string | null;
	shownAt: string | null;
	answer: { type: string; at: string } | null;
	recorded: { kind: string; from: string; to: string }[];
	notRecorded: boolean;
}
interface Opened {
	meeting: { id: string; title: string };
	sessionId: string;
	startedAt: string;
	endedAt: string | null;
	expiresAt: string;
	manifest: { tracks: ManifestTrack[]; endReason: string; startedAt: string; endedAt: string };
	urls: Record<string, string>;
	files: { manifest: string; audit: string | null; chat: string | null };
	transcript: {
		lines: { speaker: string; displayName: string; start: string; end: string; text: string }[];
		disclaimers: { en: string; fr: string };
	} | null;
	evidence: {
		persons: EvidencePerson[];
		holes: { person: string; kind: string; from: string; to: string; cause: string }[];
		endReason: string;
	};
	urlsExpireInSeconds: number;
}

/** One object of a track on the session's timeline (ms from its start). */
interface Segment {
	start: number;
	end: number;
	url: string;
}
interface TrackPlayer {
	track: ManifestTrack;
	el: HTMLMediaElement;
	tile: HTMLElement;
	segments: Segment[];
	current: Segment | undefined;
}

/** Larger drift than this is corrected by seeking; smaller by nudging the playback rate. */
const SEEK_DRIFT_S = 0.4;
const TICK_MS = 50;

/** A wall-clock time with seconds, in the page's language. */
function when(at: string | null | undefined): string {
	if (!at) return "";
	const d = new Date(at);
	return Number.isNaN(d.getTime())
		? ""
		: d.toLocaleTimeString(localeTag(), { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
/** Where an object starts on the gateway's clock: its first frame (issue 11), else when it opened. */
const objectStart = (o: ManifestObject) =>
	typeof o.firstFrameAt === "number" ? o.firstFrameAt : Date.parse(o.startedAt);

/**
 * `/r/{sessionId}`: a recording played back. Asks the gateway with the person's own token; the host and the people
 * who were in the meeting get every recorded person's camera, screen and audio, played straight from their
 * organisation's bucket (presigned URLs) and lined up on the manifest's wall clock under one play/seek control, the
 * transcript beside it (a line seeks there; the current one is highlighted) and the evidence: who was present, when
 * each was notified and answered, what of each was recorded, who never was, and every hole with its cause.
 */
export async function showPlaybackPage(sessionId: string, token: string | undefined): Promise<void> {
	const screen = $("#playback-screen");
	for (const s of document.querySelectorAll<HTMLElement>(".screen")) s.hidden = s !== screen;
	const body = $("#playback-body");
	$("#playback-title").textContent = t("playback.title");
	document.title = t("playback.title");
	const fail = (code: string, serverMessage: string) => {
		screen.dataset.code = code;
		const render = () => {
			const message =
				(code === "token_missing" ? t("playback.noToken") : code === "network" ? t("transcript.network") : undefined) ??
				tMaybe(`playback.error.${code}`) ??
				tMaybe(`error.${code}`) ??
				(code.startsWith("token_") ? t("error.token") : undefined) ??
				(serverMessage && locale() === "en" ? serverMessage : t("playback.cannotOpen"));
			body.replaceChildren(h("p", { class: "error", "data-testid": "playback-error", role: "alert" }, message));
		};
		render();
		onLocaleChange(render);
	};
	const got = await getWithToken<Opened>(`/api/recordings/${encodeURIComponent(sessionId)}`, token);
	if (!got.ok) {
		fail(got.code, got.message);
		return;
	}
	const data = got.data;
	screen.dataset.code = "ok";
	new Player(data, body);
}

/** The page once opened: tiles, the control bar, the transcript and the evidence. */
class Player {
	readonly #d: Opened;
	readonly #players: TrackPlayer[] = [];
	/** The timeline: ms from the first recorded frame to the last. */
	readonly #t0: number;
	readonly #duration: number;
	readonly #names = new Map<string, string>();
	#playing = false;
	/** Position (ms) at `#baseNow` (performance.now()); while playing it runs with the clock. */
	#basePos = 0;
	#baseNow = 0;
	#waiting = false;
	#currentLine = -1;
	readonly #play: HTMLButtonElement;
	readonly #seek: HTMLInputElement;
	readonly #time: HTMLElement;
	readonly #lines: HTMLButtonElement[] = [];
	readonly #root: HTMLElement;

	constructor(d: Opened, root: HTMLElement) {
		this.#d = d;
		this.#root = root;
		const starts = d.manifest.tracks.flatMap((tr) => tr.objects.map(objectStart));
		const ends = d.manifest.tracks.flatMap((tr) => tr.objects.map((o) => Date.parse(o.endedAt)));
		this.#t0 = starts.length ? Math.min(...starts) : Date.parse(d.manifest.startedAt);
		this.#duration = Math.max(0, (ends.length ? Math.max(...ends) : Date.parse(d.manifest.endedAt)) - this.#t0);
		this.#play = h("button", {
			type: "button",
			class: "primary",
			"data-testid": "playback-play",
			onclick: () => (this.#playing ? this.pause() : this.start()),
		});
		this.#seek = h("input", {
			type: "range",
			min: 0,
			max: this.#duration,
			step: 100,
			value: 0,
			"data-testid": "playback-seek",
			oninput: () => this.seek(Number(this.#seek.value)),
		});
		this.#time = h("span", { class: "pb-time", "data-testid": "playback-time", "aria-live": "off" });
		this.#render();
		onLocaleChange(() => this.#render());
		setInterval(() => this.#tick(), TICK_MS);
		this.#tick();
	}

	/** The timeline position now (ms). */
	get position(): number {
		const p = this.#playing && !this.#waiting ? this.#basePos + (performance.now() - this.#baseNow) : this.#basePos;
		return Math.min(Math.max(0, p), this.#duration);
	}

	start(): void {
		if (this.position >= this.#duration) this.#basePos = 0;
		this.#rebase(this.position);
		this.#playing = true;
		this.#tick();
	}

	pause(): void {
		this.#rebase(this.position);
		this.#playing = false;
		for (const p of this.#players) p.el.pause();
		this.#tick();
	}

	seek(ms: number): void {
		this.#rebase(Math.min(Math.max(0, ms), this.#duration));
		for (const p of this.#players) this.#sync(p, this.#basePos, true);
		this.#tick();
	}

	#rebase(pos: number): void {
		this.#basePos = pos;
		this.#baseNow = performance.now();
	}

	/** Every TICK_MS: each track follows the timeline; the timeline waits for any track still loading. */
	#tick(): void {
		const pos = this.position;
		if (this.#playing && pos >= this.#duration) {
			this.pause();
			return;
		}
		// (A track that failed to load — say its link expired — is shown as such and does not hold the others.)
		const active = this.#players.filter(
			(p) => p.current && !p.el.error && p.el.readyState < HTMLMediaElement.HAVE_FUTURE_DATA,
		);
		const waiting = this.#playing && active.some((p) => !p.el.ended);
		if (waiting !== this.#waiting) {
			this.#rebase(pos);
			this.#waiting = waiting;
		}
		for (const p of this.#players) this.#sync(p, pos, false);
		this.#root.dataset.state = !this.#playing ? "paused" : this.#waiting ? "loading" : "playing";
		this.#play.textContent = t(this.#playing ? "playback.pause" : "playback.play");
		this.#play.setAttribute("aria-pressed", String(this.#playing));
		if (document.activeElement !== this.#seek) this.#seek.value = String(Math.round(pos));
		const label = t("playback.position", { at: clock(pos), total: clock(this.#duration) });
		this.#seek.setAttribute("aria-valuetext", label);
		this.#time.textContent = label;
		this.#highlight(pos);
	}

	/** Puts one track where the timeline is: the object that covers `pos` (none: a gap), at the right offset. */
	#sync(p: TrackPlayer, pos: number, seeking: boolean): void {
		const at = this.#t0 + pos;
		const seg = p.segments.find((s) => at >= s.start && at < s.end);
		if (!seg) {
			if (p.current) p.el.pause();
			p.current = undefined;
			p.tile.classList.add("gap");
			p.tile.dataset.state = "gap";
			return;
		}
		const want = (at - seg.start) / 1000;
		if (seg.url !== p.current?.url) {
			p.current = seg;
			p.el.src = seg.url;
			p.el.dataset.segmentStart = String(seg.start - this.#t0);
			p.el.currentTime = want;
			p.tile.classList.remove("gap");
		}
		if (p.el.error) return;
		p.tile.dataset.state = "media";
		const run = this.#playing && !this.#waiting;
		if (p.el.readyState >= HTMLMediaElement.HAVE_METADATA) {
			const drift = p.el.currentTime - want;
			if (seeking || Math.abs(drift) > SEEK_DRIFT_S || (!run && Math.abs(drift) > 0.04)) {
				p.el.currentTime = want;
				p.el.playbackRate = 1;
			} else if (run) {
				// A small drift is taken back over about a second, without a seek (which would stall the track).
				p.el.playbackRate = Math.abs(drift) < 0.01 ? 1 : Math.min(1.25, Math.max(0.8, 1 - drift));
			}
		}
		if (run && p.el.paused && !p.el.ended) p.el.play().catch(() => undefined);
		if (!run && !p.el.paused) p.el.pause();
	}

	/** The transcript line being said now: highlighted (and kept in view while playing). */
	#highlight(pos: number): void {
		const lines = this.#d.transcript?.lines ?? [];
		const at = this.#t0 + pos;
		let current = -1;
		for (const [i, l] of lines.entries()) if (Date.parse(l.start) <= at) current = i;
		if (current >= 0 && Date.parse((lines[current] as { end: string }).end) + 2000 < at) current = -1;
		if (current === this.#currentLine) return;
		this.#lines[this.#currentLine]?.removeAttribute("aria-current");
		this.#lines[this.#currentLine]?.classList.remove("current");
		this.#currentLine = current;
		const el = this.#lines[current];
		if (!el) return;
		el.setAttribute("aria-current", "true");
		el.classList.add("current");
		if (this.#playing) el.scrollIntoView({ block: "nearest" });
	}

	/** A media element could not load its object: its tile says so (the others play on). */
	#failed(el: HTMLMediaElement): void {
		const p = this.#players.find((x) => x.el === el);
		p?.tile.classList.add("failed");
		if (p) p.tile.dataset.state = "error";
	}

	#render(): void {
		const d = this.#d;
		// People by name where the transcript gave one, else "Person 2" (in the page's language).
		d.evidence.persons.forEach((p, i) => {
			const name = p.displayName || t("playback.person", { n: i + 1 });
			this.#names.set(p.person, p.you ? t("playback.you", { name }) : name);
		});
		const title = t("playback.titleOf", { title: d.meeting.title || d.meeting.id });
		$("#playback-title").textContent = title;
		document.title = title;
		const name = (psn: string) => this.#names.get(psn) ?? `${psn.slice(0, 12)}…`;
		const kindLabel = (k: string) => tMaybe(`playback.kind.${k}`) ?? k;

		// The media: one tile per video track, one line per audio track (audio elements have nothing to show).
		const old = new Map(this.#players.map((p) => [p.track.trackId, p]));
		this.#players.length = 0;
		const tiles = h("div", { class: "pb-tiles", "data-testid": "playback-tracks" });
		for (const track of d.manifest.tracks) {
			const label = t("playback.trackOf", { name: name(track.person), kind: kindLabel(track.kind) });
			const prev = old.get(track.trackId);
			const el =
				prev?.el ??
				(track.kind === "audio"
					? h("audio", { preload: "auto", class: "pb-audio" })
					: h("video", { preload: "auto", muted: true, playsinline: true, class: "pb-video" }));
			if (el instanceof HTMLVideoElement) el.muted = true;
			el.setAttribute("aria-label", label);
			el.dataset.track = track.trackId;
			el.dataset.kind = track.kind;
			const tile = h(
				"figure",
				{ class: `pb-tile ${track.kind}`, "data-testid": "playback-track" },
				el,
				h("figcaption", null, label),
				h("p", { class: "pb-gap-note" }, t("playback.gap")),
				h("p", { class: "pb-error-note", role: "alert" }, t("playback.mediaError")),
			);
			if (!prev) el.addEventListener("error", () => this.#failed(el));
			if (el.error) tile.classList.add("failed");
			const segments = track.objects
				.filter((o) => d.urls[o.key])
				.map((o) => ({
					start: objectStart(o),
					end: Math.max(objectStart(o) + 1, Date.parse(o.endedAt)),
					url: d.urls[o.key] as string,
				}))
				.sort((a, b) => a.start - b.start);
			// Objects of one track never overlap on the timeline: each ends where the next begins at the latest.
			for (const [i, s] of segments.entries()) {
				const next = segments[i + 1];
				if (next && s.end > next.start) s.end = next.start;
			}
			this.#players.push({ track, el, tile, segments, current: prev?.current });
			tiles.append(tile);
		}

		const controls = h(
			"div",
			{ class: "pb-controls", role: "group", "aria-label": t("playback.controls") },
			this.#play,
			h("label", { class: "pb-seek" }, h("span", { class: "visually-hidden" }, t("playback.seek")), this.#seek),
			this.#time,
		);

		const transcript = h("section", { class: "pb-transcript", "aria-labelledby": "pb-transcript-title" });
		transcript.append(h("h2", { id: "pb-transcript-title" }, t("playback.transcript")));
		this.#lines.length = 0;
		this.#currentLine = -1;
		if (d.transcript) {
			transcript.append(h("p", { class: "note" }, d.transcript.disclaimers[locale()] ?? d.transcript.disclaimers.en));
			const list = h("ol", { class: "pb-lines", "data-testid": "playback-transcript" });
			for (const l of d.transcript.lines) {
				const pos = Date.parse(l.start) - this.#t0;
				const button = h(
					"button",
					{
						type: "button",
						class: "pb-line",
						"data-at": Math.round(pos),
						onclick: () => this.seek(pos),
					},
					h("span", { class: "pb-at" }, clock(pos)),
					" ",
					h("strong", null, l.displayName || name(l.speaker)),
					" ",
					l.text,
				);
				this.#lines.push(button);
				list.append(h("li", null, button));
			}
			if (!d.transcript.lines.length) list.append(h("li", { class: "note" }, t("playback.transcriptEmpty")));
			transcript.append(list);
		} else transcript.append(h("p", { class: "note" }, t("playback.noTranscript")));

		this.#root.replaceChildren(
			h(
				"div",
				{ class: "pb-main" },
				h("section", { class: "pb-media", "aria-label": t("playback.media") }, tiles, controls),
				transcript,
			),
			this.#evidence(name, kindLabel),
			h(
				"p",
				{ class: "hint" },
				t("playback.expiry", { minutes: Math.round(d.urlsExpireInSeconds / 60), date: formatDate(d.expiresAt) }),
			),
		);
		this.#tick();
	}

	#evidence(name: (psn: string) => string, kindLabel: (k: string) => string): HTMLElement {
		const ev = this.#d.evidence;
		const th = (key: MessageKey) => h("th", { scope: "col" }, t(key));
		const rows = ev.persons.map((p) => {
			const recorded = p.notRecorded
				? t("playback.notRecorded")
				: p.recorded.length === 0
					? t("playback.neverRecorded")
					: null;
			return h(
				"tr",
				{ "data-testid": "evidence-person", "data-person": p.person },
				h("th", { scope: "row" }, name(p.person), h("br"), h("code", { class: "pb-psn" }, `${p.person.slice(0, 14)}…`)),
				h("td", null, p.role ? (tMaybe(`playback.role.${p.role}`) ?? p.role) : ""),
				h(
					"td",
					null,
					p.notifiedAt ? when(p.notifiedAt) : t("playback.never"),
					p.shownAt ? h("br") : null,
					p.shownAt ? t("playback.shownAt", { time: when(p.shownAt) }) : null,
				),
				h(
					"td",
					{ "data-testid": "evidence-answer" },
					p.answer
						? t("playback.answeredAt", {
								answer: tMaybe(`playback.answer.${p.answer.type}`) ?? p.answer.type,
								time: when(p.answer.at),
							})
						: t("playback.noAnswer"),
				),
				h(
					"td",
					{ "data-testid": "evidence-recorded" },
					recorded ??
						h(
							"ul",
							{ class: "pb-intervals" },
							...p.recorded.map((r) =>
								h("li", null, t("playback.interval", { kind: kindLabel(r.kind), from: when(r.from), to: when(r.to) })),
							),
						),
				),
			);
		});
		const holes = ev.holes.length
			? h(
					"ul",
					{ "data-testid": "evidence-holes" },
					...ev.holes.map((x) =>
						h(
							"li",
							null,
							t("playback.hole", {
								track: t("playback.trackOf", { name: name(x.person), kind: kindLabel(x.kind) }),
								from: when(x.from),
								to: when(x.to),
								cause: tMaybe(`playback.cause.${x.cause}`) ?? x.cause,
							}),
						),
					),
				)
			: h("p", { "data-testid": "evidence-holes" }, t("playback.noHoles"));
		const f = this.#d.files;
		return h(
			"section",
			{ class: "pb-evidence", "aria-labelledby": "pb-evidence-title", "data-testid": "playback-evidence" },
			h("h2", { id: "pb-evidence-title" }, t("playback.evidence")),
			h(
				"p",
				null,
				t("playback.session", {
					from: when(this.#d.manifest.startedAt),
					to: when(this.#d.manifest.endedAt),
					reason: tMaybe(`playback.end.${ev.endReason}`) ?? ev.endReason,
				}),
			),
			h(
				"div",
				{ class: "pb-table" },
				h(
					"table",
					null,
					h("caption", null, t("playback.presentCaption")),
					h(
						"thead",
						null,
						h(
							"tr",
							null,
							th("playback.col.person"),
							th("playback.col.role"),
							th("playback.col.notified"),
							th("playback.col.answer"),
							th("playback.col.recorded"),
						),
					),
					h("tbody", null, ...rows),
				),
			),
			h("h3", null, t("playback.holes")),
			holes,
			h(
				"p",
				null,
				h("a", { href: f.manifest, rel: "noreferrer" }, t("playback.file.manifest")),
				f.audit ? " · " : null,
				f.audit ? h("a", { href: f.audit, rel: "noreferrer" }, t("playback.file.audit")) : null,
				f.chat ? " · " : null,
				f.chat ? h("a", { href: f.chat, rel: "noreferrer" }, t("playback.file.chat")) : null,
			),
		);
	}
}

import type {
	CaptureKind,
	CaptureStatus,
	CoverageEntry,
	JoinResult,
	NoticeView,
	RequestName,
} from "../../../shared/protocol.js";
import { $, h } from "../dom.js";
import { errorText } from "../errors.js";
import { locale, localeTag, type MessageKey, onLocaleChange, t, tMaybe } from "../i18n/index.js";
import { type Signaling, SignalingError } from "../Signaling.js";
import { Cue } from "./cue.js";
import { clockTime, NoticeDialog } from "./NoticeDialog.js";

type Joined = Extract<JoinResult, { status: "joined" }>;

const KINDS: readonly CaptureKind[] = ["recording", "transcription"];
/** The kinds with start/pause/stop buttons: recording for the host and co-hosts, transcription for any member. */
const CONTROLLED: readonly CaptureKind[] = ["recording", "transcription"];

const WORDS: Record<
	CaptureKind,
	Record<"on" | "paused" | "under" | "isPaused" | "start" | "pause" | "resume" | "stop" | "coverage", MessageKey>
> = {
	recording: {
		on: "capture.rec",
		paused: "capture.recPaused",
		under: "capture.underRecording",
		isPaused: "capture.recordingPaused",
		start: "capture.startRecording",
		pause: "capture.pauseRecording",
		resume: "capture.resumeRecording",
		stop: "capture.stopRecording",
		coverage: "capture.coverageRecording",
	},
	transcription: {
		on: "capture.transcribing",
		paused: "capture.transcriptionPaused",
		under: "capture.underTranscription",
		isPaused: "capture.transcriptionIsPaused",
		start: "capture.startTranscription",
		pause: "capture.pauseTranscription",
		resume: "capture.resumeTranscription",
		stop: "capture.stopTranscription",
		coverage: "capture.coverageTranscription",
	},
};

const COVERAGE_LABEL: Record<CoverageEntry["coverage"], MessageKey> = {
	pending: "capture.coverage.pending",
	acknowledged: "capture.coverage.acknowledged",
	consented: "capture.coverage.consented",
	declined: "capture.coverage.declined",
};

/** Host request errors worded for the person who can fix them. */
function hostError(err: unknown): string {
	const code = err instanceof SignalingError ? err.code : "";
	if (code === "no_storage_target") return t("capture.noStorage");
	if (code === "recorder_unavailable" || code === "recording_unavailable") return t("capture.recorderUnavailable");
	if (code === "forbidden" || code === "host_only") return t("capture.hostOnly");
	return errorText(err);
}

/** Why the gateway stopped a kind on its own, in the page's language (its own words for an unknown reason). */
function stopText(reason: string | undefined, message: string): string {
	return (
		tMaybe(`capture.stopped.${reason}`) ?? (locale() === "en" ? message : t("error.withCode", { code: reason ?? "" }))
	);
}

export interface CaptureHooks {
	/** The person declined a notice: the gateway ejects them. */
	declined(): void;
}

/** The cue toggle lives as long as the page: one instance for every meeting joined. */
let sharedCue: Cue | undefined;
const cue = (): Cue => {
	sharedCue ??= new Cue($<HTMLInputElement>("#cue-toggle"));
	return sharedCue;
};

/**
 * Recording and transcription as one member sees them: the notice dialogs (before publishing on
 * join, and whenever a session starts), the persistent indicator (`capture-indicator`, with
 * `data-kind` and `data-state`), the audible cue, the server's messages (`capture-message`), the
 * "your media is held" banner (`media-held`) and, for the host, the start/pause/stop buttons and
 * the coverage list (`coverage-list` of `coverage-entry`).
 */
export class Capture {
	readonly #signaling: Signaling;
	/** The host, or a co-host the host named: gets the recording buttons and the coverage list. */
	#isHost: boolean;
	readonly #status = new Map<CaptureKind, CaptureStatus>();
	readonly #coverage = new Map<CaptureKind, { sessionId: string; entries: CoverageEntry[] }>();
	readonly #held = new Set<string>();
	/** Sessions the cue already sounded for. */
	readonly #cued = new Set<string>();
	readonly #busy = new Set<CaptureKind>();
	readonly #dialog: NoticeDialog;
	readonly #unsubscribe: (() => void)[] = [];
	readonly #abort = new AbortController();
	/** Notices that arrived before `start()` (the join answer's, and any sent meanwhile). */
	#early: NoticeView[];
	#started = false;
	#closed = false;
	#messageTimer: ReturnType<typeof setTimeout> | undefined;

	/** Subscribes at once (right after the `join` answer); shows nothing until `start()`. */
	constructor(signaling: Signaling, joined: Joined, hooks: CaptureHooks) {
		this.#signaling = signaling;
		this.#isHost = joined.role === "host" || (joined.coHosts ?? []).includes(joined.peerId);
		for (const s of joined.capture ?? []) this.#status.set(s.kind, s);
		this.#early = [...(joined.notices ?? [])];
		this.#dialog = new NoticeDialog(
			{
				shown: (n) => signaling.request("noticeShown", { noticeId: n.id }),
				// The click, on the clock the browser stamps its RTP sender reports with (its wall clock): nothing of
				// this person captured before it is recorded, however late the answer arrives (issue 11).
				acknowledge: (n) => signaling.request("acknowledgeNotice", { noticeId: n.id, clickedAt: Date.now() }),
				consent: (n) => signaling.request("consent", { noticeId: n.id, clickedAt: Date.now() }),
				decline: (n) => signaling.request("decline", { noticeId: n.id, clickedAt: Date.now() }),
			},
			() => hooks.declined(),
		);
		this.#unsubscribe.push(
			signaling.on("captureState", (s) => this.#stateChanged(s)),
			signaling.on("captureNotice", (n) => this.#notice(n)),
			signaling.on("captureCoverage", (e) => {
				this.#coverage.set(e.kind, { sessionId: e.sessionId, entries: e.entries });
				this.#renderCoverage();
			}),
			onLocaleChange(() => this.#render()),
			signaling.on("recordingLoss", (e) => {
				const seconds = Math.max(0.1, (Date.parse(e.to) - Date.parse(e.from)) / 1000);
				this.#showMessage(
					t("capture.loss", {
						seconds: seconds.toLocaleString(localeTag(), { minimumFractionDigits: 1, maximumFractionDigits: 1 }),
						name: e.displayName || t("capture.loss.someone"),
						track: t(`capture.loss.track.${e.track}`),
						cause: t(`capture.loss.cause.${e.cause}`),
					}),
					"recording_loss",
				);
			}),
			signaling.on("captureWarning", (e) => {
				this.#showMessage(
					t(`capture.warning.${e.code}.${e.kind}`, {
						name: e.displayName || t("capture.loss.someone"),
						track: t(`capture.loss.track.${e.track}`),
					}),
					e.code,
				);
			}),
			signaling.on("mediaHeld", ({ held, producerIds }) => {
				// The gateway releases all of a person's held media at once (they consented, or capture stopped).
				if (held) for (const id of producerIds) this.#held.add(id);
				else this.#held.clear();
				this.#renderHeld();
			}),
		);
	}

	/** Renders the indicator and controls, and puts the pending notices on screen. */
	start(): void {
		if (this.#started || this.#closed) return;
		this.#started = true;
		$("#capture-controls").addEventListener("click", (ev) => this.#controlClicked(ev), { signal: this.#abort.signal });
		$("#capture-message button").addEventListener("click", () => this.#hideMessage(), {
			signal: this.#abort.signal,
		});
		cue(); // reads the saved choice into the toggle
		for (const s of this.#status.values()) if (s.state === "on" && s.sessionId) this.#cue(s.sessionId);
		for (const n of this.#early.splice(0)) this.#notice(n);
		this.#render();
	}

	/** The host named (or un-named) this person co-host. */
	setController(on: boolean): void {
		this.#isHost = on;
		if (this.#started) this.#render();
	}

	/** Resolves once every notice was answered (`true`), or after a decline or `close()` (`false`). */
	settled(): Promise<boolean> {
		return this.#dialog.settled();
	}

	/** A notice waits for the person's answer. */
	get pending(): boolean {
		return this.#dialog.pending || this.#early.length > 0;
	}

	/** The gateway holds this producer of ours until we consent: don't try to resume it. */
	isHeld(producerId: string): boolean {
		return this.#held.has(producerId);
	}

	/** We paused a held producer ourselves: the gateway no longer holds it (consenting won't resume it). */
	pausedByUs(producerId: string): void {
		if (this.#held.delete(producerId)) this.#renderHeld();
	}

	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const off of this.#unsubscribe) off();
		this.#abort.abort();
		this.#dialog.close();
		clearTimeout(this.#messageTimer);
		if (!this.#started) return;
		$("#capture-indicators").replaceChildren();
		$("#capture-controls").replaceChildren();
		$("#coverage-lists").replaceChildren();
		$("#coverage-panel").hidden = true;
		$("#media-held").hidden = true;
		this.#hideMessage();
	}

	// Events ------------------------------------------------------------------------------------------------------

	#stateChanged(e: CaptureStatus & { reason?: string; message?: string }): void {
		const { reason, message, ...status } = e;
		this.#apply(status);
		if (message) this.#showMessage(stopText(reason, message), reason ?? "");
	}

	#apply(status: CaptureStatus): void {
		if (this.#closed) return;
		this.#status.set(status.kind, status);
		// A notice of an ended session can no longer be acknowledged: take it off the screen.
		const current = status.state === "on" ? status.sessionId : undefined;
		const outdated = (n: NoticeView) => n.kind === status.kind && n.sessionId !== current;
		this.#early = this.#early.filter((n) => !outdated(n));
		this.#dialog.drop(outdated);
		const coverage = this.#coverage.get(status.kind);
		if (coverage && coverage.sessionId !== current) this.#coverage.delete(status.kind);
		if (!this.#started) return;
		if (current) this.#cue(current);
		this.#render();
	}

	#notice(n: NoticeView): void {
		if (this.#closed) return;
		// A session's notice also says it is on: the gateway sends no separate captureState to whom it sends one.
		const known = this.#status.get(n.kind);
		if (known?.state !== "on" || known.sessionId !== n.sessionId) {
			this.#apply({
				kind: n.kind,
				state: "on",
				sessionId: n.sessionId,
				startedBy: n.startedBy,
				since: n.since,
				policy: n.policy,
			});
		}
		if (!this.#started) {
			if (!this.#early.some((e) => e.id === n.id)) this.#early.push(n);
			return;
		}
		this.#cue(n.sessionId);
		this.#dialog.add(n);
	}

	#cue(sessionId: string): void {
		if (this.#cued.has(sessionId)) return;
		this.#cued.add(sessionId);
		cue().play();
	}

	// Host controls -------------------------------------------------------------------------------------------------

	#controlClicked(ev: Event): void {
		const button = (ev.target as Element).closest<HTMLButtonElement>("button[data-action]");
		if (!button) return;
		const kind = button.dataset.kind as CaptureKind;
		const action = button.dataset.action as "startCapture" | "pauseCapture" | "stopCapture";
		void this.#hostRequest(action, kind);
	}

	async #hostRequest(name: Extract<RequestName, `${string}Capture`>, kind: CaptureKind): Promise<void> {
		if (this.#busy.has(kind)) return;
		this.#busy.add(kind);
		this.#renderControls();
		try {
			// Pause/stop carry the click: nothing captured after it is kept (issue 11).
			const status = await (name === "startCapture"
				? this.#signaling.request(name, { kind })
				: this.#signaling.request(name, { kind, clickedAt: Date.now() }));
			this.#apply(status);
		} catch (err) {
			if (!this.#closed) this.#showMessage(hostError(err), err instanceof SignalingError ? err.code : "error");
		} finally {
			this.#busy.delete(kind);
			if (!this.#closed) this.#renderControls();
		}
	}

	// Rendering -----------------------------------------------------------------------------------------------------

	#render(): void {
		if (!this.#started || this.#closed) return;
		this.#renderIndicators();
		this.#renderControls();
		this.#renderCoverage();
		this.#renderHeld();
	}

	#renderIndicators(): void {
		$("#capture-indicators").replaceChildren(
			...KINDS.map((kind) => {
				const s = this.#status.get(kind) ?? { kind, state: "off" };
				const words = WORDS[kind];
				const since = clockTime(s.since);
				const detail =
					s.state === "on"
						? [
								s.startedBy ? t("capture.startedBy", { name: s.startedBy }) : "",
								since ? t("capture.since", { time: since }) : "",
							]
								.filter(Boolean)
								.join(", ")
						: "";
				const label = s.state === "on" ? t(words.under, { detail: detail ? `, ${detail}` : "" }) : t(words.isPaused);
				return h(
					"span",
					{
						class: `capture-indicator ${s.state}`,
						"data-testid": "capture-indicator",
						"data-kind": kind,
						"data-state": s.state,
						"data-session-id": s.sessionId ?? null,
						role: "status",
						"aria-label": label,
						title: label,
						hidden: s.state === "off",
					},
					h("strong", { class: "dot", "aria-hidden": "true" }, t(s.state === "on" ? words.on : words.paused)),
					detail ? h("span", { class: "who", "aria-hidden": "true" }, detail) : null,
				);
			}),
		);
	}

	#renderControls(): void {
		const controls = $("#capture-controls");
		// Redrawing must not drop a keyboard user's place: the focus moves to the new button of the same kind.
		const focused = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>("#capture-controls button");
		const focusKind = focused?.dataset.kind;
		controls.replaceChildren(
			// The server has the last word (a tenant may keep transcription to the host): its refusal is shown.
			...CONTROLLED.filter((kind) => kind === "transcription" || this.#isHost).flatMap((kind) => {
				const state = this.#status.get(kind)?.state ?? "off";
				const busy = this.#busy.has(kind);
				const words = WORDS[kind];
				const button = (testid: string, action: string, text: string, cls: string | null = null) =>
					h(
						"button",
						{
							type: "button",
							class: cls,
							"data-testid": testid,
							"data-kind": kind,
							"data-action": action,
							// Not `disabled` (that would drop the focus): clicks are ignored while a request runs.
							"aria-disabled": busy ? "true" : null,
						},
						text,
					);
				if (state === "off") return [button("capture-start", "startCapture", t(words.start), "rec")];
				return [
					state === "on"
						? button("capture-pause", "pauseCapture", t(words.pause))
						: button("capture-start", "startCapture", t(words.resume), "rec"),
					button("capture-stop", "stopCapture", t(words.stop)),
				];
			}),
		);
		if (focusKind) controls.querySelector<HTMLElement>(`button[data-kind="${focusKind}"]`)?.focus();
	}

	#renderCoverage(): void {
		if (!this.#started || this.#closed) return;
		const lists = [...this.#coverage.entries()].filter(
			([kind, c]) => this.#status.get(kind)?.state === "on" && this.#status.get(kind)?.sessionId === c.sessionId,
		);
		$("#coverage-panel").hidden = !this.#isHost || lists.length === 0;
		$("#coverage-lists").replaceChildren(
			...lists.map(([kind, c]) => {
				const covered = c.entries.filter((e) => e.covered).length;
				return h(
					"div",
					{ class: "coverage" },
					h("h3", null, t(WORDS[kind].coverage, { covered, total: c.entries.length })),
					h(
						"ul",
						{ class: "people", "data-testid": "coverage-list", "data-kind": kind, "data-session-id": c.sessionId },
						...c.entries.map((e) =>
							h(
								"li",
								{
									"data-testid": "coverage-entry",
									"data-peer": e.peerId,
									"data-coverage": e.coverage,
									"data-covered": String(e.covered),
									"data-overdue": String(e.overdue),
								},
								h("span", { class: "name" }, e.displayName),
								h("span", { class: `badge coverage ${e.coverage}` }, t(COVERAGE_LABEL[e.coverage])),
								e.overdue ? h("span", { class: "badge overdue" }, t("capture.overdue")) : null,
								h("span", { class: "badge" }, t(e.covered ? "capture.captured" : "capture.notCaptured")),
							),
						),
					),
				);
			}),
		);
	}

	#renderHeld(): void {
		if (!this.#started || this.#closed) return;
		$("#media-held").hidden = this.#held.size === 0;
	}

	#showMessage(text: string, code: string): void {
		if (!this.#started || this.#closed) return;
		const box = $("#capture-message");
		box.dataset.code = code;
		$("#capture-message-text").textContent = text;
		box.hidden = false;
		clearTimeout(this.#messageTimer);
		this.#messageTimer = setTimeout(() => this.#hideMessage(), 20_000);
	}

	#hideMessage(): void {
		const box = $("#capture-message");
		box.hidden = true;
		delete box.dataset.code;
	}
}

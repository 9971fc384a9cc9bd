import "./zodConfig.js";
import {
	ConnectRedirectSchema,
	type JoinAnswer,
	JoinRedirectSchema,
	type JoinResult,
	type NoticeView,
} from "../../shared/protocol.js";
import { $, h } from "./dom.js";
import { ACTION_LABEL, type ErrorAction, errorInfo } from "./errors.js";
import { chooseLocale, initLocale, locale, onLocaleChange, t } from "./i18n/index.js";
import { fetchPublicMeeting, type JoinValues, JoinView } from "./JoinView.js";
import { LocalMedia } from "./LocalMedia.js";
import { Meeting } from "./meeting/Meeting.js";
import { closeMenus, wireMenus } from "./meeting/Menus.js";
import { showOperatorConsole } from "./OperatorConsole.js";
import { showPlaybackPage } from "./PlaybackPage.js";
import { showRecordingsPage } from "./RecordingsPage.js";
import { Signaling, SignalingError } from "./Signaling.js";
import { showTranscriptPage } from "./TranscriptPage.js";
import { forgetToken, readClaims, takeToken } from "./token.js";

type Screen = "join" | "lobby" | "meeting" | "reconnect" | "error" | "left";

/** Tries to get back into the meeting after the connection dropped: 1, 2, 4, 8, 8 s apart. */
const RECONNECT_DELAYS_MS = [1000, 2000, 4000, 8000, 8000];
/** Refusals worth another try: the connection or the server, not the meeting's rules. */
const TRANSIENT = new Set([
	"connection_failed",
	"timeout",
	"media_unavailable",
	"rate_limited",
	"internal_error",
	"store_unavailable",
]);

const SCREENS: Record<Screen, string> = {
	join: "#join-screen",
	lobby: "#lobby-screen",
	meeting: "#meeting-screen",
	reconnect: "#reconnect-screen",
	error: "#error-screen",
	left: "#left-screen",
};

/**
 * The page's flow: join page → (lobby →) meeting, and the screens for refusals, ejections and
 * leaving. One signaling connection at a time; it carries the sign-in token (if any) in its
 * handshake and is kept across the lobby, the admission and a rejoin after a media restart.
 */
class App {
	#token = takeToken();
	readonly #media = new LocalMedia();
	readonly #join: JoinView;
	#signaling: Signaling | undefined;
	/**
	 * Cluster (issue 12 placement): the node this page's signaling goes to (undefined: the page's own origin, where it
	 * started), moved by the join's redirects; and the live nodes the last join named, to reconnect through when the
	 * meeting's node is lost (any live node redirects to the meeting's new home).
	 */
	#node: string | undefined;
	#nodes: string[] = [];
	#lookupUsed = false;
	#meeting: Meeting | undefined;
	#last: JoinValues | undefined;
	#screen: Screen = "join";
	#joining = false;
	#poll: ReturnType<typeof setInterval> | undefined;
	#lastError: { code: string; detail: string; serverMessage: string; details: Record<string, unknown> } | undefined;

	constructor() {
		this.#join = new JoinView(
			this.#media,
			{ guest: !this.#token, claims: readClaims(this.#token) },
			(v) => void this.join(v),
		);
		$("#lobby-leave").addEventListener("click", () => void this.leave());
		$("#reconnect-leave").addEventListener("click", () => void this.leave());
		$("#rejoin-button").addEventListener("click", () => {
			if (this.#last) void this.join(this.#last);
		});
		addEventListener("pagehide", () => this.#signaling?.close());
		onLocaleChange(() => {
			// The error screen is redrawn in the new language (its detail, already worded, stays).
			if (this.#screen === "error" && this.#lastError) {
				const { code, detail, serverMessage, details } = this.#lastError;
				const focused = document.activeElement;
				this.#showError(code, detail, serverMessage, details);
				if (focused instanceof HTMLElement && focused.isConnected) focused.focus();
			}
		});
		this.#show("join");
	}

	/** Connects (if needed) and asks to join; `takeOver` takes the host seat from another device. */
	async join(values: JoinValues, options: { takeOver?: boolean } = {}): Promise<void> {
		if (this.#joining) return;
		this.#joining = true;
		this.#join.setBusy(true, t("join.connecting"));
		try {
			await this.#tryJoin(values, options);
		} catch (err) {
			this.#fail(err);
		} finally {
			this.#joining = false;
			this.#join.setBusy(false);
		}
	}

	/** `join` without the error screen: rejects with the refusal. */
	async #tryJoin(values: JoinValues, options: { takeOver?: boolean } = {}): Promise<void> {
		this.#last = values;
		// Cluster: the join page's lookup named the meeting's node: connect there first (no redirect to follow).
		// Only for the first join: later (a reconnect) the lookup may name a node since lost.
		const known = this.#lookupUsed ? undefined : this.#join.meeting?.node?.url;
		this.#lookupUsed = true;
		if (!this.#signaling?.open && !this.#node && known && known !== location.origin) this.#node = known;
		let signaling = await this.#connectFor(values.meetingId);
		const ask = async (s: Signaling): Promise<JoinAnswer> => {
			// A session that starts while the join is being answered sends this person its notice as an event, which
			// may arrive before the answer (seen after a cluster re-homing, where the new home starts its sessions as
			// people come back); the meeting listens only from the answer on. Kept, and shown with the answer's.
			const early: NoticeView[] = [];
			const stop = s.on("captureNotice", (n) => early.push(n));
			try {
				const res = await s.request("join", {
					meetingId: values.meetingId,
					displayName: values.displayName,
					...(values.passcode ? { passcode: values.passcode } : {}),
					...(options.takeOver ? { takeOverHostSeat: true } : {}),
					locale: locale(),
					clientTime: Date.now(),
				});
				if (res.status !== "joined" || early.length === 0) return res;
				return { ...res, notices: [...res.notices, ...early.filter((n) => !res.notices.some((x) => x.id === n.id))] };
			} finally {
				stop();
			}
		};
		let res = await ask(signaling);
		// Cluster: the meeting lives on another node. Same token, same join, there (at most a few hops).
		for (let hops = 0; res.status === "redirect"; hops++) {
			const r = JoinRedirectSchema.safeParse(res);
			if (!r.success || hops >= 3)
				throw new SignalingError({ code: "connection_failed", message: t("error.connection_failed") });
			if (signaling !== this.#signaling) return;
			this.#disconnect();
			this.#node = r.data.redirect.url;
			signaling = await this.#connectFor(values.meetingId);
			res = await ask(signaling);
		}
		if (signaling !== this.#signaling) return; // replaced meanwhile (left, ejected)
		if (res.status === "joined" && res.cluster) this.#nodes = res.cluster.nodes;
		if (res.status === "lobby") {
			$("#lobby-meeting").textContent = res.meeting.title;
			this.#show("lobby");
			return;
		}
		await this.#enter(signaling, res, values.displayName);
	}

	/**
	 * The connection to the gateway dropped (or the media connection failed) while in the meeting or
	 * the lobby: a "Reconnecting…" screen, and a few tries to get back in (within the gateway's grace
	 * period a person comes straight back, without the lobby). Past the last try, the error screen.
	 */
	async #reconnect(reason: string, nodeFenced = false): Promise<void> {
		const last = this.#last;
		this.#end();
		if (!last) {
			this.#showError("connection_lost", t("error.connection_lost.detail", { reason }));
			return;
		}
		this.#show("reconnect");
		// Cluster: the node we were on first, then where the page started, then the other live nodes (one of them
		// sends us to the meeting's new home if its node was lost).
		const lost = this.#node;
		// A node that fenced itself (cut off from its database) is tried last: it refuses until it is back.
		const others = [undefined, ...this.#nodes.filter((u) => u !== location.origin)];
		const nodes = [...new Set(nodeFenced ? [...others.filter((u) => u !== lost), lost] : [lost, ...others])];
		for (const [i, delay] of RECONNECT_DELAYS_MS.entries()) {
			$("#reconnect-detail").textContent = t("reconnect.attempt", { n: i + 1, max: RECONNECT_DELAYS_MS.length });
			await new Promise((r) => setTimeout(r, delay));
			// Each try goes through the nodes in turn (a lost node refuses at once; one node: the one try as before).
			for (const node of nodes) {
				if (this.#screen !== "reconnect") return; // the person left meanwhile
				this.#node = node;
				try {
					this.#joining = true;
					await this.#tryJoin(last);
					return;
				} catch (err) {
					const code = err instanceof SignalingError ? err.code : "internal_error";
					if (!TRANSIENT.has(code)) {
						this.#fail(err);
						return;
					}
					this.#disconnect();
				} finally {
					this.#joining = false;
				}
			}
		}
		this.#showError("connection_lost", t("error.connection_lost.detail", { reason }));
	}

	/** Leave (from the meeting or the lobby): the gateway frees everything this person held. */
	async leave(): Promise<void> {
		const meeting = this.#meeting;
		this.#meeting = undefined;
		if (meeting) await meeting.leave();
		else if (this.#signaling?.open)
			await this.#signaling.request("leave", { clickedAt: Date.now() }, 3000).catch(() => undefined);
		this.#disconnect();
		this.#media.stopAll();
		this.#show("left");
	}

	/**
	 * Connects for joining `meetingId`, naming it in the handshake. Cluster: a node where that meeting does not live
	 * refuses the connection with a redirect (zod-checked by Signaling); follow it (at most a few hops).
	 */
	async #connectFor(meetingId: string): Promise<Signaling> {
		for (let hops = 0; ; hops++) {
			try {
				return await this.#connect(meetingId);
			} catch (err) {
				if (!(err instanceof SignalingError) || err.code !== "redirect") throw err;
				const r = ConnectRedirectSchema.safeParse({ code: err.code, message: err.message, ...err.details });
				if (!r.success || hops >= 3)
					throw new SignalingError({ code: "connection_failed", message: t("error.connection_failed") });
				this.#node = r.data.redirect.url;
			}
		}
	}

	async #connect(meetingId?: string): Promise<Signaling> {
		if (this.#signaling?.open) return this.#signaling;
		this.#signaling?.close();
		const s = new Signaling({ token: this.#token, meetingId, ...(this.#node ? { url: this.#node } : {}) });
		this.#signaling = s;
		s.on("admitted", () => {
			if (s === this.#signaling && this.#last) void this.join(this.#last);
		});
		s.on("ejected", ({ reason, message, operatorReason }) => {
			if (s !== this.#signaling) return;
			// Cluster: this node lost its database and closed its rooms; another node continues the meeting.
			if (reason === "node_fenced" && (this.#screen === "meeting" || this.#screen === "lobby")) {
				void this.#reconnect(message, true);
				return;
			}
			this.#end();
			// The service operator's own words, when they ended the meeting or suspended the account.
			const why =
				operatorReason && (reason === "operator" || reason === "account_suspended")
					? t(`error.${reason}.reason`, { reason: operatorReason })
					: "";
			this.#showError(reason, why, message);
		});
		s.on("operatorWarning", (w) => this.#warn(s, w));
		s.on("reconnect", ({ reason }) => {
			if (s !== this.#signaling) return;
			// The gateway lost this meeting's media worker: the room is gone, this connection stays.
			this.#meeting?.close();
			this.#meeting = undefined;
			this.#showError("reconnect", t("error.reconnect.detail", { reason }));
		});
		s.onLost((reason) => {
			if (s !== this.#signaling) return;
			if (this.#screen === "meeting" || this.#screen === "lobby") void this.#reconnect(reason);
			else {
				this.#end();
				this.#showError("connection_lost", t("error.connection_lost.detail", { reason }));
			}
		});
		await s.connected();
		return s;
	}

	/** Warnings from the service operator, one at a time: shown until acknowledged (the gateway records it). */
	#warnings: { s: Signaling; id: string; message: string }[] = [];

	#warn(s: Signaling, w: { id: string; message: string }): void {
		if (this.#warnings.some((x) => x.id === w.id)) return;
		this.#warnings.push({ s, ...w });
		if (this.#warnings.length === 1) this.#showWarning();
	}

	#showWarning(): void {
		const w = this.#warnings[0];
		const dialog = $<HTMLDialogElement>("#warning-dialog");
		if (!w) {
			if (dialog.open) dialog.close();
			return;
		}
		$("#warning-message").textContent = w.message;
		$("#warning-error").textContent = "";
		const ack = $<HTMLButtonElement>("#warning-ack");
		ack.onclick = () => {
			ack.disabled = true;
			w.s
				.request("acknowledgeWarning", { warningId: w.id })
				.then(() => {
					this.#warnings.shift();
					this.#showWarning();
				})
				.catch(() => {
					$("#warning-error").textContent = t("warning.failed");
				})
				.finally(() => {
					ack.disabled = false;
				});
		};
		dialog.addEventListener("cancel", (ev) => ev.preventDefault(), { once: true }); // Escape does not dismiss it
		if (!dialog.open) dialog.showModal();
	}

	async #enter(signaling: Signaling, joined: Extract<JoinResult, { status: "joined" }>, name: string): Promise<void> {
		// Subscribe to the meeting's events before anything else can run.
		const meeting = new Meeting(signaling, joined, name, this.#media, {
			leave: () => void this.leave(),
			declined: () => this.#afterDecline(signaling),
			mediaFailed: () => {
				if (this.#signaling === signaling && this.#screen === "meeting") void this.#reconnect("media");
			},
		});
		this.#meeting?.close();
		this.#meeting = meeting;
		const errors = await this.#media.open();
		this.#show("meeting");
		try {
			await meeting.start();
		} catch (err) {
			if (this.#meeting === meeting) {
				this.#meeting = undefined;
				await meeting.leave();
			}
			throw err;
		}
		for (const e of errors) console.warn(e);
	}

	/**
	 * The person declined a recording notice: the gateway ejects them (`declined_capture`, with its
	 * message). Should that not arrive, leave on our side all the same.
	 */
	#afterDecline(signaling: Signaling): void {
		setTimeout(() => {
			if (signaling !== this.#signaling || this.#screen !== "meeting") return;
			this.#end();
			this.#showError("declined_capture");
		}, 5000);
	}

	/** Out of the meeting for good on this connection: close media and the socket. */
	#end(): void {
		this.#meeting?.close();
		this.#meeting = undefined;
		this.#disconnect();
		this.#media.stopAll();
	}

	#disconnect(): void {
		this.#signaling?.close();
		this.#signaling = undefined;
	}

	#fail(err: unknown): void {
		const e =
			err instanceof SignalingError
				? err
				: new SignalingError({ code: "internal_error", message: err instanceof Error ? err.message : String(err) });
		if (e.code === "timeout" || e.code === "connection_failed") this.#disconnect();
		this.#showError(e.code, "", e.message, e.details);
	}

	/**
	 * The refusal or ejection screen. `detail` is a translated message that replaces the code's
	 * (it names a cause); `serverMessage` is shown only for codes the catalogues don't know.
	 */
	#showError(code: string, detail = "", serverMessage = "", details: Record<string, unknown> = {}): void {
		this.#lastError = { code, detail, serverMessage, details };
		let info = errorInfo(code, serverMessage, details);
		if (code === "wrong_passcode" && !this.#last?.passcode) info = errorInfo("passcode_needed");
		const screen = $("#error-screen");
		screen.dataset.code = code;
		$("#error-title").textContent = info.title;
		$("#error-message").textContent = detail || info.message;
		const actions = info.actions.filter((a) => a !== "guest" || this.#token);
		$("#error-actions").replaceChildren(
			...actions.map((a, i) =>
				h(
					"button",
					{ type: "button", class: i === 0 ? "primary" : null, onclick: () => this.#act(a) },
					t(ACTION_LABEL[a]),
				),
			),
		);
		this.#show("error");
		if (code === "meeting_not_started" && !this.#poll) this.#waitForStart();
		(screen.querySelector("button") as HTMLButtonElement | null)?.focus();
	}

	#act(action: ErrorAction): void {
		const last = this.#last;
		switch (action) {
			case "retry":
			case "rejoin":
				if (last) void this.join(last);
				else this.#show("join");
				return;
			case "takeOver":
				if (last) void this.join(last, { takeOver: true });
				return;
			case "guest":
				forgetToken();
				this.#token = undefined;
				this.#disconnect();
				this.#join.becomeGuest();
				this.#show("join");
				return;
			case "back": {
				const code = $("#error-screen").dataset.code ?? "";
				this.#show("join");
				this.#join.focusForFix(code);
				return;
			}
		}
	}

	/** "Not started yet": check every few seconds and join as soon as the host starts it. */
	#waitForStart(): void {
		const last = this.#last;
		if (!last) return;
		this.#poll = setInterval(async () => {
			const m = await fetchPublicMeeting(last.meetingId);
			if (m?.state === "live" && this.#screen === "error") void this.join(last);
		}, 5000);
	}

	#show(screen: Screen): void {
		if (screen !== "meeting") closeMenus();
		clearInterval(this.#poll);
		this.#poll = undefined;
		this.#screen = screen;
		for (const [name, sel] of Object.entries(SCREENS)) $(sel).hidden = name !== screen;
		if (screen === "join") void this.#join.show();
		else this.#join.hide();
	}
}

initLocale();
// The language toggles (one on every screen): the other language, remembered for the next visits.
document.addEventListener("click", (ev) => {
	if ((ev.target as Element | null)?.closest?.(".lang-toggle")) chooseLocale(locale() === "fr" ? "en" : "fr");
});

const transcript = /^\/t\/([A-Za-z0-9_-]{16,64})$/.exec(location.pathname);
const recording = /^\/r\/([0-9a-fA-F-]{36})$/.exec(location.pathname);
const recordings = /^\/recordings\/([A-Za-z0-9-]{1,64})$/.exec(location.pathname);
if (transcript?.[1]) void showTranscriptPage(transcript[1], takeToken());
else if (recording?.[1]) void showPlaybackPage(recording[1], takeToken());
else if (recordings?.[1]) void showRecordingsPage(recordings[1], takeToken());
else if (location.pathname === "/operator") showOperatorConsole(takeToken());
else {
	wireMenus();
	new App();
}

import { EventEmitter } from "node:events";
import type { types as ms } from "mediasoup";
import type { CloseTime } from "../../contracts/RecorderProtocol.js";
import type {
	CaptureStatus,
	CoverageEntry,
	MediaSource,
	NoticeView,
	NotRecorded,
	ServerEvents,
} from "../../shared/protocol.js";
import type { AppendInput, EventLog, EventType } from "../audit/EventLog.js";
import type { NoticesAcknowledgedData, NoticesSentData } from "../audit/notices.js";
import { ConflictError, ConsentryError, ForbiddenError, NotFoundError, StoreUnavailableError } from "../errors.js";
import type { Logger } from "../logger.js";
import { type Connection, personKey } from "../meetings/Connection.js";
import type { Meeting } from "../meetings/MeetingTypes.js";
import { CaptureControl } from "./CaptureControl.js";
import {
	type CaptureKind,
	type CaptureSession,
	type Coverage,
	DEFAULT_TENANT_CAPTURE,
	type Locale,
	type Notice,
	resolvePolicy,
	type SessionContinuation,
	type TenantCapture,
} from "./CaptureTypes.js";
import { noticeText, type ResolvedNoticeText } from "./noticeTexts.js";

export type CaptureProducer = ms.Producer<{ source: MediaSource; peerId: string }>;

/** A tap is one producer of one person, inside one session, that the gate lets (or no longer lets) through. */
export interface TapChange {
	open: boolean;
	reason: string;
	session: CaptureSession;
	tenantId: string;
	/** The connection (one client) the gate is for, and the person behind it. */
	peerId: string;
	person: string;
	producer: CaptureProducer;
	/** The person's click that opened this gate, on their sender's clock (Unix ms), when the client sent it (issue 11). */
	clickedAt?: number;
	/** Closing: when capture ends for this producer — its person's own click, or the gateway's time (issue 11). */
	closeAt?: CloseTime;
}

/**
 * When an operation ended capture (issue 11): `at` on the gateway's clock (the acting person's click mapped through
 * their join offset, or the gateway's own time where nobody clicked, e.g. a dropped connection); `by` and
 * `byClickedAt`: who clicked, and their click on their own clock (exact for their own producers).
 */
export interface CaptureClose {
	at: number;
	by?: string;
	byClickedAt?: number;
}

/** The close time of one person's producers: their own click on their own clock, else the gateway's time. */
export function closeTimeFor(close: CaptureClose, peerId: string): CloseTime {
	return close.by === peerId && close.byClickedAt !== undefined
		? { at: close.byClickedAt, clock: "sender" }
		: { at: close.at, clock: "gateway" };
}

/** What a capture session feeds (the recorder, a transcriber): asked before a session may start. */
export interface CaptureSink {
	/** Throws a ConsentryError with the reason the host sees when this tenant can't capture now (e.g. no storage). */
	assertCanStart(meeting: Meeting): Promise<void>;
}

export type CaptureServiceEvents = {
	/** Open/close one producer's tap. The recorder and the transcriber only ever consume media on these. */
	tap: [change: TapChange];
	sessionstart: [session: CaptureSession, meeting: { tenantId: string; meetingId: string }];
	sessionend: [
		session: CaptureSession,
		meeting: { tenantId: string; meetingId: string },
		reason: string,
		close: CaptureClose,
	];
};

export interface CaptureServiceOptions {
	events: EventLog;
	/** A tenant's capture settings (tenants file); unknown tenants get the defaults. */
	tenantCapture: (tenantId: string) => TenantCapture | undefined;
	log: Logger;
	/** How long the host's coverage view may lag behind (ms): updates are coalesced. */
	coverageDebounceMs?: number;
}

interface Member {
	conn: Connection;
	person: string;
	locale: Locale;
}

/** Capture state of one live meeting. */
interface MeetingCapture {
	meeting: Meeting;
	tenant: TenantCapture;
	controls: Record<CaptureKind, CaptureControl>;
	members: Map<string, Member>;
	/** When each pending notice was issued, per kind and peer (for "overdue"). */
	issuedAt: Record<CaptureKind, Map<string, number>>;
	/** Notices already reported on screen (one `notice.shown` each). */
	shown: Set<string>;
	/** Co-hosts (peer IDs): they see the coverage list like the host. */
	controllers: Set<string>;
	/** Producers the server paused until their person consents, per peer. */
	held: Map<string, Set<string>>;
	/** The last session of each kind (kept while paused, for `session.off`). */
	last: Partial<Record<CaptureKind, CaptureSession>>;
	coverageTimer?: NodeJS.Timeout;
	/** Why the current operation happens (start/pause/stop reasons), for the events it causes. */
	opReason?: string | undefined;
	/** Extra facts for the next session.on (cluster: the session a re-homed meeting's new one continues). */
	startNote?: SessionContinuation | undefined;
	/** Audit entries and taps produced by the current operation, flushed together at its end. */
	pending: (AppendInput & { type: EventType })[];
	taps: TapChange[];
	/** `${kind}:${peerId}` → the click time its last answer carried (issue 11). */
	clicks?: Map<string, number>;
	/** When the current operation ends capture (issue 11). */
	closing?: CaptureClose;
	/** Taps numbered in the order the operations made them. */
	tapNo: number;
	/** `${sessionId}_${producerId}` → number of its last close (an open made before it is stale). */
	closedAt: Map<string, number>;
	/** Peers whose acknowledgement or consent is not committed yet (the gate stays shut for them till it is). */
	uncommitted: Map<string, number>;
	/**
	 * Per kind, the peers the current operation sent a session's notice to: the notice tells them the session is on,
	 * so the state broadcast after the commit skips them (one socket write per person instead of two).
	 */
	noticed: Partial<Record<CaptureKind, { sessionId: string; peers: Set<string> }>>;
	/**
	 * Operations' audit entries waiting for the meeting's commit in flight, in call order ({@link coalesceAnswers}
	 * records the acknowledgements among them in one entry), and whether a commit is in flight.
	 */
	commits: { items: Item[]; resolve: () => void; reject: (err: unknown) => void }[];
	committing: boolean;
}

type Item = AppendInput & { type: EventType };

/**
 * The audit entries of operations committed together, in their order, with every run of consecutive
 * acknowledgements of one session (each an operation's `notice.acknowledged` and the `gate.opened` entries it caused)
 * recorded as one `notices.acknowledged` entry (data.answers, one per person; server/audit/notices.ts) followed by
 * those gates: a 500-person start's acknowledgements become a few entries instead of 500. Each gate still follows the
 * answer that opened it, and nothing else moves. A run of one stays a `notice.acknowledged`.
 */
export function coalesceAnswers(ops: readonly (readonly Item[])[]): Item[] {
	const out: Item[] = [];
	let run: (readonly Item[])[] = [];
	const end = () => {
		const first = run[0]?.[0];
		if (run.length >= 2 && first) {
			const data: NoticesAcknowledgedData = {
				kind: String(first.data?.kind),
				sessionId: String(first.data?.sessionId),
				policy: first.data?.policy as NoticesAcknowledgedData["policy"],
				answers: run.map((op) => {
					const d = op[0]?.data ?? {};
					return { person: String(op[0]?.actor), peerId: String(d.peerId), noticeId: String(d.noticeId) };
				}),
			};
			out.push({
				type: "notices.acknowledged",
				tenantId: first.tenantId,
				...(first.meetingId ? { meetingId: first.meetingId } : {}),
				data: { ...data },
			});
			for (const op of run) out.push(...op.slice(1));
		} else for (const op of run) out.push(...op);
		run = [];
	};
	for (const op of ops) {
		const head = op[0];
		const ack =
			head?.type === "notice.acknowledged" &&
			typeof head.actor === "string" &&
			op.every((it, i) => i === 0 || it.type === "gate.opened");
		const joins =
			ack &&
			run.length > 0 &&
			run[0]?.[0]?.data?.sessionId === head.data?.sessionId &&
			run[0]?.[0]?.data?.kind === head.data?.kind &&
			run[0]?.[0]?.tenantId === head.tenantId &&
			run[0]?.[0]?.meetingId === head.meetingId;
		if (!joins) end();
		if (ack) run.push(op);
		else out.push(...op);
	}
	end();
	return out;
}

const KINDS: readonly CaptureKind[] = ["recording", "transcription"];
/** Clock skew tolerated between a client's clock and the gateway's when checking a click time (issue 11). */
const CLICK_SKEW_MS = 2_000;
/** A click older than this when its answer arrives is refused. */
const CLICK_MAX_AGE_MS = 30_000;

/**
 * The notice gate of every live meeting, and the only way to media for capture.
 * For each meeting it keeps one {@link CaptureControl} per kind (recording,
 * transcription), keyed by connection (peer): each client must show the notice
 * itself. It turns the controls' decisions into what people see (notices,
 * indicators, the host's coverage list, held media), into the audit trail, and
 * into `tap` events per producer for the recorder and the transcriber — emitted
 * only after the audit entries that justify them are committed.
 */
export class CaptureService extends EventEmitter<CaptureServiceEvents> {
	readonly #events: EventLog;
	readonly #tenantCapture: (tenantId: string) => TenantCapture | undefined;
	readonly #sinks: Partial<Record<CaptureKind, CaptureSink>> = {};
	readonly #log: Logger;
	readonly #debounceMs: number;
	readonly #meetings = new Map<string, MeetingCapture>();

	constructor(options: CaptureServiceOptions) {
		super();
		this.#events = options.events;
		this.#tenantCapture = options.tenantCapture;
		this.#log = options.log.child({ component: "CaptureService" });
		this.#debounceMs = options.coverageDebounceMs ?? 100;
	}

	/** What a kind feeds (the recording service, a transcriber); without one, that kind can't be turned on. */
	registerSink(kind: CaptureKind, sink: CaptureSink): void {
		this.#sinks[kind] = sink;
	}

	/** A co-host was named (or un-named): they get the coverage list like the host. */
	setController(meetingId: string, peerId: string, on: boolean): void {
		const mc = this.#meetings.get(meetingId);
		if (!mc) return;
		if (on) mc.controllers.add(peerId);
		else mc.controllers.delete(peerId);
		this.#scheduleCoverage(mc);
	}

	/** Who may turn a kind on in this meeting: recording is the host's; transcription per the tenant's setting. */
	starters(meeting: Meeting, kind: CaptureKind): "all" | "host" {
		if (kind === "recording") return "host";
		return (this.#tenantCapture(meeting.tenantId) ?? DEFAULT_TENANT_CAPTURE).transcription;
	}

	/** Sends an event to everyone in the meeting (e.g. live captions). */
	notifyMembers<E extends keyof ServerEvents>(meetingId: string, event: E, ...args: Parameters<ServerEvents[E]>): void {
		for (const m of this.#meetings.get(meetingId)?.members.values() ?? []) m.conn.notify(event, ...args);
	}

	/** Sends an event to the meeting's hosts (and co-hosts who control capture), e.g. a warning that a track loses data. */
	notifyHosts<E extends keyof ServerEvents>(meetingId: string, event: E, ...args: Parameters<ServerEvents[E]>): void {
		const mc = this.#meetings.get(meetingId);
		for (const m of mc?.members.values() ?? []) {
			if (m.conn.role === "host" || mc?.controllers.has(m.conn.peerId)) m.conn.notify(event, ...args);
		}
	}

	/**
	 * Tells the hosts that one person's track is not captured because no sender report dates its packets (issue 11):
	 * their client sends no RTCP sender reports, so nothing of it can be shown to follow their click.
	 */
	warnUndatable(
		meetingId: string,
		kind: CaptureKind,
		sessionId: string,
		peerId: string,
		track: "audio" | "camera" | "screen",
	): void {
		const displayName = this.#meetings.get(meetingId)?.members.get(peerId)?.conn.displayName ?? "";
		this.notifyHosts(meetingId, "captureWarning", {
			code: "capture_undatable",
			kind,
			sessionId,
			peerId,
			displayName,
			track,
		});
	}

	/** THE gate question: may this peer's media be captured for `kind` in this meeting right now? */
	mayCapture(meetingId: string, kind: CaptureKind, peerId: string): boolean {
		const mc = this.#meetings.get(meetingId);
		if (!mc || mc.uncommitted.has(peerId)) return false; // the proof isn't committed yet
		return mc.controls[kind].mayCapture(peerId);
	}

	/** The running session of a kind, if on. */
	session(meetingId: string, kind: CaptureKind): CaptureSession | undefined {
		const c = this.#meetings.get(meetingId)?.controls[kind];
		return c?.state === "on" ? c.session : undefined;
	}

	status(meetingId: string): CaptureStatus[] {
		const mc = this.#meetings.get(meetingId);
		return KINDS.map((kind) => (mc ? this.#status(mc, kind) : { kind, state: "off" }));
	}

	/** A person joined the room: they are present for every kind; the notices of running sessions come back. */
	async joined(
		meeting: Meeting,
		conn: Connection,
		locale: Locale,
	): Promise<{ capture: CaptureStatus[]; notices: NoticeView[]; notRecorded?: NotRecorded[] }> {
		const mc = this.#state(meeting);
		const member: Member = { conn, person: personKey(conn), locale };
		mc.members.set(conn.peerId, member);
		const notices: NoticeView[] = [];
		await this.#op(mc, () => {
			for (const kind of KINDS) {
				const notice = mc.controls[kind].join(conn.peerId);
				if (notice) {
					mc.issuedAt[kind].set(conn.peerId, Date.now());
					notices.push(this.#noticeView(mc, member, notice, "join"));
				}
			}
		});
		if (notices.length) this.#scheduleCoverage(mc, mc.tenant.ackTimeoutMs);
		const notRecorded = this.notRecorded(meeting.id);
		return { capture: KINDS.map((k) => this.#status(mc, k)), notices, ...(notRecorded.length ? { notRecorded } : {}) };
	}

	/**
	 * The person left (or was ejected, or their media room closed): every gate of theirs closes at once (the taps
	 * close now; the promise settles once the trail has it).
	 */
	async left(meetingId: string, peerId: string, clickedAt?: number): Promise<void> {
		const mc = this.#meetings.get(meetingId);
		const member = mc?.members.get(peerId);
		if (!mc || !member) return;
		const wasNotRecorded =
			mc.tenant.onDecline === "stay-unrecorded" && this.notRecorded(meetingId).some((n) => n.peerId === peerId);
		const committed = this.#op(
			mc,
			() => {
				for (const kind of KINDS) {
					mc.controls[kind].leave(peerId);
					mc.issuedAt[kind].delete(peerId);
				}
			},
			undefined,
			undefined,
			undefined,
			this.#closeClick(member.conn, clickedAt),
		);
		mc.members.delete(peerId);
		mc.held.delete(peerId);
		mc.controllers.delete(peerId);
		if (wasNotRecorded) this.#broadcastNotRecorded(mc);
		this.#scheduleCoverage(mc);
		await committed;
	}

	/** Turns a kind on (start or resume): a new session and a new notice for everyone present. */
	async start(meeting: Meeting, by: Connection, kind: CaptureKind): Promise<CaptureStatus> {
		const sink = this.#sinks[kind];
		if (!sink) {
			throw new ConsentryError(
				`${kind}_unavailable`,
				kind === "transcription"
					? "Transcription is not available on this gateway yet."
					: "Recording is not available on this gateway: no recorder is running.",
				503,
			);
		}
		const mc = this.#state(meeting);
		if (mc.controls[kind].state === "on") throw new ConflictError("already_on", `${label(kind)} is already on.`);
		await sink.assertCanStart(meeting);
		const policy = resolvePolicy(mc.tenant, meeting.settings.capturePolicy);
		await this.#op(mc, () => mc.controls[kind].start(by.peerId, policy), personKey(by));
		return this.#status(mc, kind);
	}

	/**
	 * Cluster (issue 12 placement): a meeting whose node was lost had `kind` on; its new home turns it on again, as
	 * the gateway (no host click: the host already decided), in a new session whose session.on names the one it
	 * continues and why there is a gap (`note`). Nobody is covered until they acknowledge its notice here, as always.
	 */
	async continueAfterNodeLoss(
		meeting: Meeting,
		kind: CaptureKind,
		actor: string,
		note: SessionContinuation,
	): Promise<CaptureStatus | undefined> {
		const sink = this.#sinks[kind];
		if (!sink) return undefined;
		const mc = this.#state(meeting);
		if (mc.controls[kind].state === "on") return undefined;
		await sink.assertCanStart(meeting);
		const policy = resolvePolicy(mc.tenant, meeting.settings.capturePolicy);
		mc.startNote = note;
		try {
			await this.#op(mc, () => mc.controls[kind].start(actor, policy), actor);
		} finally {
			mc.startNote = undefined;
		}
		return this.#status(mc, kind);
	}

	async pause(meeting: Meeting, by: Connection, kind: CaptureKind, clickedAt?: number): Promise<CaptureStatus> {
		const mc = this.#state(meeting);
		const close = this.#closeClick(by, clickedAt);
		await this.#op(mc, () => mc.controls[kind].pause(), personKey(by), "paused", undefined, close);
		return this.#status(mc, kind);
	}

	/** Turns a kind off: its taps close at once; resolves once the trail has it. */
	async stop(
		meeting: Meeting,
		by: Connection | string | null,
		kind: CaptureKind,
		reason = "stopped",
		message?: string,
		clickedAt?: number,
	): Promise<CaptureStatus> {
		const mc = this.#meetings.get(meeting.id);
		if (!mc || mc.controls[kind].state === "off") return { kind, state: "off" };
		const actor = by === null ? undefined : typeof by === "string" ? by : personKey(by);
		const control = mc.controls[kind];
		await this.#op(
			mc,
			() => {
				// From pause no session is running (the pause ended it); the trail still says it is off now.
				if (control.state === "paused") {
					const data = { kind, sessionId: mc.last[kind]?.id ?? null, reason };
					mc.pending.push({ type: "session.off", ...this.#where(mc), data });
				}
				control.stop();
			},
			actor,
			reason,
			message,
			by !== null && typeof by !== "string" ? this.#closeClick(by, clickedAt) : undefined,
		);
		return this.#status(mc, kind);
	}

	/** The gateway turns a kind off on its own (e.g. the customer's bucket stayed unreachable): everyone is told why. */
	stopBySystem(meetingId: string, kind: CaptureKind, reason: string, message: string): void {
		const mc = this.#meetings.get(meetingId);
		if (mc)
			this.stop(mc.meeting, null, kind, reason, message).catch((err: unknown) =>
				this.#log.error({ err, meetingId }, "could not record a stop"),
			);
	}

	/** The meeting ended: everything it had on is off (`reason` lands in the manifests), its state goes. */
	async ended(meetingId: string, actor: string, reason = "meeting_ended"): Promise<void> {
		const mc = this.#meetings.get(meetingId);
		if (!mc) return;
		const stops = KINDS.map((kind) => this.stop(mc.meeting, actor, kind, reason));
		if (mc.coverageTimer) clearTimeout(mc.coverageTimer);
		this.#meetings.delete(meetingId);
		await Promise.all(stops);
	}

	/**
	 * Cluster fencing (issue 12): this node lost the store long enough that another node may have taken the meeting.
	 * Every running session ends here at once (gates closed, taps closed: the recorder completes what it holds in the
	 * bucket), with reason `node_fenced`, and nothing is written to the trail from here: the store is not reachable,
	 * and the meeting's new home continues the recording and finishes this session from the bucket (`node_lost`).
	 */
	fenced(meetingId: string): void {
		const mc = this.#meetings.get(meetingId);
		if (!mc) return;
		this.#meetings.delete(meetingId);
		if (mc.coverageTimer) clearTimeout(mc.coverageTimer);
		mc.opReason = "node_fenced";
		mc.closing = { at: Date.now() };
		for (const kind of KINDS) {
			const control = mc.controls[kind];
			if (control.state === "on") control.stop();
		}
		mc.pending.length = 0; // their entries never reach the trail from here
	}

	/** The client reports the notice on screen. */
	async shown(meetingId: string, conn: Connection, noticeId: string): Promise<void> {
		const { mc, kind } = this.#notice(meetingId, conn, noticeId);
		if (mc.shown.has(noticeId)) return;
		mc.shown.add(noticeId);
		const session = mc.controls[kind].session as CaptureSession;
		await this.#flush(mc, [
			{
				type: "notice.shown",
				...this.#where(mc),
				actor: personKey(conn),
				data: { kind, sessionId: session.id, noticeId, peerId: conn.peerId },
			},
		]);
	}

	async acknowledge(meetingId: string, conn: Connection, noticeId: string, clickedAt?: number): Promise<Coverage> {
		const { mc, kind } = this.#notice(meetingId, conn, noticeId);
		this.#click(mc, kind, conn, clickedAt);
		const control = mc.controls[kind];
		const before = control.coverage(conn.peerId);
		let after: Coverage = before ?? "pending";
		const committed = this.#op(mc, () => {
			after = control.acknowledge(conn.peerId, noticeId);
			if (before === "pending" && after === "acknowledged") {
				mc.pending.unshift(this.#personEvent(mc, "notice.acknowledged", conn, kind, noticeId));
			}
		});
		if (before !== after) this.#scheduleCoverage(mc);
		await this.#proven(mc, control, conn, noticeId, committed, after, before ?? "pending");
		return after;
	}

	async consent(meetingId: string, conn: Connection, noticeId: string, clickedAt?: number): Promise<Coverage> {
		const { mc, kind } = this.#notice(meetingId, conn, noticeId);
		this.#click(mc, kind, conn, clickedAt);
		const control = mc.controls[kind];
		const before = control.coverage(conn.peerId);
		let after: Coverage = before ?? "pending";
		const committed = this.#op(mc, () => {
			after = control.consent(conn.peerId, noticeId);
			if (before !== "consented") mc.pending.unshift(this.#personEvent(mc, "consent.given", conn, kind, noticeId));
		});
		if (before !== after) {
			this.#release(mc, conn.peerId);
			this.#scheduleCoverage(mc);
		}
		await this.#proven(mc, control, conn, noticeId, committed, after, before ?? "pending");
		return after;
	}

	/**
	 * The person declines the notice, or withdraws what they gave: out of the capture at once, and their gate never
	 * opens again in this session. By the terms their recourse is to leave (`stayed: false`: the caller ejects them);
	 * a tenant with `onDecline: "stay-unrecorded"` keeps them in (`stayed: true`): their held media is released (it
	 * is seen and heard live, never captured) and everyone is told they are not recorded.
	 */
	async decline(
		meetingId: string,
		conn: Connection,
		noticeId: string,
		clickedAt?: number,
	): Promise<{ stayed: boolean }> {
		const { mc, kind } = this.#notice(meetingId, conn, noticeId);
		const stayed = mc.tenant.onDecline === "stay-unrecorded";
		const control = mc.controls[kind];
		const before = control.coverage(conn.peerId);
		if (before === "declined") return { stayed };
		const type: EventType = before === "pending" ? "consent.declined" : "consent.withdrawn";
		const committed = this.#op(
			mc,
			() => {
				control.decline(conn.peerId, noticeId);
				const entry = this.#personEvent(mc, type, conn, kind, noticeId);
				if (entry.data) entry.data.stayed = stayed;
				mc.pending.unshift(entry);
			},
			undefined,
			undefined,
			undefined,
			this.#closeClick(conn, clickedAt),
		);
		if (stayed) {
			this.#release(mc, conn.peerId);
			this.#broadcastNotRecorded(mc);
		}
		this.#scheduleCoverage(mc);
		await committed;
		return { stayed };
	}

	/** Who declined a running session and is still present (never captured in it). */
	notRecorded(meetingId: string): NotRecorded[] {
		const mc = this.#meetings.get(meetingId);
		if (!mc) return [];
		const out: NotRecorded[] = [];
		for (const kind of KINDS) {
			const control = mc.controls[kind];
			if (control.state !== "on" || !control.session) continue;
			for (const peerId of mc.members.keys()) {
				if (control.coverage(peerId) === "declined") out.push({ peerId, kind, sessionId: control.session.id });
			}
		}
		return out;
	}

	/** New media may not start while a notice waits for this person (they must see it before publishing). */
	assertMayProduce(meetingId: string, peerId: string): void {
		const mc = this.#meetings.get(meetingId);
		if (!mc) return;
		for (const kind of KINDS) {
			const control = mc.controls[kind];
			const coverage = control.coverage(peerId);
			const notice = control.noticeFor(peerId);
			// Declined and stayed (onDecline: stay-unrecorded): seen and heard live, never captured in this session.
			if (!notice || coverage === undefined || coverage === "declined") continue;
			if (notice.consentRequired && coverage !== "consented") {
				throw new ForbiddenError(
					"consent_required",
					`${label(kind)} is on under an explicit-consent policy: consent (or leave) before sending media.`,
				);
			}
			if (coverage === "pending") {
				throw new ForbiddenError("notice_pending", `Acknowledge the ${kind} notice before sending media.`);
			}
		}
	}

	/** A held producer stays paused until its person consents; they may pause it (it then stays paused). */
	assertMayResume(meetingId: string, peerId: string): void {
		const mc = this.#meetings.get(meetingId);
		if (mc && this.#holding(mc, peerId)) {
			throw new ForbiddenError(
				"consent_required",
				"Your media is held until you consent to the capture (or leave the meeting).",
			);
		}
	}

	/** The person paused a producer themselves: it is no longer held (consenting won't resume it). */
	producerPaused(meetingId: string, peerId: string, producerId: string): void {
		this.#meetings.get(meetingId)?.held.get(peerId)?.delete(producerId);
	}

	/** A producer appeared: held if its person must still consent; tapped for every session whose gate is open for them. */
	async producerAdded(meetingId: string, conn: Connection, producer: CaptureProducer): Promise<void> {
		const mc = this.#meetings.get(meetingId);
		if (!mc) return;
		producer.observer.once("close", () => this.#producerClosed(mc, conn, producer));
		if (this.#holding(mc, conn.peerId)) {
			await producer.pause();
			this.#heldSet(mc, conn.peerId).add(producer.id);
			conn.notify("mediaHeld", { held: true, producerIds: [producer.id] });
		}
		await this.#op(mc, () => {
			for (const kind of KINDS) {
				const control = mc.controls[kind];
				if (control.mayCapture(conn.peerId)) {
					this.#gate(mc, control.session as CaptureSession, conn.peerId, producer, true, "producer_added");
				}
			}
		});
	}

	#producerClosed(mc: MeetingCapture, conn: Connection, producer: CaptureProducer): void {
		mc.held.get(conn.peerId)?.delete(producer.id);
		if (this.#meetings.get(mc.meeting.id) !== mc || !mc.members.has(conn.peerId)) return;
		this.#op(mc, () => {
			for (const kind of KINDS) {
				const control = mc.controls[kind];
				if (control.mayCapture(conn.peerId)) {
					this.#gate(mc, control.session as CaptureSession, conn.peerId, producer, false, "producer_closed");
				}
			}
		}).catch((err: unknown) => this.#log.error({ err, meetingId: mc.meeting.id }, "could not record a gate closing"));
	}

	// Internals -----------------------------------------------------------------------------------------------------

	#state(meeting: Meeting): MeetingCapture {
		let mc = this.#meetings.get(meeting.id);
		if (mc) {
			mc.meeting = meeting;
			return mc;
		}
		const tenant = this.#tenantCapture(meeting.tenantId) ?? DEFAULT_TENANT_CAPTURE;
		mc = {
			meeting,
			tenant,
			controls: {
				recording: new CaptureControl("recording", meeting.id),
				transcription: new CaptureControl("transcription", meeting.id),
			},
			members: new Map(),
			issuedAt: { recording: new Map(), transcription: new Map() },
			shown: new Set(),
			controllers: new Set(),
			held: new Map(),
			last: {},
			pending: [],
			taps: [],
			tapNo: 0,
			closedAt: new Map(),
			uncommitted: new Map(),
			noticed: {},
			commits: [],
			committing: false,
		};
		for (const kind of KINDS) this.#wire(mc, kind);
		this.#meetings.set(meeting.id, mc);
		return mc;
	}

	/** Listens to one control; its events land in the operation's pending audit entries and taps. */
	#wire(mc: MeetingCapture, kind: CaptureKind): void {
		const control = mc.controls[kind];
		control.on("sessionstart", (session, notices) => {
			mc.last[kind] = session;
			const actor = mc.members.get(session.startedBy)?.person;
			mc.pending.push({
				type: "session.on",
				...this.#where(mc),
				...(actor ? { actor } : {}),
				data: {
					kind,
					sessionId: session.id,
					policy: session.policy,
					startedAt: session.startedAt,
					...(mc.startNote
						? { continues: mc.startNote.session, cause: mc.startNote.cause, lostNode: mc.startNote.lostNode }
						: {}),
				},
			});
			if (mc.startNote) session.continues = mc.startNote;
			mc.startNote = undefined;
			const now = Date.now();
			mc.issuedAt[kind].clear();
			// One session's notices share their text per locale: resolved (and hashed) once, not once per person; and
			// they are recorded in one `notices.sent` entry for everyone (server/audit/notices.ts), after session.on.
			const texts = new Map<string, ResolvedNoticeText>();
			const sent: NoticesSentData = {
				kind,
				sessionId: session.id,
				via: "session_start",
				consentRequired: notices[0]?.consentRequired ?? false,
				texts: {},
				recipients: [],
			};
			const noticed = new Set<string>();
			mc.noticed[kind] = { sessionId: session.id, peers: noticed };
			for (const notice of notices) {
				const member = mc.members.get(notice.person);
				if (!member) continue;
				mc.issuedAt[kind].set(notice.person, now);
				const view = this.#noticeView(mc, member, notice, "session_start", texts, sent);
				member.conn.notify("captureNotice", view);
				noticed.add(notice.person);
			}
			if (sent.recipients.length > 0) mc.pending.push({ type: "notices.sent", ...this.#where(mc), data: { ...sent } });
			if (session.policy.name === "explicit-consent")
				for (const peerId of mc.members.keys()) void this.#hold(mc, peerId);
			this.emit("sessionstart", session, this.#where(mc));
		});
		control.on("sessionend", (session, reason) => {
			mc.pending.push({
				type: reason === "paused" ? "session.paused" : "session.off",
				...this.#where(mc),
				data: { kind, sessionId: session.id, reason },
			});
			mc.issuedAt[kind].clear();
			// The operation's own reason (e.g. storage_unavailable, meeting_ended) says more than "stopped".
			this.emit(
				"sessionend",
				session,
				this.#where(mc),
				reason === "stopped" ? (mc.opReason ?? reason) : reason,
				mc.closing ?? { at: Date.now() },
			);
		});
		control.on("gate", ({ session, person: peerId, open, reason }) => {
			const member = mc.members.get(peerId);
			for (const producer of member?.conn.peer?.producers.values() ?? []) {
				this.#gate(mc, session, peerId, producer, open, reason);
			}
		});
	}

	#gate(
		mc: MeetingCapture,
		session: CaptureSession,
		peerId: string,
		producer: CaptureProducer,
		open: boolean,
		reason: string,
	): void {
		const person = mc.members.get(peerId)?.person ?? "";
		mc.pending.push({
			type: open ? "gate.opened" : "gate.closed",
			...this.#where(mc),
			data: {
				kind: session.kind,
				sessionId: session.id,
				person,
				peerId,
				producerId: producer.id,
				source: producer.appData.source,
				reason,
			},
		});
		const clickedAt = open ? mc.clicks?.get(`${session.kind}:${peerId}`) : undefined;
		mc.taps.push({
			open,
			reason,
			session,
			tenantId: mc.meeting.tenantId,
			peerId,
			person,
			producer,
			...(clickedAt !== undefined ? { clickedAt } : {}),
			...(open ? {} : { closeAt: closeTimeFor(mc.closing ?? { at: Date.now() }, peerId) }),
		});
	}

	/**
	 * The click time a client sent with its answer (issue 11): kept, on the client's clock, for the taps it opens (the
	 * recorder compares it with capture times on that same clock). Refused when it can't be true: in the future, long
	 * before it arrived, or before the notice was sent. The checks map it to the gateway's clock with the offset
	 * measured at the client's join (a laptop whose clock is minutes off still answers), ± CLICK_SKEW_MS.
	 */
	#click(mc: MeetingCapture, kind: CaptureKind, conn: Connection, clickedAt: number | undefined): void {
		if (clickedAt === undefined) return;
		const peerId = conn.peerId;
		const now = Date.now();
		const at = clickedAt + (conn.clockOffsetMs ?? 0); // on the gateway's clock
		if (at > now + CLICK_SKEW_MS)
			throw new ConsentryError(
				"click_in_future",
				"clickedAt is in the future: send the time of the click (Date.now()).",
			);
		if (at < now - CLICK_MAX_AGE_MS)
			throw new ConsentryError(
				"click_too_old",
				`clickedAt is more than ${CLICK_MAX_AGE_MS / 1000} s in the past: send the answer when the person clicks.`,
			);
		const issued = mc.issuedAt[kind].get(peerId);
		if (issued !== undefined && at < issued - CLICK_SKEW_MS)
			throw new ConsentryError("click_before_notice", "clickedAt is before the notice was sent to this person.");
		mc.clicks ??= new Map();
		mc.clicks.set(`${kind}:${peerId}`, clickedAt);
	}

	/**
	 * The click that ends capture (pause, stop, leave, decline; issue 11), as a close: never refused (the close
	 * happens whatever the client says); a click the gateway can't believe (in the future, or older than
	 * CLICK_MAX_AGE_MS on its clock through the join offset) is ignored and the gateway's time used instead.
	 */
	#closeClick(conn: Connection, clickedAt: number | undefined): CaptureClose {
		const now = Date.now();
		if (clickedAt === undefined || !Number.isFinite(clickedAt)) return { at: now };
		const at = clickedAt + (conn.clockOffsetMs ?? 0);
		if (at > now + CLICK_SKEW_MS || at < now - CLICK_MAX_AGE_MS) return { at: now };
		return { at: Math.min(at, now), by: conn.peerId, byClickedAt: clickedAt };
	}

	/**
	 * Runs one state change (synchronously: the gate's state moves at once) and commits what it produced. Taps that
	 * close are emitted at once (closing early never captures anything it shouldn't); the audit entries go to the
	 * log (committed together with whatever else arrives at the same time, in call order), and only once they are
	 * committed are the taps that open emitted — a tap never opens before its proof is written — followed by the
	 * state broadcast when the change was a start/pause/stop. An open that a later close overtook is dropped. Until
	 * then the person counts as not covered ({@link mayCapture}). Throws when `fn` does; rejects (nothing opened)
	 * when the commit fails. `close`: when the operation ends capture (issue 11), carried by its closing taps.
	 */
	#op(
		mc: MeetingCapture,
		fn: () => unknown,
		actor?: string,
		reason?: string,
		message?: string,
		close?: CaptureClose,
	): Promise<void> {
		const states = KINDS.map((k) => mc.controls[k].state);
		mc.pending = [];
		mc.taps = [];
		mc.noticed = {};
		mc.opReason = reason;
		mc.closing = close ?? { at: Date.now() };
		try {
			fn();
		} catch (err) {
			mc.pending = [];
			mc.taps = [];
			throw err;
		} finally {
			mc.closing = undefined;
		}
		const items = mc.pending;
		const taps = mc.taps.map((t) => ({ t, no: ++mc.tapNo }));
		const noticed = mc.noticed;
		mc.pending = [];
		mc.taps = [];
		mc.noticed = {};
		for (const it of items) {
			if (!it.type.startsWith("session.")) continue;
			if (actor && !it.actor) it.actor = actor;
			if (reason && it.type !== "session.on" && it.data) it.data.reason = reason;
		}
		for (const { t, no } of taps) {
			if (t.open) continue;
			mc.closedAt.set(`${t.session.id}_${t.producer.id}`, no);
			this.emit("tap", t);
		}
		const covering = [
			...new Set(
				items
					.filter((it) => it.type === "notice.acknowledged" || it.type === "consent.given")
					.map((it) => String(it.data?.peerId)),
			),
		];
		for (const p of covering) mc.uncommitted.set(p, (mc.uncommitted.get(p) ?? 0) + 1);
		const uncover = () => {
			for (const p of covering) {
				const n = (mc.uncommitted.get(p) ?? 1) - 1;
				if (n > 0) mc.uncommitted.set(p, n);
				else mc.uncommitted.delete(p);
			}
		};
		return this.#flush(mc, items).then(
			() => {
				uncover();
				for (const { t, no } of taps) {
					if (!t.open || (mc.closedAt.get(`${t.session.id}_${t.producer.id}`) ?? 0) > no) continue;
					this.emit("tap", t);
				}
				KINDS.forEach((kind, i) => {
					if (mc.controls[kind].state !== states[i]) {
						this.#broadcastState(mc, kind, reason, message, noticed[kind]);
						if (mc.controls[kind].state !== "on") this.#release(mc);
						if (mc.tenant.onDecline === "stay-unrecorded") this.#broadcastNotRecorded(mc);
						this.#scheduleCoverage(mc, mc.controls[kind].state === "on" ? mc.tenant.ackTimeoutMs : 0);
					}
				});
			},
			(err: unknown) => {
				uncover();
				throw err;
			},
		);
	}

	/**
	 * Waits for an answer's commit; if it failed, the person is not covered after all (CaptureControl.revert: no gate,
	 * chat line or packet counts them covered without the proof; under explicit consent their media is held again)
	 * and may answer again, and the failure is rethrown.
	 */
	async #proven(
		mc: MeetingCapture,
		control: CaptureControl,
		conn: Connection,
		noticeId: string,
		committed: Promise<void>,
		after: Coverage,
		before: Coverage,
	): Promise<void> {
		try {
			await committed;
		} catch (err) {
			if (after !== before) {
				control.revert(conn.peerId, noticeId, after, before);
				void this.#hold(mc, conn.peerId); // under explicit consent their media is held again (a no-op otherwise)
				this.#scheduleCoverage(mc);
			}
			throw err;
		}
	}

	/**
	 * Commits one operation's audit entries; resolves once they are committed. An operation arriving while the
	 * meeting's previous commit is in flight waits for it, and then everything that waited is committed at once, the
	 * acknowledgements among it as one entry ({@link coalesceAnswers}). If that fails, each waiting operation is
	 * retried on its own, in order, so one failing does not fail the others; all fail at once when the store is
	 * unreachable (`store_unavailable`), as the audit log's own group commit does.
	 */
	#flush(mc: MeetingCapture, items: Item[]): Promise<void> {
		if (items.length === 0) return Promise.resolve();
		return new Promise<void>((resolve, reject) => {
			mc.commits.push({ items, resolve, reject });
			if (!mc.committing) void this.#commitWaiting(mc);
		});
	}

	async #commitWaiting(mc: MeetingCapture): Promise<void> {
		mc.committing = true;
		try {
			while (mc.commits.length > 0) {
				const batch = mc.commits.splice(0);
				try {
					await this.#events.appendMany(
						batch.length === 1 ? (batch[0]?.items ?? []) : coalesceAnswers(batch.map((b) => b.items)),
					);
					for (const b of batch) b.resolve();
					continue;
				} catch (err) {
					// The store unreachable: every waiting operation fails at once (a retry each would only wait again).
					if (batch.length === 1 || err instanceof StoreUnavailableError) {
						for (const b of batch) this.#failed(mc, err, b);
						continue;
					}
				}
				for (const b of batch) {
					try {
						await this.#events.appendMany(b.items);
						b.resolve();
					} catch (err) {
						this.#failed(mc, err, b);
					}
				}
			}
		} finally {
			mc.committing = false;
		}
	}

	/** No proof, no capture: the caller sees the failure and nothing opened (taps are emitted after the commit). */
	#failed(mc: MeetingCapture, err: unknown, op: MeetingCapture["commits"][number] | undefined): void {
		this.#log.error({ err, meetingId: mc.meeting.id }, "audit append failed");
		op?.reject(err);
	}

	#where(mc: MeetingCapture): { tenantId: string; meetingId: string } {
		return { tenantId: mc.meeting.tenantId, meetingId: mc.meeting.id };
	}

	#personEvent(
		mc: MeetingCapture,
		type: EventType,
		conn: Connection,
		kind: CaptureKind,
		noticeId: string,
	): AppendInput & { type: EventType } {
		const session = mc.controls[kind].session as CaptureSession;
		return {
			type,
			...this.#where(mc),
			actor: personKey(conn),
			data: { kind, sessionId: session.id, noticeId, peerId: conn.peerId, policy: session.policy },
		};
	}

	#noticeView(
		mc: MeetingCapture,
		member: Member,
		notice: Notice,
		via: "join" | "session_start",
		texts?: Map<string, ResolvedNoticeText>,
		batch?: NoticesSentData,
	): NoticeView {
		const textKey = `${notice.kind}|${notice.policy.name}|${member.locale}`;
		let text = texts?.get(textKey);
		if (!text) {
			text = noticeText(mc.tenant, notice.kind, notice.policy.name, member.locale);
			texts?.set(textKey, text);
		}
		if (batch) {
			batch.texts[member.locale] = text.sha256;
			batch.recipients.push({
				person: member.person,
				peerId: member.conn.peerId,
				noticeId: notice.id,
				locale: member.locale,
			});
		} else
			mc.pending.push({
				type: "notice.sent",
				...this.#where(mc),
				data: {
					kind: notice.kind,
					sessionId: notice.sessionId,
					noticeId: notice.id,
					person: member.person,
					peerId: member.conn.peerId,
					via,
					locale: member.locale,
					textSha256: text.sha256,
					consentRequired: notice.consentRequired,
				},
			});
		return {
			id: notice.id,
			sessionId: notice.sessionId,
			kind: notice.kind,
			policy: { name: notice.policy.name, version: notice.policy.version },
			startedBy: mc.members.get(notice.startedBy)?.conn.displayName ?? "the host",
			since: notice.since,
			consentRequired: notice.consentRequired,
			locale: member.locale,
			title: text.title,
			body: text.body,
			...(text.disclaimer ? { disclaimer: text.disclaimer } : {}),
			...(mc.tenant.onDecline === "stay-unrecorded" ? { onDecline: "stay-unrecorded" as const } : {}),
			...(mc.tenant.privacyNoticeUrl ? { privacyNoticeUrl: mc.tenant.privacyNoticeUrl } : {}),
		};
	}

	#notice(meetingId: string, conn: Connection, noticeId: string): { mc: MeetingCapture; kind: CaptureKind } {
		const mc = this.#meetings.get(meetingId);
		if (mc) {
			for (const kind of KINDS) {
				const n = mc.controls[kind].noticeFor(conn.peerId);
				if (n?.id === noticeId) return { mc, kind };
			}
			const current = KINDS.some((k) => mc.controls[k].noticeFor(conn.peerId));
			if (current) {
				throw new ConflictError("stale_notice", "That notice is from an earlier session; answer the current one.");
			}
		}
		throw new NotFoundError("no_notice", "No recording or transcription notice is waiting for you.");
	}

	#status(mc: MeetingCapture, kind: CaptureKind): CaptureStatus {
		const control = mc.controls[kind];
		const s = control.session;
		if (control.state !== "on" || !s) return { kind, state: control.state };
		return {
			kind,
			state: "on",
			sessionId: s.id,
			startedBy: mc.members.get(s.startedBy)?.conn.displayName ?? "the host",
			since: s.startedAt,
			policy: { name: s.policy.name, version: s.policy.version },
		};
	}

	/**
	 * Tells every member where a kind stands, except those in `noticed`: the notice of the session that just started,
	 * sent to them by this operation, says it is on (protocol: `captureNotice`), unless there is more to say.
	 */
	#broadcastState(
		mc: MeetingCapture,
		kind: CaptureKind,
		reason?: string,
		message?: string,
		noticed?: { sessionId: string; peers: ReadonlySet<string> },
	): void {
		const status: Parameters<ServerEvents["captureState"]>[0] = {
			...this.#status(mc, kind),
			...(reason ? { reason } : {}),
			...(message ? { message } : {}),
		};
		const skip =
			noticed && status.state === "on" && status.sessionId === noticed.sessionId && !message
				? noticed.peers
				: undefined;
		for (const m of mc.members.values()) {
			if (skip?.has(m.conn.peerId)) continue;
			m.conn.notify("captureState", status);
		}
	}

	#broadcastNotRecorded(mc: MeetingCapture): void {
		const persons = this.notRecorded(mc.meeting.id);
		for (const m of mc.members.values()) m.conn.notify("notRecorded", { persons });
	}

	/** Must this person still consent to a running session before their media flows? */
	#holding(mc: MeetingCapture, peerId: string): boolean {
		return KINDS.some((kind) => {
			const control = mc.controls[kind];
			const notice = control.noticeFor(peerId);
			const coverage = control.coverage(peerId);
			return notice?.consentRequired === true && coverage !== "consented" && coverage !== "declined";
		});
	}

	#heldSet(mc: MeetingCapture, peerId: string): Set<string> {
		let set = mc.held.get(peerId);
		if (!set) {
			set = new Set();
			mc.held.set(peerId, set);
		}
		return set;
	}

	/** Pauses every producer of this person that is sending, until they consent. */
	async #hold(mc: MeetingCapture, peerId: string): Promise<void> {
		const member = mc.members.get(peerId);
		if (!member || !this.#holding(mc, peerId)) return;
		const ids: string[] = [];
		for (const p of member.conn.peer?.producers.values() ?? []) {
			if (p.paused || p.closed) continue;
			this.#heldSet(mc, peerId).add(p.id);
			ids.push(p.id);
			await p.pause().catch(() => undefined);
		}
		member.conn.notify("mediaHeld", { held: true, producerIds: ids });
	}

	/** Resumes what the server held, for one person or everyone, once nothing requires their consent any more. */
	#release(mc: MeetingCapture, only?: string): void {
		for (const [peerId, ids] of mc.held) {
			if ((only && peerId !== only) || this.#holding(mc, peerId)) continue;
			mc.held.delete(peerId);
			const member = mc.members.get(peerId);
			if (!member) continue;
			for (const id of ids)
				void member.conn.peer?.producers
					.get(id)
					?.resume()
					.catch(() => undefined);
			member.conn.notify("mediaHeld", { held: false, producerIds: [...ids] });
		}
	}

	/** Sends hosts who is (not) covered, coalescing bursts (500 acknowledgements make one update per interval). */
	#scheduleCoverage(mc: MeetingCapture, extraDelayMs = 0): void {
		if (extraDelayMs > 0) {
			setTimeout(() => this.#scheduleCoverage(mc), extraDelayMs + 10).unref();
		}
		if (mc.coverageTimer) return;
		mc.coverageTimer = setTimeout(() => {
			mc.coverageTimer = undefined;
			this.#sendCoverage(mc);
		}, this.#debounceMs);
		mc.coverageTimer.unref();
	}

	#sendCoverage(mc: MeetingCapture): void {
		if (this.#meetings.get(mc.meeting.id) !== mc) return;
		const hosts = [...mc.members.values()].filter((m) => m.conn.role === "host" || mc.controllers.has(m.conn.peerId));
		if (hosts.length === 0) return;
		for (const kind of KINDS) {
			const entries = this.coverage(mc.meeting.id, kind);
			const session = mc.controls[kind].session;
			const state = mc.controls[kind].state;
			for (const h of hosts) {
				h.conn.notify("captureCoverage", {
					kind,
					sessionId: state === "on" && session ? session.id : "",
					entries: state === "on" ? entries : [],
				});
			}
		}
	}

	/** Who is and isn't covered by the running session of a kind (what the host sees). */
	coverage(meetingId: string, kind: CaptureKind): CoverageEntry[] {
		const mc = this.#meetings.get(meetingId);
		if (mc?.controls[kind].state !== "on") return [];
		const control = mc.controls[kind];
		const now = Date.now();
		return [...mc.members.values()].map(({ conn }) => {
			const coverage = control.coverage(conn.peerId) ?? "pending";
			const issued = mc.issuedAt[kind].get(conn.peerId) ?? now;
			return {
				peerId: conn.peerId,
				displayName: conn.displayName ?? "",
				coverage,
				covered: control.mayCapture(conn.peerId),
				overdue: !control.mayCapture(conn.peerId) && coverage === "pending" && now - issued >= mc.tenant.ackTimeoutMs,
			};
		});
	}
}

function label(kind: CaptureKind): string {
	return kind === "recording" ? "Recording" : "Transcription";
}

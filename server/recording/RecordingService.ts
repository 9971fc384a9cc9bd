import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import {
	type CaptureSummaryWire,
	type HoleEntry,
	type ObjectWritten,
	parseObjectKey,
	type TrackFailed,
	type TrackKind,
} from "../../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import type { ChatMessage } from "../../shared/protocol.js";
import type { AuditEvent, EventLog } from "../audit/EventLog.js";
import { ANSWER_TYPES, answersIn } from "../audit/notices.js";
import { auditObjectWritten, CaptureBucket } from "../capture/CaptureBucket.js";
import { CRASHED, type CrashKind, NODE_LOST, unfinishedSessions } from "../capture/LostSessions.js";
import type { PlainTap } from "../capture/PlainTap.js";
import { TapOwner } from "../capture/TapOwner.js";
import type { TapTrack } from "../capture/TapOwnerTypes.js";
import {
	type CaptureClose,
	type CaptureService,
	type CaptureSink,
	closeTimeFor,
	type TapChange,
} from "../compliance/CaptureService.js";
import type { CapturePolicy, CaptureSession, SessionContinuation } from "../compliance/CaptureTypes.js";
import { ConsentryError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Meeting } from "../meetings/MeetingTypes.js";
import type { RoomRegistry } from "../sfu/RoomRegistry.js";
import type { StorageTargetStore } from "../storage/StorageTargetStore.js";
import type { Recorder } from "./RecordingTypes.js";
import {
	type ChatLine,
	MANIFEST_KIND,
	MANIFEST_VERSION,
	type Manifest,
	type ManifestTrack,
	type SessionRecord,
	type TrackRecord,
} from "./RecordingTypes.js";

export interface RecordingServiceOptions {
	/** Undefined when the gateway has no master key: no tenant can have a storage target. */
	targets: StorageTargetStore | undefined;
	capture: CaptureService;
	rooms: RoomRegistry;
	events: EventLog;
	/** The recorder process; undefined when recording is off on this gateway. */
	recorder: Recorder | undefined;
	/** What the operator allows for storage endpoints (the same policy as the storage API's). */
	endpointPolicy: { allowHttp: boolean; allowPrivate: boolean };
	/** Segment length; default: the recorder's (10 min). */
	segmentSeconds?: number;
	log: Logger;
}

/** Tracks of one (session, person, kind) start their `seq` at 1, 1001, 2001…: concurrent ones never share a key. */
const SEQ_BLOCK = 1000;
/** The hosts are warned of a track losing data at most this often per track. */
const WARN_EVERY_MS = 10_000;
/** chat.jsonl is checkpointed into the bucket this long after a message. */
const CHAT_CHECKPOINT_MS = 2000;

/**
 * Recording: a capture sink that may start only where the tenant's own bucket
 * is configured (the operator provides no storage), and that reaches media only
 * through the notice gate's taps. For each open tap it creates a PlainTransport
 * and a consumer on the meeting's router and hands the RTP to the recorder
 * child process (in-process WebM → S3 multipart); when the gate closes, the tap is
 * closed at once. At the end of each session it writes, next to the recording,
 * the chat log, the meeting's audit export and a manifest tying every object to
 * the acknowledgement that covered it.
 */
export class RecordingService implements CaptureSink {
	readonly #targets: StorageTargetStore | undefined;
	readonly #capture: CaptureService;
	readonly #rooms: RoomRegistry;
	readonly #events: EventLog;
	readonly #recorder: Recorder | undefined;
	readonly #policy: { allowHttp: boolean; allowPrivate: boolean };
	readonly #segmentSeconds: number | undefined;
	readonly #log: Logger;
	readonly #sessions = new Map<string, SessionRecord>();
	/** Every tap of a recording session, from open to close (gate re-check, start, close, reopen after a crash). */
	readonly #taps: TapOwner<TrackRecord>;
	/** Recoveries in progress: key prefix → tenant (recovered objects carry no track). */
	readonly #recovering = new Map<string, string>();
	/** Objects a recovery completed, by session (for the manifest of a session that ended in a crash). */
	readonly #recovered = new Map<string, ObjectWritten[]>();
	/** When the recorder last died, per track it took down (the reopened track's hole starts there). */
	readonly #crashedAt = new Map<string, number>();
	/** The last live warning per track (at most one every WARN_EVERY_MS). */
	readonly #warnedAt = new Map<string, number>();

	constructor(options: RecordingServiceOptions) {
		this.#targets = options.targets;
		this.#capture = options.capture;
		this.#rooms = options.rooms;
		this.#events = options.events;
		this.#recorder = options.recorder;
		this.#policy = options.endpointPolicy;
		this.#segmentSeconds = options.segmentSeconds;
		this.#log = options.log.child({ component: "RecordingService" });
		options.capture.on("sessionstart", (session, where) => {
			if (session.kind === "recording") this.#sessionStarted(session, where);
		});
		options.capture.on("sessionend", (session, _where, reason, close) => {
			if (session.kind === "recording") void this.#sessionEnded(session.id, reason, close);
		});
		this.#taps = new TapOwner<TrackRecord>({
			capture: options.capture,
			rooms: options.rooms,
			recorder: options.recorder,
			log: options.log,
			sink: {
				kind: "recording",
				accepts: () => true,
				create: (tap, base) => this.#create(tap, base),
				open: (track, media) => this.#open(track, media),
				started: (track) => this.#started(track),
				close: (track, reason, opened, change) => this.#close(track, reason, opened, change),
				lost: (track, at) => this.#lost(track, at),
				senderReport: (track, sr) => this.#recorder?.senderReport(track.trackId, sr),
			},
			afterCrash: (lost) => this.#recorderCrashed(lost),
		});
		const recorder = options.recorder;
		if (recorder) {
			recorder.on("objectWritten", (o) => void this.#objectWritten(o));
			recorder.on("keyframeNeeded", ({ trackId }) => this.#taps.get(trackId)?.media?.requestKeyFrame());
			recorder.on("trackHole", ({ trackId, hole }) => this.#hole(trackId, hole));
			recorder.on("trackUndatable", (u) => {
				const t = this.#taps.get(u.trackId);
				const rec = this.#sessions.get(u.trackId.split("_")[0] ?? "");
				if (!t || !rec) return;
				this.#log.warn({ ...u }, "no sender report dates this track: nothing of it is recorded");
				this.#capture.warnUndatable(rec.meetingId, "recording", rec.session.id, t.peerId, t.kind);
			});
			// Stopping is reported the moment it happens (trackFailed comes after the recorder finished what it could).
			recorder.on("trackStopping", (f) => this.#trackFailed(f));
			recorder.on("trackFailed", (f) => {
				const t = this.#taps.get(f.trackId);
				if (t && f.stats) t.stats = f.stats;
				this.#trackFailed(f);
			});
		}
	}

	async assertCanStart(meeting: Meeting): Promise<void> {
		if (!(await this.#targets?.load(meeting.tenantId))) {
			throw new ConsentryError(
				"no_storage_target",
				"Recording needs your organisation's storage bucket, and none is set up. Ask your administrator to configure it (PUT /api/storage-target).",
				409,
			);
		}
		if (!this.#recorder?.alive) {
			throw new ConsentryError(
				"recorder_unavailable",
				"The recorder is not running on this gateway right now; try again in a moment.",
				503,
			);
		}
	}

	/**
	 * Adds a chat message to the running recording's chat log (chat said while recording is part of the record),
	 * only when the notice gate covers its sender now (the gate decides, as for their media): a message from someone
	 * who has not answered the notice, has not consented, or declined is shown live but never written. The log names
	 * senders by pseudonym only.
	 */
	chat(meetingId: string, msg: ChatMessage, person: string): void {
		const session = this.#capture.session(meetingId, "recording");
		const rec = session ? this.#sessions.get(session.id) : undefined;
		if (!rec || !this.#capture.mayCapture(meetingId, "recording", msg.peerId)) return;
		const line: ChatLine = { at: msg.at, from: "", text: msg.text };
		rec.chat.push(line); // in the order said; the sender's pseudonym is filled in from the store
		rec.chatIds.push(msg.id);
		void this.#events
			.pseudonym(rec.tenantId, person)
			.then((pseudonym) => {
				line.from = pseudonym ?? "unknown";
			})
			.catch((err: unknown) => this.#log.warn({ err }, "could not read a chat sender's pseudonym"));
		this.#checkpointChat(rec);
	}

	/**
	 * The service operator removed a chat message: its line in the running recording's chat log keeps its time and
	 * sender, loses its text and says it was removed (what is written to the bucket from now on). Returns whether
	 * a line was marked.
	 */
	removeChat(meetingId: string, messageId: string, reason: string): boolean {
		const session = this.#capture.session(meetingId, "recording");
		const rec = session ? this.#sessions.get(session.id) : undefined;
		const i = rec ? rec.chatIds.indexOf(messageId) : -1;
		const line = rec?.chat[i];
		if (!rec || !line || line.removed) return false;
		line.text = "";
		line.removed = { at: new Date().toISOString(), by: "operator", reason };
		this.#checkpointChat(rec);
		return true;
	}

	#checkpointChat(rec: SessionRecord): void {
		// Into the bucket shortly after (a crash of the gateway then loses at most this delay of chat).
		rec.chatTimer ??= setTimeout(() => {
			rec.chatTimer = undefined;
			if (rec.endedAt) return;
			const bucket = this.#bucket(rec.tenantId, rec.target, rec.meetingId, rec.session.id);
			void bucket
				.put("chat.jsonl", chatText(rec.chat), "application/x-ndjson")
				.catch((err: unknown) => this.#log.warn({ err }, "could not checkpoint the chat log"))
				.finally(() => bucket.destroy());
		}, CHAT_CHECKPOINT_MS);
		rec.chatTimer.unref();
	}

	/**
	 * After a restart of the gateway: every recording session of these tenants that never got its manifest (the
	 * gateway or the whole host died) is finished in the customer's bucket. What the dead recorder left is completed
	 * (parts + checkpoints of each tail), then the session's chat.jsonl, audit.jsonl and a manifest.json marked
	 * `endReason: "gateway_crashed"`, with each track's hole, are written. Run at start; never throws.
	 */
	async recoverAll(tenantIds: readonly string[], elsewhere?: (meetingId: string) => Promise<boolean>): Promise<void> {
		for (const tenantId of tenantIds) {
			try {
				await this.#recover(tenantId, undefined, CRASHED, elsewhere);
			} catch (err) {
				this.#log.error({ err, tenantId }, "could not recover unfinished recordings");
			}
		}
	}

	/**
	 * Cluster (issue 12 placement): this node became the home of a meeting whose node was lost. The recording
	 * sessions that node left unfinished are finished here as after a crash (its recorder's tails completed from the
	 * bucket, then chat, audit and a manifest), with `endReason: "node_lost"` and each open track's hole caused by
	 * `node_lost`. Returns those sessions (the caller continues the recording in a new one). Never throws.
	 */
	async finishLost(tenantId: string, meetingId: string): Promise<string[]> {
		try {
			return await this.#recover(tenantId, meetingId, NODE_LOST);
		} catch (err) {
			this.#log.error({ err, meetingId }, "could not finish the recordings of a lost node");
			return [];
		}
	}

	async #recover(
		tenantId: string,
		meetingId: string | undefined,
		how: CrashKind,
		elsewhere?: (meetingId: string) => Promise<boolean>,
	): Promise<string[]> {
		const recorder = this.#recorder;
		if (!recorder || !this.#targets) return [];
		try {
			const target = await this.#targets.get(tenantId);
			if (!target) return [];
			const unfinished = await unfinishedSessions(this.#events, {
				tenantId,
				kind: "recording",
				meetingId,
				live: (id) => this.#sessions.has(id),
				elsewhere,
			});
			if (unfinished.length === 0) return [];
			const sessions = unfinished.map((e) => ({
				meetingId: e.meetingId as string,
				sessionId: e.data.sessionId as string,
			}));
			this.#recovering.set(target.prefix ?? "", tenantId);
			const r = await recorder.recover({ target, prefix: target.prefix ?? "", sessions, options: this.#policy });
			this.#recovering.clear();
			this.#log.warn(
				{ tenantId, sessions: sessions.length, ...r, endReason: how.endReason },
				"finished interrupted recordings",
			);
			for (const e of unfinished) {
				await this.#writeCrashedSession(tenantId, target, e, how).catch((err: unknown) =>
					this.#log.error({ err, sessionId: e.data.sessionId }, "could not write a crashed session's manifest"),
				);
			}
			return sessions.map((s) => s.sessionId);
		} finally {
			this.#recovering.clear();
		}
	}

	/** The recorder died with this track: it ends here; its hole starts at the crash (TapOwner reopens its tap). */
	#lost(t: TrackRecord, at: number): void {
		t.closedAt = new Date(at).toISOString();
		t.closeReason = "recorder_crashed";
		this.#crashedAt.set(t.trackId, at);
	}

	/**
	 * The recorder died and took these tracks: restart it, complete what they uploaded (recovery), then put each
	 * one's hole in its manifest entry and warn the hosts. True: TapOwner reopens the taps the gate still allows.
	 */
	async #recorderCrashed(lost: TrackRecord[]): Promise<boolean> {
		const recorder = this.#recorder;
		if (!recorder) return false;
		this.#log.error({ openTracks: lost.length }, "recorder crashed; restarting it");
		const now = Date.now();
		try {
			await recorder.restart();
			const byTenant = new Map<string, SessionRecord[]>();
			for (const rec of this.#sessions.values())
				byTenant.set(rec.tenantId, [...(byTenant.get(rec.tenantId) ?? []), rec]);
			for (const [tenantId, recs] of byTenant) {
				const target = (recs[0] as SessionRecord).target;
				this.#recovering.set(target.prefix ?? "", tenantId);
				await recorder.recover({
					target,
					prefix: target.prefix ?? "",
					sessions: recs.map((r) => ({ meetingId: r.meetingId, sessionId: r.session.id })),
					options: this.#policy,
				});
				this.#recovering.clear();
			}
		} catch (err) {
			this.#log.error({ err }, "recorder restart failed; stopping recordings");
			for (const rec of this.#sessions.values()) {
				this.#capture.stopBySystem(
					rec.meetingId,
					"recording",
					"recorder_failed",
					"Recording stopped: the recorder failed. What was recorded so far is saved.",
				);
			}
			return false;
		}
		for (const t of lost) {
			// What a crashed track lost: from the end of what recovery saved to the crash.
			const saved = t.objects.reduce((m, o) => Math.max(m, Date.parse(o.endedAt)), Date.parse(t.openedAt));
			const hole: HoleEntry = {
				from: new Date(Math.min(saved, now)).toISOString(),
				to: new Date(now).toISOString(),
				cause: "recorder_crash",
			};
			t.holes.push(hole);
			this.#warn(t, hole);
		}
		return true;
	}

	/** A track lost data: into its manifest entry, and a live warning to the meeting's hosts. */
	#hole(trackId: string, hole: HoleEntry): void {
		const t = this.#taps.get(trackId);
		if (!t) return;
		t.holes.push(hole);
		this.#warn(t, hole);
	}

	/** Tells the meeting's hosts, live, that part of a track will be missing (at most every 10 s per track). */
	#warn(t: TrackRecord, hole: HoleEntry): void {
		const trackId = t.trackId;
		const rec = this.#sessions.get(trackId.split("_")[0] ?? "");
		const now = Date.now();
		if (!rec || now - (this.#warnedAt.get(trackId) ?? 0) < WARN_EVERY_MS) return;
		this.#warnedAt.set(trackId, now);
		const displayName = this.#rooms.get(rec.meetingId)?.peers.get(t.peerId)?.displayName ?? "";
		this.#capture.notifyHosts(rec.meetingId, "recordingLoss", {
			sessionId: rec.session.id,
			peerId: t.peerId,
			displayName,
			track: t.kind,
			from: hole.from,
			to: hole.to,
			cause: hole.cause,
			...(hole.frames !== undefined ? { frames: hole.frames } : {}),
		});
	}

	/** Closes every tap (gracefully: the recorder completes each object) and writes the open sessions' manifests. */
	async close(): Promise<void> {
		await this.#taps.closeAll("gateway_closing");
		await Promise.all([...this.#sessions.keys()].map((id) => this.#sessionEnded(id, "gateway_closing")));
	}

	#sessionStarted(session: CaptureSession, where: { tenantId: string; meetingId: string }): void {
		const target = this.#targets?.current(where.tenantId); // read by assertCanStart, just before
		if (!target) return; // assertCanStart saw one; it was removed since: taps will find none and record nothing
		this.#sessions.set(session.id, {
			session,
			tenantId: where.tenantId,
			meetingId: where.meetingId,
			target,
			tracks: [],
			seqBlocks: new Map(),
			chat: [],
			chatIds: [],
		});
	}

	/** The record of a newly opened tap: its person's pseudonym, its kind, its own block of object numbers. */
	async #create(tap: TapChange, base: TapTrack): Promise<TrackRecord | undefined> {
		const rec = this.#sessions.get(tap.session.id);
		if (!rec || rec.endedAt) return undefined;
		const person = await this.#events.pseudonym(rec.tenantId, tap.person);
		if (!person || rec.endedAt) return undefined;
		const kind: TrackKind = tap.producer.appData.source === "mic" ? "audio" : tap.producer.appData.source;
		const blockKey = `${person}-${kind}`;
		const block = rec.seqBlocks.get(blockKey) ?? 0;
		rec.seqBlocks.set(blockKey, block + 1);
		const track: TrackRecord = {
			...base,
			person,
			kind,
			firstSeq: block * SEQ_BLOCK + 1,
			openedAt: new Date().toISOString(),
			objects: [],
			holes: [],
		};
		rec.tracks.push(track);
		return track;
	}

	/** The track's stream in the recorder: WebM objects under the session's keys, in the tenant's bucket. */
	async #open(track: TrackRecord, media: PlainTap): Promise<{ rtpPort: number; rtcpPort: number }> {
		const rec = this.#sessions.get(track.tap.session.id) as SessionRecord;
		const recorder = this.#recorder as Recorder;
		const codec = media.codec;
		track.codec = { mimeType: codec.mimeType, clockRate: codec.clockRate, channels: codec.channels };
		return recorder.openTrack({
			trackId: track.trackId,
			key: {
				prefix: rec.target.prefix ?? "",
				meetingId: rec.meetingId,
				sessionId: rec.session.id,
				person: track.person,
				kind: track.kind,
			},
			codec,
			ssrc: media.ssrc,
			target: rec.target,
			firstSeq: track.firstSeq,
			...(track.tap.clickedAt !== undefined ? { openAt: track.tap.clickedAt } : {}),
			options: {
				...this.#policy,
				...(this.#segmentSeconds ? { segmentSeconds: this.#segmentSeconds } : {}),
			},
		});
	}

	/** Media flows to the recorder from now on (after a recorder crash: the crash's hole ends here). */
	#started(track: TrackRecord): void {
		track.openedAt = new Date().toISOString();
		const crashedAt = this.#crashedAt.get(track.trackId);
		if (crashedAt !== undefined && track.tap.reason === "recorder_restarted") {
			this.#crashedAt.delete(track.trackId);
			track.holes.push({ from: new Date(crashedAt).toISOString(), to: track.openedAt, cause: "recorder_crash" });
		}
		this.#log.info(
			{ trackId: track.trackId, kind: track.kind, meetingId: track.tap.session.meetingId },
			"recording track open",
		);
	}

	/** The media has stopped: the recorder finishes the track's object, and reports its frames and capture times. */
	async #close(track: TrackRecord, reason: string, opened: boolean, change?: TapChange): Promise<void> {
		track.closeReason = reason;
		track.closedAt = new Date().toISOString();
		if (change?.closeAt) track.closeAt ??= change.closeAt;
		if (!opened) return;
		const closed = await this.#recorder?.closeTrackWithCapture(track.trackId, track.closeAt).catch((err: unknown) => {
			this.#log.error({ err, trackId: track.trackId }, "recorder could not close a track");
		});
		if (closed?.stats) track.stats = closed.stats;
		if (closed?.capture) track.capture = closed.capture;
	}

	async #objectWritten(o: ObjectWritten): Promise<void> {
		const rec = this.#sessions.get(o.trackId?.split("_")[0] ?? "");
		// After a crash the same trackId may be reopened; the object belongs to the track that was open at its seq.
		const sessionTrack = rec?.tracks.filter((t) => t.trackId === o.trackId).at(-1);
		sessionTrack?.objects.push(o);
		let where: { tenantId: string; meetingId: string; sessionId: string } | undefined = rec && {
			tenantId: rec.tenantId,
			meetingId: rec.meetingId,
			sessionId: rec.session.id,
		};
		if (!where && o.recovered) {
			for (const [prefix, tenantId] of this.#recovering) {
				const k = parseObjectKey(prefix, o.key);
				if (k) where = { tenantId, meetingId: k.meetingId, sessionId: k.sessionId };
			}
			if (where && rec === undefined) {
				// A session still running here (recorder crash): its manifest will list the object too; the object
				// belongs to the track of that person and kind whose seq block holds it.
				const live = this.#sessions.get(where.sessionId);
				const k = parseObjectKey(live?.target.prefix ?? "", o.key);
				const block = k ? Math.floor((k.seq - 1) / SEQ_BLOCK) : -1;
				const t = live?.tracks.filter((x) => x.person === k?.person && x.kind === k?.kind)[block];
				t?.objects.push(o);
				if (!live && where) this.#recovered.set(where.sessionId, [...(this.#recovered.get(where.sessionId) ?? []), o]);
			}
		}
		if (!where) {
			this.#log.warn({ key: o.key }, "object written for no known session");
			return;
		}
		await auditObjectWritten(
			this.#events,
			{ ...where, kind: "recording", bucket: o.bucket },
			{ trackId: o.trackId ?? null, ...objectEntry(o), ...(o.recovered ? { recovered: true } : {}) },
		);
	}

	#trackFailed(f: TrackFailed): void {
		const track = this.#taps.get(f.trackId);
		this.#log.error({ ...f }, "recording track failed");
		if (!track) return;
		const rec = this.#sessions.get(f.trackId.split("_")[0] ?? "");
		if (!rec) return;
		if (f.code === "storage_unavailable" || f.code === "storage_rejected") {
			// The bucket is gone for good (or for longer than the buffer holds): stop cleanly, tell everyone why.
			this.#capture.stopBySystem(
				rec.meetingId,
				"recording",
				f.code,
				"Recording stopped: the organisation's storage bucket could not be reached. What was recorded so far is saved.",
			);
		} else {
			void this.#taps.close(f.trackId, f.code);
		}
	}

	async #sessionEnded(sessionId: string, reason: string, close?: CaptureClose): Promise<void> {
		const rec = this.#sessions.get(sessionId);
		if (!rec || rec.endedAt) return;
		rec.endedAt = new Date().toISOString();
		rec.endReason = reason;
		clearTimeout(rec.chatTimer);
		// Taps of the session close with it (the gate emitted their closes); wait for the recorder to finish each.
		for (const t of rec.tracks) {
			if (t.state === "closed") continue;
			if (close) t.closeAt ??= closeTimeFor(close, t.peerId);
			await this.#taps.close(t.trackId, reason);
		}
		await Promise.all(rec.tracks.map((t) => t.settled));
		if (reason === "node_fenced") {
			// Cluster fencing: this node lost the store; its objects are complete in the bucket. The meeting's new home
			// writes this session's manifest from the bucket and the trail (`node_lost`), as for a node that died.
			this.#sessions.delete(sessionId);
			return;
		}
		try {
			await this.#writeSessionArtifacts(rec);
		} catch (err) {
			this.#log.error({ err, sessionId }, "could not write the session manifest");
		} finally {
			this.#sessions.delete(sessionId);
		}
	}

	/** chat.jsonl, audit.jsonl (the meeting's trail so far) and manifest.json, next to the session's recordings. */
	async #writeSessionArtifacts(rec: SessionRecord): Promise<void> {
		const proofs = await this.#coverageProofs(rec.tenantId, rec.meetingId, rec.session.id, rec.session.policy.name);
		await this.#writeArtifacts({
			tenantId: rec.tenantId,
			meetingId: rec.meetingId,
			sessionId: rec.session.id,
			target: rec.target,
			policy: rec.session.policy,
			startedAt: rec.session.startedAt,
			endedAt: rec.endedAt ?? new Date().toISOString(),
			endReason: rec.endReason ?? "stopped",
			...(rec.session.continues ? { continues: rec.session.continues } : {}),
			chat: { text: chatText(rec.chat), messages: rec.chat.length },
			tracks: rec.tracks.map(
				(t): ManifestTrack => ({
					trackId: t.trackId,
					person: t.person,
					kind: t.kind,
					producerId: t.producerId,
					codec: t.codec ?? null,
					openedAt: t.openedAt,
					closedAt: t.closedAt ?? null,
					closeReason: t.closeReason ?? null,
					coveredBy: proofs.get(t.peerId) ?? null,
					framesReceived: t.stats?.framesReceived ?? null,
					framesWritten: t.stats?.framesWritten ?? framesIn(t.objects),
					holes: t.holes,
					...(t.capture ? { capture: manifestCapture(t.capture) } : {}),
					objects: t.objects.map((o) => objectEntry(o, t.capture?.clockOffsetMs ?? undefined)),
				}),
			),
		});
	}

	/**
	 * The manifest of a session the gateway died in, rebuilt after its restart from what survived: the audit trail
	 * (the session, each gate opening, each object reported) and the bucket (the objects, the chat log as last
	 * checkpointed). Each track still open at the crash ends with a `gateway_crash` hole from the end of what was
	 * saved to the restart (the crash itself left no time behind; the hole is at most that long).
	 */
	async #writeCrashedSession(tenantId: string, target: StorageTarget, on: AuditEvent, how: CrashKind): Promise<void> {
		const meetingId = on.meetingId as string;
		const sessionId = on.data.sessionId as string;
		const policy = on.data.policy as CapturePolicy;
		const prefix = target.prefix ?? "";
		const bucket = this.#bucket(tenantId, target, meetingId, sessionId);
		const client = bucket.client;
		const base = bucket.key("").slice(0, -1);
		try {
			// Objects in the bucket (completed by the orphaned recorder's last close, or by recovery just now).
			const listed = new Map<string, { size: number; at: string }>();
			let chat: { text: string; messages: number } | undefined;
			let token: string | undefined;
			do {
				const page = await client.send(
					new ListObjectsV2Command({ Bucket: target.bucket, Prefix: `${base}/`, ContinuationToken: token }),
				);
				for (const o of page.Contents ?? []) {
					if (o.Key && parseObjectKey(prefix, o.Key))
						listed.set(o.Key, { size: o.Size ?? 0, at: (o.LastModified ?? new Date()).toISOString() });
				}
				token = page.IsTruncated ? page.NextContinuationToken : undefined;
			} while (token);
			try {
				const res = await client.send(new GetObjectCommand({ Bucket: target.bucket, Key: `${base}/chat.jsonl` }));
				const text = await (res.Body as { transformToString(): Promise<string> }).transformToString();
				chat = { text, messages: text.split("\n").filter(Boolean).length };
			} catch {
				chat = undefined; // no message was said, or none reached the bucket
			}
			const trail = await this.#events.list({ tenantId, meetingId });
			const reported = new Map<string, ObjectWritten>();
			for (const e of trail) {
				if (e.type !== "storage.object_written" || e.data.sessionId !== sessionId || typeof e.data.key !== "string")
					continue;
				reported.set(e.data.key, {
					bucket: target.bucket,
					key: e.data.key,
					seq: Number(e.data.seq),
					size: Number(e.data.size),
					...(typeof e.data.sha256 === "string" ? { sha256: e.data.sha256 } : {}),
					startedAt: String(e.data.startedAt),
					endedAt: String(e.data.endedAt),
					...(typeof e.data.frames === "number" ? { frames: e.data.frames } : {}),
					...(typeof e.data.trackId === "string" ? { trackId: e.data.trackId } : {}),
					...(e.data.recovered ? { recovered: true, truncated: true } : {}),
				});
			}
			for (const o of this.#recovered.get(sessionId) ?? []) reported.set(o.key, o);
			this.#recovered.delete(sessionId);
			const restartedAt = new Date().toISOString();
			const proofs = await this.#coverageProofs(tenantId, meetingId, sessionId, policy.name);
			const tracks: ManifestTrack[] = [];
			const byKind = new Map<string, ManifestTrack[]>();
			for (const e of trail) {
				if (e.data.sessionId !== sessionId || e.data.kind !== "recording") continue;
				const trackId = `${sessionId}_${String(e.data.producerId)}`;
				if (e.type === "gate.opened") {
					const person = String(e.data.person ?? "");
					const source = String(e.data.source ?? "");
					const kind: TrackKind = source === "mic" ? "audio" : source === "screen" ? "screen" : "camera";
					const t: ManifestTrack = {
						trackId,
						person,
						kind,
						producerId: String(e.data.producerId),
						codec: null,
						openedAt: e.at,
						closedAt: null,
						closeReason: null,
						coveredBy: proofs.get(String(e.data.peerId)) ?? null,
						framesReceived: null,
						framesWritten: null,
						holes: [],
						objects: [],
					};
					tracks.push(t);
					byKind.set(`${person}-${kind}`, [...(byKind.get(`${person}-${kind}`) ?? []), t]);
				} else if (e.type === "gate.closed") {
					const t = tracks.filter((x) => x.trackId === trackId).at(-1);
					if (t && !t.closedAt) {
						t.closedAt = e.at;
						t.closeReason = String(e.data.reason ?? "gate_closed");
					}
				}
			}
			for (const [key, info] of listed) {
				const k = parseObjectKey(prefix, key);
				if (!k) continue;
				// An object the trail has no entry for: completed after the gateway was gone (its orphaned recorder ends
				// what it holds; a killed cluster node's), or just before its entry was appended. Nobody here saw its
				// bytes written, so it is listed as recovered, without a SHA-256 (as a recovered object is).
				const o = reported.get(key) ?? {
					bucket: target.bucket,
					key,
					seq: k.seq,
					size: info.size,
					startedAt: info.at,
					endedAt: info.at,
					recovered: true,
				};
				const candidates = byKind.get(`${k.person}-${k.kind}`) ?? [];
				const t =
					(o.trackId && tracks.filter((x) => x.trackId === o.trackId).at(-1)) ||
					candidates[Math.min(candidates.length - 1, Math.floor((k.seq - 1) / SEQ_BLOCK))];
				t?.objects.push(objectEntry({ ...o, size: info.size }));
			}
			let endedAt = on.data.startedAt as string;
			for (const t of tracks) {
				t.objects.sort((a, b) => a.seq - b.seq);
				t.framesWritten = t.objects.every((o) => o.frames !== undefined)
					? t.objects.reduce((n, o) => n + (o.frames ?? 0), 0)
					: null;
				const saved = new Date(
					Math.max(Date.parse(t.openedAt), ...t.objects.map((o) => Date.parse(o.endedAt))),
				).toISOString();
				if (saved > endedAt) endedAt = saved;
				if (!t.closedAt) {
					t.closedAt = saved;
					t.closeReason = how.endReason;
					t.holes.push({ from: saved, to: restartedAt, cause: how.cause });
				}
			}
			await this.#writeArtifacts({
				tenantId,
				meetingId,
				sessionId,
				target,
				policy,
				startedAt: String(on.data.startedAt),
				endedAt,
				endReason: how.endReason,
				chat: chat ?? { text: "", messages: 0 },
				tracks,
			});
			this.#log.warn({ sessionId, tracks: tracks.length }, "wrote the manifest of a session a crash ended");
		} finally {
			client.destroy();
		}
	}

	async #writeArtifacts(a: {
		tenantId: string;
		meetingId: string;
		sessionId: string;
		target: StorageTarget;
		policy: CapturePolicy;
		startedAt: string;
		endedAt: string;
		endReason: string;
		continues?: SessionContinuation;
		chat: { text: string; messages: number };
		tracks: ManifestTrack[];
	}): Promise<void> {
		const bucket = this.#bucket(a.tenantId, a.target, a.meetingId, a.sessionId);
		try {
			const chat = await bucket.put("chat.jsonl", a.chat.text, "application/x-ndjson");
			const exported = await this.#events.exportMeeting(a.tenantId, a.meetingId);
			const audit = await bucket.put("audit.jsonl", exported, "application/x-ndjson");
			const header = JSON.parse(exported.slice(0, exported.indexOf("\n"))) as {
				chainHead: unknown;
				meetingHead: unknown;
			};
			const manifest: Manifest = {
				kind: MANIFEST_KIND,
				version: MANIFEST_VERSION,
				tenant: a.tenantId,
				meeting: a.meetingId,
				session: a.sessionId,
				policy: a.policy,
				startedAt: a.startedAt,
				endedAt: a.endedAt,
				endReason: a.endReason,
				...(a.continues ? { continues: a.continues } : {}),
				persons: [...new Set(a.tracks.map((t) => t.person))],
				notRecorded: await this.#declined(a.tenantId, a.meetingId, a.sessionId),
				tracks: a.tracks,
				chat: { ...chat, messages: a.chat.messages },
				audit: { ...audit, chainHead: header.chainHead, meetingHead: header.meetingHead },
				disclaimer:
					"Each track's coveredBy names the audit entry (seq, hash) in which that person's client acknowledged the notice of this session, or consented, before any of their media was recorded; audit.jsonl holds the chain to verify it. framesReceived/framesWritten count the track's frames that reached the recorder and that are in its objects; holes lists, in wall-clock time, every stretch missing from them and why.",
			};
			await bucket.putAudited("manifest.json", `${JSON.stringify(manifest, null, 2)}\n`, "application/json", {
				manifest: true,
			});
		} finally {
			bucket.destroy();
		}
	}

	/** The bucket side of one session: the gateway's own objects there, and their trail entries. */
	#bucket(tenantId: string, target: StorageTarget, meetingId: string, sessionId: string): CaptureBucket {
		return new CaptureBucket(target, this.#policy, this.#events, { tenantId, meetingId, kind: "recording", sessionId });
	}

	/** Pseudonyms of who declined this session's notice (never covered in it), from the trail. */
	async #declined(tenantId: string, meetingId: string, sessionId: string): Promise<string[]> {
		const evs = await this.#events.list({ tenantId, meetingId, type: "consent.declined" });
		return [...new Set(evs.filter((e) => e.data.sessionId === sessionId && e.actor).map((e) => e.actor as string))];
	}

	/** The trail entry in which each peer's gate for this session opened: their acknowledgement or consent. */
	async #coverageProofs(
		tenantId: string,
		meetingId: string,
		sessionId: string,
		policyName: string,
	): Promise<Map<string, { type: string; seq: number; hash: string; at: string }>> {
		const out = new Map<string, { type: string; seq: number; hash: string; at: string }>();
		// Under explicit consent only a consent opens the gate; under notice an acknowledgement (alone, or with others
		// in one notices.acknowledged) or a consent. The first in the chain per peer.
		const types = policyName === "explicit-consent" ? (["consent.given"] as const) : ANSWER_TYPES;
		const evs = (
			await Promise.all(types.map((type) => this.#events.list({ tenantId, meetingId, type, limit: 100_000 })))
		)
			.flat()
			.sort((a, b) => a.seq - b.seq);
		for (const e of evs)
			for (const a of answersIn(e)) {
				if (a.sessionId !== sessionId || !a.peerId || out.has(a.peerId)) continue;
				out.set(a.peerId, { type: e.type, seq: e.seq, hash: e.hash, at: e.at });
			}
		return out;
	}
}

/** How an object is named in the trail and the manifest. */
/** The capture gate's account, as the manifest lists it (issue 11). */
function manifestCapture(c: CaptureSummaryWire): NonNullable<ManifestTrack["capture"]> {
	return {
		clickAt: c.openAt,
		closeAt: c.closeAt ?? null,
		firstCaptureAt: c.firstCaptureAt,
		lastCaptureAt: c.lastCaptureAt,
		clockOffsetMs: c.clockOffsetMs,
		packetsBeforeClick: c.packetsBeforeOpen,
		packetsAfterClose: c.packetsAfterClose,
		packetsUndated: c.packetsUndated,
		senderReports: c.senderReports,
		clockSteps: c.clockSteps ?? 0,
		minTransitMs: c.minTransitMs ?? null,
	};
}

function objectEntry(o: ObjectWritten, clockOffsetMs?: number): ManifestTrack["objects"][number] {
	return {
		key: o.key,
		seq: o.seq,
		size: o.size,
		sha256: o.sha256 ?? null,
		startedAt: o.startedAt,
		endedAt: o.endedAt,
		...(o.truncated ? { truncated: true } : {}),
		...(o.recovered ? { recovered: true } : {}),
		...(o.frames !== undefined ? { frames: o.frames } : {}),
		...(o.firstCaptureAt !== undefined ? { firstCaptureAt: o.firstCaptureAt } : {}),
		...(o.clockOffsetMs !== undefined ? { clockOffsetMs: o.clockOffsetMs } : {}),
		...(o.firstCaptureAt !== undefined && (o.clockOffsetMs ?? clockOffsetMs) !== undefined
			? { firstFrameAt: Math.round((o.firstCaptureAt - (o.clockOffsetMs ?? (clockOffsetMs as number))) * 1000) / 1000 }
			: {}),
	};
}

/** Frames in these objects, or null when one of them does not say (recovered from parts only). */
function framesIn(objects: ObjectWritten[]): number | null {
	let n = 0;
	for (const o of objects) {
		if (o.frames === undefined) return null;
		n += o.frames;
	}
	return n;
}

function chatText(chat: SessionRecord["chat"]): string {
	return chat.map((c) => JSON.stringify(c)).join("\n") + (chat.length ? "\n" : "");
}

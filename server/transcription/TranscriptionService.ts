import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { CloseTime, TranscriptionEngineSpec, TranscriptSegmentMessage } from "../../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import type { AuditEvent, EventLog } from "../audit/EventLog.js";
import { CaptureBucket, sessionBase } from "../capture/CaptureBucket.js";
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
import { DEFAULT_TEXTS } from "../compliance/noticeTexts.js";
import { ConsentryError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Meeting } from "../meetings/MeetingTypes.js";
import type { RecorderProcess } from "../recording/RecorderProcess.js";
import type { RoomRegistry } from "../sfu/RoomRegistry.js";
import type { StorageTargetStore } from "../storage/StorageTargetStore.js";
import { engineForPerson, personLocale } from "./engineChoice.js";
import type { TranscriptLinks } from "./TranscriptLinks.js";

type Transcriber = Pick<
	RecorderProcess,
	"alive" | "openTranscription" | "closeTranscription" | "on" | "once" | "senderReport"
>;

export interface TranscriptionServiceOptions {
	targets: StorageTargetStore | undefined;
	capture: CaptureService;
	rooms: RoomRegistry;
	events: EventLog;
	/** The recorder process hosts the engines (one per speaker). */
	recorder: Transcriber | undefined;
	links: TranscriptLinks;
	/** A tenant's transcription settings: the link lifetime (seconds) and the engine. */
	tenant: (tenantId: string) => { linkSeconds: number; engine: TranscriptionEngineSpec };
	endpointPolicy: { allowHttp: boolean; allowPrivate: boolean };
	log: Logger;
}

/** One person's microphone transcribed in one session (its life from open to close: TapOwner). */
interface Track extends TapTrack {
	session: Session;
	person: string;
	displayName: string;
	/** When capture ended (issue 11): sent to the recorder, which drops audio captured after it. */
	closeAt?: CloseTime;
}

/**
 * One transcribed track's capture account (issue 11), as in the recording manifest's `capture`: the speaker's click
 * and close on their clock, the first and last transcribed audio's capture times, and the packets dropped.
 */
export interface TranscriptCapture {
	speaker: string;
	clickAt: number | null;
	closeAt: number | null;
	firstCaptureAt: number | null;
	lastCaptureAt: number | null;
	clockOffsetMs: number | null;
	packetsBeforeClick: number;
	packetsAfterClose: number;
	packetsUndated: number;
	senderReports: number;
}

/** One final segment, attributed to its speaker by construction (one engine stream per person). */
export interface TranscriptEntry {
	speaker: string;
	displayName: string;
	start: string;
	end: string;
	text: string;
	/**
	 * What `start`/`end` are (issue 11): `capture` — the audio's capture times, mapped from the speaker's clock to
	 * the gateway's through their sender reports (the clock of the recording manifest's `firstFrameAt`), with the
	 * capture times on the speaker's clock and that clock's offset; `arrival` — when the audio reached the gateway
	 * (no sender report dated it: a client that sent no click time).
	 */
	clock: "capture" | "arrival";
	captureStartAt?: number;
	captureEndAt?: number;
	clockOffsetMs?: number;
}

/**
 * transcript.json: the transcript and, at a session's end, how it ended. Its checkpoints (written while the session
 * runs) carry `checkpointedAt` instead of `endedAt`/`endReason`: the transcript holds every final segment the gateway
 * had received by then.
 */
export interface TranscriptDocument {
	kind: "consentry.transcript";
	version: 1;
	meeting: string;
	session: string;
	policy: CapturePolicy;
	startedAt: string;
	/** When the session ended; for one finished from the bucket (its node lost), when its last checkpoint was written. */
	endedAt?: string;
	/** Why it ended (`stopped`, `meeting_ended`, … as the trail's `session.off`; `node_lost`: finished from the bucket). */
	endReason?: string;
	/** Cluster (issue 12): the session this one continues after its meeting's node was lost (as the recording manifest). */
	continues?: SessionContinuation;
	/** A checkpoint: when it was written. */
	checkpointedAt?: string;
	/** What is missing from the transcript and why: from its last checkpoint to when it was finished (`node_lost`). */
	holes?: { from: string; to: string; cause: string }[];
	engine: string;
	disclaimer: string;
	entries: TranscriptEntry[];
	/** Per transcribed track (issue 11): nothing transcribed was captured before clickAt or after closeAt. */
	captures: TranscriptCapture[];
}

interface Session {
	session: CaptureSession;
	tenantId: string;
	meetingId: string;
	target: StorageTarget;
	tracks: Map<string, Track>;
	entries: TranscriptEntry[];
	/** Per transcribed track, what the per-packet capture gate did (issue 11), from the recorder at its close. */
	captures: TranscriptCapture[];
	link: { id: string; expiresAt: string };
	/** A checkpoint is due (a final segment arrived since the transcript was last written). */
	checkpoint?: NodeJS.Timeout;
	/** The writes of this session's transcript, one after the other (a checkpoint never lands after the final). */
	writes: Promise<void>;
	ended?: boolean;
	endedAt?: string;
	endReason?: string;
}

/**
 * While a session runs, the transcript in the bucket is brought up to date this long after a final segment (as the
 * recording's chat log): a gateway that dies, or a cluster node lost, loses at most this much of it plus an upload.
 */
const CHECKPOINT_MS = 2000;

/**
 * Transcription, as a capture sink: each covered person's microphone goes, only
 * through the notice gate's taps, to an engine stream of their own in the
 * recorder process; segments come back as live captions for everyone in the
 * meeting, and the final ones make the transcript (JSON and WebVTT) streamed to
 * the customer's bucket next to the recordings (every 30 s, and at the
 * session's end). The gateway keeps no copy beyond the running session's text.
 */
export class TranscriptionService implements CaptureSink {
	readonly #o: TranscriptionServiceOptions;
	readonly #log: Logger;
	readonly #sessions = new Map<string, Session>();
	readonly #taps: TapOwner<Track>;

	constructor(options: TranscriptionServiceOptions) {
		this.#o = options;
		this.#log = options.log.child({ component: "TranscriptionService" });
		options.capture.on("sessionstart", (session, where) => {
			if (session.kind !== "transcription") return;
			const target = options.targets?.current(where.tenantId); // read by assertCanStart, just before
			if (!target) return;
			const link = options.links.prepare({
				...where,
				sessionId: session.id,
				objectPrefix: sessionBase(target, where.meetingId, session.id),
				ttlSeconds: options.tenant(where.tenantId).linkSeconds,
			});
			void options.links
				.save(link)
				.then(() =>
					options.events.append("transcript.link_issued", {
						...where,
						data: { linkId: link.id, sessionId: session.id, expiresAt: link.expiresAt },
					}),
				)
				.catch((err: unknown) =>
					this.#log.error({ err, sessionId: session.id }, "could not issue the transcript link"),
				);
			const s: Session = {
				session,
				...where,
				target,
				tracks: new Map(),
				entries: [],
				captures: [],
				link,
				writes: Promise.resolve(),
			};
			this.#sessions.set(session.id, s);
			this.#announce(s);
		});
		options.capture.on("sessionend", (session, _where, reason, close) => {
			if (session.kind === "transcription") void this.#sessionEnded(session.id, close, reason);
		});
		// Each microphone tap, from open to close (gate re-checked before media flows, closed the moment the gate
		// closes, reopened after a recorder crash once the recording service has restarted it): TapOwner.
		this.#taps = new TapOwner<Track>({
			capture: options.capture,
			rooms: options.rooms,
			recorder: options.recorder,
			log: options.log,
			sink: {
				kind: "transcription",
				accepts: (tap) => tap.producer.appData.source === "mic",
				create: (tap, base) => this.#create(tap, base),
				open: (track, media) => this.#open(track, media),
				close: (track, _reason, opened, change) => this.#close(track, opened, change),
				// The producer's sender reports date each packet: the recorder's gate drops audio captured before the
				// click (or after the close), as for a recording (issue 11).
				senderReport: (track, sr) => this.#o.recorder?.senderReport(track.trackId, sr),
			},
		});
		options.recorder?.on("transcriptSegment", (s) => this.#segment(s));
		options.recorder?.on("transcriptionFailed", (f) => {
			this.#log.error(f, "transcription of a track failed");
			void this.#taps.close(f.trackId, f.code);
		});
		options.recorder?.on("trackUndatable", (u) => {
			const track = this.#taps.get(u.trackId);
			if (!track) return;
			this.#log.warn({ ...u }, "no sender report dates this track: nothing of it is transcribed");
			const s = track.session;
			options.capture.warnUndatable(s.meetingId, "transcription", s.session.id, track.peerId, "audio");
		});
	}

	async assertCanStart(meeting: Meeting): Promise<void> {
		if (!(await this.#o.targets?.load(meeting.tenantId))) {
			throw new ConsentryError(
				"no_storage_target",
				"Transcripts go to your organisation's storage bucket, and none is set up. Ask your administrator to configure it.",
				409,
			);
		}
		if (!this.#o.recorder?.alive) {
			throw new ConsentryError(
				"transcription_unavailable",
				"Transcription is not running on this gateway right now.",
				503,
			);
		}
	}

	/** Ends every running session's transcription (engines flushed, transcripts written): the gateway is closing. */
	async close(): Promise<void> {
		await Promise.all([...this.#sessions.keys()].map((id) => this.#sessionEnded(id, undefined, "gateway_closing")));
	}

	async #create(tap: TapChange, base: TapTrack): Promise<Track | undefined> {
		const s = this.#sessions.get(tap.session.id);
		const room = this.#o.rooms.get(tap.session.meetingId);
		if (!s || s.ended || !room) return undefined;
		const person = (await this.#o.events.pseudonym(s.tenantId, tap.person)) ?? "unknown";
		if (s.ended) return undefined;
		const track: Track = {
			...base,
			session: s,
			person,
			displayName: room.peers.get(tap.peerId)?.displayName ?? "",
		};
		s.tracks.set(track.trackId, track);
		return track;
	}

	/** The person's own engine stream in the recorder, in their language. */
	async #open(track: Track, media: PlainTap): Promise<{ rtpPort: number; rtcpPort: number }> {
		const s = track.session;
		const recorder = this.#o.recorder as Transcriber;
		return recorder.openTranscription({
			trackId: track.trackId,
			codec: media.codec,
			ssrc: media.ssrc,
			engine: engineForPerson(
				this.#o.tenant(s.tenantId).engine,
				await personLocale(this.#o.events, { ...s, sessionId: s.session.id, peerId: track.peerId }),
			),
			...(track.tap.clickedAt !== undefined ? { openAt: track.tap.clickedAt } : {}),
			options: { partials: true, ...this.#o.endpointPolicy },
		});
	}

	/** Flushes the engine: the last final segment arrives before this resolves. */
	async #close(track: Track, opened: boolean, change?: TapChange): Promise<void> {
		if (change?.closeAt) track.closeAt ??= change.closeAt;
		if (!opened) return;
		try {
			// Flushes: the last final comes before this resolves; audio captured after closeAt is dropped.
			const closed = await this.#o.recorder?.closeTranscription(track.trackId, track.closeAt);
			const c = closed?.capture;
			if (c)
				track.session.captures.push({
					speaker: track.person,
					clickAt: c.openAt,
					closeAt: c.closeAt ?? null,
					firstCaptureAt: c.firstCaptureAt,
					lastCaptureAt: c.lastCaptureAt,
					clockOffsetMs: c.clockOffsetMs,
					packetsBeforeClick: c.packetsBeforeOpen,
					packetsAfterClose: c.packetsAfterClose,
					packetsUndated: c.packetsUndated,
					senderReports: c.senderReports,
				});
		} catch (err) {
			this.#log.warn({ err, trackId: track.trackId }, "closing a transcription track");
		}
	}

	#segment(seg: TranscriptSegmentMessage): void {
		const track = this.#taps.get(seg.trackId);
		if (!track || !seg.text.trim()) return;
		const s = track.session;
		// Capture times on the gateway's clock when a sender report dated the audio (issue 11); arrival otherwise.
		const t0 = Date.parse(seg.streamStartedAt);
		const dated = seg.captureStartAt !== undefined && seg.captureEndAt !== undefined && seg.clockOffsetMs !== undefined;
		const startMs = dated ? (seg.captureStartAt as number) - (seg.clockOffsetMs as number) : t0 + seg.startMs;
		const endMs = dated ? (seg.captureEndAt as number) - (seg.clockOffsetMs as number) : t0 + seg.endMs;
		const start = new Date(Math.round(startMs)).toISOString();
		const end = new Date(Math.round(endMs)).toISOString();
		this.#o.capture.notifyMembers(s.meetingId, "caption", {
			sessionId: s.session.id,
			peerId: track.peerId,
			displayName: track.displayName,
			text: seg.text,
			final: seg.final,
			start,
		});
		if (seg.final) {
			s.entries.push({
				speaker: track.person,
				displayName: track.displayName,
				start,
				end,
				text: seg.text,
				clock: dated ? "capture" : "arrival",
				...(dated
					? {
							captureStartAt: seg.captureStartAt as number,
							captureEndAt: seg.captureEndAt as number,
							clockOffsetMs: seg.clockOffsetMs as number,
						}
					: {}),
			});
			this.#checkpointSoon(s);
		}
	}

	/** The transcript streams into the bucket while it grows: CHECKPOINT_MS after a final segment (retried). */
	#checkpointSoon(s: Session): void {
		if (s.ended || s.checkpoint) return;
		s.checkpoint = setTimeout(() => {
			s.checkpoint = undefined;
			if (s.ended) return;
			void this.#enqueue(s, false).catch((err: unknown) => {
				this.#log.warn({ err, sessionId: s.session.id }, "transcript checkpoint failed; retrying");
				this.#checkpointSoon(s);
			});
		}, CHECKPOINT_MS);
		s.checkpoint.unref();
	}

	/** Writes the session's transcript after the writes before it (so the order in the bucket is the order asked). */
	#enqueue(s: Session, final: boolean): Promise<void> {
		const next = s.writes.then(() => this.#write(s, final));
		s.writes = next.catch(() => undefined);
		return next;
	}

	/**
	 * Cluster (issue 12 placement): this node became the home of a meeting whose node was lost. The transcription
	 * sessions that node left unfinished are finished here from the bucket, as the recording's (RecordingService
	 * `finishLost`, the same search for unfinished sessions): the transcript as last checkpointed (or an empty one if
	 * none was), with `endReason: "node_lost"`, `endedAt` at that checkpoint and a `node_lost` hole from there to now,
	 * written as final (in the trail), then the meeting's audit export beside it, so `consentry verify` checks the
	 * folder. Returns those sessions. Never throws.
	 */
	async finishLost(tenantId: string, meetingId: string): Promise<string[]> {
		return this.#finish(tenantId, meetingId, NODE_LOST);
	}

	/**
	 * After a restart of the gateway: every transcription session of these tenants that never got its final transcript
	 * (the gateway or the whole host died) is finished from the bucket the same way, with `endReason:
	 * "gateway_crashed"` and a `gateway_crash` hole (as RecordingService `recoverAll` does for recordings; a meeting
	 * placed on a cluster node, `elsewhere`, is left to its re-homing). Run at start; never throws.
	 */
	async recoverAll(tenantIds: readonly string[], elsewhere?: (meetingId: string) => Promise<boolean>): Promise<void> {
		for (const tenantId of tenantIds) await this.#finish(tenantId, undefined, CRASHED, elsewhere);
	}

	async #finish(
		tenantId: string,
		meetingId: string | undefined,
		how: CrashKind,
		elsewhere?: (meetingId: string) => Promise<boolean>,
	): Promise<string[]> {
		try {
			const target = await this.#o.targets?.get(tenantId);
			if (!target) return [];
			const lost = await unfinishedSessions(this.#o.events, {
				tenantId,
				kind: "transcription",
				meetingId,
				live: (id) => this.#sessions.has(id),
				elsewhere,
			});
			const done: string[] = [];
			for (const on of lost) {
				try {
					await this.#finishFromBucket(tenantId, target, on, how);
					done.push(on.data.sessionId as string);
				} catch (err) {
					this.#log.error({ err, sessionId: on.data.sessionId }, "could not finish an interrupted transcript");
				}
			}
			if (done.length)
				this.#log.warn({ tenantId, sessions: done, endReason: how.endReason }, "finished interrupted transcripts");
			return done;
		} catch (err) {
			this.#log.error({ err, tenantId, meetingId }, "could not finish interrupted transcripts");
			return [];
		}
	}

	async #finishFromBucket(tenantId: string, target: StorageTarget, on: AuditEvent, how: CrashKind): Promise<void> {
		const meetingId = on.meetingId as string;
		const sessionId = on.data.sessionId as string;
		const bucket = this.#bucket(tenantId, target, meetingId, sessionId);
		let saved: Partial<TranscriptDocument> | undefined;
		try {
			const res = await bucket.client.send(
				new GetObjectCommand({ Bucket: target.bucket, Key: bucket.key("transcript.json") }),
			);
			const text = await (res.Body as { transformToString(): Promise<string> }).transformToString();
			saved = JSON.parse(text) as Partial<TranscriptDocument>;
		} catch (err) {
			// No checkpoint: nothing final was said before the node was lost (or it never reached the bucket).
			if ((err as { name?: string }).name !== "NoSuchKey") throw err;
		} finally {
			bucket.destroy();
		}
		const now = new Date().toISOString();
		const startedAt = String(on.data.startedAt ?? on.at);
		const endedAt = saved?.checkpointedAt ?? saved?.endedAt ?? startedAt;
		const { checkpointedAt: _checkpointed, ...rest } = saved ?? {};
		const doc: TranscriptDocument = {
			kind: "consentry.transcript",
			version: 1,
			meeting: meetingId,
			session: sessionId,
			policy: on.data.policy as CapturePolicy,
			startedAt,
			engine: this.#o.tenant(tenantId).engine.type,
			disclaimer: DEFAULT_TEXTS.en.transcriptionDisclaimer,
			entries: [],
			captures: [],
			...rest,
			endedAt,
			endReason: how.endReason,
			holes: [...(saved?.holes ?? []), { from: endedAt, to: now, cause: how.cause }],
		};
		await this.#put({ tenantId, meetingId, sessionId }, target, doc, true);
	}

	#announce(s: Session): void {
		this.#o.capture.notifyMembers(s.meetingId, "transcriptLink", {
			sessionId: s.session.id,
			path: `/t/${s.link.id}`,
			expiresAt: s.link.expiresAt,
		});
	}

	async #sessionEnded(sessionId: string, close: CaptureClose | undefined, reason: string): Promise<void> {
		const s = this.#sessions.get(sessionId);
		if (!s || s.ended) return;
		s.ended = true;
		s.endedAt = new Date().toISOString();
		s.endReason = reason;
		clearTimeout(s.checkpoint);
		await Promise.all(
			[...s.tracks.values()].map((t) => {
				if (close) t.closeAt ??= closeTimeFor(close, t.peerId);
				return this.#taps.close(t.trackId, "session_ended");
			}),
		);
		await Promise.all([...s.tracks.values()].map((t) => t.settled));
		this.#announce(s); // everyone present at the end gets the link too
		try {
			// Cluster fencing: this node lost the store (nothing reaches the trail from here). Its transcript goes to the
			// bucket complete, as a checkpoint; the meeting's new home finishes it from there (`node_lost`), as for a
			// node that died.
			await this.#enqueue(s, reason !== "node_fenced");
		} catch (err) {
			this.#log.error({ err, sessionId }, "could not write the transcript");
		} finally {
			this.#sessions.delete(sessionId);
		}
	}

	/**
	 * transcript.json and transcript.vtt under `{prefix}/{meetingId}/{sessionId}/`, in the customer's bucket: CHECKPOINT_MS
	 * after each final segment while the session runs (`checkpointedAt`, overwritten), and once more at its end
	 * (`endedAt`, `endReason`; audited), then the meeting's audit export (`audit.jsonl`) beside them.
	 */
	async #write(s: Session, final: boolean): Promise<void> {
		const doc: TranscriptDocument = {
			kind: "consentry.transcript",
			version: 1,
			meeting: s.meetingId,
			session: s.session.id,
			policy: s.session.policy,
			startedAt: s.session.startedAt,
			...(final
				? { endedAt: s.endedAt ?? new Date().toISOString(), endReason: s.endReason ?? "stopped" }
				: { checkpointedAt: new Date().toISOString() }),
			...(s.session.continues ? { continues: s.session.continues } : {}),
			engine: this.#o.tenant(s.tenantId).engine.type,
			disclaimer: DEFAULT_TEXTS.en.transcriptionDisclaimer,
			entries: [...s.entries].sort((a, b) => a.start.localeCompare(b.start)),
			captures: s.captures,
		};
		await this.#put({ tenantId: s.tenantId, meetingId: s.meetingId, sessionId: s.session.id }, s.target, doc, final);
	}

	/** Writes a transcript document (JSON and WebVTT); a final one audited, with the meeting's audit export beside it. */
	async #put(
		where: { tenantId: string; meetingId: string; sessionId: string },
		target: StorageTarget,
		doc: TranscriptDocument,
		final: boolean,
	): Promise<void> {
		const json = `${JSON.stringify(doc, null, 2)}\n`;
		const vtt = toWebVtt(doc.entries, Date.parse(doc.startedAt), doc.disclaimer);
		const bucket = this.#bucket(where.tenantId, target, where.meetingId, where.sessionId);
		try {
			for (const [name, text, type] of [
				["transcript.json", json, "application/json"],
				["transcript.vtt", vtt, "text/vtt"],
			] as const) {
				// Checkpoints are overwritten; the trail records the final objects.
				if (final) await bucket.putAudited(name, text, type);
				else await bucket.put(name, text, type);
			}
			// The proof next to the transcript: the meeting's trail so far (it holds this session, every speaker's
			// answer and the transcript objects just recorded), so the customer checks it from the bucket alone
			// (`consentry verify`), as for a recording session.
			if (final)
				await bucket.put(
					"audit.jsonl",
					await this.#o.events.exportMeeting(where.tenantId, where.meetingId),
					"application/x-ndjson",
				);
		} finally {
			bucket.destroy();
		}
	}

	#bucket(tenantId: string, target: StorageTarget, meetingId: string, sessionId: string): CaptureBucket {
		return new CaptureBucket(target, this.#o.endpointPolicy, this.#o.events, {
			tenantId,
			meetingId,
			kind: "transcription",
			sessionId,
		});
	}
}

/** transcript.vtt from transcript.json's entries (also used to rewrite it after an erasure: server/privacy). */
export function toWebVtt(entries: TranscriptEntry[], t0: number, disclaimer: string): string {
	const ts = (iso: string) => {
		const ms = Math.max(0, Date.parse(iso) - t0);
		const h = Math.floor(ms / 3_600_000);
		const m = Math.floor(ms / 60_000) % 60;
		const sec = Math.floor(ms / 1000) % 60;
		const pad = (n: number, w = 2) => String(n).padStart(w, "0");
		return `${pad(h)}:${pad(m)}:${pad(sec)}.${pad(ms % 1000, 3)}`;
	};
	const cues = entries.map(
		(e) => `${ts(e.start)} --> ${ts(e.end)}\n<v ${e.displayName.replace(/[<>]/g, "")}>${e.text}`,
	);
	return `WEBVTT\n\nNOTE ${disclaimer.replace(/-->/g, "→")}\n\n${cues.join("\n\n")}\n`;
}

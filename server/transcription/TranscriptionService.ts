import type { CloseTime, TranscriptionEngineSpec, TranscriptSegmentMessage } from "../../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import type { AuditEvent, EventLog } from "../audit/EventLog.js";
import { sessionBase } from "../capture/CaptureBucket.js";
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
import type { CapturePolicy, CaptureSession } from "../compliance/CaptureTypes.js";
import { DEFAULT_TEXTS } from "../compliance/noticeTexts.js";
import { ConsentryError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Meeting } from "../meetings/MeetingTypes.js";
import type { RecorderProcess } from "../recording/RecorderProcess.js";
import type { RoomRegistry } from "../sfu/RoomRegistry.js";
import type { StorageTargetStore } from "../storage/StorageTargetStore.js";
import { engineForPerson, personLocale } from "./engineChoice.js";
import type { TranscriptLinks } from "./TranscriptLinks.js";
import { finishTranscriptFromBucket, TranscriptWriter } from "./TranscriptWriter.js";

export type { TranscriptCapture, TranscriptDocument, TranscriptEntry, TranscriptPart } from "./TranscriptTypes.js";
export { CHECKPOINT_MS, toWebVtt } from "./TranscriptWriter.js";

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

interface Session {
	session: CaptureSession;
	tenantId: string;
	meetingId: string;
	target: StorageTarget;
	tracks: Map<string, Track>;
	/** The transcript: its entries, and its checkpoints and final write in the bucket. */
	transcript: TranscriptWriter;
	link: { id: string; expiresAt: string };
	ended?: boolean;
}

/**
 * Transcription, as a capture sink: each covered person's microphone goes, only
 * through the notice gate's taps, to an engine stream of their own in the
 * recorder process; segments come back as live captions for everyone in the
 * meeting, and the final ones make the transcript, streamed to the customer's
 * bucket next to the recordings: 2 s after each final segment, a checkpoint
 * part with what is new (TranscriptWriter); at the session's end the whole of
 * it as transcript.json and transcript.vtt. The gateway keeps no copy beyond the
 * running session's text.
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
				transcript: new TranscriptWriter({
					target,
					endpointPolicy: options.endpointPolicy,
					events: options.events,
					where: { ...where, sessionId: session.id },
					header: {
						meeting: where.meetingId,
						session: session.id,
						policy: session.policy,
						startedAt: session.startedAt,
						...(session.continues ? { continues: session.continues } : {}),
						engine: options.tenant(where.tenantId).engine.type,
						disclaimer: DEFAULT_TEXTS.en.transcriptionDisclaimer,
					},
					log: this.#log,
				}),
				link,
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
				track.session.transcript.addCapture({
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
			s.transcript.add({
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
		}
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
		await finishTranscriptFromBucket(
			{ target, endpointPolicy: this.#o.endpointPolicy, events: this.#o.events, log: this.#log },
			{
				where: { tenantId, meetingId: on.meetingId as string, sessionId: on.data.sessionId as string },
				startedAt: String(on.data.startedAt ?? on.at),
				policy: on.data.policy as CapturePolicy,
				engine: this.#o.tenant(tenantId).engine.type,
				disclaimer: DEFAULT_TEXTS.en.transcriptionDisclaimer,
			},
			how,
		);
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
		const endedAt = new Date().toISOString();
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
			if (reason === "node_fenced") await s.transcript.finishAsCheckpoint();
			else await s.transcript.finish({ endedAt, endReason: reason });
		} catch (err) {
			this.#log.error({ err, sessionId }, "could not write the transcript");
		} finally {
			this.#sessions.delete(sessionId);
		}
	}
}

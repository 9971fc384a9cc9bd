import type { CloseTime, TranscriptionEngineSpec, TranscriptSegmentMessage } from "../../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import type { EventLog } from "../audit/EventLog.js";
import { CaptureBucket, sessionBase } from "../capture/CaptureBucket.js";
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
import type { CaptureSession } from "../compliance/CaptureTypes.js";
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
	/** Final segments arrived since the transcript was last written. */
	dirty: boolean;
	checkpoint?: NodeJS.Timeout;
	ended?: boolean;
}

/** While a session runs, the transcript in the bucket is brought up to date this often. */
const CHECKPOINT_MS = 30_000;

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
				dirty: false,
			};
			this.#sessions.set(session.id, s);
			// The transcript streams into the bucket while it grows: a crash loses at most the last interval.
			s.checkpoint = setInterval(() => {
				if (!s.dirty || s.ended) return;
				s.dirty = false;
				this.#write(s, false).catch((err: unknown) => {
					s.dirty = true;
					this.#log.warn({ err, sessionId: s.session.id }, "transcript checkpoint failed; retrying");
				});
			}, CHECKPOINT_MS);
			s.checkpoint.unref();
			this.#announce(s);
		});
		options.capture.on("sessionend", (session, _where, _reason, close) => {
			if (session.kind === "transcription") void this.#sessionEnded(session.id, close);
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
		await Promise.all([...this.#sessions.keys()].map((id) => this.#sessionEnded(id)));
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
			s.dirty = true;
		}
	}

	#announce(s: Session): void {
		this.#o.capture.notifyMembers(s.meetingId, "transcriptLink", {
			sessionId: s.session.id,
			path: `/t/${s.link.id}`,
			expiresAt: s.link.expiresAt,
		});
	}

	async #sessionEnded(sessionId: string, close?: CaptureClose): Promise<void> {
		const s = this.#sessions.get(sessionId);
		if (!s || s.ended) return;
		s.ended = true;
		clearInterval(s.checkpoint);
		await Promise.all(
			[...s.tracks.values()].map((t) => {
				if (close) t.closeAt ??= closeTimeFor(close, t.peerId);
				return this.#taps.close(t.trackId, "session_ended");
			}),
		);
		await Promise.all([...s.tracks.values()].map((t) => t.settled));
		this.#announce(s); // everyone present at the end gets the link too
		try {
			await this.#write(s, true);
		} catch (err) {
			this.#log.error({ err, sessionId }, "could not write the transcript");
		} finally {
			this.#sessions.delete(sessionId);
		}
	}

	/**
	 * transcript.json and transcript.vtt under `{prefix}/{meetingId}/{sessionId}/`, in the customer's bucket: every
	 * 30 s while the session runs (`final` false, overwritten), and once more at its end (audited), then the
	 * meeting's audit export (`audit.jsonl`) beside them.
	 */
	async #write(s: Session, final: boolean): Promise<void> {
		const entries = [...s.entries].sort((a, b) => a.start.localeCompare(b.start));
		const disclaimer = DEFAULT_TEXTS.en.transcriptionDisclaimer;
		const json = `${JSON.stringify(
			{
				kind: "consentry.transcript",
				version: 1,
				meeting: s.meetingId,
				session: s.session.id,
				policy: s.session.policy,
				startedAt: s.session.startedAt,
				engine: this.#o.tenant(s.tenantId).engine.type,
				disclaimer,
				entries,
				// Per transcribed track (issue 11): nothing transcribed was captured before clickAt or after closeAt.
				captures: s.captures,
			},
			null,
			2,
		)}\n`;
		const vtt = toWebVtt(entries, Date.parse(s.session.startedAt), disclaimer);
		const bucket = new CaptureBucket(s.target, this.#o.endpointPolicy, this.#o.events, {
			tenantId: s.tenantId,
			meetingId: s.meetingId,
			kind: "transcription",
			sessionId: s.session.id,
		});
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
					await this.#o.events.exportMeeting(s.tenantId, s.meetingId),
					"application/x-ndjson",
				);
		} finally {
			bucket.destroy();
		}
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

import { createHash } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import type { RecorderProcess } from "../../recorder/RecorderProcess.js";
import type { TranscriptionEngineSpec, TranscriptSegmentMessage } from "../../recorder/RecorderProtocol.js";
import type { EventLog } from "../audit/EventLog.js";
import type { CaptureService, CaptureSink, TapChange } from "../compliance/CaptureService.js";
import type { CaptureSession } from "../compliance/CaptureTypes.js";
import { DEFAULT_TEXTS } from "../compliance/noticeTexts.js";
import { ConsentryError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Meeting } from "../meetings/MeetingTypes.js";
import { PlainTap } from "../recording/PlainTap.js";
import type { RoomRegistry } from "../sfu/RoomRegistry.js";
import { createS3Client, ssePutParams } from "../storage/preflight.js";
import type { StorageTargetStore } from "../storage/StorageTargetStore.js";
import type { StorageTarget } from "../storage/StorageTargetTypes.js";
import { engineForPerson, personLocale } from "./engineChoice.js";
import type { TranscriptLinks } from "./TranscriptLinks.js";

type Transcriber = Pick<RecorderProcess, "alive" | "openTranscription" | "closeTranscription" | "on">;

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

interface Track {
	trackId: string;
	/** The tap it transcribes (to reopen it after a recorder crash). */
	tap: TapChange;
	peerId: string;
	person: string;
	displayName: string;
	media?: PlainTap;
	state: "opening" | "open" | "closed";
	closeRequested?: string;
	settled: Promise<void>;
	done: () => void;
}

/** One final segment, attributed to its speaker by construction (one engine stream per person). */
export interface TranscriptEntry {
	speaker: string;
	displayName: string;
	start: string;
	end: string;
	text: string;
}

interface Session {
	session: CaptureSession;
	tenantId: string;
	meetingId: string;
	target: StorageTarget;
	tracks: Map<string, Track>;
	entries: TranscriptEntry[];
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
	readonly #tracks = new Map<string, { session: Session; track: Track }>();
	/** Taps whose engine streams died with the recorder, to reopen once it is back. */
	readonly #lost: TapChange[] = [];

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
				objectPrefix: objectPrefix(target, where.meetingId, session.id),
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
			const s: Session = { session, ...where, target, tracks: new Map(), entries: [], link, dirty: false };
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
		options.capture.on("sessionend", (session) => {
			if (session.kind === "transcription") void this.#sessionEnded(session.id);
		});
		options.capture.on("tap", (tap) => {
			if (tap.session.kind !== "transcription" || tap.producer.appData.source !== "mic") return;
			if (tap.open) void this.#open(tap);
			else void this.#close(`${tap.session.id}_${tap.producer.id}`, tap.reason);
		});
		options.recorder?.on("transcriptSegment", (s) => this.#segment(s));
		// The recorder died: its engine streams are gone. Once it is back (the recording service restarts it),
		// the taps the gate still allows get new streams.
		options.recorder?.on("crashed", () => {
			const lost = [...this.#tracks.values()];
			for (const { track } of lost) {
				track.state = "closed";
				track.media?.close();
				this.#tracks.delete(track.trackId);
				track.done();
			}
			this.#lost.push(...lost.map((l) => l.track.tap));
		});
		options.recorder?.on("ready", () => {
			for (const tap of this.#lost.splice(0)) {
				if (this.#o.capture.mayCapture(tap.session.meetingId, "transcription", tap.peerId)) void this.#open(tap);
			}
		});
		options.recorder?.on("transcriptionFailed", (f) => {
			this.#log.error(f, "transcription of a track failed");
			void this.#close(f.trackId, f.code);
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

	async #open(tap: TapChange): Promise<void> {
		const s = this.#sessions.get(tap.session.id);
		const room = this.#o.rooms.get(tap.session.meetingId);
		const recorder = this.#o.recorder;
		if (!s || !room || room.closed || !recorder) return;
		const trackId = `${tap.session.id}_${tap.producer.id}`;
		if (this.#tracks.has(trackId)) return;
		const person = (await this.#o.events.pseudonym(s.tenantId, tap.person)) ?? "unknown";
		if (this.#tracks.has(trackId)) return;
		const displayName = room.peers.get(tap.peerId)?.displayName ?? "";
		let done: () => void = () => undefined;
		const settled = new Promise<void>((resolve) => {
			done = resolve;
		});
		const track: Track = { trackId, tap, peerId: tap.peerId, person, displayName, state: "opening", settled, done };
		s.tracks.set(trackId, track);
		this.#tracks.set(trackId, { session: s, track });
		try {
			const media = await PlainTap.create(room.router, tap.producer.id, trackId);
			track.media = media;
			const ports = await recorder.openTranscription({
				trackId,
				codec: media.codec,
				ssrc: media.ssrc,
				engine: engineForPerson(
					this.#o.tenant(s.tenantId).engine,
					await personLocale(this.#o.events, { ...s, sessionId: s.session.id, peerId: tap.peerId }),
				),
				options: { partials: true, ...this.#o.endpointPolicy },
			});
			track.state = "open";
			// The gate may have closed while the engine was loading: check again before any sample flows.
			if (track.closeRequested || !this.#o.capture.mayCapture(s.meetingId, "transcription", tap.peerId)) {
				await this.#close(trackId, track.closeRequested ?? "gate_closed");
				return;
			}
			await media.start(ports);
			media.consumer.observer.once("close", () => void this.#close(trackId, "producer_closed"));
		} catch (err) {
			this.#log.error({ err, trackId }, "could not open a transcription track");
			track.media?.close();
			if (track.state === "open") await recorder.closeTranscription(trackId).catch(() => undefined);
			track.state = "closed";
			this.#tracks.delete(trackId);
			done();
		}
	}

	async #close(trackId: string, reason: string): Promise<void> {
		const found = this.#tracks.get(trackId);
		if (!found) return;
		const { track } = found;
		if (track.state === "opening") {
			track.closeRequested = reason;
			return;
		}
		if (track.state === "closed") return;
		track.state = "closed";
		track.media?.close(); // no sample more reaches the engine
		try {
			await this.#o.recorder?.closeTranscription(trackId); // flushes: the last final comes before this resolves
		} catch (err) {
			this.#log.warn({ err, trackId }, "closing a transcription track");
		}
		this.#tracks.delete(trackId);
		track.done();
	}

	#segment(seg: TranscriptSegmentMessage): void {
		const found = this.#tracks.get(seg.trackId);
		if (!found || !seg.text.trim()) return;
		const { session: s, track } = found;
		const t0 = Date.parse(seg.streamStartedAt);
		const start = new Date(t0 + seg.startMs).toISOString();
		const end = new Date(t0 + seg.endMs).toISOString();
		this.#o.capture.notifyMembers(s.meetingId, "caption", {
			sessionId: s.session.id,
			peerId: track.peerId,
			displayName: track.displayName,
			text: seg.text,
			final: seg.final,
			start,
		});
		if (seg.final) {
			s.entries.push({ speaker: track.person, displayName: track.displayName, start, end, text: seg.text });
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

	async #sessionEnded(sessionId: string): Promise<void> {
		const s = this.#sessions.get(sessionId);
		if (!s || s.ended) return;
		s.ended = true;
		clearInterval(s.checkpoint);
		await Promise.all([...s.tracks.values()].map((t) => this.#close(t.trackId, "session_ended")));
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
	 * 30 s while the session runs (`final` false, overwritten), and once more at its end (audited).
	 */
	async #write(s: Session, final: boolean): Promise<void> {
		const base = objectPrefix(s.target, s.meetingId, s.session.id);
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
			},
			null,
			2,
		)}\n`;
		const vtt = toWebVtt(entries, Date.parse(s.session.startedAt), disclaimer);
		const client = createS3Client(s.target, { ...this.#o.endpointPolicy, maxAttempts: 5 });
		try {
			for (const [name, text, type] of [
				["transcript.json", json, "application/json"],
				["transcript.vtt", vtt, "text/vtt"],
			] as const) {
				const body = Buffer.from(text);
				const key = `${base}/${name}`;
				await client.send(
					new PutObjectCommand({
						Bucket: s.target.bucket,
						Key: key,
						Body: body,
						ContentLength: body.length,
						ContentType: type,
						...ssePutParams(s.target.encryption),
					}),
				);
				if (!final) continue; // checkpoints are overwritten; the trail records the final objects
				await this.#o.events.append("storage.object_written", {
					tenantId: s.tenantId,
					meetingId: s.meetingId,
					data: {
						kind: "transcription",
						sessionId: s.session.id,
						bucket: s.target.bucket,
						key,
						size: body.length,
						sha256: createHash("sha256").update(body).digest("hex"),
					},
				});
			}
		} finally {
			client.destroy();
		}
	}
}

function objectPrefix(target: StorageTarget, meetingId: string, sessionId: string): string {
	return `${target.prefix ? `${target.prefix}/` : ""}${meetingId}/${sessionId}`;
}

function toWebVtt(entries: TranscriptEntry[], t0: number, disclaimer: string): string {
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

import type { S3Client } from "@aws-sdk/client-s3";
import { assertEndpointAllowed } from "../contracts/endpointGuard.js";
import { ConsentryError } from "../contracts/errors.js";
import type { Logger } from "../contracts/logger.js";
import type { RecorderConfig } from "../contracts/RecorderConfig.js";
import {
	type ChildMessage,
	type CloseTrackMessage,
	type CloseTranscriptionMessage,
	type OpenTrackMessage,
	type OpenTranscriptionMessage,
	parseParentMessage,
	type RecoverMessage,
} from "../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../contracts/StorageTargetTypes.js";
import { classifyS3Error, createS3Client } from "../contracts/s3.js";
import { CheckpointWriter } from "./CheckpointWriter.js";
import { RecorderError } from "./errors.js";
import { findExecutable } from "./executables.js";
import { recoverUploads } from "./recovery.js";
import { TrackRecorder } from "./TrackRecorder.js";
import { TrackTranscriber } from "./transcription/TrackTranscriber.js";
import { createEngine } from "./transcription/TranscriptionEngine.js";

export interface RecorderServiceOptions {
	config: RecorderConfig;
	log: Logger;
	/** Sends a message to the parent (never throws). */
	send: (message: ChildMessage) => void;
}

interface OpenTrack {
	recorder: TrackRecorder;
	client: S3Client;
	/** The session's checkpoint writer it shares (key in #checkpoints). */
	checkpoints?: string;
	/** Upload retries already reported to the gateway (uploadStats). */
	retriesReported?: number;
}

/** How often the gateway hears each track's buffer and upload retries (its metrics). */
const UPLOAD_STATS_MS = 5000;

interface SessionCheckpoints {
	writer: CheckpointWriter;
	/** Checkpoint retries already reported to the gateway (uploadStats). */
	retriesReported?: number;
	client: S3Client;
	tracks: number;
}

/**
 * The recorder child's brain, independent of the IPC transport: validates each
 * parent message, runs tracks and recoveries, and reports back. Nothing it
 * does throws out of handle(): a bad message or a failed request becomes an
 * `error` reply.
 */
export class RecorderService {
	readonly #config: RecorderConfig;
	readonly #log: Logger;
	readonly #send: (message: ChildMessage) => void;
	readonly #tracks = new Map<string, OpenTrack>();
	readonly #clients = new Map<string, { client: S3Client; refs: number }>();
	readonly #clientKeys = new Map<S3Client, string>();
	/** One checkpoint writer per recording session (bucket + folder), shared by its tracks. */
	readonly #checkpoints = new Map<string, SessionCheckpoints>();
	readonly #opening = new Set<string>();
	readonly #transcriptions = new Map<string, TrackTranscriber>();
	readonly #openingTranscriptions = new Set<string>();
	#shutdown: Promise<void> | undefined;
	readonly #statsTimer: NodeJS.Timeout;

	constructor(options: RecorderServiceOptions) {
		this.#config = options.config;
		this.#log = options.log;
		this.#send = options.send;
		this.#statsTimer = setInterval(() => this.#reportUploads(), UPLOAD_STATS_MS);
		this.#statsTimer.unref();
	}

	/** Each open track's buffer and the upload retries since the last report, for the gateway's metrics. */
	#reportUploads(): void {
		if (this.#tracks.size === 0) return;
		let checkpointRetries = 0;
		for (const c of this.#checkpoints.values()) {
			checkpointRetries += c.writer.retries - (c.retriesReported ?? 0);
			c.retriesReported = c.writer.retries;
		}
		const tracks = [...this.#tracks].map(([trackId, t]) => {
			const u = t.recorder.uploadState;
			const retries = u.uploadRetries - (t.retriesReported ?? 0);
			t.retriesReported = u.uploadRetries;
			return { trackId, bufferedBytes: u.bufferedBytes, bufferLimit: u.bufferLimit, retries };
		});
		this.#send({ type: "uploadStats", tracks, checkpointRetries });
	}

	get trackCount(): number {
		return this.#tracks.size;
	}

	get transcriptionCount(): number {
		return this.#transcriptions.size;
	}

	handle(raw: unknown): void {
		const parsed = parseParentMessage(raw);
		if (!parsed.ok) {
			this.#log.warn({ error: parsed.error }, "invalid message from the gateway");
			this.#send({
				type: "error",
				...(parsed.requestId ? { requestId: parsed.requestId } : {}),
				code: "invalid_message",
				message: parsed.error,
			});
			return;
		}
		const msg = parsed.message;
		const fail = (err: unknown, trackId?: string) => {
			const e = toRecorderFailure(err);
			if (e.code === "internal_error") this.#log.error({ err, type: msg.type }, "request failed");
			this.#send({
				type: "error",
				...(msg.requestId ? { requestId: msg.requestId } : {}),
				...(trackId ? { trackId } : {}),
				code: e.code,
				message: e.message,
			});
		};
		switch (msg.type) {
			case "openTrack":
				this.#openTrack(msg).catch((err: unknown) => fail(err, msg.trackId));
				return;
			case "senderReport":
				this.#tracks.get(msg.trackId)?.recorder.senderReport(msg);
				this.#transcriptions.get(msg.trackId)?.senderReport(msg);
				return;
			case "closeTrack":
				this.#closeTrack(msg).catch((err: unknown) => fail(err, msg.trackId));
				return;
			case "recover":
				this.#recover(msg).catch((err: unknown) => fail(err));
				return;
			case "openTranscription":
				this.#openTranscription(msg).catch((err: unknown) => fail(err, msg.trackId));
				return;
			case "closeTranscription":
				this.#closeTranscription(msg).catch((err: unknown) => fail(err, msg.trackId));
				return;
			case "shutdown":
				void this.shutdown();
				return;
		}
	}

	/** Closes every track gracefully (their last objects completed and reported), and every transcription. */
	shutdown(): Promise<void> {
		clearInterval(this.#statsTimer);
		this.#shutdown ??= (async () => {
			this.#log.info(
				{ tracks: this.#tracks.size, transcriptions: this.#transcriptions.size },
				"recorder shutting down",
			);
			await Promise.all([
				...[...this.#tracks.keys()].map((trackId) =>
					this.#closeTrack({ type: "closeTrack", trackId }).catch((err: unknown) =>
						this.#log.error({ err, trackId }, "could not close a track"),
					),
				),
				...[...this.#transcriptions.keys()].map((trackId) =>
					this.#closeTranscription({ type: "closeTranscription", trackId }).catch((err: unknown) =>
						this.#log.error({ err, trackId }, "could not close a transcription"),
					),
				),
			]);
		})();
		return this.#shutdown;
	}

	async #openTrack(msg: OpenTrackMessage): Promise<void> {
		if (this.#shutdown) throw new RecorderError("shutting_down", "the recorder is shutting down");
		if (this.#tracks.has(msg.trackId) || this.#opening.has(msg.trackId)) {
			throw new RecorderError("track_exists", `track ${msg.trackId} is already open`);
		}
		this.#opening.add(msg.trackId);
		try {
			const policy = { allowHttp: msg.options?.allowHttp === true, allowPrivate: msg.options?.allowPrivate === true };
			await assertEndpointAllowed(msg.target.endpoint, policy);
			const client = this.#sharedClient(msg.target, policy);
			const checkpoints = this.#checkpointsFor(msg, policy);
			const segmentMs = msg.options?.segmentSeconds
				? msg.options.segmentSeconds * 1000
				: (msg.options?.segmentMinutes ?? this.#config.segmentMinutes) * 60_000;
			let recorder: TrackRecorder;
			try {
				recorder = await TrackRecorder.create({
					trackId: msg.trackId,
					key: msg.key,
					codec: msg.codec,
					ssrc: msg.ssrc,
					target: msg.target,
					client,
					config: this.#config,
					segmentMs,
					...(checkpoints ? { checkpoints: checkpoints.writer } : {}),
					...(msg.firstSeq ? { firstSeq: msg.firstSeq } : {}),
					...(msg.openAt !== undefined ? { openAt: msg.openAt } : {}),
					log: this.#log,
				});
			} catch (err) {
				this.#releaseClient(client);
				if (checkpoints) void this.#releaseCheckpoints(checkpoints.key);
				throw err;
			}
			const { trackId } = msg;
			recorder.on("objectWritten", (o) => this.#send({ type: "objectWritten", ...o }));
			recorder.on("partUploaded", (p) => this.#send({ type: "partUploaded", ...p }));
			recorder.on("keyframeNeeded", () => this.#send({ type: "keyframeNeeded", trackId }));
			recorder.on("started", (at, stages) =>
				this.#send({ type: "trackStarted", trackId, at: new Date(at).toISOString(), stages }),
			);
			recorder.on("hole", (h) =>
				this.#send({
					type: "trackHole",
					trackId,
					hole: {
						from: new Date(h.from).toISOString(),
						to: new Date(h.to).toISOString(),
						cause: h.cause,
						...(h.frames !== undefined ? { frames: h.frames } : {}),
					},
				}),
			);
			recorder.on("stopping", (f) => this.#send({ type: "trackStopping", trackId, ...f }));
			recorder.on("undatable", (u) => this.#send({ type: "trackUndatable", trackId, ...u }));
			recorder.on("failed", (f) => {
				if (recorder.state === "failed") this.#forget(trackId);
				this.#send({ type: "trackFailed", trackId, ...f, stats: recorder.stats });
			});
			this.#tracks.set(trackId, { recorder, client, ...(checkpoints ? { checkpoints: checkpoints.key } : {}) });
			if (this.#shutdown) void this.#closeTrack({ type: "closeTrack", trackId }).catch(() => undefined);
			this.#send({
				type: "trackOpened",
				...(msg.requestId ? { requestId: msg.requestId } : {}),
				trackId,
				rtpPort: recorder.rtpPort,
				rtcpPort: recorder.rtcpPort,
			});
		} finally {
			this.#opening.delete(msg.trackId);
		}
	}

	async #closeTrack(msg: CloseTrackMessage): Promise<void> {
		const track = this.#tracks.get(msg.trackId);
		if (!track) throw new RecorderError("unknown_track", `no open track ${msg.trackId}`);
		await track.recorder.close(msg.closeAt);
		this.#forget(msg.trackId);
		this.#send({
			type: "trackClosed",
			...(msg.requestId ? { requestId: msg.requestId } : {}),
			trackId: msg.trackId,
			stats: track.recorder.stats,
			capture: track.recorder.capture,
		});
	}

	#forget(trackId: string): void {
		const track = this.#tracks.get(trackId);
		if (!track) return;
		this.#tracks.delete(trackId);
		this.#releaseClient(track.client);
		if (track.checkpoints) void this.#releaseCheckpoints(track.checkpoints);
	}

	/** The checkpoint writer of the track's session (one S3 request per session per interval, for all its tracks). */
	#checkpointsFor(
		msg: OpenTrackMessage,
		policy: { allowHttp: boolean; allowPrivate: boolean },
	): { key: string; writer: CheckpointWriter } | undefined {
		if (this.#config.checkpointMs <= 0) return undefined;
		const { prefix, meetingId, sessionId } = msg.key;
		const base = `${prefix ? `${prefix}/` : ""}${meetingId}/${sessionId}`;
		const key = `${msg.target.endpoint}|${msg.target.bucket}|${base}`;
		let entry = this.#checkpoints.get(key);
		if (!entry) {
			const client = this.#sharedClient(msg.target, policy);
			entry = {
				client,
				tracks: 0,
				writer: new CheckpointWriter({
					client,
					target: msg.target,
					base,
					intervalMs: this.#config.checkpointMs,
					log: this.#log,
				}),
			};
			this.#checkpoints.set(key, entry);
		}
		entry.tracks++;
		return { key, writer: entry.writer };
	}

	async #releaseCheckpoints(key: string): Promise<void> {
		const entry = this.#checkpoints.get(key);
		if (!entry || --entry.tracks > 0) return;
		this.#checkpoints.delete(key);
		await entry.writer.close().catch(() => undefined);
		this.#releaseClient(entry.client);
	}

	async #openTranscription(msg: OpenTranscriptionMessage): Promise<void> {
		if (this.#shutdown) throw new RecorderError("shutting_down", "the recorder is shutting down");
		const { trackId } = msg;
		if (this.#transcriptions.has(trackId) || this.#openingTranscriptions.has(trackId)) {
			throw new RecorderError("transcription_exists", `transcription ${trackId} is already open`);
		}
		if (!findExecutable(this.#config.ffmpegPath)) {
			throw new RecorderError("ffmpeg_unavailable", `ffmpeg not found (${this.#config.ffmpegPath})`);
		}
		this.#openingTranscriptions.add(trackId);
		try {
			const policy = { allowHttp: msg.options?.allowHttp === true, allowPrivate: msg.options?.allowPrivate === true };
			const transcriber = await TrackTranscriber.create({
				trackId,
				codec: msg.codec,
				ssrc: msg.ssrc,
				engine: createEngine(msg.engine, this.#config, policy),
				config: this.#config,
				partials: msg.options?.partials !== false,
				...(msg.openAt !== undefined ? { openAt: msg.openAt } : {}),
				log: this.#log,
			});
			const engine = msg.engine.type;
			transcriber.on("segment", (s) => this.#send({ type: "transcriptSegment", trackId, engine, ...s }));
			transcriber.on("undatable", (u) => this.#send({ type: "trackUndatable", trackId, ...u }));
			transcriber.on("failed", (f) => {
				this.#transcriptions.delete(trackId);
				this.#send({ type: "transcriptionFailed", trackId, ...f });
			});
			this.#transcriptions.set(trackId, transcriber);
			if (this.#shutdown) {
				void this.#closeTranscription({ type: "closeTranscription", trackId }).catch(() => undefined);
			}
			this.#send({
				type: "transcriptionOpened",
				...(msg.requestId ? { requestId: msg.requestId } : {}),
				trackId,
				rtpPort: transcriber.rtpPort,
				rtcpPort: transcriber.rtcpPort,
			});
		} finally {
			this.#openingTranscriptions.delete(trackId);
		}
	}

	async #closeTranscription(msg: CloseTranscriptionMessage): Promise<void> {
		const transcriber = this.#transcriptions.get(msg.trackId);
		if (!transcriber) throw new RecorderError("unknown_transcription", `no open transcription ${msg.trackId}`);
		await transcriber.close(msg.closeAt);
		this.#transcriptions.delete(msg.trackId);
		this.#send({
			type: "transcriptionClosed",
			...(msg.requestId ? { requestId: msg.requestId } : {}),
			trackId: msg.trackId,
			audioMs: transcriber.audioMs,
			capture: transcriber.capture,
		});
	}

	async #recover(msg: RecoverMessage): Promise<void> {
		const policy = { allowHttp: msg.options?.allowHttp === true, allowPrivate: msg.options?.allowPrivate === true };
		await assertEndpointAllowed(msg.target.endpoint, policy);
		const client = this.#client(msg.target, policy);
		const live = new Set(msg.liveUploadIds ?? []);
		const liveKeys = new Set<string>();
		for (const t of this.#tracks.values()) {
			for (const id of t.recorder.uploadIds) live.add(id);
			for (const k of t.recorder.liveKeys) liveKeys.add(k);
		}
		try {
			const result = await recoverUploads({
				client,
				target: msg.target,
				prefix: msg.prefix,
				liveUploadIds: live,
				liveKeys,
				sessions: msg.sessions,
				log: this.#log.child({ recover: msg.requestId ?? true }),
				onObject: (o) =>
					this.#send({ type: "objectWritten", ...(msg.requestId ? { requestId: msg.requestId } : {}), ...o }),
			});
			this.#send({ type: "recovered", ...(msg.requestId ? { requestId: msg.requestId } : {}), ...result });
		} catch (err) {
			const mapped = classifyS3Error(err, msg.target, "list uploads in");
			throw new RecorderError("recovery_failed", mapped.message, { cause: err });
		} finally {
			client.destroy();
		}
	}

	/**
	 * One S3 client per target (endpoint, credentials, policy) for all the tracks writing to it: creating a client
	 * costs milliseconds, and hundreds of tracks open at once.
	 */
	#sharedClient(target: StorageTarget, policy: { allowHttp: boolean; allowPrivate: boolean }): S3Client {
		const key = JSON.stringify([target, policy]);
		let entry = this.#clients.get(key);
		if (!entry) {
			entry = { client: this.#client(target, policy), refs: 0 };
			this.#clients.set(key, entry);
			this.#clientKeys.set(entry.client, key);
		}
		entry.refs++;
		return entry.client;
	}

	#releaseClient(client: S3Client): void {
		const key = this.#clientKeys.get(client);
		const entry = key ? this.#clients.get(key) : undefined;
		if (!entry || !key) return;
		if (--entry.refs > 0) return;
		this.#clients.delete(key);
		this.#clientKeys.delete(client);
		client.destroy();
	}

	#client(target: StorageTarget, policy: { allowHttp: boolean; allowPrivate: boolean }): S3Client {
		return createS3Client(target, {
			...policy,
			maxAttempts: 1, // retries are the uploader's (backoff within the memory budget)
			requestTimeoutMs: this.#config.requestTimeoutMs,
		});
	}
}

function toRecorderFailure(err: unknown): { code: string; message: string } {
	if (err instanceof ConsentryError) return { code: err.code, message: err.message };
	return { code: "internal_error", message: "internal error in the recorder; its log has the details" };
}

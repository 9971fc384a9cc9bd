import { EventEmitter } from "node:events";
import type { Logger } from "../server/logger.js";
import { ByteBudget } from "./ByteBudget.js";
import { FfmpegError, UploadError } from "./errors.js";
import { FfmpegProcess } from "./FfmpegProcess.js";
import type { FfmpegExit } from "./FfmpegProcessTypes.js";
import { objectKey, type TrackFailed } from "./RecorderProtocol.js";
import { RtpRelay } from "./RtpRelay.js";
import { SegmentUploader } from "./SegmentUploader.js";
import type { SegmentOutcome } from "./SegmentUploaderTypes.js";
import type { TrackRecorderEvents, TrackRecorderOptions } from "./TrackRecorderTypes.js";

type FailureCode = TrackFailed["code"];

/** One object: one ffmpeg writing into one multipart upload. */
interface Segment {
	seq: number;
	ffmpeg: FfmpegProcess;
	uploader: SegmentUploader;
	createdAt: number;
	/** First and last RTP packet relayed into it. */
	startedAt?: number;
	endedAt?: number;
	/** First packet relayed since ffmpeg last produced output (watchdog). */
	inputSinceOutputAt?: number;
	/** Video: relaying starts at a key frame (or once keyframeWaitMs of packets went by without one). */
	gotKeyframe: boolean;
	firstSeenAt?: number;
	keyframeRequestedAt: number;
	retiring: boolean;
}

/** A segment whose last packet is this close to the idle timeout gets no more: ffmpeg may be ending its input. */
const IDLE_MARGIN_MS = 300;
/** Packets held while a segment's ffmpeg starts (about 50–150 ms of media). */
const QUEUE_MAX_PACKETS = 3000;

/**
 * Records one track. The relay's RTP goes into an ffmpeg (SDP on stdin, WebM
 * on stdout, no transcoding) whose output a SegmentUploader streams into
 * `{prefix}/{meetingId}/{sessionId}/{person}-{kind}-{seq}.webm`.
 *
 * - A segment starts with the first RTP packet (packets are held while its
 *   ffmpeg starts); video segments start at a key frame.
 * - It ends cleanly when RTP stops for idleTimeoutMs: ffmpeg treats that as
 *   the end of its input, writes the last cluster and exits; the object is
 *   completed. That is how close() and the old segment of a rollover end too,
 *   and how a long pause (producer paused) ends one; the next packet starts
 *   the next segment.
 * - It rolls over every segmentMs and when the uploader nears a limit: a new
 *   ffmpeg starts beside the old one and takes over at the next key frame
 *   (video; it asks for one with `keyframeNeeded`), so no packet is lost or
 *   recorded twice.
 * - An ffmpeg that dies, or gets RTP but writes nothing for watchdogMs, is
 *   replaced by a new segment (`segmentRestarted`); more than maxRestarts in
 *   restartWindowMs fail the track (`ffmpeg_failed`).
 * - A buffer that stays full (the bucket is down longer than it lasts) fails
 *   the track (`storage_unavailable`) after what was buffered is stored.
 */
export class TrackRecorder extends EventEmitter<TrackRecorderEvents> {
	readonly trackId: string;
	readonly #opts: TrackRecorderOptions;
	readonly #log: Logger;
	readonly #budget: ByteBudget;
	readonly #video: boolean;
	#relay!: RtpRelay;
	#state: "open" | "closing" | "failed" | "closed" = "open";
	#current: Segment | undefined;
	#next: Segment | undefined;
	#starting: Promise<void> | undefined;
	#queue: { packet: Buffer; keyframe: boolean }[] = [];
	#seq: number;
	#restarts: number[] = [];
	#retiring = new Set<Promise<void>>();
	#tick: NodeJS.Timeout | undefined;
	#ending: Promise<void> | undefined;

	private constructor(options: TrackRecorderOptions) {
		super();
		this.#opts = options;
		this.trackId = options.trackId;
		this.#log = options.log.child({ trackId: options.trackId });
		this.#budget = new ByteBudget(options.config.maxBufferedBytes);
		this.#video = options.codec.kind === "video";
		this.#seq = (options.firstSeq ?? 1) - 1;
	}

	/** Binds the track's ports; the first ffmpeg starts with the first RTP packet. */
	static async create(options: TrackRecorderOptions): Promise<TrackRecorder> {
		const track = new TrackRecorder(options);
		track.#relay = await RtpRelay.create({
			payloadType: options.codec.payloadType,
			ssrc: options.ssrc,
			video: track.#video,
			log: track.#log,
			onRtp: (packet, keyframe) => track.#onRtp(packet, keyframe),
			// ffmpeg has no use for the sender's RTCP with a single stream, and any packet would delay its idle end.
			onRtcp: () => undefined,
		});
		track.#tick = setInterval(() => track.#onTick(), 250);
		track.#log.info({ rtpPort: track.rtpPort, rtcpPort: track.rtcpPort, segmentMs: options.segmentMs }, "track open");
		return track;
	}

	get rtpPort(): number {
		return this.#relay.rtpPort;
	}

	get rtcpPort(): number {
		return this.#relay.rtcpPort;
	}

	get state(): "open" | "closing" | "failed" | "closed" {
		return this.#state;
	}

	/** The multipart uploads this track is writing (never touched by recover). */
	get uploadIds(): string[] {
		const ids: string[] = [];
		for (const s of [this.#current, this.#next]) if (s?.uploader.uploadId) ids.push(s.uploader.uploadId);
		return ids;
	}

	/** PIDs of its running ffmpeg processes (diagnostics). */
	get ffmpegPids(): number[] {
		return [this.#current, this.#next].flatMap((s) => (s?.ffmpeg.pid && !s.ffmpeg.exited ? [s.ffmpeg.pid] : []));
	}

	/**
	 * Graceful close: stops relaying; ffmpeg ends its input after idleTimeoutMs,
	 * writes the last cluster and exits; the rest is uploaded and the object
	 * completed. Resolves after its objectWritten (and `failed` when the last
	 * segment could not be stored).
	 */
	close(): Promise<void> {
		if (this.#ending) return this.#ending;
		this.#state = "closing";
		this.#ending = this.#end();
		return this.#ending;
	}

	async #end(failure?: { code: FailureCode; message: string }): Promise<void> {
		clearInterval(this.#tick);
		this.#relay.close();
		if (failure) this.#queue = [];
		// A segment still starting takes the packets held for it (see #startCurrent); none is dropped on a close.
		await this.#starting;
		if (!failure && this.#queue.length && !this.#current) await this.#startCurrent();
		this.#queue = [];
		const errors: UploadError[] = [];
		for (const seg of [this.#current, this.#next]) if (seg) this.#retire(seg, { kill: !!failure, errors });
		this.#current = undefined;
		this.#next = undefined;
		while (this.#retiring.size) await Promise.all([...this.#retiring]);
		if (failure) {
			this.#state = "failed";
			this.emit("failed", failure);
		} else {
			this.#state = "closed";
			const storageError = errors[0];
			if (storageError) this.emit("failed", { code: storageError.code, message: storageError.message });
		}
		this.#log.info({ stats: this.#relay.stats, failure: failure?.code }, "track ended");
	}

	#fail(code: FailureCode, message: string): void {
		if (this.#state !== "open") return;
		this.#state = "failed";
		this.#log.error({ code, message }, "track failed");
		this.emit("stopping", { code, message });
		this.#ending = this.#end({ code, message });
	}

	// ---- media ----

	#onRtp(packet: Buffer, keyframe: boolean): void {
		if (this.#state !== "open") return;
		const now = Date.now();
		const idleAfter = this.#opts.config.idleTimeoutMs - IDLE_MARGIN_MS;
		const cur = this.#current;
		if (cur?.endedAt !== undefined && now - cur.endedAt >= idleAfter) {
			// Its ffmpeg is ending (or ended) its input for lack of RTP: this packet belongs to the next segment.
			this.#log.debug({ seq: cur.seq, idleMs: now - cur.endedAt }, "segment ended: RTP paused");
			this.#current = undefined;
			this.#retire(cur, {});
		}
		const next = this.#next;
		if (next) {
			next.firstSeenAt ??= now;
			const takeOver =
				!this.#current || !this.#video || keyframe || now - next.firstSeenAt >= this.#opts.config.keyframeWaitMs;
			if (takeOver) {
				const old = this.#current;
				this.#current = next;
				this.#next = undefined;
				if (old) this.#retire(old, {});
				this.#log.debug({ seq: next.seq, keyframe }, "segment took over");
			}
		}
		const seg = this.#current;
		if (!seg || seg.ffmpeg.exited) {
			this.#queue.push({ packet, keyframe });
			if (this.#queue.length > QUEUE_MAX_PACKETS) this.#queue.shift();
			if (!seg) void this.#startCurrent();
			return;
		}
		this.#forward(seg, packet, keyframe, now);
	}

	#forward(seg: Segment, packet: Buffer, keyframe: boolean, now: number): void {
		if (this.#video && !seg.gotKeyframe) {
			seg.firstSeenAt ??= now;
			if (keyframe || now - seg.firstSeenAt >= this.#opts.config.keyframeWaitMs) seg.gotKeyframe = true;
			else {
				if (now - seg.keyframeRequestedAt >= 1000) {
					seg.keyframeRequestedAt = now;
					this.emit("keyframeNeeded");
				}
				return;
			}
		}
		this.#relay.sendRtp(packet, seg.ffmpeg.rtpPort);
		seg.startedAt ??= now;
		seg.endedAt = now;
		seg.inputSinceOutputAt ??= now;
	}

	#onTick(): void {
		if (this.#state !== "open") return;
		const now = Date.now();
		const seg = this.#current;
		const { watchdogMs } = this.#opts.config;
		if (
			seg &&
			!seg.ffmpeg.exited &&
			seg.inputSinceOutputAt !== undefined &&
			now - seg.inputSinceOutputAt > watchdogMs &&
			!this.#budget.full
		) {
			this.#log.warn({ seq: seg.seq, pid: seg.ffmpeg.pid }, "ffmpeg gets RTP but writes nothing: restarting it");
			this.#current = undefined;
			this.#retire(seg, { kill: true });
			this.#restart(`watchdog: no output from ffmpeg for ${Math.round(watchdogMs / 1000)} s while RTP flowed`);
			return;
		}
		if (seg?.startedAt !== undefined && now - seg.startedAt >= this.#opts.segmentMs) this.#rollover("time");
		const next = this.#next;
		if (next && this.#video && now - next.keyframeRequestedAt >= 1000) {
			next.keyframeRequestedAt = now;
			this.emit("keyframeNeeded");
		}
	}

	// ---- segments ----

	/** Starts a segment to record into now (held packets go into it). `restartReason` reports it as a restart. */
	#startCurrent(restartReason?: string): Promise<void> {
		if (this.#starting) return this.#starting;
		this.#starting = (async () => {
			let seg: Segment;
			try {
				seg = await this.#startSegment();
			} catch (err) {
				if (err instanceof FfmpegError && err.code === "ffmpeg_unavailable") {
					this.#fail("ffmpeg_unavailable", `could not start ffmpeg: ${err.message}`);
				} else {
					// A slow start (a loaded machine, many tracks starting at once) is retried, within the restart budget;
					// packets keep waiting in the queue meanwhile.
					setTimeout(() => this.#restart(`could not start ffmpeg: ${(err as Error).message}`), 250).unref();
				}
				return;
			}
			if (this.#state !== "open") {
				if (this.#state === "closing" && this.#queue.length) {
					// Closed while ffmpeg was starting: what arrived meanwhile is still recorded, then the segment ends.
					const now = Date.now();
					for (const { packet, keyframe } of this.#queue.splice(0)) this.#forward(seg, packet, keyframe, now);
					this.#retire(seg, {});
				} else this.#retire(seg, { kill: true });
				return;
			}
			if (this.#current) this.#retire(this.#current, {});
			this.#current = seg;
			const now = Date.now();
			for (const { packet, keyframe } of this.#queue.splice(0)) this.#forward(seg, packet, keyframe, now);
			if (restartReason) {
				this.#log.warn({ seq: seg.seq, reason: restartReason }, "segment restarted");
				this.emit("segmentRestarted", { seq: seg.seq, reason: restartReason });
			}
		})().finally(() => {
			this.#starting = undefined;
		});
		return this.#starting;
	}

	#rollover(reason: string): void {
		if (this.#state !== "open" || this.#next || this.#starting) return;
		this.#starting = (async () => {
			try {
				const seg = await this.#startSegment();
				if (this.#state !== "open" || !this.#current) {
					// Closed, or the current one ended meanwhile: this one starts with the next packet instead.
					if (this.#state === "open" && !this.#current) this.#current = seg;
					else this.#retire(seg, { kill: true });
					return;
				}
				this.#next = seg;
				this.#log.info({ seq: seg.seq, reason }, "rolling over into a new segment");
			} catch (err) {
				this.#fail("ffmpeg_unavailable", `could not start ffmpeg for the next segment: ${(err as Error).message}`);
			}
		})().finally(() => {
			this.#starting = undefined;
		});
	}

	async #startSegment(): Promise<Segment> {
		const seq = ++this.#seq;
		const { config, key, target, client, codec } = this.#opts;
		const log = this.#log.child({ seq });
		const ffmpeg = await FfmpegProcess.start({
			codec,
			ssrc: this.#opts.ssrc,
			ffmpegPath: config.ffmpegPath,
			idleTimeoutMs: config.idleTimeoutMs,
			memoryLimitBytes: config.ffmpegMemoryLimitBytes,
			log,
		});
		const uploader = new SegmentUploader({
			client,
			target,
			key: objectKey(key, seq),
			contentType: codec.kind === "audio" ? "audio/webm" : "video/webm",
			budget: this.#budget,
			config,
			log,
		});
		const now = Date.now();
		const seg: Segment = {
			seq,
			ffmpeg,
			uploader,
			createdAt: now,
			gotKeyframe: !this.#video,
			keyframeRequestedAt: now,
			retiring: false,
		};
		uploader.consume(ffmpeg.stdout);
		ffmpeg.stdout.on("data", () => {
			seg.inputSinceOutputAt = undefined;
		});
		uploader.on("part", ({ partNumber, size }) =>
			this.emit("partUploaded", { trackId: this.trackId, seq, partNumber, size }),
		);
		uploader.on("rolloverNeeded", ({ reason }) => {
			log.info({ reason }, "object nears a limit: rolling over");
			this.#rollover(reason);
		});
		uploader.on("overflow", ({ bufferedBytes }) =>
			this.#fail(
				"storage_unavailable",
				`the bucket did not keep up: ${bufferedBytes} bytes (the limit) stayed buffered for ${config.bufferFullGraceMs} ms; recording stopped, what was buffered is stored`,
			),
		);
		uploader.on("rejected", (err) => this.#fail("storage_rejected", err.message));
		ffmpeg.on("exit", (info) => this.#onFfmpegExit(seg, info));
		// The track's first key frame is the gateway's to ask for when it resumes the consumer.
		if (this.#video && seq > (this.#opts.firstSeq ?? 1)) this.emit("keyframeNeeded");
		log.debug({ pid: ffmpeg.pid, ports: [ffmpeg.rtpPort, ffmpeg.rtcpPort] }, "segment started");
		return seg;
	}

	#countRestart(): boolean {
		const now = Date.now();
		const { maxRestarts, restartWindowMs } = this.#opts.config;
		this.#restarts = this.#restarts.filter((t) => now - t < restartWindowMs);
		this.#restarts.push(now);
		return this.#restarts.length <= maxRestarts;
	}

	#restart(reason: string): void {
		if (this.#state !== "open") return;
		if (!this.#countRestart()) {
			this.#fail(
				"ffmpeg_failed",
				`ffmpeg failed ${this.#restarts.length} times within ${Math.round(this.#opts.config.restartWindowMs / 1000)} s; last: ${reason}`,
			);
			return;
		}
		const next = this.#next;
		if (next) {
			this.#next = undefined;
			this.#current = next;
			this.#log.warn({ seq: next.seq, reason }, "segment restarted");
			this.emit("segmentRestarted", { seq: next.seq, reason });
			return;
		}
		void this.#startCurrent(reason);
	}

	#onFfmpegExit(seg: Segment, info: FfmpegExit): void {
		if (seg.retiring || this.#state !== "open") return;
		const reason = `ffmpeg exited (${info.signal ?? `code ${info.code}`})${info.stderr ? `: ${info.stderr.split("\n").slice(-2).join(" | ").slice(0, 300)}` : ""}`;
		if (seg === this.#next) {
			this.#next = undefined;
			this.#retire(seg, {});
			this.#log.warn({ seq: seg.seq, reason }, "the next segment's ffmpeg died before taking over");
			if (!this.#countRestart()) this.#fail("ffmpeg_failed", reason);
			return;
		}
		if (seg !== this.#current) return;
		this.#current = undefined;
		this.#retire(seg, {});
		const idle =
			seg.endedAt === undefined || Date.now() - seg.endedAt >= this.#opts.config.idleTimeoutMs - IDLE_MARGIN_MS;
		if (info.code === 0 && idle) {
			this.#log.debug({ seq: seg.seq }, "segment ended: no RTP");
			return; // the next packet starts the next segment
		}
		if (seg.uploader.overflowed) return; // failing already
		this.#log.warn({ seq: seg.seq, code: info.code, signal: info.signal, stderr: info.stderr }, "ffmpeg died");
		this.#restart(reason);
	}

	/** Lets a segment's ffmpeg end (or kills it), completes its object and reports it. */
	#retire(seg: Segment, how: { kill?: boolean; errors?: UploadError[] }): void {
		if (seg.retiring) return;
		seg.retiring = true;
		const done = (async () => {
			if (how.kill) seg.ffmpeg.kill();
			await seg.ffmpeg.finish(this.#opts.config.stopGraceMs);
			const outcome = await seg.uploader.finish({ force: true });
			this.#report(seg, outcome);
			if (outcome.error) {
				if (how.errors) how.errors.push(outcome.error);
				else this.#fail(outcome.error.code, outcome.error.message);
			}
		})().catch((err: unknown) => {
			this.#log.error({ err, seq: seg.seq }, "could not finish a segment");
			const e = new UploadError("storage_unavailable", `could not finish segment ${seg.seq}: ${String(err)}`);
			if (how.errors) how.errors.push(e);
			else this.#fail("internal_error", e.message);
		});
		this.#retiring.add(done);
		void done.finally(() => this.#retiring.delete(done));
	}

	#report(seg: Segment, outcome: SegmentOutcome): void {
		const o = outcome.object;
		if (!o) {
			if (outcome.bytesIn > 0) this.#log.warn({ seq: seg.seq, bytesIn: outcome.bytesIn }, "segment not stored");
			return;
		}
		const startedAt = seg.startedAt ?? seg.createdAt;
		this.emit("objectWritten", {
			trackId: this.trackId,
			bucket: o.bucket,
			key: o.key,
			seq: seg.seq,
			size: o.size,
			sha256: o.sha256,
			startedAt: new Date(startedAt).toISOString(),
			endedAt: new Date(Math.max(seg.endedAt ?? startedAt, startedAt)).toISOString(),
			...(o.truncated ? { truncated: true } : {}),
		});
	}
}

import { EventEmitter } from "node:events";
import type { Logger } from "../contracts/logger.js";
import {
	containerOf,
	contentTypeOf,
	objectKey,
	type StartStages,
	type TrackFailed,
} from "../contracts/RecorderProtocol.js";
import { ByteBudget } from "./ByteBudget.js";
import { CaptureGate, type CaptureSummary, CLOSE_MARGIN_MS, type CloseTime, type SenderReport } from "./CaptureGate.js";
import { Depacketizer } from "./Depacketizer.js";
import type { Frame, Hole } from "./DepacketizerTypes.js";
import { UploadError } from "./errors.js";
import { MatroskaWriter } from "./MatroskaWriter.js";
import { RtpRelay } from "./RtpRelay.js";
import { SegmentUploader } from "./SegmentUploader.js";
import type { SegmentOutcome } from "./SegmentUploaderTypes.js";
import type { TrackRecorderEvents, TrackRecorderOptions, TrackStats } from "./TrackRecorderTypes.js";

type FailureCode = TrackFailed["code"];

/** One object: a WebM (Matroska for H.264) being muxed in process, streamed into one multipart upload. */
interface Segment {
	seq: number;
	writer: MatroskaWriter;
	uploader: SegmentUploader;
	/** Arrival of its first and last frame (wall clock, ms). */
	startedAt: number;
	endedAt: number;
	/** Its last frame's time on the track's clock (codec clock units). */
	lastTimestamp: number;
	/** Arrival time of each frame added (for the holes of an object cut short). */
	frameTimes: number[];
	retiring: boolean;
	/** Its first frame's capture time on the sender's clock (Unix ms), when dated. */
	firstCaptureAt?: number | undefined;
	/** The sender's clock offset around its first frame (from the reports within ±15 s of it), once known. */
	clockOffsetMs?: number | undefined;
	/** H.264: the SPS/PPS its header (avcC) was written with; other parameter sets start a new object. */
	parameterSets?: { sps: Buffer; pps: Buffer } | undefined;
}

/** An object's clock offset is taken from the reports within this much of its first frame. */
const OFFSET_SPAN_MS = 15_000;
/**
 * A tick this late means the event loop was stalled (a busy or starved process): packets that arrived meanwhile are
 * still unread, so "no frame for a while" proves nothing then.
 */
const STALLED_TICK_MS = 1000;
/** With no frame at all, the tick ends an object after this many idleTimeoutMs (a frame ends it sooner: #onFrame). */
const SILENT_IDLE_FACTOR = 3;

/** Key frame requests at most this often. */
const KEYFRAME_REQUEST_MS = 500;

/**
 * Records one track, in process: the track's RTP (RtpRelay, 127.0.0.1) →
 * Depacketizer (jitter window, frames, loss) → MatroskaWriter (our EBML writer,
 * append-only WebM) → SegmentUploader (the customer's bucket). No child
 * process; a frame is in the muxer as soon as its last packet arrived.
 *
 * - An object (segment) starts with the first frame; a video one with a key
 *   frame (frames before it are dropped and one is asked for).
 * - It ends when no frame came for idleTimeoutMs (the producer paused: the
 *   next frame starts the next object), on close, and at a rollover: every
 *   segmentMs, or when the upload nears a limit, the next object starts at
 *   the next key frame (asked for; audio: the next frame). Nothing is lost or
 *   written twice at a rollover.
 * - Every frame is accounted for (`stats`): received, written (in a stored
 *   object), dropped; every stretch that will not be in the bucket is a `hole`.
 * - A buffer that stays full (the bucket is down longer than it lasts) fails
 *   the track (`storage_unavailable`) after what was buffered is stored.
 */
export class TrackRecorder extends EventEmitter<TrackRecorderEvents> {
	readonly trackId: string;
	readonly #opts: TrackRecorderOptions;
	readonly #log: Logger;
	readonly #budget: ByteBudget;
	#uploadRetries = 0;
	readonly #video: boolean;
	readonly #codec: "opus" | "vp8" | "h264";
	#relay!: RtpRelay;
	#depacketizer!: Depacketizer;
	#gate!: CaptureGate;
	#state: "open" | "closing" | "failed" | "closed" = "open";
	#current: Segment | undefined;
	#seq: number;
	#rolloverWanted: string | undefined;
	#lastKeyRequest = 0;
	#retiring = new Set<Promise<void>>();
	#retiringSegments = new Set<Segment>();
	#tick: NodeJS.Timeout | undefined;
	#lastTickAt = 0;
	#ending: Promise<void> | undefined;
	#framesWritten = 0;
	#framesNoSegment = 0;
	#started = false;
	/** When the first frame passed each stage (trackStarted). */
	readonly #stages: StartStages = {};
	readonly #holes: Hole[] = [];

	private constructor(options: TrackRecorderOptions) {
		super();
		this.#opts = options;
		this.trackId = options.trackId;
		this.#log = options.log.child({ trackId: options.trackId });
		this.#budget = new ByteBudget(options.config.maxBufferedBytes);
		this.#video = options.codec.kind === "video";
		this.#codec =
			options.codec.mimeType === "video/H264" ? "h264" : options.codec.mimeType === "video/VP8" ? "vp8" : "opus";
		this.#seq = (options.firstSeq ?? 1) - 1;
	}

	static async create(options: TrackRecorderOptions): Promise<TrackRecorder> {
		const track = new TrackRecorder(options);
		track.#depacketizer = new Depacketizer({
			codec: track.#codec,
			clockRate: options.codec.clockRate,
			spropParameterSets: options.codec.spropParameterSets,
			jitterMs: options.config.jitterMs,
			onFrame: (frame) => track.#onFrame(frame),
			onKeyframeNeeded: () => track.#requestKeyframe(),
			onHole: (hole) => track.#hole(hole),
		});
		track.#gate = new CaptureGate({
			clockRate: options.codec.clockRate,
			openAt: options.openAt,
			closeMarginMs: options.closeMarginMs ?? options.config.closeMarginMs ?? CLOSE_MARGIN_MS,
			undatableAfterMs: options.config.undatableAfterMs,
			onUndatable: (info) => track.emit("undatable", info),
			pass: (packet, header) => track.#depacketizer.push(packet, header),
		});
		track.#relay = await RtpRelay.create({
			payloadType: options.codec.payloadType,
			ssrc: options.ssrc,
			log: track.#log,
			onRtp: (packet, header) => {
				track.#stages.firstPacket ??= Date.now();
				if (track.#state === "open" || track.#state === "closing") track.#gate.push(packet, header);
			},
			// mediasoup's own reports on this leg map RTP time to its send time, not to capture time: the
			// producer's reports come from the gateway (senderReport).
			onRtcp: () => undefined,
		});
		track.#lastTickAt = Date.now();
		track.#stages.opened = track.#lastTickAt;
		track.#tick = setInterval(() => track.#onTick(), 250);
		track.#tick.unref();
		track.#log.info({ rtpPort: track.rtpPort, rtcpPort: track.rtcpPort, segmentMs: options.segmentMs }, "track open");
		return track;
	}

	/**
	 * What the operator watches (metrics): bytes held for the bucket (out of `bufferLimit`) and the upload requests
	 * retried so far.
	 */
	get uploadState(): { bufferedBytes: number; bufferLimit: number; uploadRetries: number } {
		return { bufferedBytes: this.#budget.used, bufferLimit: this.#budget.limit, uploadRetries: this.#uploadRetries };
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
		for (const s of [this.#current, ...this.#retiringSegments]) if (s?.uploader.uploadId) ids.push(s.uploader.uploadId);
		return ids;
	}

	/** The keys of the objects this track is writing, with or without an upload yet (never touched by recover). */
	get liveKeys(): string[] {
		const keys: string[] = [];
		for (const s of [this.#current, ...this.#retiringSegments]) if (s) keys.push(s.uploader.key);
		return keys;
	}

	/** A sender report of the producer (the gateway forwards them): dates the packets (issue 11). */
	senderReport(sr: SenderReport): void {
		if (this.#state === "open") this.#gate.senderReport(sr);
	}

	/** The per-packet capture gate's account, on the sender's clock. */
	get capture(): CaptureSummary {
		return this.#gate.summary;
	}

	/** Every frame accounted for, so far. */
	get stats(): TrackStats {
		const d = this.#depacketizer.stats;
		return {
			packets: d.packets,
			lostPackets: d.lostPackets,
			framesReceived: d.frames + d.droppedFrames,
			framesWritten: this.#framesWritten,
			framesDropped: d.droppedFrames + this.#framesNoSegment,
		};
	}

	/** Every stretch known not to be in the bucket. */
	get holes(): readonly Hole[] {
		return this.#holes;
	}

	/**
	 * Graceful close: what the jitter window holds is written (what the capture
	 * gate let through and was captured by `closeAt`), the object finished and stored. Resolves after its objectWritten (and `failed` when
	 * the last object could not be stored).
	 */
	close(closeAt?: CloseTime): Promise<void> {
		if (closeAt && this.#state === "open") this.#gate.close(closeAt);
		if (this.#ending) return this.#ending;
		this.#state = "closing";
		this.#ending = this.#end();
		return this.#ending;
	}

	async #end(failure?: { code: FailureCode; message: string }): Promise<void> {
		clearInterval(this.#tick);
		// Closing: what the gateway sent before it stopped the media and is still in our socket (we may lag behind
		// under load) is recorded too. Failing: nothing more is taken.
		if (!failure && !(await this.#relay.drain(this.#opts.config.closeDrainMs))) {
			// Still more than closeDrainMs behind: the rest is thrown away, but counted, and its time is a hole.
			const to = Date.now();
			const rest = await this.#relay.discardRest(2000);
			if (rest.packets > 0) {
				const spanMs =
					rest.firstTs !== undefined && rest.lastTs !== undefined
						? (((rest.lastTs - rest.firstTs) >>> 0) / this.#opts.codec.clockRate) * 1000
						: 0;
				this.#log.warn({ packets: rest.packets, spanMs }, "closing behind: packets thrown away unread");
				this.#hole({ from: Math.round(to - spanMs), to, cause: "overflow" });
			}
		}
		this.#relay.close();
		// Closing: frames still in the jitter window go in before the object ends (failing: they are dropped).
		this.#gate.end();
		this.#depacketizer.close();
		const errors: UploadError[] = [];
		for (const seg of this.#retiringSegments) seg.uploader.limit();
		if (this.#current) this.#retire(this.#current, { kill: !!failure, errors });
		this.#current = undefined;
		while (this.#retiring.size) await Promise.all([...this.#retiring]);
		if (failure) {
			this.#state = "failed";
			this.emit("failed", failure);
		} else {
			this.#state = "closed";
			const storageError = errors[0];
			if (storageError) this.emit("failed", { code: storageError.code, message: storageError.message });
		}
		this.#log.info({ stats: this.stats, holes: this.#holes.length, failure: failure?.code }, "track ended");
	}

	#fail(code: FailureCode, message: string): void {
		if (this.#state !== "open") return;
		this.#state = "failed";
		this.#log.error({ code, message }, "track failed");
		this.emit("stopping", { code, message });
		this.#ending = this.#end({ code, message });
	}

	#hole(hole: Hole): void {
		this.#holes.push(hole);
		this.emit("hole", hole);
	}

	#requestKeyframe(): void {
		const now = Date.now();
		if (now - this.#lastKeyRequest < KEYFRAME_REQUEST_MS) return;
		this.#lastKeyRequest = now;
		this.emit("keyframeNeeded");
	}

	// ---- media ----

	#onFrame(frame: Frame): void {
		if (this.#state !== "open" && this.#state !== "closing") return;
		let seg = this.#current;
		const idleMs = this.#opts.config.idleTimeoutMs;
		if (
			seg &&
			frame.receivedAt - seg.endedAt >= idleMs &&
			((frame.timestamp - seg.lastTimestamp) / this.#opts.codec.clockRate) * 1000 >= idleMs
		) {
			// The producer paused (its own clock jumped too, not only our arrival times: a stalled event loop or a
			// late sender delivers contiguous media late, and must not split the object or cost frames until the next
			// key frame): that object is done; this frame starts the next.
			this.#current = undefined;
			this.#retire(seg, {});
			seg = undefined;
		}
		if (
			seg?.parameterSets &&
			frame.parameterSets &&
			(!seg.parameterSets.sps.equals(frame.parameterSets.sps) || !seg.parameterSets.pps.equals(frame.parameterSets.pps))
		) {
			// H.264 parameter sets changed (the encoder adapted its resolution or profile): the object's header
			// describes the old ones, so this key frame starts a new object that any player opens as written.
			this.#rolloverWanted = "parameters_changed";
		}
		if (seg && this.#rolloverWanted && (!this.#video || frame.key)) {
			this.#log.debug({ seq: seg.seq, reason: this.#rolloverWanted }, "rolling over into a new object");
			this.#current = undefined;
			this.#rolloverWanted = undefined;
			this.#retire(seg, {});
			seg = undefined;
		}
		if (!seg) {
			if (this.#video && !frame.key) {
				this.#framesNoSegment++;
				this.#requestKeyframe();
				return;
			}
			seg = this.#startSegment(frame.receivedAt, frame.timestamp);
			seg.firstCaptureAt = this.#gate.captureMs(frame.rtpTimestamp);
			seg.parameterSets = frame.parameterSets;
		}
		seg.writer.add(frame);
		if (!this.#started) {
			this.#started = true;
			this.#stages.firstFrame = Date.now();
			void seg.writer.drained().then(() => {
				const at = Date.now();
				this.#stages.muxed = at;
				this.emit("started", at, this.#stages);
			});
		}
		seg.frameTimes.push(frame.receivedAt);
		seg.endedAt = frame.receivedAt;
		seg.lastTimestamp = frame.timestamp;
	}

	#onTick(): void {
		if (this.#state !== "open") return;
		this.#gate.flush();
		const cur = this.#current;
		if (cur && cur.clockOffsetMs === undefined && Date.now() - cur.startedAt >= OFFSET_SPAN_MS)
			cur.clockOffsetMs = this.#gate.offsetAround(cur.startedAt, OFFSET_SPAN_MS);
		const now = Date.now();
		let failing = this.#current?.uploader.failingSince ?? Number.POSITIVE_INFINITY;
		for (const s of this.#retiringSegments) failing = Math.min(failing, s.uploader.failingSince ?? failing);
		if (now - failing > this.#opts.config.maxOutageMs) {
			this.#fail(
				"storage_unavailable",
				`the bucket answered nothing for ${Math.round((now - failing) / 1000)} s; recording stopped, what was buffered is stored as far as it can be`,
			);
			return;
		}
		const stalled = now - this.#lastTickAt > STALLED_TICK_MS;
		this.#lastTickAt = now;
		const seg = this.#current;
		if (!seg) return;
		if (
			!stalled &&
			now - seg.endedAt >= this.#opts.config.idleTimeoutMs * SILENT_IDLE_FACTOR &&
			this.#depacketizer.held === 0
		) {
			this.#log.debug({ seq: seg.seq }, "object ended: no media");
			this.#current = undefined;
			this.#rolloverWanted = undefined;
			this.#retire(seg, {});
			return;
		}
		if (!this.#rolloverWanted && now - seg.startedAt >= this.#opts.segmentMs) this.#rolloverWanted = "time";
		if (this.#rolloverWanted && this.#video) this.#requestKeyframe();
	}

	// ---- objects ----

	#startSegment(at: number, timestamp: number): Segment {
		const seq = ++this.#seq;
		const { config, key, target, client, codec } = this.#opts;
		const log = this.#log.child({ seq });
		const uploader = new SegmentUploader({
			client,
			target,
			key: objectKey(key, seq, containerOf(codec.mimeType)),
			contentType: contentTypeOf(containerOf(codec.mimeType), key.kind),
			budget: this.#budget,
			config,
			log,
			framesAt: (bytes) => framesWithin(writer.frameEnds, bytes),
			...(this.#opts.checkpoints ? { checkpoints: this.#opts.checkpoints } : {}),
		});
		const writer = new MatroskaWriter({
			codec: this.#codec,
			clockRate: codec.clockRate,
			...(codec.channels ? { channels: codec.channels } : {}),
			onBytes: (bytes) => uploader.write(bytes),
		});
		const seg: Segment = {
			seq,
			writer,
			uploader,
			startedAt: at,
			endedAt: at,
			lastTimestamp: timestamp,
			frameTimes: [],
			retiring: false,
		};
		uploader.on("retry", () => {
			this.#uploadRetries++;
		});
		uploader.on("part", ({ partNumber, size }) =>
			this.emit("partUploaded", { trackId: this.trackId, seq, partNumber, size }),
		);
		uploader.on("rolloverNeeded", ({ reason }) => {
			log.info({ reason }, "object nears a limit: rolling over");
			this.#rolloverWanted ??= reason;
		});
		uploader.on("overflow", ({ bufferedBytes }) =>
			this.#fail(
				"storage_unavailable",
				`the bucket did not keep up: ${bufferedBytes} bytes (the limit) stayed buffered for ${config.bufferFullGraceMs} ms; recording stopped, what was buffered is stored`,
			),
		);
		uploader.on("rejected", (err) => this.#fail("storage_rejected", err.message));
		this.#current = seg;
		log.debug("object started");
		return seg;
	}

	/** Ends a segment's file, completes its object and reports it. */
	#retire(seg: Segment, how: { kill?: boolean; errors?: UploadError[] }): void {
		if (seg.retiring) return;
		seg.retiring = true;
		const done = (async () => {
			if (how.kill) seg.uploader.stopInput();
			try {
				await seg.writer.finish();
			} catch (err) {
				this.#log.error({ err, seq: seg.seq }, "the muxer failed; the object ends at its last good frame");
			}
			seg.uploader.end();
			// While the track records on, a retired object waits for the bucket as long as the buffer holds.
			const outcome = await seg.uploader.finish({ patient: this.#state === "open" });
			this.#report(seg, outcome);
			if (outcome.error) {
				if (how.errors) how.errors.push(outcome.error);
				else this.#fail(outcome.error.code, outcome.error.message);
			}
		})().catch((err: unknown) => {
			this.#log.error({ err, seq: seg.seq }, "could not finish an object");
			const e = new UploadError("storage_unavailable", `could not finish object ${seg.seq}: ${String(err)}`);
			if (how.errors) how.errors.push(e);
			else this.#fail("internal_error", e.message);
		});
		this.#retiring.add(done);
		this.#retiringSegments.add(seg);
		void done.finally(() => {
			this.#retiring.delete(done);
			this.#retiringSegments.delete(seg);
		});
	}

	#report(seg: Segment, outcome: SegmentOutcome): void {
		const o = outcome.object;
		const total = seg.writer.frames;
		let stored = 0;
		if (o && !o.truncated) stored = total;
		else if (o) stored = framesWithin(seg.writer.frameEnds, o.size);
		this.#framesWritten += stored;
		if (stored < total) {
			const from = seg.frameTimes[stored] ?? seg.startedAt;
			this.#hole({
				from,
				to: seg.endedAt,
				cause: outcome.overflowed ? "overflow" : "storage_outage",
				frames: total - stored,
			});
		}
		if (!o) {
			if (outcome.bytesIn > 0) this.#log.warn({ seq: seg.seq, bytesIn: outcome.bytesIn }, "object not stored");
			return;
		}
		this.emit("objectWritten", {
			trackId: this.trackId,
			bucket: o.bucket,
			key: o.key,
			seq: seg.seq,
			size: o.size,
			sha256: o.sha256,
			frames: stored,
			startedAt: new Date(seg.startedAt).toISOString(),
			endedAt: new Date(Math.max(seg.endedAt, seg.startedAt)).toISOString(),
			...(seg.firstCaptureAt !== undefined ? { firstCaptureAt: Math.round(seg.firstCaptureAt * 1000) / 1000 } : {}),
			...(seg.firstCaptureAt !== undefined
				? clockOffset(seg.clockOffsetMs ?? this.#gate.offsetAround(seg.startedAt, OFFSET_SPAN_MS))
				: {}),
			...(o.truncated ? { truncated: true } : {}),
		});
	}
}

function clockOffset(ms: number | undefined): { clockOffsetMs?: number } {
	return ms === undefined ? {} : { clockOffsetMs: ms };
}

/** How many frames end within the first `bytes` bytes (`ends`: the file size after each frame, ascending). */
function framesWithin(ends: readonly number[], bytes: number): number {
	let lo = 0;
	let hi = ends.length;
	while (lo < hi) {
		const mid = (lo + hi) >> 1;
		if ((ends[mid] as number) <= bytes) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}

import { EventEmitter } from "node:events";
import { finished } from "node:stream";
import type { Logger } from "../../contracts/logger.js";
import {
	CaptureGate,
	type CaptureSummary,
	CLOSE_MARGIN_MS,
	type CloseTime,
	type SenderReport,
} from "../CaptureGate.js";
import { FfmpegProcess } from "../FfmpegProcess.js";
import type { FfmpegExit } from "../FfmpegProcessTypes.js";
import { RtpRelay } from "../RtpRelay.js";
import type { TrackSegment, TrackTranscriberEvents, TrackTranscriberOptions } from "./TrackTranscriberTypes.js";
import {
	PCM_BYTES_PER_MS,
	PCM_SAMPLE_RATE,
	type TranscriptionFailure,
	type TranscriptionStream,
	type TranscriptSegment,
} from "./TranscriptionEngineTypes.js";

/** What a transcription's ffmpeg writes: the Opus decoded to 16 kHz mono s16le on stdout, packet by packet. */
export const PCM_OUTPUT_ARGS: readonly string[] = [
	"-map",
	"0:a:0",
	"-ac",
	"1",
	"-ar",
	String(PCM_SAMPLE_RATE),
	"-c:a",
	"pcm_s16le",
	"-f",
	"s16le",
	// Every decoded frame out at once (the default 32 KiB output buffer would hold a second of audio back).
	"-flush_packets",
	"1",
	"pipe:1",
];

/** Silence written to the engine after each decoder run, so the VAD ends an utterance the RTP pause cut. */
const END_PADDING_MS = 600;
/** Packets held while a decoder starts. */
const QUEUE_MAX_PACKETS = 3000;
/** A run whose last packet is this close to the idle timeout gets no more: ffmpeg may be ending its input. */
const IDLE_MARGIN_MS = 300;

/** One decoder run: an ffmpeg from the first packet after a pause to idleTimeoutMs after the last. */
interface Run {
	ffmpeg: FfmpegProcess;
	firstPacketAt?: number;
	/** Its first packet's capture time (sender's clock), when dated. */
	firstCaptureAt?: number;
	lastPacketAt?: number;
	/** First packet relayed since ffmpeg last wrote PCM (watchdog). */
	inputSinceOutputAt?: number;
	retiring: boolean;
	/** Resolves when its PCM has all been written to the engine (and the padding after it). */
	pumped: Promise<void>;
}

/** Where a stretch of the engine's audio sits on the track's clock. */
interface Anchor {
	pcmMs: number;
	trackMs: number;
	/** The same instant as a capture time (sender's clock, Unix ms), when the run's first packet was dated. */
	captureAt?: number;
}

/**
 * Transcribes one audio track: the track's RTP ports (RtpRelay) → ffmpeg decoding Opus to 16 kHz mono PCM on
 * its stdout → one engine stream. Like a recording segment, an ffmpeg runs while RTP flows and ends its input
 * idleTimeoutMs after the last packet (a muted producer); the next packet starts the next one, feeding the same
 * engine stream, so an utterance is never split by a restart of the engine. The engine counts time in audio it
 * got; the transcriber moves segments onto the track's clock (ms since its first packet), where pauses count,
 * and onto capture times (issue 11). Packets go through the same per-packet capture gate as a recording's
 * (CaptureGate): audio captured before the person's click or after the close is never transcribed, and audio
 * no sender report dates is held until one does (never transcribed without).
 */
export class TrackTranscriber extends EventEmitter<TrackTranscriberEvents> {
	readonly trackId: string;
	readonly #opts: TrackTranscriberOptions;
	readonly #log: Logger;
	#relay!: RtpRelay;
	#gate!: CaptureGate;
	#stream!: TranscriptionStream;
	#state: "open" | "closing" | "failed" | "closed" = "open";
	#run: Run | undefined;
	/** Runs whose PCM is not all with the engine yet. */
	#runs = new Set<Run>();
	#starting: Promise<void> | undefined;
	#queue: { packet: Buffer; at: number; captureAt: number | undefined }[] = [];
	#pcmChain: Promise<void> = Promise.resolve();
	#anchors: Anchor[] = [];
	#streamStart: number | undefined;
	#restarts: number[] = [];
	#retiring = new Set<Promise<void>>();
	#tick: NodeJS.Timeout | undefined;
	#ending: Promise<void> | undefined;

	private constructor(options: TrackTranscriberOptions) {
		super();
		this.#opts = options;
		this.trackId = options.trackId;
		this.#log = options.log.child({ trackId: options.trackId, transcription: true });
	}

	/** Opens the engine stream and binds the track's ports; the first ffmpeg starts with the first RTP packet. */
	static async create(options: TrackTranscriberOptions): Promise<TrackTranscriber> {
		const t = new TrackTranscriber(options);
		t.#stream = await options.engine.open({ log: t.#log });
		t.#gate = new CaptureGate({
			clockRate: options.codec.clockRate,
			openAt: options.openAt,
			closeMarginMs: options.closeMarginMs ?? options.config.closeMarginMs ?? CLOSE_MARGIN_MS,
			undatableAfterMs: options.config.undatableAfterMs,
			onUndatable: (info) => t.emit("undatable", info),
			pass: (packet, _header, captureAt) => t.#onRtp(packet, captureAt),
		});
		try {
			t.#relay = await RtpRelay.create({
				payloadType: options.codec.payloadType,
				ssrc: options.ssrc,
				log: t.#log,
				onRtp: (packet, header) => {
					if (t.#state === "open") t.#gate.push(packet, header);
				},
				onRtcp: () => undefined,
			});
		} catch (err) {
			t.#stream.destroy();
			throw err;
		}
		t.#stream.on("segment", (s) => t.#onSegment(s));
		t.#stream.on("failed", (f) => t.#fail(f));
		t.#tick = setInterval(() => t.#onTick(), 250);
		t.#log.info({ rtpPort: t.rtpPort, rtcpPort: t.rtcpPort, engine: options.engine.name }, "transcription open");
		return t;
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

	/** A sender report of the producer (the gateway forwards them): dates the packets (issue 11). */
	senderReport(sr: SenderReport): void {
		if (this.#state === "open") this.#gate.senderReport(sr);
	}

	/** The per-packet capture gate's account, on the sender's clock. */
	get capture(): CaptureSummary {
		return this.#gate.summary;
	}

	/** Milliseconds of audio the engine got. */
	get audioMs(): number {
		return this.#stream.audioMs;
	}

	/** PIDs of its decoder and engine processes (diagnostics). */
	get pids(): number[] {
		const run = this.#run;
		const decoder = run?.ffmpeg.pid && !run.ffmpeg.exited ? [run.ffmpeg.pid] : [];
		return [...decoder, ...this.#stream.pids];
	}

	/**
	 * Graceful close: stops relaying; the decoder ends its input after idleTimeoutMs and its PCM reaches the
	 * engine, which finishes the last utterance. Resolves after its final segment.
	 */
	close(closeAt?: CloseTime): Promise<void> {
		if (this.#ending) return this.#ending;
		if (this.#state === "open") {
			// What the gate let through and was captured by the close still goes to the engine; the rest never does.
			if (closeAt) this.#gate.close(closeAt);
			this.#gate.end();
			this.#state = "closing";
		}
		this.#ending = (async () => {
			clearInterval(this.#tick);
			this.#queue = [];
			await this.#starting;
			const run = this.#run;
			this.#run = undefined;
			if (run) this.#retire(run, false);
			while (this.#retiring.size) await Promise.all([...this.#retiring]);
			// Only now: the last packets the gate passed on at close are still being sent from its socket to ffmpeg.
			this.#relay.close();
			await this.#pcmChain;
			if (this.#state === "closing") {
				await this.#stream.end();
				if (this.#state === "closing") this.#state = "closed";
			}
			this.#log.info(
				{ stats: this.#relay.stats, audioMs: this.#stream.audioMs, state: this.#state },
				"transcription ended",
			);
		})();
		return this.#ending;
	}

	#fail(failure: TranscriptionFailure): void {
		if (this.#state !== "open" && this.#state !== "closing") return;
		this.#state = "failed";
		this.#log.error(failure, "transcription failed");
		clearInterval(this.#tick);
		this.#relay.close();
		this.#queue = [];
		const run = this.#run;
		this.#run = undefined;
		if (run) this.#retire(run, true);
		for (const r of this.#runs) {
			r.ffmpeg.kill();
			r.ffmpeg.stdout.destroy();
		}
		this.#stream.destroy();
		this.emit("failed", failure);
	}

	// ---- media ----

	#onRtp(packet: Buffer, captureAt: number | undefined): void {
		if (this.#state !== "open") return;
		const now = Date.now();
		this.#streamStart ??= now;
		const run = this.#run;
		if (run?.lastPacketAt !== undefined && now - run.lastPacketAt >= this.#opts.config.idleTimeoutMs - IDLE_MARGIN_MS) {
			// Its ffmpeg is ending its input for lack of RTP: this packet starts the next run.
			this.#run = undefined;
			this.#retire(run, false);
		}
		const current = this.#run;
		if (!current || current.ffmpeg.exited) {
			this.#queue.push({ packet, at: now, captureAt });
			if (this.#queue.length > QUEUE_MAX_PACKETS) this.#queue.shift();
			if (!current) void this.#startRun();
			return;
		}
		this.#forward(current, packet, now, captureAt);
	}

	/** `now`: when the packet arrived (held packets keep their arrival time: it places the run on the clock). */
	#forward(run: Run, packet: Buffer, now: number, captureAt: number | undefined): void {
		this.#relay.sendRtp(packet, run.ffmpeg.rtpPort);
		if (run.firstPacketAt === undefined) run.firstCaptureAt = captureAt;
		run.firstPacketAt ??= now;
		run.lastPacketAt = now;
		run.inputSinceOutputAt ??= now;
	}

	#startRun(): Promise<void> {
		if (this.#starting) return this.#starting;
		this.#starting = (async () => {
			let ffmpeg: FfmpegProcess;
			try {
				ffmpeg = await FfmpegProcess.start({
					codec: this.#opts.codec,
					ssrc: this.#opts.ssrc,
					ffmpegPath: this.#opts.config.ffmpegPath,
					idleTimeoutMs: this.#opts.config.idleTimeoutMs,
					memoryLimitBytes: this.#opts.config.ffmpegMemoryLimitBytes,
					outputArgs: PCM_OUTPUT_ARGS,
					log: this.#log,
				});
			} catch (err) {
				this.#fail({ code: "decoder_failed", message: `could not start ffmpeg: ${(err as Error).message}` });
				return;
			}
			const run: Run = { ffmpeg, retiring: false, pumped: Promise.resolve() };
			if (this.#state !== "open") {
				ffmpeg.kill();
				ffmpeg.stdout.destroy();
				return;
			}
			this.#runs.add(run);
			run.pumped = this.#pump(run);
			void run.pumped.then(() => this.#runs.delete(run));
			ffmpeg.on("exit", (info) => this.#onDecoderExit(run, info));
			this.#run = run;
			for (const { packet, at, captureAt } of this.#queue.splice(0)) this.#forward(run, packet, at, captureAt);
		})().finally(() => {
			this.#starting = undefined;
		});
		return this.#starting;
	}

	/** Feeds a run's PCM to the engine after the previous run's, then silence so the VAD can end the utterance. */
	#pump(run: Run): Promise<void> {
		const stdout = run.ffmpeg.stdout;
		stdout.pause();
		this.#pcmChain = this.#pcmChain.then(
			() =>
				new Promise<void>((resolve) => {
					let anchored = false;
					stdout.on("data", (chunk: Buffer) => {
						run.inputSinceOutputAt = undefined;
						if (this.#state === "failed") {
							stdout.destroy();
							return;
						}
						if (!anchored) {
							anchored = true;
							this.#anchor(run);
						}
						if (!this.#stream.write(chunk)) {
							stdout.pause();
							this.#stream.once("drain", () => stdout.resume());
						}
					});
					finished(stdout, () => {
						if (anchored && this.#state !== "failed") {
							this.#stream.write(Buffer.alloc(END_PADDING_MS * PCM_BYTES_PER_MS));
						}
						resolve();
					});
					if (this.#state === "failed") stdout.destroy();
					else stdout.resume();
				}),
		);
		return this.#pcmChain;
	}

	/** The engine's audio from here on started with this run's first packet. */
	#anchor(run: Run): void {
		const start = this.#streamStart ?? Date.now();
		const anchor: Anchor = { pcmMs: this.#stream.audioMs, trackMs: Math.max(0, (run.firstPacketAt ?? start) - start) };
		if (run.firstCaptureAt !== undefined) anchor.captureAt = run.firstCaptureAt;
		const last = this.#anchors[this.#anchors.length - 1];
		// Never backwards on the track's clock (the previous run's audio plus padding may outlast its wall time).
		if (last) anchor.trackMs = Math.max(anchor.trackMs, last.trackMs + (anchor.pcmMs - last.pcmMs));
		if (last?.captureAt !== undefined && anchor.captureAt !== undefined)
			anchor.captureAt = Math.max(anchor.captureAt, last.captureAt + (anchor.pcmMs - last.pcmMs));
		this.#anchors.push(anchor);
		if (this.#anchors.length > 256) this.#anchors.splice(0, this.#anchors.length - 256);
	}

	#anchorAt(pcmMs: number): Anchor {
		for (let i = this.#anchors.length - 1; i >= 0; i--) {
			const a = this.#anchors[i] as Anchor;
			if (a.pcmMs <= pcmMs) return a;
		}
		return this.#anchors[0] ?? { pcmMs: 0, trackMs: 0 };
	}

	#toTrackMs(pcmMs: number): number {
		const anchor = this.#anchorAt(pcmMs);
		return Math.max(0, Math.round(anchor.trackMs + (pcmMs - anchor.pcmMs)));
	}

	/** The capture time (sender's clock, Unix ms) of an instant of the engine's audio, when its run was dated. */
	#toCaptureAt(pcmMs: number): number | undefined {
		const anchor = this.#anchorAt(pcmMs);
		return anchor.captureAt === undefined ? undefined : anchor.captureAt + (pcmMs - anchor.pcmMs);
	}

	#onSegment(s: TranscriptSegment): void {
		if (this.#state === "failed") return;
		if (!s.final && !this.#opts.partials) return;
		const out: TrackSegment = {
			final: s.final,
			text: s.text,
			startMs: this.#toTrackMs(s.startMs),
			endMs: this.#toTrackMs(s.endMs),
			streamStartedAt: new Date(this.#streamStart ?? Date.now()).toISOString(),
		};
		if (out.endMs < out.startMs) out.endMs = out.startMs;
		const captureStartAt = this.#toCaptureAt(s.startMs);
		const captureEndAt = this.#toCaptureAt(s.endMs);
		const offset = this.#gate.clockOffsetMs;
		if (captureStartAt !== undefined && captureEndAt !== undefined) {
			out.captureStartAt = round3(captureStartAt);
			out.captureEndAt = round3(Math.max(captureEndAt, captureStartAt));
			if (offset !== undefined) out.clockOffsetMs = offset;
		}
		if (s.words) {
			out.words = s.words.map((w) => ({
				...w,
				startMs: this.#toTrackMs(w.startMs),
				endMs: Math.max(this.#toTrackMs(w.endMs), this.#toTrackMs(w.startMs)),
			}));
		}
		this.emit("segment", out);
	}

	// ---- guards ----

	#onTick(): void {
		if (this.#state !== "open") return;
		this.#gate.flush();
		const run = this.#run;
		const { watchdogMs } = this.#opts.config;
		if (
			run &&
			!run.ffmpeg.exited &&
			run.inputSinceOutputAt !== undefined &&
			Date.now() - run.inputSinceOutputAt > watchdogMs
		) {
			this.#log.warn({ pid: run.ffmpeg.pid }, "decoder gets RTP but writes no PCM: restarting it");
			this.#run = undefined;
			this.#retire(run, true);
			this.#restarted(`watchdog: no PCM from ffmpeg for ${Math.round(watchdogMs / 1000)} s while RTP flowed`);
		}
	}

	#onDecoderExit(run: Run, info: FfmpegExit): void {
		if (run.retiring || this.#state !== "open" || run !== this.#run) return;
		this.#run = undefined;
		this.#retire(run, false);
		const idle =
			run.lastPacketAt === undefined ||
			Date.now() - run.lastPacketAt >= this.#opts.config.idleTimeoutMs - IDLE_MARGIN_MS;
		if (info.code === 0 && idle) return; // RTP paused; the next packet starts the next run
		const reason = `ffmpeg exited (${info.signal ?? `code ${info.code}`})${info.stderr ? `: ${info.stderr.split("\n").slice(-2).join(" | ").slice(0, 300)}` : ""}`;
		this.#log.warn({ code: info.code, signal: info.signal, stderr: info.stderr }, "decoder died");
		this.#restarted(reason);
	}

	/** Counts a decoder restart (the next packet starts a new one); too many fail the transcription. */
	#restarted(reason: string): void {
		const now = Date.now();
		const { maxRestarts, restartWindowMs } = this.#opts.config;
		this.#restarts = this.#restarts.filter((t) => now - t < restartWindowMs);
		this.#restarts.push(now);
		if (this.#restarts.length > maxRestarts) {
			this.#fail({
				code: "decoder_failed",
				message: `the decoder failed ${this.#restarts.length} times within ${Math.round(restartWindowMs / 1000)} s; last: ${reason}`,
			});
		}
	}

	/** Lets a run's ffmpeg end (or kills it) and waits until its PCM reached the engine. */
	#retire(run: Run, kill: boolean): void {
		if (run.retiring) return;
		run.retiring = true;
		const done = (async () => {
			if (kill) run.ffmpeg.kill();
			await run.ffmpeg.finish(this.#opts.config.stopGraceMs);
			await run.pumped;
		})().catch((err: unknown) => this.#log.error({ err }, "could not finish a decoder run"));
		this.#retiring.add(done);
		void done.finally(() => this.#retiring.delete(done));
	}
}

function round3(ms: number): number {
	return Math.round(ms * 1000) / 1000;
}

import {
	EncodedAudioPacketSource,
	EncodedPacket,
	EncodedVideoPacketSource,
	MkvOutputFormat,
	Output,
	StreamTarget,
	type StreamTargetChunk,
	WebMOutputFormat,
} from "mediabunny";
import type { Frame } from "./DepacketizerTypes.js";
import { avcCodecString, avcDecoderConfig } from "./H264.js";

export interface MatroskaWriterOptions {
	/** Opus and VP8 are written as WebM; H.264 as Matroska (`.mkv`: WebM carries only VP8/VP9/AV1 video). */
	codec: "opus" | "vp8" | "h264";
	clockRate: number;
	channels?: number;
	/** Each run of bytes the muxer writes, in file order (append-only: no byte is ever rewritten). */
	onBytes: (bytes: Uint8Array) => void;
}

/** Opus frames joined into one block: at most 100 ms (48 kHz ticks). */
const OPUS_GROUP_TICKS = 4800;

/** The duration of one frame of an Opus packet from its TOC byte (RFC 6716 §3.1), in 48 kHz ticks. */
function opusFrameTicks(toc: number): number {
	const config = toc >> 3;
	if (config < 12) return [480, 960, 1920, 2880][config & 3] as number;
	if (config < 16) return [480, 960][config & 1] as number;
	return [120, 240, 480, 960][config & 3] as number;
}

/** Opus in WebM needs its identification header (RFC 7845) as CodecPrivate. */
function opusHead(channels: number): Uint8Array {
	const b = Buffer.alloc(19);
	b.write("OpusHead", 0, "ascii");
	b[8] = 1; // version
	b[9] = channels;
	b.writeUInt16LE(0, 10); // pre-skip: RTP carries none; the sender's encoder delay is part of the stream
	b.writeUInt32LE(48000, 12); // input sample rate (informational)
	b.writeInt16LE(0, 16); // output gain
	b[18] = 0; // channel mapping family 0 (mono/stereo)
	return new Uint8Array(b);
}

/**
 * One WebM (Opus, VP8) or Matroska (H.264) file being written, in process, from frames: mediabunny's Matroska
 * muxer in append-only mode (unknown-size Segment and Clusters, Cues at the
 * end), so every byte it writes is final the moment it is written and the
 * file can be streamed and cut anywhere between two blocks and still play.
 * Frames are added in order (a queue: the muxer's API is async); block
 * timestamps are the frames' times from the file's first frame (ms resolution).
 */
export class MatroskaWriter {
	readonly #o: MatroskaWriterOptions;
	readonly #output: Output;
	readonly #audio: EncodedAudioPacketSource | undefined;
	readonly #video: EncodedVideoPacketSource | undefined;
	#queue: Promise<void>;
	#t0: number | undefined;
	#first = true;
	#failed: unknown;
	#frames = 0;
	#added = 0;
	#bytes = 0;
	/** Opus frames waiting to be joined into one packet. */
	#opus: { toc: number; ticks: number; timestamp: number; frames: Buffer[] } | undefined;
	/** File size after each frame's block was written (for frames-written accounting of a cut file). */
	readonly frameEnds: number[] = [];

	constructor(options: MatroskaWriterOptions) {
		this.#o = options;
		const target = new StreamTarget(
			new WritableStream<StreamTargetChunk>({
				write: (chunk) => {
					this.#bytes += chunk.data.byteLength;
					options.onBytes(chunk.data);
				},
			}),
		);
		this.#output = new Output({
			format:
				options.codec === "h264"
					? new MkvOutputFormat({ appendOnly: true, minimumClusterDuration: 1 })
					: new WebMOutputFormat({ appendOnly: true, minimumClusterDuration: 1 }),
			target,
		});
		if (options.codec === "opus") {
			this.#audio = new EncodedAudioPacketSource("opus");
			this.#output.addAudioTrack(this.#audio);
		} else {
			this.#video = new EncodedVideoPacketSource(options.codec === "h264" ? "avc" : "vp8");
			this.#output.addVideoTrack(this.#video);
		}
		this.#queue = this.#output.start();
	}

	/** Frames written into the file so far (Opus: each 20 ms frame, also those joined into one block). */
	get frames(): number {
		return this.#frames;
	}

	/** Frames added, written or not yet. */
	get framesAdded(): number {
		return this.#added + (this.#opus?.frames.length ?? 0);
	}

	/** Bytes written so far. */
	get bytes(): number {
		return this.#bytes;
	}

	/** The muxer failed (bad input): nothing more is written. */
	get failed(): boolean {
		return this.#failed !== undefined;
	}

	/** Adds a frame (the first of a video file must be a key frame). */
	add(frame: Frame): void {
		if (this.#failed !== undefined) return;
		this.#t0 ??= frame.timestamp;
		if (this.#o.codec === "opus") {
			this.#addOpus(frame);
			return;
		}
		this.#write(frame.data, frame.key, frame.timestamp, 0, 1, frame.width, frame.height, frame.parameterSets);
	}

	/**
	 * Opus: consecutive packets of one configuration are joined into one Opus packet of up to 100 ms (RFC 6716
	 * §3.2.5, code 3, VBR): one WebM block per 100 ms instead of per 20 ms. A block costs 9 bytes and a 32 kbit/s
	 * frame is ~80, so this is what keeps the container under 5 % for speech. A gap (DTX, loss) or another
	 * configuration starts a new packet. A frame waits at most 100 ms in it.
	 */
	#addOpus(frame: Frame): void {
		const data = frame.data;
		const toc = data[0] as number;
		const ticks = opusFrameTicks(toc);
		const groupable = data.length >= 2 && (toc & 0x03) === 0 && data.length - 1 <= 1275;
		const g = this.#opus;
		if (
			g &&
			(!groupable ||
				(g.toc & 0xfc) !== (toc & 0xfc) ||
				frame.timestamp !== g.timestamp + g.frames.length * g.ticks ||
				(g.frames.length + 1) * g.ticks > OPUS_GROUP_TICKS)
		) {
			this.#flushOpus();
		}
		if (!groupable) {
			this.#write(data, true, frame.timestamp, ticks, 1);
			return;
		}
		if (!this.#opus) this.#opus = { toc, ticks, timestamp: frame.timestamp, frames: [] };
		this.#opus.frames.push(data.subarray(1));
		if ((this.#opus.frames.length + 1) * ticks > OPUS_GROUP_TICKS) this.#flushOpus();
	}

	#flushOpus(): void {
		const g = this.#opus;
		if (!g) return;
		this.#opus = undefined;
		const n = g.frames.length;
		let data: Buffer;
		if (n === 1) data = Buffer.concat([Buffer.from([g.toc]), g.frames[0] as Buffer]);
		else {
			const head: number[] = [(g.toc & 0xfc) | 0x03, 0x80 | n];
			for (const f of g.frames.slice(0, -1)) {
				if (f.length < 252) head.push(f.length);
				else head.push(252 + ((f.length - 252) & 0x03), (f.length - 252) >> 2);
			}
			data = Buffer.concat([Buffer.from(head), ...g.frames]);
		}
		this.#write(data, true, g.timestamp, n * g.ticks, n);
	}

	#write(
		data: Buffer,
		key: boolean,
		timestamp: number,
		durationTicks: number,
		frames: number,
		width?: number,
		height?: number,
		parameterSets?: { sps: Buffer; pps: Buffer },
	): void {
		const seconds = (timestamp - (this.#t0 ?? timestamp)) / this.#o.clockRate;
		const isFirst = this.#first;
		this.#first = false;
		const packet = new EncodedPacket(data, key ? "key" : "delta", seconds, durationTicks / this.#o.clockRate);
		this.#added += frames;
		this.#queue = this.#queue.then(async () => {
			if (this.#failed !== undefined) return;
			try {
				if (this.#audio) {
					await this.#audio.add(
						packet,
						isFirst
							? {
									decoderConfig: {
										codec: "opus",
										numberOfChannels: this.#o.channels ?? 2,
										sampleRate: 48000,
										description: opusHead(this.#o.channels ?? 2),
									},
								}
							: undefined,
					);
				} else if (this.#o.codec === "h264") {
					// The first frame is a key frame with its parameter sets (the depacketizer sees to it): the
					// decoder configuration (avcC) is built from them; every later IDR carries its own in band too.
					const ps = parameterSets as { sps: Buffer; pps: Buffer };
					await (this.#video as EncodedVideoPacketSource).add(
						packet,
						isFirst
							? {
									decoderConfig: {
										codec: avcCodecString(ps.sps),
										codedWidth: width ?? 640,
										codedHeight: height ?? 480,
										description: avcDecoderConfig(ps.sps, ps.pps),
									},
								}
							: undefined,
					);
				} else {
					await (this.#video as EncodedVideoPacketSource).add(
						packet,
						isFirst
							? { decoderConfig: { codec: "vp8", codedWidth: width ?? 640, codedHeight: height ?? 480 } }
							: undefined,
					);
				}
				this.#frames += frames;
				for (let i = 0; i < frames; i++) this.frameEnds.push(this.#bytes);
			} catch (err) {
				this.#failed = err;
			}
		});
	}

	/** Resolves when every frame added so far is written out (its bytes passed to onBytes). */
	drained(): Promise<void> {
		return this.#queue;
	}

	/** Writes the rest (the last blocks, the Cues) and ends the file. */
	async finish(): Promise<void> {
		this.#flushOpus();
		await this.#queue;
		if (this.#failed !== undefined) {
			await this.#output.cancel().catch(() => undefined);
			throw this.#failed;
		}
		await this.#output.finalize();
	}
}

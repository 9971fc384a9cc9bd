import {
	EncodedAudioPacketSource,
	EncodedPacket,
	EncodedVideoPacketSource,
	Output,
	StreamTarget,
	type StreamTargetChunk,
	WebMOutputFormat,
} from "mediabunny";
import type { Frame } from "./DepacketizerTypes.js";

export interface WebmWriterOptions {
	codec: "opus" | "vp8";
	clockRate: number;
	channels?: number;
	/** Each run of bytes the muxer writes, in file order (append-only: no byte is ever rewritten). */
	onBytes: (bytes: Uint8Array) => void;
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
 * One WebM file being written, in process, from frames: mediabunny's Matroska
 * muxer in append-only mode (unknown-size Segment and Clusters, Cues at the
 * end), so every byte it writes is final the moment it is written and the
 * file can be streamed and cut anywhere between two blocks and still play.
 * Frames are added in order (a queue: the muxer's API is async); block
 * timestamps are the frames' times from the file's first frame (ms resolution).
 */
export class WebmWriter {
	readonly #o: WebmWriterOptions;
	readonly #output: Output;
	readonly #audio: EncodedAudioPacketSource | undefined;
	readonly #video: EncodedVideoPacketSource | undefined;
	#queue: Promise<void>;
	#t0: number | undefined;
	#first = true;
	#failed: unknown;
	#frames = 0;
	#bytes = 0;
	/** File size after each frame's block was written (for frames-written accounting of a cut file). */
	readonly frameEnds: number[] = [];

	constructor(options: WebmWriterOptions) {
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
			format: new WebMOutputFormat({ appendOnly: true, minimumClusterDuration: 1 }),
			target,
		});
		if (options.codec === "opus") {
			this.#audio = new EncodedAudioPacketSource("opus");
			this.#output.addAudioTrack(this.#audio);
		} else {
			this.#video = new EncodedVideoPacketSource("vp8");
			this.#output.addVideoTrack(this.#video);
		}
		this.#queue = this.#output.start();
	}

	/** Frames added so far. */
	get frames(): number {
		return this.#frames;
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
		const seconds = (frame.timestamp - this.#t0) / this.#o.clockRate;
		const isFirst = this.#first;
		this.#first = false;
		const packet = new EncodedPacket(
			frame.data,
			frame.key ? "key" : "delta",
			seconds,
			this.#o.codec === "opus" ? 0.02 : 0,
		);
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
				} else {
					await (this.#video as EncodedVideoPacketSource).add(
						packet,
						isFirst
							? { decoderConfig: { codec: "vp8", codedWidth: frame.width ?? 640, codedHeight: frame.height ?? 480 } }
							: undefined,
					);
				}
				this.#frames++;
				this.frameEnds.push(this.#bytes);
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
		await this.#queue;
		if (this.#failed !== undefined) {
			await this.#output.cancel().catch(() => undefined);
			throw this.#failed;
		}
		await this.#output.finalize();
	}
}

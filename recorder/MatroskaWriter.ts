import type { Frame } from "./DepacketizerTypes.js";
import { type EbmlElement, encode, ID, idBytes, UNKNOWN_SIZE, vintLength, writeVint } from "./Ebml.js";
import { avcDecoderConfig } from "./H264.js";

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

/** A new cluster starts at a key frame this long (ms) after the current one's start (and whenever the block's
 * time no longer fits the 16-bit offset from the cluster's). */
const CLUSTER_MS = 1000;
/** Frames up to this size are copied into their block's buffer; larger ones follow it as their own chunk. */
const COPY_MAX = 1024;

/**
 * One WebM (Opus, VP8) or Matroska (H.264) file being written, in process, from frames, with a small EBML writer of
 * our own (recorder/Ebml.ts): append-only (unknown-size Segment and Clusters, Cues at the end, no SeekHead), so every
 * byte is final the moment it is written and the file can be streamed and cut anywhere between two blocks and still
 * play. Each frame is one SimpleBlock, written synchronously: a few header bytes in front of the frame's bytes (the
 * frame itself is not copied when it is large). Block timestamps are the frames' times from the file's first frame
 * (ms resolution). A cluster starts at a key frame ≥ 1 s after the current one's start (every key frame of a camera
 * with a 1–2 s GOP, every second of audio), and each cluster that starts with a key frame gets a cue point.
 * (It replaced mediabunny's muxer, whose async per-block path — a promise queue, EBML sections sorted and flushed
 * through a WritableStream per block — was ~35 % of the recorder's CPU at 100 streams; the layout is the same.)
 */
export class MatroskaWriter {
	readonly #o: MatroskaWriterOptions;
	#t0: number | undefined;
	#failed: unknown;
	#frames = 0;
	#added = 0;
	#bytes = 0;
	/** Bytes of the Segment's header (EBML header, Segment ID and size): cluster positions count from its end. */
	#segmentStart = 0;
	/** The current cluster's time (ms), and the last block's (blocks never go back in time). */
	#clusterMs: number | undefined;
	#lastMs = 0;
	readonly #cues: { ms: number; position: number }[] = [];
	#finished = false;
	/** Opus frames waiting to be joined into one packet. */
	#opus: { toc: number; ticks: number; timestamp: number; frames: Buffer[] } | undefined;
	/** File size after each frame's block was written (for frames-written accounting of a cut file). */
	readonly frameEnds: number[] = [];

	constructor(options: MatroskaWriterOptions) {
		this.#o = options;
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
		this.#write(frame.data, frame.key, frame.timestamp, 1, frame.width, frame.height, frame.parameterSets);
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
			this.#write(data, true, frame.timestamp, 1);
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
		this.#write(data, true, g.timestamp, n);
	}

	#write(
		data: Buffer,
		key: boolean,
		timestamp: number,
		frames: number,
		width?: number,
		height?: number,
		parameterSets?: { sps: Buffer; pps: Buffer },
	): void {
		this.#added += frames;
		if (this.#failed !== undefined || this.#finished) return;
		try {
			if (this.#bytes === 0) this.#header(width, height, parameterSets);
			// Blocks never go back in time (a sender's timestamps could): a block is at or after the previous one.
			const ms = Math.max(this.#lastMs, Math.round(((timestamp - (this.#t0 ?? timestamp)) / this.#o.clockRate) * 1000));
			this.#lastMs = ms;
			let cluster = this.#clusterMs;
			const newCluster = cluster === undefined || ms - cluster > 0x7fff || (key && ms - cluster >= CLUSTER_MS);
			let clusterBytes = 0;
			if (newCluster) {
				cluster = ms;
				this.#clusterMs = ms;
				if (key) this.#cues.push({ ms, position: this.#bytes - this.#segmentStart });
				clusterBytes = 4 + 1 + 1 + 1 + uintLength(ms);
			}
			const blockSize = 4 + data.length;
			const head = 1 + vintLength(blockSize) + 4;
			const copy = data.length <= COPY_MAX;
			const buf = Buffer.allocUnsafe(clusterBytes + head + (copy ? data.length : 0));
			let at = 0;
			if (newCluster) {
				buf[0] = 0x1f;
				buf[1] = 0x43;
				buf[2] = 0xb6;
				buf[3] = 0x75;
				buf[4] = 0xff; // unknown size
				buf[5] = 0xe7; // Timestamp
				const n = uintLength(ms);
				buf[6] = 0x80 | n;
				buf.writeUIntBE(ms, 7, n);
				at = 7 + n;
			}
			buf[at++] = 0xa3; // SimpleBlock
			at = writeVint(buf, at, blockSize);
			buf[at++] = 0x81; // track 1
			buf.writeInt16BE(ms - (cluster as number), at);
			at += 2;
			buf[at++] = key ? 0x80 : 0x00;
			if (copy) {
				data.copy(buf, at);
				this.#emit(buf);
			} else {
				this.#emit(buf);
				this.#emit(data);
			}
			this.#frames += frames;
			for (let i = 0; i < frames; i++) this.frameEnds.push(this.#bytes);
		} catch (err) {
			this.#failed = err;
		}
	}

	#emit(bytes: Buffer): void {
		this.#bytes += bytes.length;
		this.#o.onBytes(bytes);
	}

	/** The EBML header, the Segment (unknown size), its Info and Tracks: written with the first frame. */
	#header(width?: number, height?: number, parameterSets?: { sps: Buffer; pps: Buffer }): void {
		const o = this.#o;
		const matroska = o.codec === "h264";
		const ebml = encode({
			id: ID.EBML,
			data: [
				{ id: ID.EBMLVersion, data: 1 },
				{ id: ID.EBMLReadVersion, data: 1 },
				{ id: ID.EBMLMaxIDLength, data: 4 },
				{ id: ID.EBMLMaxSizeLength, data: 8 },
				{ id: ID.DocType, data: matroska ? "matroska" : "webm" },
				{ id: ID.DocTypeVersion, data: 4 },
				{ id: ID.DocTypeReadVersion, data: 2 },
			],
		});
		const segment = Uint8Array.from([...idBytes(ID.Segment), ...UNKNOWN_SIZE]);
		const info = encode({
			id: ID.Info,
			data: [
				{ id: ID.TimestampScale, data: 1_000_000 },
				{ id: ID.MuxingApp, data: "consentry" },
				{ id: ID.WritingApp, data: "consentry" },
			],
		});
		let codec: EbmlElement[];
		if (o.codec === "opus") {
			const channels = o.channels ?? 2;
			codec = [
				{ id: ID.TrackType, data: 2 },
				{ id: ID.FlagLacing, data: 0 },
				{ id: ID.Language, data: "und" },
				{ id: ID.CodecID, data: "A_OPUS" },
				{ id: ID.CodecPrivate, data: opusHead(channels) },
				{
					id: ID.Audio,
					data: [
						{ id: ID.SamplingFrequency, data: { float: 48000 } },
						{ id: ID.Channels, data: channels },
					],
				},
			];
		} else {
			const video: EbmlElement = {
				id: ID.Video,
				data: [
					{ id: ID.PixelWidth, data: width ?? 640 },
					{ id: ID.PixelHeight, data: height ?? 480 },
				],
			};
			codec = [
				{ id: ID.TrackType, data: 1 },
				{ id: ID.FlagLacing, data: 0 },
				{ id: ID.Language, data: "und" },
				{ id: ID.CodecID, data: o.codec === "h264" ? "V_MPEG4/ISO/AVC" : "V_VP8" },
				// H.264: the first frame is a key frame with its parameter sets (the depacketizer sees to it): the
				// decoder configuration (avcC) is built from them; every later IDR carries its own in band too.
				...(o.codec === "h264" && parameterSets
					? [{ id: ID.CodecPrivate, data: avcDecoderConfig(parameterSets.sps, parameterSets.pps) }]
					: []),
				video,
			];
		}
		const tracks = encode({
			id: ID.Tracks,
			data: [
				{
					id: ID.TrackEntry,
					data: [{ id: ID.TrackNumber, data: 1 }, { id: ID.TrackUID, data: 1 }, ...codec],
				},
			],
		});
		this.#emit(Buffer.concat([ebml, segment]));
		this.#segmentStart = this.#bytes;
		this.#emit(Buffer.concat([info, tracks]));
	}

	/** Resolves when every frame added so far is written out (its bytes passed to onBytes): at once, writes are synchronous. */
	drained(): Promise<void> {
		return Promise.resolve();
	}

	/** Writes the rest (the last Opus block, the Cues) and ends the file. */
	async finish(): Promise<void> {
		this.#flushOpus();
		if (this.#failed !== undefined) throw this.#failed;
		if (this.#finished) return;
		this.#finished = true;
		if (this.#cues.length === 0 || this.#bytes === 0) return;
		this.#emit(
			Buffer.from(
				encode({
					id: ID.Cues,
					data: this.#cues.map((c) => ({
						id: ID.CuePoint,
						data: [
							{ id: ID.CueTime, data: c.ms },
							{
								id: ID.CueTrackPositions,
								data: [
									{ id: ID.CueTrack, data: 1 },
									{ id: ID.CueClusterPosition, data: c.position },
								],
							},
						],
					})),
				}),
			),
		);
	}
}

function uintLength(n: number): number {
	let len = 1;
	for (let v = n; v >= 256; v = Math.floor(v / 256)) len++;
	return len;
}

import type { DepacketizerOptions, DepacketizerStats, Frame } from "./DepacketizerTypes.js";
import { NAL, nalType, parsePayload, parseSpropParameterSets, parseSps, toAvcc } from "./H264.js";
import { type RtpHeader, seqDiff, TimestampUnwrapper } from "./rtp.js";

interface Held {
	packet: Buffer;
	header: RtpHeader;
	at: number;
}

/** A VP8 frame being put together from its packets. */
interface Assembly {
	parts: Buffer[];
	bytes: number;
	rtpTimestamp: number;
	firstSeq: number;
	key: boolean;
}

/** An H.264 access unit being put together from its packets (RFC 6184). */
interface AvcAssembly {
	nals: Buffer[];
	bytes: number;
	rtpTimestamp: number;
	firstSeq: number;
	lastSeq: number;
	at: number;
	ssrc: number;
	/** The fragmented NAL unit (FU-A) being joined: its header, then its pieces. */
	fu: Buffer[] | undefined;
	/** A piece is missing or malformed: the unit will be dropped. */
	broken: boolean;
}

/** Sequence jumps larger than this are a new stream (a sender restart), not loss. */
const SEQ_JUMP = 1000;

/**
 * RTP in, frames out, for one track: a jitter window that puts packets back in
 * sequence order (waiting `jitterMs` at most for a missing one: reordering,
 * retransmissions), then the codec's reassembly:
 *
 * - **Opus** (RFC 7587): one packet is one frame. DTX (no packets during
 *   silence) leaves a gap in the timestamps, nothing else; a lost packet is a
 *   20 ms hole.
 * - **VP8** (RFC 7741): the payloads of one picture (same timestamp, from the
 *   packet with S=1, PID=0 to the marker) joined, the payload descriptors
 *   removed. A lost packet drops the frame it belonged to and every frame
 *   after it until the next key frame (they reference what was lost: writing
 *   them would make the file fail to decode), and asks for a key frame.
 *
 * - **H.264** (RFC 6184, packetization-mode 0 and 1): single NAL unit
 *   packets, STAP-A (split) and FU-A (joined) gathered into one access unit
 *   per RTP timestamp (ended by the marker, or by the next timestamp), written
 *   in AVCC form (4-byte lengths). The latest SPS/PPS seen (in the stream, or
 *   `sprop-parameter-sets`) go in front of every IDR that lacks them, so each
 *   key frame stands alone. Loss: like VP8, everything until the next IDR is
 *   dropped and a key frame asked for.
 *
 * Timestamps are unwrapped across 2³² and rebased when the stream restarts (a
 * new SSRC, or a sequence jump, e.g. the sender restarted), so the frames'
 * `timestamp` is one continuous clock for the whole track. Each frame keeps its
 * RTP timestamp and SSRC as sent, for a later mapping through sender reports.
 * Everything lost is reported as a wall-clock hole once media flows again.
 */
export class Depacketizer {
	readonly stats: DepacketizerStats = {
		packets: 0,
		lostPackets: 0,
		latePackets: 0,
		frames: 0,
		droppedFrames: 0,
		restarts: 0,
	};
	readonly #o: DepacketizerOptions;
	readonly #now: () => number;
	readonly #maxHeld: number;
	readonly #unwrap = new TimestampUnwrapper();
	#ssrc: number | undefined;
	#expected = 0;
	#held = new Map<number, Held>();
	#gapSeq: number | undefined;
	#gapSince = 0;
	#timer: NodeJS.Timeout | undefined;
	/** Added to the unwrapped RTP timestamp; recomputed at each stream (re)start. */
	#base = 0;
	#needBase = true;
	#lastTimestamp: number | undefined;
	#lastFrameAt: number | undefined;
	#asm: Assembly | undefined;
	#avc: AvcAssembly | undefined;
	/** The latest H.264 parameter sets (from the stream, or sprop-parameter-sets). */
	#sps: Buffer | undefined;
	#pps: Buffer | undefined;
	/** The RTP timestamp of an access unit dropped on a loss: its remaining packets are ignored, not counted again. */
	#droppedTs: number | undefined;
	#waitingKey: boolean;
	/** A loss not yet reported as a hole: since when, and how many frames it took. */
	#lossFrom: number | undefined;
	#lossFrames = 0;
	#closed = false;

	constructor(options: DepacketizerOptions) {
		this.#o = options;
		this.#now = options.now ?? Date.now;
		this.#maxHeld = options.maxHeldPackets ?? 512;
		this.#waitingKey = options.codec !== "opus";
		for (const nal of parseSpropParameterSets(options.spropParameterSets)) this.#keepParameterSet(nal);
	}

	/** Takes one RTP packet of the track (payload type already checked). */
	push(packet: Buffer, header: RtpHeader): void {
		if (this.#closed) return;
		const now = this.#now();
		this.stats.packets++;
		if (this.#ssrc === undefined) this.#startStream(header, now, false);
		else if (header.ssrc !== this.#ssrc) this.#startStream(header, now, true);
		let d = seqDiff(header.sequence, this.#expected);
		if (d > SEQ_JUMP || d < -SEQ_JUMP) {
			this.#startStream(header, now, true);
			d = 0;
		}
		if (d === 0 && this.#held.size === 0) {
			// In order with nothing waiting (nearly every packet): straight through, no jitter-window bookkeeping.
			this.#expected = (this.#expected + 1) & 0xffff;
			this.#deliver({ packet, header, at: now });
			return;
		}
		if (d < 0 || this.#held.has(header.sequence)) {
			this.stats.latePackets++;
			return;
		}
		this.#held.set(header.sequence, { packet, header, at: now });
		this.#drain(now);
	}

	/** Passes on what can be (gaps given up), drops an unfinished frame, reports a pending hole. Stops the timer. */
	flush(): void {
		if (this.#closed) return;
		const now = this.#now();
		while (this.#held.size) this.#skipGap();
		this.#drainInOrder();
		this.#dropAssembly();
		if (this.#lossFrom !== undefined) this.#reportHole(now);
		clearTimeout(this.#timer);
		this.#timer = undefined;
	}

	close(): void {
		this.flush();
		this.#closed = true;
	}

	/** Packets waiting in the jitter window. */
	get held(): number {
		return this.#held.size;
	}

	// ---- stream and jitter window ----

	#startStream(header: RtpHeader, now: number, restart: boolean): void {
		if (restart) {
			this.stats.restarts++;
			while (this.#held.size) this.#skipGap();
			this.#drainInOrder();
			this.#dropAssembly();
			if (this.#o.codec !== "opus") this.#needKey();
		}
		this.#ssrc = header.ssrc;
		this.#expected = header.sequence;
		this.#gapSeq = undefined;
		this.#unwrap.reset();
		this.#needBase = true;
		void now;
	}

	#drain(now: number): void {
		for (;;) {
			this.#drainInOrder();
			if (this.#held.size === 0) {
				this.#gapSeq = undefined;
				clearTimeout(this.#timer);
				this.#timer = undefined;
				return;
			}
			if (this.#gapSeq !== this.#expected) {
				this.#gapSeq = this.#expected;
				this.#gapSince = now;
			}
			if (now - this.#gapSince >= this.#o.jitterMs || this.#held.size > this.#maxHeld) {
				this.#skipGap();
				continue;
			}
			if (!this.#timer) {
				this.#timer = setTimeout(
					() => {
						this.#timer = undefined;
						if (!this.#closed) this.#drain(this.#now());
					},
					Math.max(1, this.#gapSince + this.#o.jitterMs - now),
				);
				this.#timer.unref?.();
			}
			return;
		}
	}

	#drainInOrder(): void {
		for (let h = this.#held.get(this.#expected); h; h = this.#held.get(this.#expected)) {
			this.#held.delete(this.#expected);
			this.#expected = (this.#expected + 1) & 0xffff;
			this.#deliver(h);
		}
	}

	/** Gives up on the missing packets before the earliest held one. */
	#skipGap(): void {
		let best: number | undefined;
		let bestD = Number.POSITIVE_INFINITY;
		for (const seq of this.#held.keys()) {
			const d = seqDiff(seq, this.#expected);
			if (d < bestD) {
				bestD = d;
				best = seq;
			}
		}
		if (best === undefined) return;
		if (bestD > 0) {
			this.stats.lostPackets += bestD;
			this.#onLoss(this.#o.codec === "opus" ? bestD : 0);
		}
		this.#expected = best;
		this.#gapSeq = undefined;
		this.#drainInOrder();
	}

	#onLoss(frames: number): void {
		this.#lossFrom ??= this.#lastFrameAt ?? this.#now();
		this.#lossFrames += frames;
		if (this.#o.codec !== "opus") {
			this.#dropAssembly();
			this.#needKey();
		}
	}

	#needKey(): void {
		this.#waitingKey = true;
		this.#o.onKeyframeNeeded();
	}

	// ---- codecs ----

	#deliver(h: Held): void {
		if (this.#o.codec === "opus") {
			const { packet, header } = h;
			if (header.payloadLength === 0) return; // keep-alive / padding only
			this.#emit({
				data: packet.subarray(header.payloadOffset, header.payloadOffset + header.payloadLength),
				key: true,
				rtpTimestamp: header.timestamp,
				ssrc: header.ssrc,
				firstSeq: header.sequence,
				lastSeq: header.sequence,
				receivedAt: h.at,
			});
			return;
		}
		if (this.#o.codec === "h264") this.#deliverH264(h);
		else this.#deliverVp8(h);
	}

	#deliverH264(h: Held): void {
		const { packet, header } = h;
		if (header.payloadLength === 0) return; // padding only
		if (this.#droppedTs === header.timestamp) return; // the rest of a unit already dropped
		this.#droppedTs = undefined;
		// A new timestamp while a unit is open: that unit got no marker, but nothing was lost in between (a loss
		// would have dropped it), so it is complete.
		if (this.#avc && this.#avc.rtpTimestamp !== header.timestamp) this.#finishH264();
		const units = parsePayload(packet.subarray(header.payloadOffset, header.payloadOffset + header.payloadLength));
		this.#avc ??= {
			nals: [],
			bytes: 0,
			rtpTimestamp: header.timestamp,
			firstSeq: header.sequence,
			lastSeq: header.sequence,
			at: h.at,
			ssrc: header.ssrc,
			fu: undefined,
			broken: false,
		};
		const asm = this.#avc;
		asm.lastSeq = header.sequence;
		asm.at = h.at;
		if (units.kind === "invalid") asm.broken = true;
		else if (units.kind === "nals") {
			if (asm.fu) asm.broken = true; // a fragmented unit never saw its end
			asm.fu = undefined;
			for (const n of units.nals) {
				asm.nals.push(n);
				asm.bytes += n.length;
			}
		} else if (units.start) {
			if (asm.fu) asm.broken = true;
			asm.fu = [Buffer.from([units.header]), units.data];
		} else if (!asm.fu) {
			asm.broken = true; // the middle or end of a unit whose start was lost
		} else {
			asm.fu.push(units.data);
			if (units.end) {
				const nal = Buffer.concat(asm.fu);
				asm.fu = undefined;
				asm.nals.push(nal);
				asm.bytes += nal.length;
			}
		}
		if (header.marker) this.#finishH264();
	}

	#keepParameterSet(nal: Buffer): void {
		const t = nalType(nal);
		if (t === NAL.SPS) this.#sps = Buffer.from(nal);
		else if (t === NAL.PPS) this.#pps = Buffer.from(nal);
	}

	#finishH264(): void {
		const asm = this.#avc;
		if (!asm) return;
		this.#avc = undefined;
		if (asm.fu) asm.broken = true;
		let key = false;
		let vcl = false;
		let sps: Buffer | undefined;
		let pps: Buffer | undefined;
		for (const n of asm.nals) {
			const t = nalType(n);
			if (t === NAL.SPS) sps = n;
			else if (t === NAL.PPS) pps = n;
			else if (t === NAL.IDR) key = vcl = true;
			else if (t >= 1 && t <= 4) vcl = true;
		}
		if (asm.broken) {
			this.stats.droppedFrames++;
			this.#lossFrom ??= this.#lastFrameAt ?? asm.at;
			this.#lossFrames++;
			this.#needKey();
			return;
		}
		if (sps) this.#keepParameterSet(sps);
		if (pps) this.#keepParameterSet(pps);
		if (!vcl) return; // parameter sets (or SEI) alone: kept, not a picture
		if (key && !(this.#sps && this.#pps)) key = false; // an IDR nobody can decode without its parameter sets
		if (this.#waitingKey && !key) {
			this.stats.droppedFrames++;
			if (this.#lastFrameAt !== undefined) {
				this.#lossFrom ??= this.#lastFrameAt;
				this.#lossFrames++;
			}
			this.#o.onKeyframeNeeded();
			return;
		}
		const nals = asm.nals.filter((n) => {
			const t = nalType(n);
			return t !== NAL.AUD && t !== NAL.FILLER && (!key || (t !== NAL.SPS && t !== NAL.PPS));
		});
		const frame: Omit<Frame, "timestamp"> = {
			data: toAvcc(key ? [this.#sps as Buffer, this.#pps as Buffer, ...nals] : nals),
			key,
			rtpTimestamp: asm.rtpTimestamp,
			ssrc: asm.ssrc,
			firstSeq: asm.firstSeq,
			lastSeq: asm.lastSeq,
			receivedAt: asm.at,
		};
		if (key) {
			const sps = this.#sps as Buffer;
			const info = parseSps(sps);
			frame.parameterSets = { sps, pps: this.#pps as Buffer };
			if (info) {
				frame.width = info.width;
				frame.height = info.height;
			}
		}
		this.#waitingKey = false;
		this.#emit(frame);
	}

	#deliverVp8(h: Held): void {
		const { packet, header } = h;
		const end = header.payloadOffset + header.payloadLength;
		let i = header.payloadOffset;
		if (i >= end) return;
		const d = packet[i++] as number;
		const start = (d & 0x10) !== 0 && (d & 0x07) === 0;
		if (d & 0x80) {
			if (i >= end) return;
			const x = packet[i++] as number;
			if (x & 0x80) {
				if (i >= end) return;
				i += (packet[i] as number) & 0x80 ? 2 : 1;
			}
			if (x & 0x40) i += 1;
			if (x & 0x30) i += 1;
		}
		if (i > end) return;
		const payload = packet.subarray(i, end);
		if (start) {
			if (this.#asm) {
				// The previous picture never saw its marker: it is incomplete.
				this.#dropAssembly();
				this.#onLoss(0);
			}
			this.#asm = {
				parts: [payload],
				bytes: payload.length,
				rtpTimestamp: header.timestamp,
				firstSeq: header.sequence,
				key: payload.length > 0 && ((payload[0] as number) & 0x01) === 0,
			};
		} else {
			const asm = this.#asm;
			if (!asm || asm.rtpTimestamp !== header.timestamp) {
				// The middle of a picture whose start was lost (already counted as loss).
				if (asm) {
					this.#dropAssembly();
					this.#onLoss(0);
				}
				return;
			}
			asm.parts.push(payload);
			asm.bytes += payload.length;
		}
		if (!header.marker) return;
		const asm = this.#asm as Assembly;
		this.#asm = undefined;
		if (this.#waitingKey && !asm.key) {
			this.stats.droppedFrames++;
			if (this.#lastFrameAt !== undefined) {
				this.#lossFrom ??= this.#lastFrameAt;
				this.#lossFrames++;
			}
			this.#o.onKeyframeNeeded();
			return;
		}
		const data = asm.parts.length === 1 ? (asm.parts[0] as Buffer) : Buffer.concat(asm.parts, asm.bytes);
		const frame: Omit<Frame, "timestamp"> = {
			data,
			key: asm.key,
			rtpTimestamp: asm.rtpTimestamp,
			ssrc: header.ssrc,
			firstSeq: asm.firstSeq,
			lastSeq: header.sequence,
			receivedAt: h.at,
		};
		if (asm.key && data.length >= 10 && data[3] === 0x9d && data[4] === 0x01 && data[5] === 0x2a) {
			frame.width = data.readUInt16LE(6) & 0x3fff;
			frame.height = data.readUInt16LE(8) & 0x3fff;
		}
		this.#waitingKey = false;
		this.#emit(frame);
	}

	#dropAssembly(): void {
		if (this.#avc) {
			this.#droppedTs = this.#avc.rtpTimestamp;
			this.#avc = undefined;
			this.stats.droppedFrames++;
			this.#lossFrames++;
		}
		if (!this.#asm) return;
		this.#asm = undefined;
		this.stats.droppedFrames++;
		this.#lossFrames++;
	}

	#emit(f: Omit<Frame, "timestamp">): void {
		const unwrapped = this.#unwrap.unwrap(f.rtpTimestamp);
		if (this.#needBase) {
			this.#needBase = false;
			if (this.#lastTimestamp === undefined) this.#base = -unwrapped;
			else {
				// A new stream: continue the track's clock from the last frame, by the wall time that passed.
				const elapsed = this.#lastFrameAt === undefined ? 0 : f.receivedAt - this.#lastFrameAt;
				const step = Math.max(Math.round((elapsed * this.#o.clockRate) / 1000), Math.round(this.#o.clockRate / 100));
				this.#base = this.#lastTimestamp + step - unwrapped;
			}
		}
		let timestamp = unwrapped + this.#base;
		// Never backwards on the track's clock (a sender's clock step): pin to the last frame.
		if (this.#lastTimestamp !== undefined && timestamp < this.#lastTimestamp) timestamp = this.#lastTimestamp;
		this.#lastTimestamp = timestamp;
		if (this.#lossFrom !== undefined) this.#reportHole(f.receivedAt);
		this.#lastFrameAt = f.receivedAt;
		this.stats.frames++;
		this.#o.onFrame({ ...f, timestamp });
	}

	#reportHole(to: number): void {
		const from = this.#lossFrom as number;
		this.#lossFrom = undefined;
		const frames = this.#lossFrames;
		this.#lossFrames = 0;
		this.#o.onHole({ from, to: Math.max(from, to), cause: "network_loss", ...(frames ? { frames } : {}) });
	}
}

import type { RtpHeader } from "./rtp.js";

/** One RTCP sender report of the producer, as the gateway saw it (issue 11). */
export interface SenderReport {
	/** The SSRC it reports on (a simulcast producer has one per layer, plus retransmission streams). */
	ssrc?: number | undefined;
	/** The report's NTP time, as Unix ms on the sender's clock. */
	ntpMs: number;
	/** The RTP timestamp the sender maps to that instant. */
	rtpTs: number;
	/** When the gateway received it (Unix ms, the gateway's clock). */
	receivedAt: number;
}

/** What the gate did with a track's packets, on the sender's clock (Unix ms). */
export interface CaptureSummary {
	/** The person's click (the answer), on the sender's clock: nothing captured before it is recorded. */
	openAt: number | null;
	/** Capture times of the first and last packet let through. */
	firstCaptureAt: number | null;
	lastCaptureAt: number | null;
	/** Sender clock − gateway clock, from the sender reports (the least-delayed one); null: no report yet. */
	clockOffsetMs: number | null;
	/** Packets dropped because captured before the click (or after `closeAt`). */
	packetsBeforeOpen: number;
	packetsAfterClose: number;
	/** Packets dropped because no sender report came to date them (held too long, or still held at close). */
	packetsUndated: number;
	senderReports: number;
	/**
	 * The least delay of any recorded packet between its capture (mapped to the gateway's clock with
	 * `clockOffsetMs`) and its arrival at the recorder, ms: the mapping's constant error plus the shortest path. Equal
	 * across tracks when they line up; load adds to single packets, not to this minimum.
	 */
	minTransitMs: number | null;
}

export interface CaptureGateOptions {
	clockRate: number;
	/** The click, on the sender's clock (Unix ms). */
	openAt?: number | undefined;
	/** At most this many packets wait for the first sender report; older ones are dropped (undated). */
	maxHeld?: number;
	pass: (packet: Buffer, header: RtpHeader) => void;
}

/**
 * The per-packet capture gate (issue 11). Each RTP packet's capture time is its RTP timestamp mapped to the
 * sender's wall clock through the most recent RTCP sender report of its stream; a packet captured before the
 * person's click (`openAt`) or after `closeAt` is dropped, and a packet that can't be dated yet (no report so
 * far) is held until the first report, then decided. A clock step of the sender (NTP) shows in its next report
 * and applies from then on (each packet maps through the latest report). Without `openAt` (no click time was
 * sent) packets pass as they arrive: the gateway's gate, at the answer's arrival, is then the only one.
 */
export class CaptureGate {
	readonly #opts: CaptureGateOptions;
	#sr: SenderReport | undefined;
	/** The latest report per SSRC, until one stream is found to date this track's packets. */
	readonly #candidates = new Map<number, SenderReport>();
	#ssrc: number | undefined;
	#held: { packet: Buffer; header: RtpHeader; at: number }[] = [];
	#closeAt: number | undefined;
	readonly summary: CaptureSummary;

	constructor(options: CaptureGateOptions) {
		this.#opts = options;
		this.summary = {
			openAt: options.openAt ?? null,
			firstCaptureAt: null,
			lastCaptureAt: null,
			clockOffsetMs: null,
			packetsBeforeOpen: 0,
			packetsAfterClose: 0,
			packetsUndated: 0,
			senderReports: 0,
			minTransitMs: null,
		};
	}

	/** The capture time (sender's clock, Unix ms) of an RTP timestamp; undefined before the first report. */
	captureMs(rtpTs: number): number | undefined {
		const sr = this.#sr;
		if (!sr) return undefined;
		const diff = ((rtpTs - sr.rtpTs) << 0) | 0; // signed 32-bit distance: wraps handled
		return sr.ntpMs + (diff * 1000) / this.#opts.clockRate;
	}

	/** Sender clock − gateway clock (ms), or undefined. */
	get clockOffsetMs(): number | undefined {
		return this.summary.clockOffsetMs ?? undefined;
	}

	senderReport(sr: SenderReport): void {
		const ssrc = sr.ssrc ?? 0;
		if (this.#ssrc !== undefined && ssrc !== this.#ssrc) return;
		if (this.#ssrc === undefined) {
			this.#candidates.set(ssrc, sr);
			if (this.#choose()) this.#release();
			return;
		}
		this.#sr = sr;
		this.#count(sr);
	}

	#count(sr: SenderReport): void {
		this.summary.senderReports++;
		// The report left the sender before it arrived: the largest ntp − arrival is the least delayed estimate.
		const offset = sr.ntpMs - sr.receivedAt;
		if (this.summary.clockOffsetMs === null || offset > this.summary.clockOffsetMs) this.summary.clockOffsetMs = offset;
	}

	/** The stream is known: every held packet is decided, in order. */
	#release(): void {
		const held = this.#held;
		this.#held = [];
		for (const h of held) this.#decide(h.packet, h.header, h.at);
	}

	/**
	 * Which stream's reports date this track: the consumer's RTP time is one of the producer's streams' (a
	 * simulcast consumer keeps the first layer's time base across layer switches), and its reports are the ones
	 * that put the first held packet's capture a few ms to a few s before its arrival. Any other stream's time
	 * base is random (32 bits: ±13 h at 90 kHz), so the choice is unambiguous.
	 */
	#choose(): boolean {
		const first = this.#held[0];
		if (!first) return false;
		let best: { ssrc: number; sr: SenderReport; lag: number } | undefined;
		for (const [ssrc, sr] of this.#candidates) {
			const diff = ((first.header.timestamp - sr.rtpTs) << 0) | 0;
			const lag = first.at - sr.receivedAt - (diff * 1000) / this.#opts.clockRate; // arrival − capture, ms
			if (lag > -100 && lag < 10_000 && (!best || Math.abs(lag) < Math.abs(best.lag))) best = { ssrc, sr, lag };
		}
		if (!best) return false;
		this.#ssrc = best.ssrc;
		this.#sr = best.sr;
		this.#count(best.sr);
		this.#candidates.clear();
		return true;
	}

	/** Packets captured after this instant (sender's clock) are dropped from now on. */
	close(at: number): void {
		this.#closeAt = at;
	}

	push(packet: Buffer, header: RtpHeader): void {
		if (this.summary.openAt === null) {
			// No click to gate on (a client that sent none; the recorder driven directly): as arrival gated it.
			this.#opts.pass(packet, header);
			return;
		}
		if (!this.#sr) {
			this.#held.push({ packet, header, at: Date.now() });
			if (this.#held.length > (this.#opts.maxHeld ?? 2000)) {
				this.#held.shift();
				this.summary.packetsUndated++;
			}
			if (this.#candidates.size > 0 && this.#choose()) this.#release();
			return;
		}
		this.#decide(packet, header, Date.now());
	}

	/** Packets still waiting for a report are never recorded. */
	end(): void {
		this.summary.packetsUndated += this.#held.length;
		this.#held = [];
	}

	get held(): number {
		return this.#held.length;
	}

	#decide(packet: Buffer, header: RtpHeader, arrivedAt: number): void {
		// Padding only (bandwidth probing): no media, and its RTP time means nothing. It only keeps the sequence whole.
		if (header.payloadLength === 0) {
			this.#opts.pass(packet, header);
			return;
		}
		const at = this.captureMs(header.timestamp) as number;
		const s = this.summary;
		if (s.openAt !== null && at < s.openAt) {
			s.packetsBeforeOpen++;
			return;
		}
		if (this.#closeAt !== undefined && at > this.#closeAt) {
			s.packetsAfterClose++;
			return;
		}
		if (s.firstCaptureAt === null || at < s.firstCaptureAt) s.firstCaptureAt = at;
		const transit = arrivedAt - (at - (s.clockOffsetMs ?? 0));
		if (s.minTransitMs === null || transit < s.minTransitMs) s.minTransitMs = transit;
		if (s.lastCaptureAt === null || at > s.lastCaptureAt) s.lastCaptureAt = at;
		this.#opts.pass(packet, header);
	}
}

export { ntpToUnixMs } from "../contracts/RecorderProtocol.js";

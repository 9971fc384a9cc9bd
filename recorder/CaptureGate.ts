import type { CloseTime } from "../contracts/RecorderProtocol.js";
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

/** A packet let through, waiting closeMarginMs before it is passed on. */
interface Waiting {
	packet: Buffer;
	header: RtpHeader;
	at: number;
	captureAt: number;
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
	/** The close, on the sender's clock: nothing captured after it is recorded (null: not closed, or undatable). */
	closeAt: number | null;
	/** Packets dropped because captured before the click (or after `closeAt`). */
	packetsBeforeOpen: number;
	packetsAfterClose: number;
	/** Packets dropped because no sender report came to date them (held too long, or still held at close). */
	packetsUndated: number;
	senderReports: number;
	/** Steps of the sender's clock seen in its reports (NTP steps of ≥ CLOCK_STEP_MS); the latest report wins. */
	clockSteps: number;
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
	/**
	 * Packets let through wait this long (ms, after their arrival) before they are passed on, so that a close whose
	 * message arrives up to this late still drops what was captured after it (default 0: passed at once).
	 */
	closeMarginMs?: number;
	/** Clock for arrivals (tests). */
	now?: () => number;
	/**
	 * Called once when packets have waited `undatableAfterMs` (default 10 s) and still no sender report dates them:
	 * the track is not being recorded, and someone should know why. They stay held (a late report still dates them).
	 */
	onUndatable?: (info: { heldMs: number; packets: number; reports: number }) => void;
	undatableAfterMs?: number;
	/** `captureAt`: the packet's capture time (sender's clock), when dated (not for padding, nor without a click). */
	pass: (packet: Buffer, header: RtpHeader, captureAt: number | undefined) => void;
}

/** The wait applied by the recorder and the transcriber: longer than the click → close path (signaling + IPC). */
export const CLOSE_MARGIN_MS = 1000;
/** A sender report whose clock offset moved this much from the estimate is a step of the sender's clock. */
export const CLOCK_STEP_MS = 500;

/**
 * The per-packet capture gate (issue 11). Each RTP packet's capture time is its RTP timestamp mapped to the
 * sender's wall clock through the most recent RTCP sender report of its stream; a packet captured before the
 * person's click (`openAt`) or after `closeAt` is dropped, and a packet that can't be dated yet (no report so
 * far) is held until the first report, then decided. A packet let through waits `closeMarginMs` before it is
 * passed on, so that a close (pause, leave…) whose message comes late still drops what was captured after its
 * click. A clock step of the sender (NTP) shows in its next report and applies from then on (each packet maps
 * through the latest report; the offset estimate restarts; `clockSteps` counts them). Without `openAt` (no click
 * time was sent) packets pass as they arrive: the gateway's gate, at the answer's arrival, is then the only one.
 */
export class CaptureGate {
	readonly #opts: CaptureGateOptions;
	#sr: SenderReport | undefined;
	/** The latest report per SSRC, until one stream is found to date this track's packets. */
	readonly #candidates = new Map<number, SenderReport>();
	#ssrc: number | undefined;
	#held: { packet: Buffer; header: RtpHeader; at: number }[] = [];
	/** Let through, waiting closeMarginMs before they are passed on. */
	#waiting: Waiting[] = [];
	/** The first of #waiting not passed on yet (a queue without shifting). */
	#head = 0;
	#closeAt: number | undefined;
	#undatableTold = false;
	/** The least arrival − capture of any packet passed on (ms, mixed clocks); + the offset = minTransitMs. */
	#minLag: number | undefined;
	/** Recent reports' offsets (ntp − arrival) with their arrival, for offsets local to an instant (since the last step). */
	#recent: { at: number; offset: number }[] = [];
	/** When the first packet no report could date arrived (held packets may be shed since). */
	#undatedSince: number | undefined;
	readonly #now: () => number;
	readonly summary: CaptureSummary;

	constructor(options: CaptureGateOptions) {
		this.#opts = options;
		this.#now = options.now ?? Date.now;
		this.summary = {
			openAt: options.openAt ?? null,
			closeAt: null,
			firstCaptureAt: null,
			lastCaptureAt: null,
			clockOffsetMs: null,
			packetsBeforeOpen: 0,
			packetsAfterClose: 0,
			packetsUndated: 0,
			senderReports: 0,
			clockSteps: 0,
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

	/**
	 * Sender clock − gateway clock (ms) around an instant (gateway clock): the least-delayed of the reports received
	 * within ±`spanMs` of it (the last 128 since the last step), so a sender clock drifting against the gateway's
	 * is mapped with the offset of that moment, not the track's (issue 11: each object is anchored with it). Falls back
	 * to the track's estimate.
	 */
	offsetAround(at: number, spanMs = 15_000): number | undefined {
		let best: number | undefined;
		for (const r of this.#recent) {
			if (Math.abs(r.at - at) <= spanMs && (best === undefined || r.offset > best)) best = r.offset;
		}
		return best ?? this.clockOffsetMs;
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
		// A step of the sender's clock (NTP): its offset moves by more than any transit jitter. Forward, the largest
		// estimate takes it; backward, the estimate restarts from this report (the old one would stay forever).
		const offset = sr.ntpMs - sr.receivedAt;
		const known = this.summary.clockOffsetMs;
		if (known !== null && Math.abs(offset - known) >= CLOCK_STEP_MS) {
			this.summary.clockSteps++;
			this.summary.clockOffsetMs = offset;
			this.#recent = [];
		} else if (known === null || offset > known) this.summary.clockOffsetMs = offset;
		if (this.#minLag !== undefined && this.summary.clockOffsetMs !== null)
			this.summary.minTransitMs = this.#minLag + this.summary.clockOffsetMs; // with the best offset so far
		this.#recent.push({ at: sr.receivedAt, offset });
		if (this.#recent.length > 128) this.#recent.splice(0, this.#recent.length - 128);
	}

	/** The stream is known: every held packet is decided, in order. */
	#release(): void {
		const held = this.#held;
		this.#held = [];
		for (const h of held) this.#decide(h.packet, h.header, h.at);
		this.flush();
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

	/**
	 * Packets captured after this instant are dropped from now on, including those let through in the last
	 * `closeMarginMs` and not yet passed on. A number is on the sender's clock; a gateway-clock close is mapped to the
	 * sender's clock through the reports (the least-delayed one: early by at most the shortest report transit, so
	 * never later than the true instant). An earlier close stays: a close only ever moves earlier.
	 */
	close(at: number | CloseTime): void {
		const t = typeof at === "number" ? { at, clock: "sender" as const } : at;
		let senderAt = t.at;
		if (t.clock === "gateway") {
			const offset = this.summary.clockOffsetMs;
			if (offset === null) return; // nothing dated: nothing was let through, and nothing more will be
			senderAt = t.at + offset;
		}
		if (this.#closeAt === undefined || senderAt < this.#closeAt) this.#closeAt = senderAt;
		this.summary.closeAt = this.#closeAt;
	}

	push(packet: Buffer, header: RtpHeader): void {
		if (this.summary.openAt === null) {
			// No click to gate on (a client that sent none; the recorder driven directly): as arrival gated it.
			this.#opts.pass(packet, header, this.captureMs(header.timestamp));
			return;
		}
		const now = this.#now();
		if (!this.#sr) {
			this.#held.push({ packet, header, at: now });
			this.#undatedSince ??= now;
			if (this.#held.length > (this.#opts.maxHeld ?? 2000)) {
				this.#held.shift();
				this.summary.packetsUndated++;
			}
			if (this.#candidates.size > 0 && this.#choose()) this.#release();
			else this.flush(now);
			return;
		}
		this.#decide(packet, header, now);
		this.flush(now);
	}

	/** Passes on what was let through at least closeMarginMs ago (call it on a timer too: packets may stop). */
	flush(now = this.#now()): void {
		const since = this.#undatedSince;
		if (
			!this.#sr &&
			since !== undefined &&
			!this.#undatableTold &&
			now - since >= (this.#opts.undatableAfterMs ?? 10_000)
		) {
			this.#undatableTold = true;
			const reports = this.#candidates.size;
			this.#opts.onUndatable?.({
				heldMs: now - since,
				packets: this.#held.length + this.summary.packetsUndated,
				reports,
			});
		}
		const until = now - (this.#opts.closeMarginMs ?? 0);
		const w = this.#waiting;
		while (this.#head < w.length && (w[this.#head] as Waiting).at <= until) this.#passOne(w[this.#head++] as Waiting);
		if (this.#head === w.length) {
			w.length = 0;
			this.#head = 0;
		} else if (this.#head > 1024) {
			w.splice(0, this.#head);
			this.#head = 0;
		}
	}

	/** The end: what waits is decided against the close and passed on; packets still undated are never recorded. */
	end(): void {
		this.summary.packetsUndated += this.#held.length;
		this.#held = [];
		const w = this.#waiting;
		while (this.#head < w.length) this.#passOne(w[this.#head++] as Waiting);
		w.length = 0;
		this.#head = 0;
	}

	/** Packets let through but not yet passed on (waiting closeMarginMs). */
	get waiting(): number {
		return this.#waiting.length - this.#head;
	}

	get held(): number {
		return this.#held.length;
	}

	#decide(packet: Buffer, header: RtpHeader, arrivedAt: number): void {
		const at = header.payloadLength === 0 ? Number.NaN : (this.captureMs(header.timestamp) as number);
		const s = this.summary;
		if (s.openAt !== null && at < s.openAt) {
			s.packetsBeforeOpen++;
			return;
		}
		const w: Waiting = { packet, header, at: arrivedAt, captureAt: at };
		// No margin and nothing waiting: straight on (no queue).
		if (!this.#opts.closeMarginMs && this.#head === this.#waiting.length) this.#passOne(w);
		else this.#waiting.push(w);
	}

	#passOne({ packet, header, at: arrivedAt, captureAt: at }: Waiting): void {
		const s = this.summary;
		// Padding only (bandwidth probing): no media, and its RTP time means nothing. It only keeps the sequence whole.
		if (Number.isNaN(at)) {
			this.#opts.pass(packet, header, undefined);
			return;
		}
		if (this.#closeAt !== undefined && at > this.#closeAt) {
			s.packetsAfterClose++;
			return;
		}
		if (s.firstCaptureAt === null || at < s.firstCaptureAt) s.firstCaptureAt = at;
		// Against the best offset estimate, also one that improves later (a first report delayed by load).
		const lag = arrivedAt - at;
		if (this.#minLag === undefined || lag < this.#minLag) this.#minLag = lag;
		s.minTransitMs = this.#minLag + (s.clockOffsetMs ?? 0);
		if (s.lastCaptureAt === null || at > s.lastCaptureAt) s.lastCaptureAt = at;
		this.#opts.pass(packet, header, at);
	}
}

export { type CloseTime, ntpToUnixMs } from "../contracts/RecorderProtocol.js";

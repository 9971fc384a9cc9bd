import { describe, expect, it } from "vitest";
import { CaptureGate, ntpToUnixMs } from "./CaptureGate.js";
import type { RtpHeader } from "./rtp.js";

const header = (timestamp: number, payloadLength = 100): RtpHeader => ({
	payloadType: 111,
	marker: false,
	sequence: 0,
	timestamp,
	ssrc: 1,
	payloadOffset: 12,
	payloadLength,
	extensionProfile: 0,
	extensionOffset: 0,
	extensionLength: 0,
});

function gate(openAt?: number) {
	const passed: number[] = [];
	const g = new CaptureGate({ clockRate: 48_000, openAt, pass: (_p, h) => passed.push(h.timestamp) });
	return { g, passed, push: (ts: number, len?: number) => g.push(Buffer.alloc(1), header(ts >>> 0, len)) };
}

describe("CaptureGate (issue 11)", () => {
	const now = Date.now();

	it("holds packets until a sender report dates them, then drops those captured before the click", () => {
		const { g, passed, push } = gate(now);
		// RTP 0 ↔ now − 100 ms: 48 per ms.
		push(0); // now − 100
		push(4800); // now
		push(9600); // now + 100
		expect(passed).toEqual([]);
		expect(g.held).toBe(3);
		g.senderReport({ ntpMs: now - 100, rtpTs: 0, receivedAt: Date.now() - 100 });
		expect(passed).toEqual([4800, 9600]);
		expect(g.summary).toMatchObject({
			openAt: now,
			firstCaptureAt: now,
			lastCaptureAt: now + 100,
			packetsBeforeOpen: 1,
		});
	});

	it("dates across the 2³² wrap, and drops what was captured after a close", () => {
		const { g, passed, push } = gate(now);
		g.senderReport({ ssrc: 1, ntpMs: now, rtpTs: 0xffff_ff00, receivedAt: Date.now() });
		push(0xffff_ff00 + 48 * 10); // wraps: now + 10 ms
		expect(passed).toHaveLength(1);
		expect(g.summary.firstCaptureAt).toBeCloseTo(now + 10, 6);
		g.close(now + 20);
		push(48 * 30);
		expect(g.summary.packetsAfterClose).toBe(1);
	});

	it("finds the simulcast layer whose reports date the consumer's RTP; other time bases are ignored", () => {
		const { g, passed, push } = gate(now - 1_000);
		const at = Date.now();
		push(1_000_000); // captured about now
		g.senderReport({ ssrc: 7, ntpMs: at, rtpTs: 3_000_000_000, receivedAt: at }); // another layer: absurd
		expect(passed).toEqual([]);
		g.senderReport({ ssrc: 9, ntpMs: at - 20, rtpTs: 1_000_000 - 48 * 20, receivedAt: at }); // this one
		expect(passed).toEqual([1_000_000]);
		g.senderReport({ ssrc: 7, ntpMs: at, rtpTs: 1, receivedAt: at }); // ignored from now on
		expect(g.captureMs(1_000_000)).toBeCloseTo(at, 6);
		expect(g.summary.senderReports).toBe(1);
	});

	it("never records a packet no report dated; without a click, packets pass as they arrive", () => {
		const { g, passed, push } = gate(now);
		push(1);
		g.end();
		expect(passed).toEqual([]);
		expect(g.summary.packetsUndated).toBe(1);
		const open = gate();
		open.push(5);
		expect(open.passed).toEqual([5]);
	});

	it("holds let-through packets for the close margin: a late close still drops what was captured after it", () => {
		let clock = 1_000_000;
		const passed: number[] = [];
		const g = new CaptureGate({
			clockRate: 48_000,
			openAt: 1,
			closeMarginMs: 1000,
			now: () => clock,
			pass: (_p, h) => passed.push(h.timestamp),
		});
		// Sender clock = gateway clock + 5000; RTP 0 ↔ sender 1_005_000.
		g.senderReport({ ntpMs: 1_005_000, rtpTs: 0, receivedAt: 1_000_000 });
		for (let i = 0; i < 10; i++) {
			g.push(Buffer.alloc(1), header(48 * 100 * i)); // captured every 100 ms, arriving at once
			clock += 100;
		}
		g.flush();
		expect(passed).toEqual([0]); // only what arrived ≥ 1 s ago went on
		expect(g.waiting).toBe(9);
		// The person clicked "leave" at capture 1_005_450 (their clock); the message comes 550 ms later.
		g.close(1_005_450);
		g.end();
		expect(passed).toEqual([0, 4800, 9600, 14400, 19200]);
		expect(g.summary).toMatchObject({ closeAt: 1_005_450, lastCaptureAt: 1_005_400, packetsAfterClose: 5 });
	});

	it("maps a gateway-clock close to the sender's clock through the reports; a close only moves earlier", () => {
		const t = Date.now();
		const { g, passed, push } = gate(t - 10_000);
		push(48 * 80); // held: sender t + 3080
		// The sender's clock runs ahead of the gateway's: offset estimate ntp − arrival = 3100.
		g.senderReport({ ntpMs: t + 3000, rtpTs: 0, receivedAt: t - 100 });
		expect(passed).toEqual([48 * 80]);
		g.close({ at: t + 100, clock: "gateway" }); // → sender t + 3200
		expect(g.summary.closeAt).toBe(t + 3200);
		push(48 * 150); // t + 3150: kept
		push(48 * 250); // t + 3250: after the close
		expect(passed).toEqual([48 * 80, 48 * 150]);
		g.close(t + 5000); // later: ignored
		expect(g.summary).toMatchObject({ closeAt: t + 3200, packetsAfterClose: 1 });
		// Without any report nothing was let through: a gateway close has nothing to map and nothing to drop.
		const undated = gate(t);
		undated.g.close({ at: t, clock: "gateway" });
		expect(undated.g.summary.closeAt).toBeNull();
	});

	it("NTP step: the latest report dates the packets; the offset estimate follows a step both ways", () => {
		const t = Date.now();
		const { g, passed, push } = gate(t - 60_000);
		push(0);
		g.senderReport({ ntpMs: t, rtpTs: 0, receivedAt: t + 5 }); // offset −5
		expect(g.summary.clockOffsetMs).toBe(-5);
		g.senderReport({ ntpMs: t + 1000, rtpTs: 48_000, receivedAt: t + 1020 }); // a slower report: estimate stays
		expect(g.summary.clockOffsetMs).toBe(-5);
		// The sender's clock steps back 10 s: the next report says so.
		g.senderReport({ ntpMs: t + 2000 - 10_000, rtpTs: 96_000, receivedAt: t + 2005 });
		expect(g.summary).toMatchObject({ clockSteps: 1, clockOffsetMs: -10_005 });
		expect(g.captureMs(96_000 + 48)).toBeCloseTo(t - 7999, 6);
		push(96_000 + 48);
		expect(g.summary.firstCaptureAt).toBeCloseTo(t - 7999, 6); // first/last are the least and the greatest
		// And forward 20 s.
		g.senderReport({ ntpMs: t + 3000 + 10_000, rtpTs: 144_000, receivedAt: t + 3005 });
		expect(g.summary).toMatchObject({ clockSteps: 2, clockOffsetMs: 9_995 });
		push(144_000 + 480);
		expect(passed).toHaveLength(3);
		expect(g.summary.lastCaptureAt).toBeCloseTo(t + 13_010, 6);
		// A packet the step back maps before the click is dropped, never recorded.
		const strict = gate(t);
		strict.push(0);
		strict.g.senderReport({ ntpMs: t + 10, rtpTs: 0, receivedAt: t });
		strict.g.senderReport({ ntpMs: t + 1000 - 5000, rtpTs: 48_000, receivedAt: t + 1000 });
		strict.push(48_000 + 48);
		expect(strict.passed).toEqual([0]);
		expect(strict.g.summary).toMatchObject({ clockSteps: 1, packetsBeforeOpen: 1 });
	});

	it("tells once when packets wait too long for a report, and still dates them if one comes", () => {
		let clock = 5_000_000;
		const told: { heldMs: number; packets: number; reports: number }[] = [];
		const passed: number[] = [];
		const g = new CaptureGate({
			clockRate: 48_000,
			openAt: 1,
			maxHeld: 100,
			undatableAfterMs: 10_000,
			onUndatable: (i) => told.push(i),
			now: () => clock,
			pass: (_p, h) => passed.push(h.timestamp),
		});
		for (let i = 0; i < 600; i++) {
			g.push(Buffer.alloc(1), header(960 * i)); // 20 ms audio, 12 s: more than maxHeld, older ones shed
			clock += 20;
		}
		g.flush();
		expect(told).toEqual([{ heldMs: 10_000, packets: 501, reports: 0 }]); // at 10 s, counting those shed
		expect(g.summary.packetsUndated).toBe(500);
		g.flush();
		expect(told).toHaveLength(1);
		g.senderReport({ ntpMs: clock - 2000, rtpTs: 960 * 500, receivedAt: clock - 1990 });
		expect(passed).toHaveLength(100);
	});

	it("gives the offset around an instant: a sender clock drifting against the gateway's is mapped locally", () => {
		const t = Date.now();
		const { g, push } = gate(t - 1);
		push(0);
		// One report a second for an hour's worth of drift compressed: the sender's clock gains 1 ms per report,
		// and every third report is 8 ms late in transit.
		for (let i = 0; i < 100; i++) {
			const late = i % 3 === 0 ? 8 : 0;
			g.senderReport({ ntpMs: t + i * 1000 + i, rtpTs: 48 * 1000 * i, receivedAt: t + i * 1000 + late });
		}
		expect(g.summary.clockOffsetMs).toBe(98); // the track's: the largest (report 98; 99 came late)
		expect(g.offsetAround(t + 20_000, 5_000)).toBe(25); // around 20 s: reports 15…25, the least-delayed
		expect(g.offsetAround(t + 10_000_000)).toBe(98); // no report near: the track's
	});

	it("converts NTP to Unix ms", () => {
		expect(ntpToUnixMs(2_208_988_800 + 1, 2 ** 31)).toBe(1500);
	});
});

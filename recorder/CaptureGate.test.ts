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

	it("converts NTP to Unix ms", () => {
		expect(ntpToUnixMs(2_208_988_800 + 1, 2 ** 31)).toBe(1500);
	});
});

import { describe, expect, it } from "vitest";
import { Depacketizer } from "./Depacketizer.js";
import type { Frame, Hole } from "./DepacketizerTypes.js";
import { headerExtensions, parseRtp, type RtpHeader, seqDiff, TimestampUnwrapper } from "./rtp.js";

function packet(o: { seq: number; ts: number; ssrc?: number; marker?: boolean; payload: number[] | Buffer }): {
	buf: Buffer;
	header: RtpHeader;
} {
	const head = Buffer.alloc(12);
	head[0] = 0x80;
	head[1] = 100 | (o.marker ? 0x80 : 0);
	head.writeUInt16BE(o.seq & 0xffff, 2);
	head.writeUInt32BE(o.ts >>> 0, 4);
	head.writeUInt32BE(o.ssrc ?? 1, 8);
	const buf = Buffer.concat([head, Buffer.from(o.payload)]);
	return { buf, header: parseRtp(buf) as RtpHeader };
}

function harness(codec: "opus" | "vp8", jitterMs = 50) {
	let now = 1_000_000;
	const frames: Frame[] = [];
	const holes: Hole[] = [];
	let keyRequests = 0;
	const d = new Depacketizer({
		codec,
		clockRate: codec === "opus" ? 48000 : 90000,
		jitterMs,
		now: () => now,
		onFrame: (f) => frames.push(f),
		onHole: (h) => holes.push(h),
		onKeyframeNeeded: () => keyRequests++,
	});
	return {
		d,
		frames,
		holes,
		keyRequests: () => keyRequests,
		advance: (ms: number) => {
			now += ms;
		},
		push: (p: ReturnType<typeof packet>) => d.push(p.buf, p.header),
	};
}

/** A VP8 picture of `n` packets: descriptor S bit on the first, marker on the last; key frames with P=0. */
function vp8Picture(seq: number, ts: number, n: number, key: boolean, ssrc = 1) {
	const out: ReturnType<typeof packet>[] = [];
	for (let i = 0; i < n; i++) {
		const desc = i === 0 ? 0x10 : 0x00;
		const body =
			i === 0
				? key
					? [0x00, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, seq & 0xff]
					: [0x01, 0, 0, seq & 0xff]
				: [seq & 0xff, i];
		out.push(packet({ seq: seq + i, ts, ssrc, marker: i === n - 1, payload: [desc, ...body] }));
	}
	return out;
}

describe("rtp helpers", () => {
	it("compares sequence numbers across the wrap and unwraps timestamps across 2³²", () => {
		expect(seqDiff(2, 65534)).toBe(4);
		expect(seqDiff(65534, 2)).toBe(-4);
		const u = new TimestampUnwrapper();
		expect(u.unwrap(0xffff_ff00)).toBe(0xffff_ff00);
		expect(u.unwrap(0x0000_0100)).toBe(0x1_0000_0100);
		expect(u.unwrap(0xffff_ff80)).toBe(0xffff_ff80); // a late packet from before the wrap
		expect(u.unwrap(0x0000_0200)).toBe(0x1_0000_0200);
	});

	it("reads one-byte header extensions (RFC 8285)", () => {
		const head = Buffer.alloc(12);
		head[0] = 0x90;
		head[1] = 100;
		const ext = Buffer.from([0xbe, 0xde, 0x00, 0x02, 0x22, 1, 2, 3, 0x10, 9, 0, 0]);
		const p = Buffer.concat([head, ext, Buffer.from([7])]);
		const h = parseRtp(p) as RtpHeader;
		const m = headerExtensions(p, h);
		expect([...(m.get(2) ?? [])]).toEqual([1, 2, 3]);
		expect([...(m.get(1) ?? [])]).toEqual([9]);
		expect(h.payloadLength).toBe(1);
	});
});

describe("Depacketizer", () => {
	it("Opus: one frame per packet, reordered within the window, DTX gaps kept as gaps", () => {
		const h = harness("opus");
		h.push(packet({ seq: 10, ts: 0, payload: [1] }));
		h.push(packet({ seq: 12, ts: 1920, payload: [3] })); // 11 is late
		h.push(packet({ seq: 11, ts: 960, payload: [2] }));
		h.push(packet({ seq: 13, ts: 960 * 20, payload: [4] })); // DTX: 400 ms of silence without packets
		expect(h.frames.map((f) => f.timestamp)).toEqual([0, 960, 1920, 19200]);
		expect(h.frames.map((f) => f.data[0])).toEqual([1, 2, 3, 4]);
		expect(h.d.stats).toMatchObject({ packets: 4, lostPackets: 0, frames: 4 });
		expect(h.holes).toEqual([]);
	});

	it("Opus: a packet that never comes is a hole once the window passed; a late one is dropped", () => {
		const h = harness("opus", 50);
		h.push(packet({ seq: 1, ts: 0, payload: [1] }));
		h.advance(20);
		h.push(packet({ seq: 3, ts: 1920, payload: [3] }));
		expect(h.frames).toHaveLength(1); // waiting for 2
		h.advance(60);
		h.push(packet({ seq: 4, ts: 2880, payload: [4] }));
		expect(h.frames.map((f) => f.data[0])).toEqual([1, 3, 4]);
		h.push(packet({ seq: 2, ts: 960, payload: [2] })); // too late
		expect(h.d.stats).toMatchObject({ lostPackets: 1, latePackets: 1, frames: 3 });
		expect(h.holes).toEqual([{ from: 1_000_000, to: 1_000_020, cause: "network_loss", frames: 1 }]);
	});

	it("VP8: joins a picture's packets, drops the picture a loss broke and what follows until a key frame", () => {
		const h = harness("vp8", 30);
		const pics = [
			vp8Picture(100, 0, 3, true),
			vp8Picture(103, 3000, 2, false),
			vp8Picture(105, 6000, 2, false),
			vp8Picture(107, 9000, 2, false),
			vp8Picture(109, 12000, 3, true),
		];
		expect(h.keyRequests()).toBe(0);
		for (const p of pics[0] ?? []) h.push(p);
		expect(h.frames).toHaveLength(1);
		expect(h.frames[0]).toMatchObject({ key: true, width: 640, height: 480, firstSeq: 100, lastSeq: 102 });
		expect(h.frames[0]?.data.length).toBe(11 + 2 + 2); // descriptors removed
		for (const p of pics[1] ?? []) h.push(p);
		h.push((pics[2] as ReturnType<typeof packet>[])[0] as ReturnType<typeof packet>); // 106 is lost
		for (const p of pics[3] ?? []) h.push(p);
		expect(h.frames.map((f) => f.firstSeq)).toEqual([100, 103]); // waiting for 106
		h.advance(50);
		const [first, ...rest] = pics[4] ?? [];
		h.push(first as ReturnType<typeof packet>);
		// 106 given up: 105's picture is incomplete, 107's references it: both dropped, a key frame asked for.
		expect(h.frames.map((f) => f.firstSeq)).toEqual([100, 103]);
		expect(h.keyRequests()).toBeGreaterThan(0);
		for (const p of rest) h.push(p);
		expect(h.frames.map((f) => f.firstSeq)).toEqual([100, 103, 109]);
		expect(h.d.stats).toMatchObject({ lostPackets: 1, droppedFrames: 2, frames: 3 });
		expect(h.holes).toHaveLength(1);
		expect(h.holes[0]).toMatchObject({ cause: "network_loss", frames: 2 });
	});

	it("VP8: waits for a key frame first; a new SSRC (a layer switch or a sender restart) continues the clock", () => {
		const h = harness("vp8");
		for (const p of vp8Picture(1, 90_000, 1, false)) h.push(p);
		expect(h.frames).toHaveLength(0);
		expect(h.keyRequests()).toBe(1);
		for (const p of vp8Picture(2, 93_000, 1, true)) h.push(p);
		for (const p of vp8Picture(3, 96_000, 1, false)) h.push(p);
		h.advance(100);
		// Another stream: different SSRC, sequence and timestamp base.
		for (const p of vp8Picture(40_000, 5_000_000, 1, false, 2)) h.push(p);
		for (const p of vp8Picture(40_001, 5_003_000, 1, true, 2)) h.push(p);
		for (const p of vp8Picture(40_002, 5_006_000, 1, false, 2)) h.push(p);
		expect(h.d.stats.restarts).toBe(1);
		const ts = h.frames.map((f) => f.timestamp);
		expect(ts.slice(0, 2)).toEqual([0, 3000]);
		// The new stream's first frame lands ~100 ms (9000 ticks) after the last one, then keeps its own spacing.
		expect(ts[2]).toBe(3000 + 9000);
		expect(ts[3]).toBe(3000 + 9000 + 3000);
		expect(h.frames.map((f) => f.ssrc)).toEqual([1, 1, 2, 2]);
	});

	it("keeps one clock across the 32-bit timestamp and 16-bit sequence wraps", () => {
		const h = harness("opus");
		let ts = 0xffff_ffff - 960 * 2;
		for (let i = 0; i < 6; i++) {
			h.push(packet({ seq: 65533 + i, ts, payload: [i] }));
			ts = (ts + 960) >>> 0;
		}
		expect(h.frames.map((f) => f.timestamp)).toEqual([0, 960, 1920, 2880, 3840, 4800]);
		expect(h.d.stats).toMatchObject({ lostPackets: 0, restarts: 0 });
	});
});

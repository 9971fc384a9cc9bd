import { describe, expect, it } from "vitest";
import { Depacketizer } from "./Depacketizer.js";
import type { Frame, Hole } from "./DepacketizerTypes.js";
import { avcCodecString, avcDecoderConfig, NAL, nalType, parsePayload, parseSps, toAvcc } from "./H264.js";
import { parseRtp, type RtpHeader } from "./rtp.js";

/** Real parameter sets from libx264 (640×480 constrained baseline; 1280×720 high). */
const SPS = Buffer.from("6742c01fd900a03db0110000030001000003003c0f183248", "hex");
const PPS = Buffer.from("68cb83cb20", "hex");
const SPS_HIGH = Buffer.from("6764001facd9405005bb0110000003001000000303c0f1831960", "hex");

function rtp(o: { seq: number; ts: number; marker?: boolean; ssrc?: number; payload: Buffer }): {
	buf: Buffer;
	header: RtpHeader;
} {
	const head = Buffer.alloc(12);
	head[0] = 0x80;
	head[1] = 102 | (o.marker ? 0x80 : 0);
	head.writeUInt16BE(o.seq & 0xffff, 2);
	head.writeUInt32BE(o.ts >>> 0, 4);
	head.writeUInt32BE(o.ssrc ?? 7, 8);
	const buf = Buffer.concat([head, o.payload]);
	return { buf, header: parseRtp(buf) as RtpHeader };
}

/** A slice NAL unit of `size` bytes: IDR (type 5) or not (type 1), its bytes marking which picture it is. */
function slice(idr: boolean, size: number, tag: number): Buffer {
	const b = Buffer.alloc(size, tag & 0xff);
	b[0] = idr ? 0x65 : 0x41;
	return b;
}

function stapA(nals: Buffer[]): Buffer {
	return Buffer.concat([
		Buffer.from([0x78]),
		...nals.flatMap((n) => [Buffer.from([n.length >> 8, n.length & 0xff]), n]),
	]);
}

/** FU-A packets of one NAL unit, `max` payload bytes each. */
function fuA(nal: Buffer, max: number): Buffer[] {
	const out: Buffer[] = [];
	const body = nal.subarray(1);
	for (let i = 0; i < body.length; i += max) {
		const start = i === 0;
		const end = i + max >= body.length;
		const ind = ((nal[0] as number) & 0xe0) | NAL.FU_A;
		const hdr = (start ? 0x80 : 0) | (end ? 0x40 : 0) | ((nal[0] as number) & 0x1f);
		out.push(Buffer.concat([Buffer.from([ind, hdr]), body.subarray(i, i + max)]));
	}
	return out;
}

/** The RTP packets of one picture, as Chromium sends them: SPS+PPS in a STAP-A before an IDR, big slices in FU-A. */
function picture(seq: number, ts: number, idr: boolean, size: number, withParams = idr) {
	const payloads: Buffer[] = [];
	if (withParams) payloads.push(stapA([SPS, PPS]));
	const s = slice(idr, size, seq);
	if (size <= 1000) payloads.push(s);
	else payloads.push(...fuA(s, 1000));
	return payloads.map((payload, i) => rtp({ seq: seq + i, ts, marker: i === payloads.length - 1, payload }));
}

function harness(jitterMs = 50, sprop?: string) {
	let now = 1_000_000;
	const frames: Frame[] = [];
	const holes: Hole[] = [];
	let keyRequests = 0;
	const d = new Depacketizer({
		codec: "h264",
		clockRate: 90000,
		jitterMs,
		spropParameterSets: sprop,
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
		push: (ps: ReturnType<typeof rtp>[]) => {
			for (const p of ps) d.push(p.buf, p.header);
		},
	};
}

/** The NAL unit types of an AVCC access unit. */
function types(au: Buffer): number[] {
	const out: number[] = [];
	for (let i = 0; i < au.length; ) {
		const n = au.readUInt32BE(i);
		out.push((au[i + 4] as number) & 0x1f);
		i += 4 + n;
	}
	return out;
}

describe("H.264 payloads and parameter sets", () => {
	it("reads the picture size and profile from real SPSs", () => {
		expect(parseSps(SPS)).toMatchObject({ profileIdc: 66, levelIdc: 31, width: 640, height: 480 });
		expect(parseSps(SPS_HIGH)).toMatchObject({ profileIdc: 100, width: 1280, height: 720, chromaFormatIdc: 1 });
		expect(parseSps(PPS)).toBeUndefined();
		expect(parseSps(SPS.subarray(0, 6))).toBeUndefined();
		expect(avcCodecString(SPS)).toBe("avc1.42c01f");
	});

	it("builds the avcC record (4-byte lengths, one SPS, one PPS; high profiles with their chroma fields)", () => {
		const c = Buffer.from(avcDecoderConfig(SPS, PPS));
		expect([...c.subarray(0, 6)]).toEqual([1, 0x42, 0xc0, 0x1f, 0xff, 0xe1]);
		expect(c.readUInt16BE(6)).toBe(SPS.length);
		expect(c.subarray(8, 8 + SPS.length).equals(SPS)).toBe(true);
		expect(c.length).toBe(11 + SPS.length + PPS.length);
		expect(avcDecoderConfig(SPS_HIGH, PPS).length).toBe(11 + SPS_HIGH.length + PPS.length + 4);
	});

	it("splits STAP-A, reassembles FU-A headers, refuses what mode 1 does not allow", () => {
		expect(parsePayload(stapA([SPS, PPS]))).toEqual({ kind: "nals", nals: [SPS, PPS] });
		const [first, last] = fuA(slice(true, 1500, 1), 1000) as [Buffer, Buffer];
		expect(parsePayload(first)).toMatchObject({ kind: "fragment", start: true, end: false, header: 0x65 });
		expect(parsePayload(last)).toMatchObject({ kind: "fragment", start: false, end: true });
		expect(parsePayload(Buffer.from([0x78, 0, 9, 1]))).toMatchObject({ kind: "invalid" });
		expect(parsePayload(Buffer.from([0x79, 0, 0]))).toMatchObject({ kind: "invalid" }); // STAP-B
		expect(parsePayload(Buffer.from([0x7d, 0x80]))).toMatchObject({ kind: "invalid" }); // FU-B
		expect(nalType(toAvcc([SPS]).subarray(4))).toBe(NAL.SPS);
	});
});

describe("Depacketizer (H.264)", () => {
	it("joins STAP-A + FU-A into AVCC access units; key frames carry SPS/PPS and the picture size", () => {
		const h = harness();
		h.push(picture(1, 1000, true, 3500)); // STAP-A + 4 FU-A
		h.push(picture(6, 4000, false, 800)); // one single NAL packet
		h.push(picture(7, 7000, false, 2500)); // 3 FU-A
		expect(h.frames.map((f) => f.key)).toEqual([true, false, false]);
		const [k, d1, d2] = h.frames as [Frame, Frame, Frame];
		expect(types(k.data)).toEqual([NAL.SPS, NAL.PPS, NAL.IDR]);
		expect(k.data.length).toBe(4 + SPS.length + 4 + PPS.length + 4 + 3500);
		expect(k.data.subarray(k.data.length - 3500).equals(slice(true, 3500, 1))).toBe(true);
		expect(k).toMatchObject({ width: 640, height: 480, firstSeq: 1, lastSeq: 5 });
		expect(k.parameterSets?.sps.equals(SPS)).toBe(true);
		expect(types(d1.data)).toEqual([1]);
		expect(d2.data.subarray(4).equals(slice(false, 2500, 7))).toBe(true);
		expect(h.frames.map((f) => f.timestamp)).toEqual([0, 3000, 6000]);
		expect(h.d.stats).toMatchObject({ frames: 3, droppedFrames: 0, lostPackets: 0 });
	});

	it("waits for an IDR; an IDR without SPS/PPS uses those seen before, or sprop-parameter-sets", () => {
		const h = harness();
		h.push(picture(1, 1000, false, 500)); // a delta first: dropped, a key frame asked for
		expect(h.frames).toHaveLength(0);
		expect(h.keyRequests()).toBe(1);
		h.push(picture(2, 4000, true, 500, false)); // IDR without parameter sets, none known: not decodable
		expect(h.frames).toHaveLength(0);
		h.push([rtp({ seq: 3, ts: 7000, payload: stapA([SPS, PPS]) })]); // parameter sets alone (own timestamp)
		h.push(picture(4, 10000, true, 500, false));
		expect(h.frames).toHaveLength(1);
		expect(types((h.frames[0] as Frame).data)).toEqual([NAL.SPS, NAL.PPS, NAL.IDR]);

		const s = harness(50, `${SPS.toString("base64")},${PPS.toString("base64")}`);
		s.push(picture(1, 1000, true, 500, false));
		expect(s.frames).toHaveLength(1);
		expect(s.frames[0]?.key).toBe(true);
		expect(s.frames[0]?.width).toBe(640);
	});

	it("puts reordered packets back in order", () => {
		const h = harness();
		const ps = [...picture(1, 1000, true, 2500), ...picture(5, 4000, false, 1800)];
		const order = [0, 2, 1, 3, 5, 4];
		h.push(order.map((i) => ps[i] as ReturnType<typeof rtp>));
		expect(h.frames.map((f) => f.key)).toEqual([true, false]);
		expect(h.d.stats.lostPackets).toBe(0);
		expect((h.frames[0] as Frame).data.subarray(-2500).equals(slice(true, 2500, 1))).toBe(true);
	});

	it("a lost fragment drops its picture and every one after it until the next IDR, asks for one, reports the hole", () => {
		const h = harness(50);
		h.push(picture(1, 1000, true, 800)); // seq 1-2
		h.advance(33);
		const lossy = picture(3, 4000, false, 2500); // seq 3-5, the middle one lost
		h.push([lossy[0], lossy[2]] as ReturnType<typeof rtp>[]);
		h.advance(60);
		h.push(picture(6, 7000, false, 800)); // the gap is given up now: this delta is unusable
		const requestsAfterLoss = h.keyRequests();
		expect(requestsAfterLoss).toBeGreaterThanOrEqual(1);
		h.push(picture(7, 10000, false, 800));
		expect(h.frames).toHaveLength(1);
		h.advance(33);
		h.push(picture(8, 13000, true, 800));
		expect(h.frames.map((f) => f.key)).toEqual([true, true]);
		expect(h.d.stats.lostPackets).toBe(1);
		// The lossy picture once (not again for its last fragment), then the two deltas.
		expect(h.d.stats.droppedFrames).toBe(3);
		expect(h.holes).toHaveLength(1);
		expect(h.holes[0]).toMatchObject({ cause: "network_loss", frames: 3 });
	});

	it("unwraps the RTP timestamp across 2^32 and the sequence number across 2^16", () => {
		const h = harness();
		const ts0 = 0xffff_ffff - 4000;
		h.push(picture(65534, ts0, true, 1500)); // STAP-A + 2 FU-A: seq 65534, 65535, 0
		h.push(picture(1, ts0 + 3000, false, 500));
		h.push(picture(2, (ts0 + 6000) >>> 0, false, 500)); // past 2^32
		h.push(picture(3, (ts0 + 9000) >>> 0, false, 500));
		expect(h.frames.map((f) => f.timestamp)).toEqual([0, 3000, 6000, 9000]);
		expect(h.d.stats).toMatchObject({ frames: 4, lostPackets: 0, restarts: 0 });
	});

	it("an access unit without a marker ends at the next timestamp; a broken STAP-A is dropped like a loss", () => {
		const h = harness();
		h.push([
			rtp({ seq: 1, ts: 1000, payload: stapA([SPS, PPS]) }),
			rtp({ seq: 2, ts: 1000, payload: slice(true, 300, 1) }),
		]);
		h.push([rtp({ seq: 3, ts: 4000, marker: true, payload: slice(false, 300, 2) })]);
		expect(h.frames.map((f) => f.key)).toEqual([true, false]);
		h.push([rtp({ seq: 4, ts: 7000, marker: true, payload: Buffer.from([0x78, 0, 50, 1, 2]) })]);
		h.push(picture(5, 10000, false, 300));
		expect(h.frames).toHaveLength(2);
		expect(h.d.stats.droppedFrames).toBe(2);
		expect(h.keyRequests()).toBeGreaterThanOrEqual(1);
	});
});

import { describe, expect, it } from "vitest";
import { isRtcp, isVp8KeyframeStart, parseRtp } from "./rtp.js";

function rtp(opts: { pt?: number; ssrc?: number; csrc?: number; ext?: Buffer; padding?: number; payload: number[] }) {
	const csrc = opts.csrc ?? 0;
	const head = Buffer.alloc(12 + csrc * 4);
	head[0] = 0x80 | (opts.ext ? 0x10 : 0) | (opts.padding ? 0x20 : 0) | csrc;
	head[1] = (opts.pt ?? 101) | 0x80;
	head.writeUInt16BE(4242, 2);
	head.writeUInt32BE(90000, 4);
	head.writeUInt32BE(opts.ssrc ?? 1234, 8);
	const pad = opts.padding ? Buffer.from([...Array(opts.padding - 1).fill(0), opts.padding]) : Buffer.alloc(0);
	return Buffer.concat([head, opts.ext ?? Buffer.alloc(0), Buffer.from(opts.payload), pad]);
}

describe("rtp", () => {
	it("parses the header, CSRCs, extension and padding", () => {
		const ext = Buffer.from([0xbe, 0xde, 0x00, 0x01, 1, 2, 3, 4]);
		const p = rtp({ pt: 100, ssrc: 99, csrc: 2, ext, padding: 3, payload: [9, 9, 9] });
		const h = parseRtp(p);
		expect(h).toMatchObject({ payloadType: 100, marker: true, sequence: 4242, timestamp: 90000, ssrc: 99 });
		expect(h?.payloadOffset).toBe(12 + 8 + 8);
		expect(h?.payloadLength).toBe(3);
	});

	it("refuses what is not RTP v2 and tells RTCP apart", () => {
		expect(parseRtp(Buffer.from([0x40, 0, 0, 0]))).toBeUndefined();
		expect(parseRtp(Buffer.alloc(20))).toBeUndefined();
		expect(isRtcp(Buffer.from([0x80, 200, 0, 6]))).toBe(true); // SR
		expect(isRtcp(rtp({ payload: [0] }))).toBe(false);
	});

	it("finds the start of a VP8 key frame (RFC 7741), with and without extensions", () => {
		const key = (desc: number[], header: number) => {
			const p = rtp({ payload: [...desc, header, 0, 0] });
			return isVp8KeyframeStart(p, parseRtp(p) as NonNullable<ReturnType<typeof parseRtp>>);
		};
		expect(key([0x10], 0x00)).toBe(true); // S=1, PID=0, P=0
		expect(key([0x10], 0x01)).toBe(false); // inter frame
		expect(key([0x00], 0x00)).toBe(false); // not the start of a partition
		expect(key([0x11], 0x00)).toBe(false); // PID 1
		expect(key([0x90, 0x80, 0x81, 0x23], 0x00)).toBe(true); // X, I with a 15-bit PictureID
		expect(key([0x90, 0x80, 0x05], 0x00)).toBe(true); // X, I with a 7-bit PictureID
		expect(key([0x90, 0xe0, 0x05, 0x07, 0x20], 0x00)).toBe(true); // X, I, L, T
		expect(key([0x90, 0xe0, 0x05, 0x07, 0x20], 0x01)).toBe(false);
	});
});

import { describe, expect, it } from "vitest";
import { probeMedia, vp8Frames } from "../test/helpers/webm.js";
import type { Frame } from "./DepacketizerTypes.js";
import { MatroskaWriter } from "./MatroskaWriter.js";

function vp8Frame(data: Buffer, i: number): Frame {
	const key = ((data[0] as number) & 1) === 0;
	return {
		data,
		key,
		timestamp: i * 3000,
		rtpTimestamp: i * 3000,
		ssrc: 1,
		firstSeq: i,
		lastSeq: i,
		receivedAt: i * 33,
		...(key ? { width: data.readUInt16LE(6) & 0x3fff, height: data.readUInt16LE(8) & 0x3fff } : {}),
	};
}

/** Reads an EBML element at `at`: its ID, its body's start and end. */
function element(b: Buffer, at: number): { id: number; start: number; end: number } {
	let idLen = 1;
	while (!((b[at] as number) & (0x80 >> (idLen - 1)))) idLen++;
	const id = b.readUIntBE(at, idLen);
	const first = b[at + idLen] as number;
	let len = 1;
	while (!(first & (0x80 >> (len - 1)))) len++;
	let size = first & (0xff >> len);
	for (let i = 1; i < len; i++) size = size * 256 + (b[at + idLen + i] as number);
	const start = at + idLen + len;
	return { id, start, end: start + size };
}

/** The CueClusterPosition of every CuePoint of a Cues element. */
function cuePositions(cues: Buffer): number[] {
	const out: number[] = [];
	const walk = (from: number, to: number) => {
		for (let at = from; at < to; ) {
			const e = element(cues, at);
			if (e.id === 0xbb || e.id === 0xb7) walk(e.start, e.end);
			if (e.id === 0xf1) out.push(cues.readUIntBE(e.start, e.end - e.start));
			at = e.end;
		}
	};
	const top = element(cues, 0);
	walk(top.start, top.end);
	return out;
}

function write(codec: "vp8" | "opus", frames: Frame[]): { file: Buffer; writer: MatroskaWriter } {
	const chunks: Buffer[] = [];
	const writer = new MatroskaWriter({
		codec,
		clockRate: codec === "opus" ? 48000 : 90000,
		channels: 1,
		onBytes: (b) => chunks.push(Buffer.from(b)),
	});
	for (const f of frames) writer.add(f);
	void writer.finish();
	return { file: Buffer.concat(chunks), writer };
}

describe("MatroskaWriter (our EBML writer)", () => {
	it("VP8: a WebM that ffmpeg decodes without an error, every frame a packet at its time, Cues at the end", async () => {
		const frames = vp8Frames("160x120", 3).map(vp8Frame);
		const { file, writer } = write("vp8", frames);
		expect(writer.frames).toBe(90);
		expect(writer.bytes).toBe(file.length);
		const p = await probeMedia(file);
		expect(p.decodeErrors).toBe("");
		expect(p.codecs).toEqual(["vp8"]);
		expect(p.packets).toBe(90);
		expect(p.seconds).toBeCloseTo(90 / 30, 1);
		// One cue per key frame's cluster, each pointing at a Cluster's ID (positions count from the Segment's data).
		const cues = file.lastIndexOf(Buffer.from([0x1c, 0x53, 0xbb, 0x6b]));
		expect(cues).toBe(writer.frameEnds.at(-1) as number);
		const segmentData = file.indexOf(Buffer.from([0x18, 0x53, 0x80, 0x67])) + 5;
		const positions = cuePositions(file.subarray(cues));
		expect(positions).toHaveLength(3);
		for (const pos of positions)
			expect(file.subarray(segmentData + pos, segmentData + pos + 4)).toEqual(Buffer.from([0x1f, 0x43, 0xb6, 0x75]));
	});

	it("a file cut right after any block plays: every block before the cut decodes", async () => {
		const frames = vp8Frames("160x120", 2).map(vp8Frame);
		const { file, writer } = write("vp8", frames);
		for (const n of [1, 31, 47]) {
			const cut = file.subarray(0, writer.frameEnds[n - 1]);
			const p = await probeMedia(cut);
			expect(p.decodeErrors).toBe("");
			expect(p.packets).toBe(n);
		}
	});

	it("Opus: 20 ms frames joined 5 to a block; a gap (DTX) starts a new block; every frame accounted for", async () => {
		// Silence-like Opus frames: TOC 0x78 (SILK WB 20 ms, mono, one frame) and a few bytes.
		const frames: Frame[] = [];
		let ts = 0;
		for (let i = 0; i < 53; i++) {
			if (i === 20) ts += 48_000; // a second of DTX
			frames.push({
				data: Buffer.from([0x78, 0xff, 0xfe, i & 0xff]),
				key: true,
				timestamp: ts,
				rtpTimestamp: ts,
				ssrc: 1,
				firstSeq: i,
				lastSeq: i,
				receivedAt: i * 20,
			});
			ts += 960;
		}
		const chunks: Buffer[] = [];
		const writer = new MatroskaWriter({
			codec: "opus",
			clockRate: 48000,
			channels: 1,
			onBytes: (b) => chunks.push(Buffer.from(b)),
		});
		for (const f of frames) writer.add(f);
		expect(writer.framesAdded).toBe(53);
		await writer.finish();
		expect(writer.frames).toBe(53);
		expect(writer.frameEnds).toHaveLength(53);
		const p = await probeMedia(Buffer.concat(chunks));
		expect(p.codecs).toEqual(["opus"]);
		// 20 frames → 4 blocks, then 33 → 7 blocks (the last of 3 frames).
		expect(p.packets).toBe(11);
	});
});

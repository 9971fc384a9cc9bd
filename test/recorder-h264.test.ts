import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ObjectWritten, OpenTrackMessage, TrackFailed } from "../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../contracts/StorageTargetTypes.js";
import { RecorderProcess } from "../server/recording/RecorderProcess.js";
import { startBucket, type TestBucket, targetOf } from "./helpers/bucket.js";
import { probe, sendRtp } from "./helpers/rtp-sender.js";
import { probeMedia } from "./helpers/webm.js";

const H264 = { kind: "video", mimeType: "video/H264", payloadType: 102, clockRate: 90000 } as const;
const MiB = 1024 * 1024;

/**
 * H.264 end to end through the recorder child, with real parts: ffmpeg's libx264 (zerolatency, baseline, the RTP
 * muxer's packetization-mode 1: single NAL units and FU-A) → the recorder's depacketizer → Matroska (`.mkv`,
 * recorder/MatroskaWriter) → the S3 API (moto). The objects decode with ffmpeg, hold every frame, and survive kill -9 like VP8.
 */
describe("recorder: H.264", () => {
	let bucket: TestBucket;
	let s3: S3Client;
	let target: StorageTarget;
	let recorder: RecorderProcess;
	const objects: ObjectWritten[] = [];
	const failures: TrackFailed[] = [];
	let stderr = "";

	beforeAll(async () => {
		bucket = await startBucket("customer");
		s3 = bucket.s3;
		target = targetOf(bucket, "rec");
		recorder = await RecorderProcess.create({
			config: { partSizeBytes: 5 * MiB, logLevel: "warn" },
			stderr: "pipe",
		});
		const collect = () =>
			recorder.stderr?.on("data", (d: Buffer) => {
				stderr = (stderr + d.toString()).slice(-20_000);
			});
		collect();
		recorder.on("ready", collect);
		recorder.on("objectWritten", (o) => objects.push(o));
		recorder.on("trackFailed", (f) => failures.push(f));
	});

	afterAll(async () => {
		await recorder?.close();
		await bucket?.stop();
		if (failures.length) console.error("recorder stderr:", stderr);
	});

	function track(trackId: string, ssrc: number, sessionId: string): Omit<OpenTrackMessage, "type" | "requestId"> {
		return {
			trackId,
			key: { prefix: "rec", meetingId: "meeting-1", sessionId, person: "p-264", kind: "camera" },
			codec: H264,
			ssrc,
			target,
			options: { allowHttp: true, allowPrivate: true },
		};
	}

	async function download(key: string): Promise<Buffer> {
		const res = await s3.send(new GetObjectCommand({ Bucket: "customer", Key: key }));
		return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
	}

	it("records real H.264 RTP into one .mkv that decodes without an error and holds every frame sent", async () => {
		const ports = await recorder.openTrack(track("h-basic", 7001, "s-h264"));
		const seconds = 6;
		const sender = sendRtp({ kind: "video", ...ports, seconds, payloadType: 102, ssrc: 7001, videoCodec: "h264" });
		expect(await sender.done).toBe(0);
		const stats = await recorder.closeTrack("h-basic");
		const o = objects.find((x) => x.trackId === "h-basic") as ObjectWritten;
		expect(o.key).toBe("rec/meeting-1/s-h264/p-264-camera-1.mkv");
		const head = await s3.send(new HeadObjectCommand({ Bucket: "customer", Key: o.key }));
		expect(head.ContentType).toBe("video/x-matroska");
		const bytes = await download(o.key);
		expect(bytes.length).toBe(o.size);
		expect(createHash("sha256").update(bytes).digest("hex")).toBe(o.sha256);
		const full = await probeMedia(bytes);
		expect(full.decodeErrors).toBe("");
		expect(full.codecs).toEqual(["h264"]);
		const p = probe(bytes);
		expect(p).toMatchObject({ codec: "h264", width: 640, height: 480 });
		// ffmpeg sent 30 fps for `seconds` (its first frame an IDR): every one of them is in the object.
		expect(stats).toMatchObject({ framesReceived: seconds * 30, framesWritten: seconds * 30, framesDropped: 0 });
		expect(p.packets).toBe(seconds * 30);
		expect(o.frames).toBe(seconds * 30);
		expect(Math.abs(p.duration - seconds)).toBeLessThan(0.5);
		expect(failures).toEqual([]);
	});

	/**
	 * kill -9 of the recorder at a moment of an H.264 recording: a new recorder's recover completes the object from its
	 * checkpoints (and its parts, at a high bitrate), ending at most 5 s before the kill; the .mkv decodes.
	 */
	async function crashAt(sessionId: string, killAfterMs: number, highBitrate: boolean): Promise<number> {
		let parts = 0;
		const onPart = (p: { trackId: string }) => {
			if (p.trackId === `${sessionId}-v`) parts++;
		};
		recorder.on("partUploaded", onPart);
		const ssrc = 7100 + Math.floor(Math.random() * 800);
		const ports = await recorder.openTrack(track(`${sessionId}-v`, ssrc, sessionId));
		const sender = sendRtp({
			kind: "video",
			...ports,
			seconds: 60,
			payloadType: 102,
			ssrc,
			videoCodec: "h264",
			highBitrate,
		});
		let killedAt: number;
		try {
			await new Promise((r) => setTimeout(r, killAfterMs));
			const crash = once(recorder, "crashed");
			killedAt = Date.now();
			process.kill(recorder.pid as number, "SIGKILL");
			await crash;
		} finally {
			sender.stop();
			recorder.off("partUploaded", onPart);
		}
		// At a high bitrate, parts were stored before the kill: the object is those parts plus the checkpointed tail.
		if (highBitrate) expect(parts).toBeGreaterThan(0);
		await recorder.restart();
		const recovered: ObjectWritten[] = [];
		const onObject = (o: ObjectWritten) => {
			if (o.recovered) recovered.push(o);
		};
		recorder.on("objectWritten", onObject);
		const result = await recorder.recover({
			target,
			prefix: "rec",
			sessions: [{ meetingId: "meeting-1", sessionId }],
			options: { allowHttp: true, allowPrivate: true },
		});
		recorder.off("objectWritten", onObject);
		expect(result).toMatchObject({ completed: 1, failed: 0 });
		const o = recovered[0] as ObjectWritten;
		expect(o).toMatchObject({ seq: 1, recovered: true, truncated: true });
		expect(o.key).toMatch(/-camera-1\.mkv$/);
		const lostS = (killedAt - Date.parse(o.endedAt)) / 1000;
		expect(lostS).toBeLessThanOrEqual(5);
		const bytes = await download(o.key);
		expect(bytes.length).toBe(o.size);
		const full = await probeMedia(bytes);
		expect(full.decodeErrors).toBe("");
		expect(full.codecs).toEqual(["h264"]);
		if (o.frames !== undefined) expect(full.packets).toBe(o.frames);
		const left = await s3.send(new ListObjectsV2Command({ Bucket: "customer", Prefix: `rec/meeting-1/${sessionId}/` }));
		expect((left.Contents ?? []).map((c) => c.Key)).toEqual([o.key]);
		return lostS;
	}

	it("kill -9 at three moments (one mid-upload, with parts): each .mkv is recovered, ≤ 5 s lost, and decodes", async () => {
		const lost: number[] = [];
		lost.push(await crashAt("s-h264-crash-1", 3000 + Math.floor(Math.random() * 3000), false));
		lost.push(await crashAt("s-h264-crash-2", 3000 + Math.floor(Math.random() * 3000), false));
		lost.push(await crashAt("s-h264-crash-3", 9000, true));
		console.log(`H.264 crash: seconds lost per kill ${lost.map((s) => s.toFixed(2)).join(", ")}`);
	});

	/**
	 * Chromium's encoder lowers its resolution under load: a new SPS arrives in band with the next IDR. The object's
	 * header (avcC) describes the first one, so the recorder starts a new object at that key frame: two objects, each
	 * opening as written with its own size, no frame lost.
	 */
	it("a resolution change mid-track (new SPS at an IDR) starts a new object; both decode with their own size", async () => {
		const ssrc = 7950;
		const ports = await recorder.openTrack(track("h-resize", ssrc, "s-h264-resize"));
		const frames = [...annexBFrames("640x480"), ...annexBFrames("320x240")];
		const sock = createSocket("udp4");
		let seq = 1000;
		const start = Date.now();
		for (let i = 0; i < frames.length; i++) {
			const packets = packetize(frames[i] as Buffer[]);
			for (let k = 0; k < packets.length; k++) {
				const header = Buffer.alloc(12);
				header[0] = 0x80;
				header[1] = (k === packets.length - 1 ? 0x80 : 0) | 102;
				header.writeUInt16BE(seq++ & 0xffff, 2);
				header.writeUInt32BE((i * 3000) >>> 0, 4);
				header.writeUInt32BE(ssrc, 8);
				sock.send(Buffer.concat([header, packets[k] as Buffer]), ports.rtpPort, "127.0.0.1");
			}
			// 30 fps in real time, so the recorder sees a live camera, not a burst.
			const due = start + ((i + 1) * 1000) / 30;
			await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
		}
		sock.close();
		const stats = await recorder.closeTrack("h-resize");
		expect(stats).toMatchObject({ framesReceived: frames.length, framesWritten: frames.length, framesDropped: 0 });
		const mine = objects.filter((x) => x.trackId === "h-resize").sort((a, b) => a.seq - b.seq);
		expect(mine.map((o) => o.key)).toEqual([
			"rec/meeting-1/s-h264-resize/p-264-camera-1.mkv",
			"rec/meeting-1/s-h264-resize/p-264-camera-2.mkv",
		]);
		const sizes: string[] = [];
		for (const o of mine) {
			const bytes = await download(o.key);
			const full = await probeMedia(bytes);
			expect(full.decodeErrors).toBe("");
			const p = probe(bytes);
			sizes.push(`${p.width}x${p.height}`);
			expect(p.packets).toBe(o.frames);
		}
		expect(sizes).toEqual(["640x480", "320x240"]);
		expect(mine.reduce((n, o) => n + (o.frames ?? 0), 0)).toBe(frames.length);
	});
});

/** 2 s of libx264 (baseline, zerolatency, an IDR every second) as access units of Annex B NAL units. */
function annexBFrames(size: string): Buffer[][] {
	const res = spawnSync(
		"ffmpeg",
		[
			...["-v", "error", "-f", "lavfi", "-i", `testsrc=size=${size}:rate=30:duration=2`],
			...["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline"],
			...["-pix_fmt", "yuv420p", "-g", "30", "-bf", "0", "-f", "h264", "pipe:1"],
		],
		{ maxBuffer: 64 * 1024 * 1024 },
	);
	if (res.status !== 0) throw new Error(`ffmpeg failed: ${res.stderr.toString()}`);
	const nals: Buffer[] = [];
	const data = res.stdout;
	let from = -1;
	for (let i = 0; i + 3 <= data.length; i++) {
		if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
			if (from >= 0) nals.push(trimZeros(data.subarray(from, i)));
			from = i + 3;
			i += 2;
		}
	}
	if (from >= 0) nals.push(data.subarray(from));
	// One slice per picture (x264's default here): an access unit ends with its slice (types 1 and 5).
	const frames: Buffer[][] = [];
	let au: Buffer[] = [];
	for (const n of nals) {
		const type = (n[0] as number) & 0x1f;
		if (type === 9 || type === 6) continue; // access unit delimiters and SEI carry no picture
		au.push(n);
		if (type === 1 || type === 5) {
			frames.push(au);
			au = [];
		}
	}
	return frames;
}

function trimZeros(b: Buffer): Buffer {
	let end = b.length;
	while (end > 0 && b[end - 1] === 0) end--;
	return b.subarray(0, end);
}

/** RFC 6184 packetization mode 1: a NAL unit that fits is sent alone, a larger one as FU-A fragments. */
function packetize(au: Buffer[]): Buffer[] {
	const MAX = 1100;
	const out: Buffer[] = [];
	for (const nal of au) {
		if (nal.length <= MAX) {
			out.push(nal);
			continue;
		}
		const header = nal[0] as number;
		const body = nal.subarray(1);
		for (let off = 0; off < body.length; off += MAX) {
			const chunk = body.subarray(off, off + MAX);
			const startBit = off === 0 ? 0x80 : 0;
			const endBit = off + MAX >= body.length ? 0x40 : 0;
			out.push(Buffer.concat([Buffer.from([(header & 0xe0) | 28, startBit | endBit | (header & 0x1f)]), chunk]));
		}
	}
	return out;
}

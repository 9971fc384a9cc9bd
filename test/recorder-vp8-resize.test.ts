import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ObjectWritten, TrackFailed } from "../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../contracts/StorageTargetTypes.js";
import { RecorderProcess } from "../server/recording/RecorderProcess.js";
import { startBucket, type TestBucket, targetOf } from "./helpers/bucket.js";
import { probeMedia, vp8Frames } from "./helpers/webm.js";

const VP8 = { kind: "video", mimeType: "video/VP8", payloadType: 101, clockRate: 90000 } as const;

/**
 * Chromium's VP8 encoder lowers its resolution under load (and raises it again): the new size comes with the next
 * key frame. The recorder keeps writing the same WebM object (VP8 frames carry their own size; the track header keeps
 * the first); ffmpeg must decode the object across the change without an error, every frame in it.
 */
describe("recorder: VP8 resolution change mid-object", () => {
	let bucket: TestBucket;
	let s3: S3Client;
	let target: StorageTarget;
	let recorder: RecorderProcess;
	const objects: ObjectWritten[] = [];
	const failures: TrackFailed[] = [];

	beforeAll(async () => {
		bucket = await startBucket("customer");
		s3 = bucket.s3;
		target = targetOf(bucket, "rec");
		recorder = await RecorderProcess.create({ config: { logLevel: "warn" }, stderr: "ignore" });
		recorder.on("objectWritten", (o) => objects.push(o));
		recorder.on("trackFailed", (f) => failures.push(f));
	});

	afterAll(async () => {
		await recorder?.close();
		await bucket?.stop();
	});

	it("640×480 → 320×240 → 640×480 at key frames: one object, every frame in it, decodes without an error", async () => {
		const ssrc = 8150;
		const ports = await recorder.openTrack({
			trackId: "v-resize",
			key: { prefix: "rec", meetingId: "meeting-1", sessionId: "s-vp8-resize", person: "p-vp8", kind: "camera" },
			codec: VP8,
			ssrc,
			target,
			options: { allowHttp: true, allowPrivate: true },
		});
		const frames = [
			...vp8Frames("640x480", 1, "500k"),
			...vp8Frames("320x240", 1, "500k"),
			...vp8Frames("640x480", 1, "500k"),
		];
		const sock = createSocket("udp4");
		let seq = 4000;
		const start = Date.now();
		for (let i = 0; i < frames.length; i++) {
			const frame = frames[i] as Buffer;
			const MTU = 1100;
			for (let at = 0; at < frame.length; at += MTU) {
				const last = at + MTU >= frame.length;
				const header = Buffer.alloc(12);
				header[0] = 0x80;
				header[1] = (last ? 0x80 : 0) | VP8.payloadType;
				header.writeUInt16BE(seq++ & 0xffff, 2);
				header.writeUInt32BE((i * 3000) >>> 0, 4);
				header.writeUInt32BE(ssrc, 8);
				// RFC 7741 payload descriptor, one byte: S=1 (and PID 0) on a frame's first packet.
				const descriptor = Buffer.of(at === 0 ? 0x10 : 0x00);
				sock.send(Buffer.concat([header, descriptor, frame.subarray(at, at + MTU)]), ports.rtpPort, "127.0.0.1");
			}
			// 30 fps in real time, so the recorder sees a live camera, not a burst.
			const due = start + ((i + 1) * 1000) / 30;
			await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
		}
		sock.close();
		const stats = await recorder.closeTrack("v-resize");
		expect(stats).toMatchObject({ framesReceived: frames.length, framesWritten: frames.length, framesDropped: 0 });
		const mine = objects.filter((x) => x.trackId === "v-resize");
		expect(mine.map((o) => o.key)).toEqual(["rec/meeting-1/s-vp8-resize/p-vp8-camera-1.webm"]);
		const o = mine[0] as ObjectWritten;
		const res = await s3.send(new GetObjectCommand({ Bucket: "customer", Key: o.key }));
		const bytes = Buffer.from(
			await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
		);
		expect(createHash("sha256").update(bytes).digest("hex")).toBe(o.sha256);
		const full = await probeMedia(bytes);
		expect(full.decodeErrors).toBe("");
		expect(full.packets).toBe(frames.length);
		expect(o.frames).toBe(frames.length);
		// Every frame decodes, at the size it was encoded with, in order.
		expect(decodedSizes(bytes)).toEqual([
			...Array(30).fill("640x480"),
			...Array(30).fill("320x240"),
			...Array(30).fill("640x480"),
		]);
		expect(failures).toEqual([]);
	});
});

/** The size of each decoded frame, in order (ffmpeg decoding the object). */
function decodedSizes(bytes: Buffer): string[] {
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-resize-"));
	try {
		const file = path.join(dir, "object.webm");
		writeFileSync(file, bytes);
		const out = execFileSync(
			"ffprobe",
			["-v", "error", "-select_streams", "0", "-show_entries", "frame=width,height", "-of", "csv=p=0:s=x", file],
			{ maxBuffer: 16 * 1024 * 1024 },
		).toString();
		return out.trim().split("\n").filter(Boolean);
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
}

import { createHash } from "node:crypto";
import { once } from "node:events";
import {
	CreateMultipartUploadCommand,
	GetObjectCommand,
	ListMultipartUploadsCommand,
	type S3Client,
	UploadPartCommand,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RecorderProcess } from "../recorder/RecorderProcess.js";
import type { ObjectWritten, OpenTrackMessage, PartUploaded, TrackFailed } from "../recorder/RecorderProtocol.js";
import type { StorageTarget } from "../server/storage/StorageTargetTypes.js";
import { startBucket, type TestBucket, targetOf } from "./helpers/bucket.js";
import type { S3Server } from "./helpers/moto.js";
import { childrenOf, isRunning } from "./helpers/proc-fds.js";
import { probe, sendRtp } from "./helpers/rtp-sender.js";
import { waitFor } from "./helpers/wait.js";

const VIDEO = { kind: "video", mimeType: "video/VP8", payloadType: 101, clockRate: 90000 } as const;
const MiB = 1024 * 1024;

/**
 * The recorder when things go wrong, with real parts: the bucket (moto) stops
 * answering for longer than the buffer lasts, and the recorder child is
 * killed with SIGKILL mid-upload and a new one recovers its upload.
 */
describe("recorder under failure", () => {
	let bucket: TestBucket;
	let s3server: S3Server;
	let s3: S3Client;
	let target: StorageTarget;
	let recorder: RecorderProcess;
	let stderr = "";
	const events: { type: string; trackId?: string | undefined; o?: ObjectWritten; f?: TrackFailed }[] = [];
	const parts: PartUploaded[] = [];

	beforeAll(async () => {
		bucket = await startBucket("customer");
		s3server = bucket.server;
		s3 = bucket.s3;
		target = targetOf(bucket, "rec");
		recorder = await RecorderProcess.create({
			config: {
				partSizeBytes: 5 * MiB,
				maxBufferedBytes: 6 * MiB,
				bufferFullGraceMs: 1000,
				finishDeadlineMs: 30_000,
				retryMaxMs: 1000,
				logLevel: "warn",
			},
			stderr: "pipe",
		});
		const collect = (r: RecorderProcess) => {
			r.stderr?.on("data", (d: Buffer) => {
				stderr = (stderr + d.toString()).slice(-50_000);
			});
		};
		collect(recorder);
		recorder.on("ready", () => collect(recorder));
		recorder.on("objectWritten", (o) => events.push({ type: "objectWritten", trackId: o.trackId, o }));
		recorder.on("trackFailed", (f) => events.push({ type: "trackFailed", trackId: f.trackId, f }));
		recorder.on("partUploaded", (p) => parts.push(p));
	});

	afterAll(async () => {
		s3server?.resume();
		await recorder?.close();
		await bucket?.stop();
	});

	function videoTrack(trackId: string, ssrc: number, sessionId: string): Omit<OpenTrackMessage, "type" | "requestId"> {
		return {
			trackId,
			key: { prefix: "rec", meetingId: "meeting-1", sessionId, person: "p-7f3a", kind: "camera" },
			codec: VIDEO,
			ssrc,
			target,
			options: { allowHttp: true, allowPrivate: true },
		};
	}

	async function download(key: string): Promise<Buffer> {
		const res = await s3.send(new GetObjectCommand({ Bucket: "customer", Key: key }));
		return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
	}

	it("stops with storage_unavailable when the bucket stays down past the buffer, after storing what it held", async () => {
		const ports = await recorder.openTrack(videoTrack("t-overflow", 7777, "s-overflow"));
		const sender = sendRtp({ kind: "video", ...ports, seconds: 40, payloadType: 101, ssrc: 7777, highBitrate: true });
		try {
			await waitFor(() => parts.some((p) => p.trackId === "t-overflow"), 20_000, "a first part stored");
			s3server.pause();
			// 6 MiB at ~1.5 MB/s fill in a few seconds; the recorder gives up 1 s after the buffer is full.
			await waitFor(() => stderr.includes("buffer stayed full"), 20_000, "the recorder to give up on the buffer");
			s3server.resume();
			await waitFor(() => events.some((e) => e.type === "trackFailed"), 40_000, "trackFailed");
		} finally {
			s3server.resume();
			sender.stop();
		}
		const mine = events.filter((e) => e.trackId === "t-overflow");
		expect(mine.map((e) => e.type)).toEqual(["objectWritten", "trackFailed"]);
		expect(mine[1]?.f).toMatchObject({ code: "storage_unavailable" });
		const o = mine[0]?.o as ObjectWritten;
		expect(o.key).toBe("rec/meeting-1/s-overflow/p-7f3a-camera-1.webm");
		const bytes = await download(o.key);
		expect(bytes.length).toBe(o.size);
		expect(createHash("sha256").update(bytes).digest("hex")).toBe(o.sha256);
		expect(o.size).toBeGreaterThan(5 * MiB);
		const p = probe(bytes);
		expect(p.codec).toBe("vp8");
		expect(p.duration).toBeGreaterThan(2);
		expect(recorder.openTracks).not.toContain("t-overflow");
		const pending = await s3.send(new ListMultipartUploadsCommand({ Bucket: "customer", Prefix: "rec/" }));
		expect(pending.Uploads ?? []).toEqual([]);
	});

	it("a new recorder completes the upload of one killed with SIGKILL mid-upload", async () => {
		// An unfinished upload of a session this gateway does not own: recover must leave it alone.
		const other = await s3.send(
			new CreateMultipartUploadCommand({ Bucket: "customer", Key: "rec/meeting-2/s-other/p-9-audio-1.webm" }),
		);
		await s3.send(
			new UploadPartCommand({
				Bucket: "customer",
				Key: "rec/meeting-2/s-other/p-9-audio-1.webm",
				UploadId: other.UploadId,
				PartNumber: 1,
				Body: Buffer.alloc(1000),
			}),
		);

		const ports = await recorder.openTrack(videoTrack("t-crash", 8888, "s-crash"));
		const sender = sendRtp({ kind: "video", ...ports, seconds: 40, payloadType: 101, ssrc: 8888, highBitrate: true });
		let crashed: { openTracks: string[] };
		let ffmpegPids: number[];
		try {
			await waitFor(() => parts.some((p) => p.trackId === "t-crash"), 20_000, "a first part stored");
			const pid = recorder.pid as number;
			ffmpegPids = childrenOf(pid)
				.filter((c) => c.comm === "ffmpeg")
				.map((c) => c.pid);
			expect(ffmpegPids.length).toBeGreaterThan(0);
			const crash = once(recorder, "crashed");
			process.kill(pid, "SIGKILL");
			[crashed] = (await crash) as [{ openTracks: string[] }];
		} finally {
			sender.stop();
		}
		expect(crashed.openTracks).toContain("t-crash");
		expect(recorder.alive).toBe(false);
		// Its ffmpeg died with it (parent-death signal), nothing left running.
		await waitFor(() => ffmpegPids.every((p) => !isRunning(p)), 5000, "the orphaned ffmpeg to die");

		await recorder.restart();
		expect(recorder.alive).toBe(true);
		const recovered: ObjectWritten[] = [];
		recorder.on("objectWritten", (o) => {
			if (o.recovered) recovered.push(o);
		});
		const result = await recorder.recover({
			target,
			prefix: "rec",
			ownedSessionIds: ["s-crash"],
			options: { allowHttp: true, allowPrivate: true },
		});
		expect(result).toMatchObject({ completed: 1, aborted: 0 });
		expect(recovered).toHaveLength(1);
		const o = recovered[0] as ObjectWritten;
		expect(o).toMatchObject({ key: "rec/meeting-1/s-crash/p-7f3a-camera-1.webm", seq: 1, recovered: true });
		expect(o.sha256).toBeUndefined();
		const bytes = await download(o.key);
		expect(bytes.length).toBe(o.size);
		expect(o.size).toBeGreaterThanOrEqual(5 * MiB);
		// A WebM cut at a part boundary, without its last cluster: still decodable up to there.
		const p = probe(bytes);
		expect(p.codec).toBe("vp8");
		expect(p.packets).toBeGreaterThan(30);
		const pending = await s3.send(new ListMultipartUploadsCommand({ Bucket: "customer", Prefix: "rec/" }));
		expect((pending.Uploads ?? []).map((u) => u.Key)).toEqual(["rec/meeting-2/s-other/p-9-audio-1.webm"]);
	});
});

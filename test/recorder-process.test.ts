import { createHash } from "node:crypto";
import dgram from "node:dgram";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
	ErrorReply,
	HoleEntry,
	ObjectWritten,
	OpenTrackMessage,
	TrackFailed,
} from "../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../contracts/StorageTargetTypes.js";
import { RecorderProcess } from "../server/recording/RecorderProcess.js";
import { startBucket, type TestBucket, targetOf } from "./helpers/bucket.js";
import type { S3Server } from "./helpers/moto.js";
import { childrenOf, describeFds, writableRegularFiles } from "./helpers/proc-fds.js";
import { probe, sendRtp } from "./helpers/rtp-sender.js";
import { waitFor } from "./helpers/wait.js";
import { probeMedia } from "./helpers/webm.js";

const AUDIO = { kind: "audio", mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 } as const;
const VIDEO = { kind: "video", mimeType: "video/VP8", payloadType: 101, clockRate: 90000 } as const;

/**
 * The recorder process end to end, with real parts: a forked recorder child,
 * real ffmpeg on both ends (a sender encoding test signals into RTP, the
 * recorder's remuxing RTP into WebM) and a real S3 API (moto), paused with
 * SIGSTOP for outages.
 */
describe("recorder process", () => {
	let bucket: TestBucket;
	let s3server: S3Server;
	let s3: S3Client;
	let target: StorageTarget;
	let recorder: RecorderProcess;
	const objects: ObjectWritten[] = [];
	const failures: TrackFailed[] = [];
	const keyframeRequests: string[] = [];
	let stderr = "";

	beforeAll(async () => {
		bucket = await startBucket("customer");
		s3server = bucket.server;
		s3 = bucket.s3;
		target = targetOf(bucket, "rec");
		recorder = await RecorderProcess.create({
			config: { partSizeBytes: 5 * 1024 * 1024, watchdogMs: 4000, logLevel: "warn" },
			stderr: "pipe",
		});
		recorder.stderr?.on("data", (d: Buffer) => {
			stderr = (stderr + d.toString()).slice(-20_000);
		});
		recorder.on("objectWritten", (o) => objects.push(o));
		recorder.on("trackFailed", (f) => failures.push(f));
		recorder.on("keyframeNeeded", ({ trackId }) => keyframeRequests.push(trackId));
	});

	afterAll(async () => {
		await recorder?.close();
		await bucket?.stop();
		if (failures.length) console.error("recorder stderr:", stderr);
	});

	function track(
		trackId: string,
		codec: typeof AUDIO | typeof VIDEO,
		ssrc: number,
		sessionId: string,
		options: OpenTrackMessage["options"] = {},
	): Omit<OpenTrackMessage, "type" | "requestId"> {
		return {
			trackId,
			key: {
				prefix: "rec",
				meetingId: "meeting-1",
				sessionId,
				person: "p-7f3a",
				kind: codec.kind === "audio" ? "audio" : "camera",
			},
			codec,
			ssrc,
			target,
			options: { allowHttp: true, allowPrivate: true, ...options },
		};
	}

	async function download(key: string): Promise<Buffer> {
		const res = await s3.send(new GetObjectCommand({ Bucket: "customer", Key: key }));
		return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
	}

	/** Downloads the object, checks the reported size and hash against it, and probes it. */
	async function verify(o: ObjectWritten) {
		const bytes = await download(o.key);
		expect(bytes.length).toBe(o.size);
		expect(createHash("sha256").update(bytes).digest("hex")).toBe(o.sha256);
		// Every frame decodes (ffmpeg), and the object holds as many frames as the recorder says it wrote.
		const full = await probeMedia(bytes);
		expect(full.decodeErrors).toBe("");
		const p = probe(bytes);
		// Video: one block per frame (Opus joins up to 5 frames per block: ~20 ms per frame).
		if (o.frames !== undefined && p.codec === "vp8") expect(p.packets).toBe(o.frames);
		if (o.frames !== undefined && p.codec === "opus") expect(Math.abs(o.frames * 0.02 - p.duration)).toBeLessThan(0.15);
		return p;
	}

	it("records audio and video into the bucket with nothing on disk; the objects decode and match their hashes", async () => {
		const audio = await recorder.openTrack(track("t-audio", AUDIO, 1111, "s-basic"));
		const video = await recorder.openTrack(track("t-video", VIDEO, 2222, "s-basic"));
		expect(audio.rtpPort).not.toBe(video.rtpPort);
		const seconds = 8;
		const senders = [
			sendRtp({ kind: "audio", ...audio, seconds, payloadType: 100, ssrc: 1111 }),
			sendRtp({ kind: "video", ...video, seconds, payloadType: 101, ssrc: 2222 }),
		];

		// While it records: no process per track, and no writable regular file open in the recorder.
		await new Promise((r) => setTimeout(r, 4000));
		const pid = recorder.pid as number;
		expect(childrenOf(pid).filter((c) => c.comm !== "esbuild")).toEqual([]); // tsx's compiler, in dev only
		expect(writableRegularFiles(pid), `pid ${pid}: ${describeFds(pid).join(", ")}`).toEqual([]);

		await Promise.all(senders.map((s) => s.done));
		await recorder.closeTrack("t-audio");
		await recorder.closeTrack("t-video");
		const a = objects.find((o) => o.trackId === "t-audio");
		const v = objects.find((o) => o.trackId === "t-video");
		expect(a?.key).toBe("rec/meeting-1/s-basic/p-7f3a-audio-1.webm");
		expect(v?.key).toBe("rec/meeting-1/s-basic/p-7f3a-camera-1.webm");
		const pa = await verify(a as ObjectWritten);
		expect(pa.codec).toBe("opus");
		expect(Math.abs(pa.duration - seconds)).toBeLessThan(1);
		const pv = await verify(v as ObjectWritten);
		expect(pv.codec).toBe("vp8");
		expect(pv.width).toBe(640);
		expect(Math.abs(pv.duration - seconds)).toBeLessThan(1);
		expect(failures).toEqual([]);
	});

	it("loses nothing when the bucket stops answering for 10 s mid-recording", async () => {
		const parts: number[] = [];
		const onPart = (p: { trackId: string; partNumber: number }) => {
			if (p.trackId === "t-outage") parts.push(p.partNumber);
		};
		recorder.on("partUploaded", onPart);
		const ports = await recorder.openTrack(track("t-outage", VIDEO, 3333, "s-outage"));
		const seconds = 16;
		const sender = sendRtp({ kind: "video", ...ports, seconds, payloadType: 101, ssrc: 3333, highBitrate: true });
		await new Promise((r) => setTimeout(r, 2500));
		s3server.pause();
		const partsAtPause = parts.length;
		await new Promise((r) => setTimeout(r, 10_000));
		s3server.resume();
		await sender.done;
		await recorder.closeTrack("t-outage");
		recorder.off("partUploaded", onPart);
		const o = objects.find((x) => x.trackId === "t-outage") as ObjectWritten;
		expect(o).toBeDefined();
		expect(o.truncated).toBeUndefined();
		// Parts were due during the outage: the buffer held them until the bucket was back.
		expect(parts.length).toBeGreaterThan(partsAtPause + 1);
		const p = await verify(o);
		expect(p.codec).toBe("vp8");
		expect(Math.abs(p.duration - seconds)).toBeLessThan(1);
		expect(failures).toEqual([]);
	});

	it("rolls over into a new object every segment, each decodable, none lost between them", async () => {
		const audio = await recorder.openTrack(track("t-roll-a", AUDIO, 4444, "s-roll", { segmentSeconds: 3 }));
		const video = await recorder.openTrack(track("t-roll-v", VIDEO, 5555, "s-roll", { segmentSeconds: 3 }));
		const seconds = 8;
		await Promise.all([
			sendRtp({ kind: "audio", ...audio, seconds, payloadType: 100, ssrc: 4444 }).done,
			sendRtp({ kind: "video", ...video, seconds, payloadType: 101, ssrc: 5555, gop: 30 }).done,
		]);
		await recorder.closeTrack("t-roll-a");
		await recorder.closeTrack("t-roll-v");
		// Each new video segment asked the gateway for a key frame, and started at one.
		expect(keyframeRequests).toContain("t-roll-v");
		expect(keyframeRequests).not.toContain("t-roll-a");
		for (const [trackId, codec] of [
			["t-roll-a", "opus"],
			["t-roll-v", "vp8"],
		] as const) {
			const segs = objects.filter((o) => o.trackId === trackId).sort((x, y) => x.seq - y.seq);
			expect(segs.length).toBeGreaterThanOrEqual(2);
			expect(segs.slice(0, 2).map((s) => s.seq)).toEqual([1, 2]);
			expect(segs[1]?.key).toMatch(/-2\.webm$/);
			let total = 0;
			for (const s of segs) {
				const p = await verify(s);
				expect(p.codec).toBe(codec);
				expect(p.packets).toBeGreaterThan(0);
				total += p.duration;
			}
			expect(Math.abs(total - seconds)).toBeLessThan(1);
		}
		expect(failures).toEqual([]);
	});

	it("survives a lossy, reordering network: objects decode, every lost frame is a hole, key frames are asked for", async () => {
		const holes: HoleEntry[] = [];
		const onHole = (h: { trackId: string; hole: HoleEntry }) => {
			if (h.trackId === "t-lossy") holes.push(h.hole);
		};
		recorder.on("trackHole", onHole);
		const ports = await recorder.openTrack(track("t-lossy", VIDEO, 7777, "s-lossy"));
		// A relay between the sender and the recorder: every 5th pair of packets swapped, 1 packet in 150 dropped.
		const relay = dgram.createSocket("udp4");
		await new Promise<void>((r) => relay.bind(0, "127.0.0.1", r));
		let n = 0;
		let held: Buffer | undefined;
		relay.on("message", (msg) => {
			n++;
			if (n % 150 === 0) return;
			if (n % 5 === 0 && !held) {
				held = msg;
				return;
			}
			relay.send(msg, ports.rtpPort, "127.0.0.1");
			if (held) relay.send(held, ports.rtpPort, "127.0.0.1");
			held = undefined;
		});
		const seconds = 8;
		const sender = sendRtp({
			kind: "video",
			rtpPort: relay.address().port,
			rtcpPort: ports.rtcpPort,
			seconds,
			payloadType: 101,
			ssrc: 7777,
			gop: 30,
		});
		await sender.done;
		const stats = await recorder.closeTrack("t-lossy");
		recorder.off("trackHole", onHole);
		relay.close();
		expect(keyframeRequests).toContain("t-lossy");
		expect(stats?.lostPackets).toBeGreaterThan(0);
		expect(holes.length).toBeGreaterThan(0);
		expect(holes.every((h) => h.cause === "network_loss" && Date.parse(h.to) >= Date.parse(h.from))).toBe(true);
		const segs = objects.filter((o) => o.trackId === "t-lossy");
		expect(segs.length).toBeGreaterThanOrEqual(1);
		let written = 0;
		for (const o of segs) {
			const p = await verify(o); // decodes without a single error: no broken frame was written
			expect(p.codec).toBe("vp8");
			written += o.frames ?? 0;
		}
		// Every frame accounted for: written + dropped = received, and most of them made it.
		expect(written).toBe(stats?.framesWritten);
		expect((stats?.framesWritten ?? 0) + (stats?.framesDropped ?? 0)).toBe(stats?.framesReceived);
		expect(stats?.framesWritten).toBeGreaterThan(seconds * 30 * 0.5);
		expect(failures).toEqual([]);
	});

	it("a sender (or our event loop) stalled 2.5 s then delivering its backlog is not a pause: one object, no frame lost", async () => {
		const ports = await recorder.openTrack(track("t-stall", VIDEO, 7878, "s-stall"));
		// A relay that holds every packet for 2.5 s from the 2nd second on, then lets the backlog through at once: the
		// media is contiguous (its RTP clock never paused), only its arrival is late.
		const relay = dgram.createSocket("udp4");
		await new Promise<void>((r) => relay.bind(0, "127.0.0.1", r));
		const t0 = Date.now();
		const held: Buffer[] = [];
		let released = false;
		relay.on("message", (msg) => {
			const t = Date.now() - t0;
			if (!released && t >= 2000 && t < 4500) {
				held.push(msg);
				return;
			}
			if (!released && held.length) {
				released = true;
				for (const h of held) relay.send(h, ports.rtpPort, "127.0.0.1");
			}
			relay.send(msg, ports.rtpPort, "127.0.0.1");
		});
		const sender = sendRtp({
			kind: "video",
			rtpPort: relay.address().port,
			rtcpPort: ports.rtcpPort,
			seconds: 6,
			payloadType: 101,
			ssrc: 7878,
			gop: 60,
		});
		await sender.done;
		const stats = await recorder.closeTrack("t-stall"); // right away: what is still in the socket is read first
		relay.close();
		expect(held.length).toBeGreaterThan(0);
		expect(stats?.lostPackets).toBe(0);
		expect(stats?.framesDropped).toBe(0);
		expect(stats?.framesWritten).toBe(stats?.framesReceived);
		const segs = objects.filter((o) => o.trackId === "t-stall");
		expect(segs).toHaveLength(1);
		expect((await verify(segs[0] as ObjectWritten)).codec).toBe("vp8");
		expect(failures).toEqual([]);
	});

	it("answers an invalid message with an error naming the problem and keeps running", async () => {
		const errors: ErrorReply[] = [];
		recorder.on("protocolError", (e) => errors.push(e));
		recorder.sendUnchecked({ type: "openTrack", requestId: "bad-1", trackId: "x y", codec: { kind: "audio" } });
		recorder.sendUnchecked("not even an object");
		recorder.sendUnchecked({ type: "selfDestruct" });
		await waitFor(() => errors.length >= 3, 5000, "three error replies");
		expect(errors[0]).toMatchObject({ code: "invalid_message", requestId: "bad-1" });
		expect(errors[0]?.message).toMatch(/trackId/);
		expect(errors[0]?.message).toMatch(/target/);
		expect(errors.every((e) => e.code === "invalid_message")).toBe(true);
		// Still alive and serving.
		expect(recorder.alive).toBe(true);
		await expect(recorder.closeTrack("never-opened")).rejects.toMatchObject({ code: "unknown_track" });
		const ports = await recorder.openTrack(track("t-after", AUDIO, 6666, "s-after"));
		expect(ports.rtpPort).toBeGreaterThan(0);
		await recorder.closeTrack("t-after");
	});
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HoleEntry, ObjectWritten, OpenTrackMessage, TrackFailed } from "../contracts/RecorderProtocol.js";
import { RecorderProcess } from "../server/recording/RecorderProcess.js";
import { startBucket, type TestBucket, targetOf } from "./helpers/bucket.js";
import { sendRtp } from "./helpers/rtp-sender.js";
import { type S3Proxy, startS3Proxy } from "./helpers/s3-proxy.js";
import { probeMedia } from "./helpers/webm.js";

const AUDIO = { kind: "audio", mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 } as const;
const VIDEO = { kind: "video", mimeType: "video/VP8", payloadType: 101, clockRate: 90000 } as const;
/** The outage (the 60 s; CONSENTRY_TEST_OUTAGE_S shortens it for a quick local run). */
const OUTAGE_S = Number(process.env.CONSENTRY_TEST_OUTAGE_S ?? 60);

/**
 * The customer's bucket unreachable for 60 s in the middle of a recording, two ways at once: behind one proxy the
 * port refuses connections (ECONNREFUSED), behind another every request is taken and never answered (a blackhole).
 * The recorder's buffer holds the media meanwhile: every frame received is written, nothing is reported missing,
 * and the objects decode for the whole time sent.
 */
describe("bucket outages", () => {
	let bucket: TestBucket;
	let refusing: S3Proxy;
	let blackhole: S3Proxy;
	let recorder: RecorderProcess;
	const objects: ObjectWritten[] = [];
	const failures: TrackFailed[] = [];
	const holes: { trackId: string; hole: HoleEntry }[] = [];

	beforeAll(async () => {
		bucket = await startBucket("customer");
		refusing = await startS3Proxy(bucket.server.endpoint);
		blackhole = await startS3Proxy(bucket.server.endpoint);
		recorder = await RecorderProcess.create({
			config: {
				logLevel: process.env.OUTAGE_DEBUG ? "warn" : "error",
				requestTimeoutMs: 10_000,
				retryMaxMs: 2000,
				finishDeadlineMs: 60_000,
			},
			stderr: process.env.OUTAGE_DEBUG ? "inherit" : "ignore",
		});
		recorder.on("objectWritten", (o) => objects.push(o));
		recorder.on("trackFailed", (f) => failures.push(f));
		recorder.on("trackHole", (h) => holes.push(h));
	});

	afterAll(async () => {
		await recorder?.close();
		await refusing?.close();
		await blackhole?.close();
		await bucket?.stop();
	});

	function track(trackId: string, codec: typeof AUDIO | typeof VIDEO, ssrc: number, proxy: S3Proxy) {
		const t: Omit<OpenTrackMessage, "type" | "requestId"> = {
			trackId,
			key: {
				prefix: "rec",
				meetingId: "m-outage",
				sessionId: "s-outage",
				person: trackId,
				kind: codec.kind === "audio" ? "audio" : "camera",
			},
			codec,
			ssrc,
			target: { ...targetOf(bucket, "rec"), endpoint: proxy.endpoint },
			options: { allowHttp: true, allowPrivate: true },
		};
		return t;
	}

	it(`loses no frame through a ${OUTAGE_S} s outage, refused or blackholed, while the buffer holds`, async () => {
		// Two tracks (each sender is a real-time ffmpeg encoder: more would not keep real time on a loaded CI box).
		const tracks = [
			{ id: "refuse-a", codec: AUDIO, ssrc: 11, proxy: refusing },
			{ id: "hole-v", codec: VIDEO, ssrc: 22, proxy: blackhole },
		] as const;
		const seconds = OUTAGE_S + 10;
		const senders = [];
		for (const t of tracks) {
			const ports = await recorder.openTrack(track(t.id, t.codec, t.ssrc, t.proxy));
			senders.push(
				sendRtp({
					kind: t.codec.kind,
					...ports,
					seconds,
					payloadType: t.codec.payloadType,
					ssrc: t.ssrc,
					gop: 60,
				}),
			);
		}
		// What the operator's metrics hear: each track's buffer and the upload retries (uploadStats every 5 s).
		const uploads: {
			tracks: { trackId: string; bufferedBytes: number; retries: number }[];
			checkpointRetries: number;
		}[] = [];
		recorder.on("uploadStats", (s) => uploads.push(s));
		await new Promise((r) => setTimeout(r, 4000));
		await refusing.refuse(true);
		blackhole.fault = () => "blackhole";
		await new Promise((r) => setTimeout(r, OUTAGE_S * 1000));
		await refusing.refuse(false);
		blackhole.fault = undefined;
		await Promise.all(senders.map((s) => s.done));
		const closing = Date.now();
		const stats = await Promise.all(tracks.map((t) => recorder.closeTrack(t.id)));
		if (process.env.OUTAGE_DEBUG) console.error("close took", Date.now() - closing);
		expect(failures).toEqual([]);
		expect(holes).toEqual([]);
		// During the outage the recorder reported the buffer filling and the requests it retried.
		const during = uploads.flatMap((u) => u.tracks);
		expect(Math.max(...during.filter((t) => t.trackId === "hole-v").map((t) => t.bufferedBytes))).toBeGreaterThan(
			100_000,
		);
		const retried = during.reduce((n, t) => n + t.retries, 0) + uploads.reduce((n, u) => n + u.checkpointRetries, 0);
		expect(retried).toBeGreaterThan(0);
		// The outage happened: requests were refused / taken and never answered.
		expect(blackhole.requests.some((r) => r.outcome === "blackhole")).toBe(true);
		for (const [i, t] of tracks.entries()) {
			const s = stats[i];
			expect(s?.framesReceived).toBeGreaterThan(0);
			expect(s?.framesWritten, t.id).toBe(s?.framesReceived);
			const mine = objects.filter((o) => o.trackId === t.id);
			expect(mine.length).toBeGreaterThanOrEqual(1);
			let duration = 0;
			for (const o of mine) {
				expect(o.truncated).toBeUndefined();
				const p = await probeMedia(await bucket.bytes(o.key));
				expect(p.decodeErrors).toBe("");
				if (t.codec.kind === "video") expect(p.packets).toBe(o.frames); // Opus: up to 5 frames per block
				duration += p.seconds;
			}
			expect(Math.abs(duration - seconds)).toBeLessThan(1.5);
		}
	}, 240_000);
});

import { type ChildProcess, spawn } from "node:child_process";
import dgram from "node:dgram";
import type { AddressInfo } from "node:net";
import type { types as ms } from "mediasoup";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../server/config.js";
import { createLogger } from "../server/logger.js";
import { mediaCodecs } from "../server/sfu/mediaCodecs.js";
import { WorkerPool } from "../server/sfu/WorkerPool.js";
import { waitFor } from "./helpers/wait.js";

/**
 * RTP in and out of PlainTransports of the built worker: ffmpeg sends Opus RTP
 * into one (comedia, separate RTCP), mediasoup forwards it out of another to a
 * UDP socket here, which checks the RTP headers it gets.
 */
describe("PlainTransport RTP in and out", () => {
	let pool: WorkerPool;
	let router: ms.Router;
	let ffmpeg: ChildProcess | undefined;
	let sink: dgram.Socket;

	beforeAll(async () => {
		const config = loadConfig({ ...process.env, CONSENTRY_WORKERS: "1" });
		pool = await WorkerPool.create({ numWorkers: 1, workerBin: config.mediasoup.workerBin }, createLogger("silent"));
		router = await pool.createRouter({ mediaCodecs });
		sink = dgram.createSocket("udp4");
		await new Promise<void>((r) => sink.bind(0, "127.0.0.1", r));
	});

	afterAll(() => {
		ffmpeg?.kill("SIGKILL");
		sink?.close();
		pool?.close();
	});

	it("forwards ffmpeg's Opus RTP to a consumer on another PlainTransport", async () => {
		const ingress = await router.createPlainTransport({
			listenInfo: { protocol: "udp", ip: "127.0.0.1" },
			rtcpMux: false,
			comedia: true,
		});
		const ssrc = 22_334_455;
		const producer = await ingress.produce({
			kind: "audio",
			rtpParameters: {
				codecs: [{ mimeType: "audio/opus", payloadType: 101, clockRate: 48000, channels: 2 }],
				encodings: [{ ssrc }],
			},
		});

		const egress = await router.createPlainTransport({
			listenInfo: { protocol: "udp", ip: "127.0.0.1" },
			rtcpMux: true,
			comedia: false,
		});
		await egress.connect({ ip: "127.0.0.1", port: (sink.address() as AddressInfo).port });
		const consumer = await egress.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });

		const received: Buffer[] = [];
		sink.on("message", (msg) => received.push(msg));

		const rtpPort = ingress.tuple.localPort;
		const rtcpPort = ingress.rtcpTuple?.localPort ?? rtpPort;
		ffmpeg = spawn(
			"ffmpeg",
			[
				"-hide_banner",
				"-loglevel",
				"error",
				"-re",
				"-f",
				"lavfi",
				"-i",
				"sine=frequency=440:sample_rate=48000:duration=3",
				"-c:a",
				"libopus",
				"-ac",
				"2",
				"-ar",
				"48000",
				"-payload_type",
				"101",
				"-ssrc",
				String(ssrc),
				"-f",
				"rtp",
				`rtp://127.0.0.1:${rtpPort}?rtcpport=${rtcpPort}`,
			],
			{ stdio: "ignore" },
		);

		await waitFor(() => received.length >= 50, 10_000, "50 RTP packets out of the egress transport");
		const inStats = await waitFor(
			async () => (await producer.getStats()).find((x) => x.packetCount >= 50),
			5000,
			"stats",
		);
		expect(inStats.type).toBe("inbound-rtp");

		const first = received.find((b) => (b[1] ?? 0) < 192 || (b[1] ?? 0) > 223) as Buffer; // skip RTCP
		expect(first.readUInt8(0) >> 6).toBe(2); // RTP version 2
		expect(first.readUInt8(1) & 0x7f).toBe(consumer.rtpParameters.codecs[0]?.payloadType);
		expect(first.readUInt32BE(8)).toBe(consumer.rtpParameters.encodings?.[0]?.ssrc);
		const outStats = await waitFor(
			async () => (await consumer.getStats()).find((s) => s.type === "outbound-rtp" && s.packetCount >= 50),
			5000,
			"consumer stats",
		);
		expect(outStats.byteCount).toBeGreaterThan(0);
	});
});

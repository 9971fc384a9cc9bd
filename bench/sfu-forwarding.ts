/**
 * SFU forwarding cost of the built mediasoup worker: one RTP stream in through a
 * PlainTransport, fanned out to N consumers on PlainTransports, each to a UDP
 * sink. Reports the worker's CPU time per forwarded packet (median of runs) and
 * the time to set up a router and a WebRtcTransport.
 *
 *   npm run bench -- [--runs 5] [--seconds 4] [--pps 2000]
 */
import dgram from "node:dgram";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import type { types as ms } from "mediasoup";
import { loadConfig } from "../server/config.js";
import { createLogger } from "../server/logger.js";
import { mediaCodecs } from "../server/sfu/mediaCodecs.js";
import { WorkerPool } from "../server/sfu/WorkerPool.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: {
		runs: { type: "string", default: "5" },
		seconds: { type: "string", default: "4" },
		pps: { type: "string", default: "2000" },
	},
});
const runs = Number(values.runs);
const seconds = Number(values.seconds);
const pps = Number(values.pps);
const fanouts = [1, 10, 50];

const config = loadConfig({ ...process.env, CONSENTRY_WORKERS: "1" });
const pool = await WorkerPool.create({ numWorkers: 1, workerBin: config.mediasoup.workerBin }, createLogger("silent"));
const worker = pool.workers[0] as ms.Worker;

async function cpuMs(): Promise<number> {
	const u = await worker.getResourceUsage();
	return u.ru_utime + u.ru_stime;
}

// Setup latency.
const routerMs: number[] = [];
const transportMs: number[] = [];
for (let i = 0; i < 20; i++) {
	let t = performance.now();
	const r = await pool.createRouter({ mediaCodecs });
	routerMs.push(performance.now() - t);
	t = performance.now();
	await r.createWebRtcTransport({ listenInfos: [{ protocol: "udp", ip: "127.0.0.1" }] });
	transportMs.push(performance.now() - t);
	r.close();
}

function rtpPacket(seq: number, ts: number, ssrc: number): Buffer {
	const b = Buffer.alloc(12 + 160);
	b[0] = 0x80;
	b[1] = 101;
	b.writeUInt16BE(seq & 0xffff, 2);
	b.writeUInt32BE(ts >>> 0, 4);
	b.writeUInt32BE(ssrc, 8);
	b.fill(0xab, 12);
	return b;
}

async function run(fanout: number): Promise<{ usPerPacket: number; delivered: number }> {
	const router = await pool.createRouter({ mediaCodecs });
	const ingress = await router.createPlainTransport({
		listenInfo: { protocol: "udp", ip: "127.0.0.1" },
		rtcpMux: true,
		comedia: true,
	});
	const ssrc = 1234;
	const producer = await ingress.produce({
		kind: "audio",
		rtpParameters: {
			codecs: [{ mimeType: "audio/opus", payloadType: 101, clockRate: 48000, channels: 2 }],
			encodings: [{ ssrc }],
		},
	});
	const sink = dgram.createSocket("udp4");
	await new Promise<void>((r) => sink.bind(0, "127.0.0.1", r));
	let delivered = 0;
	sink.on("message", () => delivered++);
	for (let i = 0; i < fanout; i++) {
		const t = await router.createPlainTransport({
			listenInfo: { protocol: "udp", ip: "127.0.0.1" },
			rtcpMux: true,
			comedia: false,
		});
		await t.connect({ ip: "127.0.0.1", port: (sink.address() as AddressInfo).port });
		await t.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });
	}
	const src = dgram.createSocket("udp4");
	const port = ingress.tuple.localPort;
	let seq = 0;
	const perTick = Math.max(1, Math.round(pps / 100));
	const cpu0 = await cpuMs();
	const timer = setInterval(() => {
		for (let k = 0; k < perTick; k++, seq++) src.send(rtpPacket(seq, seq * 960, ssrc), port, "127.0.0.1");
	}, 10);
	await new Promise((r) => setTimeout(r, seconds * 1000));
	clearInterval(timer);
	await new Promise((r) => setTimeout(r, 200));
	const cpu = (await cpuMs()) - cpu0;
	src.close();
	sink.close();
	router.close();
	void producer;
	return { usPerPacket: (cpu * 1000) / Math.max(1, delivered), delivered };
}

const results: { fanout: number; usPerPacket: number; deliveredPerSec: number }[] = [];
for (const fanout of fanouts) {
	const samples: number[] = [];
	const rates: number[] = [];
	for (let i = 0; i < runs; i++) {
		const r = await run(fanout);
		samples.push(r.usPerPacket);
		rates.push(r.delivered / seconds);
	}
	results.push({ fanout, usPerPacket: median(samples), deliveredPerSec: median(rates) });
}
pool.close();

console.log(`# SFU forwarding (${new Date().toISOString().slice(0, 10)}, ${machine()})`);
console.log(
	`router create: median ${median(routerMs).toFixed(2)} ms; WebRtcTransport create: median ${median(transportMs).toFixed(2)} ms (20 each)`,
);
console.log(`input ${pps} RTP packets/s (172 B), ${seconds} s per run, ${runs} runs, medians:`);
console.log("| consumers | packets out/s | worker CPU µs per packet out |");
console.log("|---:|---:|---:|");
for (const r of results)
	console.log(`| ${r.fanout} | ${Math.round(r.deliveredPerSec)} | ${r.usPerPacket.toFixed(2)} |`);

/**
 * One meeting on one node vs cascaded over two (server/sfu/Cascade.ts): N headless bots (wrtc, each sending a
 * 160×90 camera at 10 fps and a microphone, each receiving everyone) join one meeting whose media is either one
 * router on one mediasoup worker ("1 node") or two routers on two workers joined by a cascade pipe, the bots split
 * between them ("2 nodes"). Reports, per layout, how many of the N×(N−1) remote video tracks decoded a frame, the
 * RTP packets each bot receives per second, and each worker's CPU (share of one core) over a steady window: a
 * node's capacity is bounded by its worker, so the busiest worker's share is what limits the meeting.
 *
 * The bots run in this process (their encoding and decoding are most of the machine's load) and talk to the rooms
 * directly (bench/bots/roomSignal.ts): the meeting rules and socket.io are not in the measurement.
 *
 *   npm run bench:cascade -- [--bots 12,24] [--seconds 10]
 */
import { parseArgs } from "node:util";
import type { types as ms } from "mediasoup";
import { loadConfig } from "../server/config.js";
import { createLogger } from "../server/logger.js";
import { CascadeLink } from "../server/sfu/Cascade.js";
import { Room } from "../server/sfu/Room.js";
import type { RtcListenOptions } from "../server/sfu/RoomTypes.js";
import { WorkerPool } from "../server/sfu/WorkerPool.js";
import { Bot } from "./bots/Bot.js";
import { SyntheticMedia } from "./bots/media.js";
import { roomSignal } from "./bots/roomSignal.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: {
		bots: { type: "string", default: "12,24" },
		seconds: { type: "string", default: "10" },
	},
});
const sizes = values.bots.split(",").map(Number);
const seconds = Number(values.seconds);
const config = loadConfig({ ...process.env, CONSENTRY_WORKERS: "1" });
const log = createLogger("silent");
const rtc: RtcListenOptions = { listenIp: "127.0.0.1", minPort: config.rtc.minPort, maxPort: config.rtc.maxPort };
const wire = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

interface Result {
	nodes: number;
	bots: number;
	joinedMs: number;
	videoDecoded: number;
	videoExpected: number;
	pktsPerBot: number;
	workerCore: number[];
	pipeKbps: number;
}

async function cpuMs(w: ms.Worker): Promise<number> {
	const u = await w.getResourceUsage();
	return u.ru_utime + u.ru_stime;
}

async function run(nodes: 1 | 2, n: number, media: SyntheticMedia): Promise<Result> {
	const pools = await Promise.all(
		Array.from({ length: nodes }, () =>
			WorkerPool.create({ numWorkers: 1, workerBin: config.mediasoup.workerBin }, log),
		),
	);
	const rooms = await Promise.all(pools.map((pool) => Room.create({ meetingId: "m-bench", pool, rtc, log })));
	const links: CascadeLink[] = [];
	if (nodes === 2) {
		const pipe = { listenIp: "127.0.0.1", portRange: { min: rtc.minPort, max: rtc.maxPort }, peerIp: "127.0.0.1" };
		const [a, b] = await Promise.all(rooms.map((r) => CascadeLink.open(r, pipe)));
		if (!a || !b) throw new Error("no link");
		for (const [from, to] of [
			[a, b],
			[b, a],
		] as const) {
			from.on("offer", (o) => void to.accept(wire(o)));
			from.on("change", (c) => void to.apply(wire(c)));
		}
		await Promise.all([a.connect(wire(b.local)), b.connect(wire(a.local))]);
		links.push(a, b);
	}
	const t0 = performance.now();
	const bots: Bot[] = [];
	for (let i = 0; i < n; i++) {
		const room = rooms[i % nodes] as Room;
		const bot = await Bot.join(roomSignal(room, `bot${i}`), "m-bench", {
			displayName: `bot${i}`,
			send: true,
			recv: true,
		});
		await bot.publish(media, { audio: true, video: true, maxVideoBitrate: 100_000 });
		bots.push(bot);
	}
	const expected = n * (n - 1);
	const deadline = Date.now() + 90_000;
	while (Date.now() < deadline && bots.reduce((s, b) => s + b.videoFramesSeen, 0) < expected) {
		await new Promise((r) => setTimeout(r, 250));
	}
	const joinedMs = performance.now() - t0;
	const workers = pools.map((p) => p.workers[0] as ms.Worker);
	const cpu0 = await Promise.all(workers.map(cpuMs));
	const pk0 = await Promise.all(bots.map((b) => b.packets()));
	const pipe0 = links[0] ? ((await links[0].transport.getStats())[0] as ms.PipeTransportStat) : undefined;
	const w0 = performance.now();
	await new Promise((r) => setTimeout(r, seconds * 1000));
	const cpu1 = await Promise.all(workers.map(cpuMs));
	const pk1 = await Promise.all(bots.map((b) => b.packets()));
	const pipe1 = links[0] ? ((await links[0].transport.getStats())[0] as ms.PipeTransportStat) : undefined;
	const wallMs = performance.now() - w0;
	const result: Result = {
		nodes,
		bots: n,
		joinedMs,
		videoDecoded: bots.reduce((s, b) => s + b.videoFramesSeen, 0),
		videoExpected: expected,
		pktsPerBot: median(pk1.map((p, i) => ((p.received - (pk0[i]?.received ?? 0)) * 1000) / wallMs)),
		workerCore: cpu1.map((c, i) => (c - (cpu0[i] ?? 0)) / wallMs),
		pipeKbps:
			pipe0 && pipe1
				? ((pipe1.bytesSent + pipe1.bytesReceived - pipe0.bytesSent - pipe0.bytesReceived) * 8) / wallMs
				: 0,
	};
	for (const b of bots) b.close();
	for (const l of links) l.close();
	for (const r of rooms) r.close();
	for (const p of pools) p.close();
	return result;
}

const media = new SyntheticMedia({ width: 160, height: 90, fps: 10 });
const results: Result[] = [];
for (const n of sizes) {
	for (const nodes of [1, 2] as const) {
		const r = await run(nodes, n, media);
		results.push(r);
		console.error(JSON.stringify(r));
	}
}
media.stop();

console.log(`# Cascade: one meeting on 1 node vs 2 nodes (${new Date().toISOString().slice(0, 10)}, ${machine()})`);
console.log(`bots send 160×90 10 fps ≤ 100 kbps video + Opus, receive everyone; ${seconds} s steady window`);
console.log(
	"| bots | nodes | video tracks decoded | RTP pkts/s per bot (median) | worker CPU per node (share of a core) | busiest worker | pipe kbit/s (both ways) |",
);
console.log("|---:|---:|---:|---:|---|---:|---:|");
for (const r of results) {
	console.log(
		`| ${r.bots} | ${r.nodes} | ${r.videoDecoded}/${r.videoExpected} | ${Math.round(r.pktsPerBot)} | ${r.workerCore.map((c) => c.toFixed(3)).join(" + ")} | ${Math.max(...r.workerCore).toFixed(3)} | ${r.nodes === 2 ? Math.round(r.pipeKbps) : "–"} |`,
	);
}
process.exit(0);

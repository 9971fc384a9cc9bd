/**
 * One meeting on one node vs cascaded over two (server/sfu/Cascade.ts): S speakers (headless wrtc bots sending a
 * 160×90 camera at 10 fps and a microphone) and L listeners (receive only) join one meeting whose media is either one
 * router on one mediasoup worker ("1 node") or two routers on two workers joined by a cascade pipe, everyone split
 * alternately between them ("2 nodes"). Everyone receives every other speaker. Reports, per layout, how many of the
 * remote video tracks decoded a frame, the RTP packets delivered per second, and each worker's CPU (share of one
 * core) over a steady window: a node's capacity is bounded by its worker, so the busiest worker's share is what
 * limits the meeting. (A large meeting is a few speakers and many listeners; everyone sending to everyone grows as
 * N² and the bots' own decoding saturates this machine first.)
 *
 * The bots run in this process (their encoding and decoding are most of the machine's load) and talk to the rooms
 * directly (bench/bots/roomSignal.ts): the meeting rules and socket.io are not in the measurement.
 *
 *   npm run bench:cascade:bots -- [--listeners 8,24] [--speakers 4] [--seconds 10]
 */
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import type { types as ms } from "mediasoup";
import { loadConfig } from "../server/config.js";
import { createLogger } from "../server/logger.js";
import type { Room } from "../server/sfu/Room.js";
import type { RtcListenOptions } from "../server/sfu/RoomTypes.js";
import { Bot } from "./bots/Bot.js";
import { SyntheticMedia } from "./bots/media.js";
import { openCascadeRooms, roomSignal } from "./bots/roomSignal.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: {
		listeners: { type: "string", default: "8,24" },
		speakers: { type: "string", default: "4" },
		seconds: { type: "string", default: "10" },
	},
});
const sizes = values.listeners.split(",").map(Number);
const speakers = Number(values.speakers);
const seconds = Number(values.seconds);
const config = loadConfig({ ...process.env, CONSENTRY_WORKERS: "1" });
const log = createLogger("silent");
const rtc: RtcListenOptions = { listenIp: "127.0.0.1", minPort: config.rtc.minPort, maxPort: config.rtc.maxPort };

interface Result {
	nodes: number;
	bots: number;
	listeners: number;
	joinedMs: number;
	videoDecoded: number;
	videoExpected: number;
	pktsPerBot: number;
	pktsTotal: number;
	workerCore: number[];
	pipeKbps: number;
}

async function cpuMs(w: ms.Worker): Promise<number> {
	const u = await w.getResourceUsage();
	return u.ru_utime + u.ru_stime;
}

async function run(nodes: 1 | 2, listeners: number, media: SyntheticMedia): Promise<Result> {
	const n = speakers + listeners;
	const { pools, rooms, links } = await openCascadeRooms(nodes, {
		workerBin: config.mediasoup.workerBin,
		rtc,
		log,
		meetingId: "m-bench",
	});
	const t0 = performance.now();
	const bots: Bot[] = [];
	for (let i = 0; i < speakers; i++) {
		const room = rooms[i % nodes] as Room;
		const bot = await Bot.join(roomSignal(room, `bot${i}`), "m-bench", {
			displayName: `bot${i}`,
			send: true,
			recv: true,
		});
		await bot.publish(media, { audio: true, video: true, maxVideoBitrate: 100_000 });
		bots.push(bot);
	}
	for (let i = speakers; i < n; i += 4) {
		const batch = Array.from({ length: Math.min(4, n - i) }, (_, k) => {
			const id = `bot${i + k}`;
			return Bot.join(roomSignal(rooms[(i + k) % nodes] as Room, id), "m-bench", {
				displayName: id,
				send: false,
				recv: true,
			});
		});
		bots.push(...(await Promise.all(batch)));
	}
	const expected = speakers * (speakers - 1) + listeners * speakers;
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
	if (process.env.CASCADE_DEBUG)
		console.error(
			pk1.map(
				(p, i) => `${bots[i]?.describe()} ${Math.round(((p.received - (pk0[i]?.received ?? 0)) * 1000) / wallMs)}`,
			),
		);
	const result: Result = {
		nodes,
		bots: n,
		listeners,
		joinedMs,
		videoDecoded: bots.reduce((s, b) => s + b.videoFramesSeen, 0),
		videoExpected: expected,
		pktsPerBot: median(pk1.map((p, i) => ((p.received - (pk0[i]?.received ?? 0)) * 1000) / wallMs)),
		pktsTotal: pk1.reduce((s, p, i) => s + ((p.received - (pk0[i]?.received ?? 0)) * 1000) / wallMs, 0),
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

// Each layout runs in its own process: a second run after the first one's bots closed delivers a fraction of the
// packets (wrtc's threads of the closed peer connections), whatever the layout.
const one = process.env.CASCADE_RUN;
if (one) {
	const [nodes, listeners] = one.split(":").map(Number);
	const media = new SyntheticMedia({ width: 160, height: 90, fps: 10 });
	const r = await run(nodes === 2 ? 2 : 1, listeners ?? 0, media);
	media.stop();
	process.stdout.write(`${JSON.stringify(r)}\n`);
	process.exit(0);
}
const results: Result[] = [];
for (const listeners of sizes) {
	for (const nodes of [1, 2] as const) {
		const out = execFileSync(
			process.execPath,
			[...process.execArgv, process.argv[1] as string, ...process.argv.slice(2)],
			{
				env: { ...process.env, CASCADE_RUN: `${nodes}:${listeners}` },
				encoding: "utf8",
				stdio: ["ignore", "pipe", "inherit"],
				timeout: 240_000,
			},
		);
		const r = JSON.parse(out.trim().split("\n").pop() as string) as Result;
		results.push(r);
		console.error(JSON.stringify(r));
	}
}

console.log(`# Cascade: one meeting on 1 node vs 2 nodes (${new Date().toISOString().slice(0, 10)}, ${machine()})`);
console.log(
	`${speakers} speakers send 160×90 10 fps ≤ 100 kbps video + Opus; listeners receive only; ${seconds} s steady window`,
);
console.log(
	"| people | nodes | video tracks decoded | RTP pkts/s delivered (all bots) | worker CPU per node (share of a core) | busiest worker | worker µs per delivered packet (all nodes) | pipe kbit/s (both ways) |",
);
console.log("|---:|---:|---:|---:|---|---:|---:|---:|");
for (const r of results) {
	console.log(
		`| ${r.bots} | ${r.nodes} | ${r.videoDecoded}/${r.videoExpected} | ${Math.round(r.pktsTotal)} | ${r.workerCore.map((c) => c.toFixed(3)).join(" + ")} | ${Math.max(...r.workerCore).toFixed(3)} | ${((r.workerCore.reduce((a, b) => a + b, 0) * 1e6) / Math.max(1, r.pktsTotal)).toFixed(1)} | ${r.nodes === 2 ? Math.round(r.pipeKbps) : "–"} |`,
	);
}
process.exit(0);

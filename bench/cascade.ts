/**
 * One meeting on one node vs cascaded over two (server/sfu/Cascade.ts), at the media layer and at the scale the
 * issue names (300 people): S speakers each send one RTP stream (Opus payload type, `--pps` packets/s of `--bytes`
 * bytes: a speaker's audio and video together) through the real `Room.produce`; every other person is a listener
 * whose receive side is an SRTP PlainTransport (the per-receiver encryption a WebRtcTransport does, without ICE/DTLS
 * or a browser) consuming every speaker. "1 node": one router on one mediasoup worker; "2 nodes": two routers on two
 * workers joined by a CascadeLink, speakers and listeners split alternately. Reports each worker's CPU (share of one
 * core) over a steady window and the packets the workers delivered: a node's capacity is bounded by its worker, so
 * the busiest worker's share is what limits the meeting. The listeners' packets go to a UDP port nobody reads (a
 * Python process holding it), so no JavaScript receives them. Wrtc bots (real encoders and decoders) in
 * `npm run bench:cascade:bots`.
 *
 *   npm run bench:cascade -- [--people 60,150,300] [--speakers 4] [--pps 100] [--bytes 900] [--seconds 6]
 */
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import { once } from "node:events";
import { parseArgs } from "node:util";
import type { types as ms } from "mediasoup";
import { loadConfig } from "../server/config.js";
import { createLogger } from "../server/logger.js";
import { Peer } from "../server/sfu/Peer.js";
import type { Room } from "../server/sfu/Room.js";
import type { RtcListenOptions } from "../server/sfu/RoomTypes.js";
import { openCascadeRooms } from "./bots/roomSignal.js";
import { machine } from "./stats.js";

const { values } = parseArgs({
	options: {
		people: { type: "string", default: "60,150,300" },
		speakers: { type: "string", default: "4" },
		pps: { type: "string", default: "100" },
		bytes: { type: "string", default: "900" },
		seconds: { type: "string", default: "6" },
	},
});
const sizes = values.people.split(",").map(Number);
const speakers = Number(values.speakers);
const pps = Number(values.pps);
const bytes = Number(values.bytes);
const seconds = Number(values.seconds);
const config = loadConfig({ ...process.env, CONSENTRY_WORKERS: "1" });
const log = createLogger("silent");
const rtc: RtcListenOptions = { listenIp: "127.0.0.1", minPort: config.rtc.minPort, maxPort: config.rtc.maxPort };

// A UDP port that is held and never read: the kernel drops what overflows its buffer, nothing here spends CPU on it.
// The holder exits when this process's end of its stdin closes (so also if this process dies).
const hole = spawn("python3", [
	"-c",
	"import socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,4096)\ns.bind(('127.0.0.1',0))\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()",
]);
const sinkPort = Number(String((await once(hole.stdout, "data"))[0]).trim());

interface Result {
	nodes: number;
	people: number;
	setupMs: number;
	workerCore: number[];
	deliveredShare: number;
	expectedPps: number;
	pipeKbps: number;
}

async function cpuMs(w: ms.Worker): Promise<number> {
	const u = await w.getResourceUsage();
	return u.ru_utime + u.ru_stime;
}

function rtp(seq: number, ssrc: number): Buffer {
	const b = Buffer.alloc(12 + bytes);
	b[0] = 0x80;
	b[1] = 100;
	b.writeUInt16BE(seq & 0xffff, 2);
	b.writeUInt32BE((seq * 960) >>> 0, 4);
	b.writeUInt32BE(ssrc, 8);
	b.fill(0xab, 12);
	return b;
}

async function run(nodes: 1 | 2, people: number): Promise<Result> {
	const t0 = performance.now();
	const { pools, rooms, links } = await openCascadeRooms(nodes, {
		workerBin: config.mediasoup.workerBin,
		rtc,
		log,
		meetingId: "m-bench",
	});
	// Speakers: a Peer whose send side is a comedia PlainTransport, producing through Room.produce (so the cascade
	// link offers it like any participant's producer).
	const ingress: { port: number; ssrc: number }[] = [];
	const producerIds: string[] = [];
	for (let i = 0; i < speakers; i++) {
		const room = rooms[i % nodes] as Room;
		const peer = new Peer({ id: `s${i}`, displayName: `s${i}`, role: "participant", notify: () => undefined });
		room.addPeer(peer);
		const t = await room.router.createPlainTransport({
			listenInfo: { protocol: "udp", ip: "127.0.0.1" },
			rtcpMux: true,
			comedia: true,
			appData: { direction: "send" },
		});
		peer.transports.set(t.id, t as unknown as ms.WebRtcTransport);
		const ssrc = 1000 + i;
		producerIds.push(
			await room.produce(
				peer,
				t.id,
				"audio",
				{
					codecs: [{ mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 }],
					encodings: [{ ssrc }],
				},
				"mic",
			),
		);
		ingress.push({ port: t.tuple.localPort, ssrc });
	}
	if (nodes === 2) {
		const deadline = Date.now() + 10_000;
		while (links.some((l) => l.accepted.size + l.offered.size < speakers) && Date.now() < deadline) {
			await new Promise((r) => setTimeout(r, 20));
		}
	}
	// Listeners: an SRTP PlainTransport each, consuming every speaker in its router (local or piped).
	const consumers: ms.Consumer[][] = rooms.map(() => []);
	for (let j = 0; j < people - speakers; j++) {
		const k = j % nodes;
		const router = (rooms[k] as Room).router;
		const t = await router.createPlainTransport({
			listenInfo: { protocol: "udp", ip: "127.0.0.1" },
			rtcpMux: true,
			comedia: false,
			enableSrtp: true,
		});
		await t.connect({ ip: "127.0.0.1", port: sinkPort, srtpParameters: t.srtpParameters });
		for (const producerId of producerIds) {
			consumers[k]?.push(await t.consume({ producerId, rtpCapabilities: router.rtpCapabilities }));
		}
	}
	const setupMs = performance.now() - t0;
	const src = dgram.createSocket("udp4");
	let seq = 0;
	// Every 20 ms a burst of pps/50 packets per speaker; below 50 packets/s one packet every 1000/pps ms.
	const perTick = Math.max(1, Math.round(pps / 50));
	const tickMs = pps >= 50 ? 20 : 1000 / pps;
	const timer = setInterval(() => {
		for (let n = 0; n < perTick; n++, seq++) for (const s of ingress) src.send(rtp(seq, s.ssrc), s.port, "127.0.0.1");
	}, tickMs);
	await new Promise((r) => setTimeout(r, 1500)); // warm up
	// Delivery: packets a sampled consumer sent per packet a speaker sent (the sender here may fall behind `--pps` on a
	// loaded machine; the share is of what it did send). It is read on a sample of each router's consumers (every n-th): reading thousands of stats would queue
	// behind the media on a saturated worker.
	const sample = consumers.flatMap((list) =>
		list.filter((_, i) => i % Math.max(1, Math.floor(list.length / 40)) === 0),
	);
	const count = async () => {
		let n = 0;
		for (const c of sample) for (const s of await c.getStats()) if (s.type === "outbound-rtp") n += s.packetCount;
		return n;
	};
	const workers = pools.map((p) => p.workers[0] as ms.Worker);
	const pipeBytes = async () => {
		const s = links[0] ? ((await links[0].transport.getStats())[0] as ms.PipeTransportStat) : undefined;
		return s ? s.bytesSent + s.bytesReceived : 0;
	};
	// The packet counters are read outside the CPU window (reading thousands of consumers' stats costs the worker).
	const s0 = seq;
	const p0 = await count();
	const c0 = await Promise.all(workers.map(cpuMs));
	const b0 = await pipeBytes();
	const w0 = performance.now();
	await new Promise((r) => setTimeout(r, seconds * 1000));
	const c1 = await Promise.all(workers.map(cpuMs));
	const b1 = await pipeBytes();
	const wallMs = performance.now() - w0;
	const s1 = seq;
	const p1 = await count();
	clearInterval(timer);
	src.close();
	const result: Result = {
		nodes,
		people,
		setupMs,
		workerCore: c1.map((c, i) => (c - (c0[i] ?? 0)) / wallMs),
		deliveredShare: (p1 - p0) / sample.length / Math.max(1, s1 - s0),
		expectedPps: (people - speakers) * speakers * pps,
		pipeKbps: ((b1 - b0) * 8) / wallMs,
	};
	for (const l of links) l.close();
	for (const r of rooms) r.close();
	for (const p of pools) p.close();
	return result;
}

const results: Result[] = [];
for (const people of sizes) {
	for (const nodes of [1, 2] as const) {
		const r = await run(nodes, people);
		results.push(r);
		console.error(JSON.stringify(r));
	}
}
hole.kill();

console.log(`# Cascade at the media layer (${new Date().toISOString().slice(0, 10)}, ${machine()})`);
console.log(
	`${speakers} speakers × ${pps} packets/s of ${bytes} B; every other person receives every speaker over SRTP; ${seconds} s window`,
);
console.log(
	"| people | nodes | packets/s to deliver | delivered (sampled consumers) | worker CPU per node (share of a core) | busiest worker | worker µs per delivered packet | pipe kbit/s (both ways) |",
);
console.log("|---:|---:|---:|---:|---|---:|---:|---:|");
for (const r of results) {
	const total = r.workerCore.reduce((a, b) => a + b, 0);
	console.log(
		`| ${r.people} | ${r.nodes} | ${r.expectedPps} | ${Math.round(100 * r.deliveredShare)} % | ${r.workerCore.map((c) => c.toFixed(3)).join(" + ")} | ${Math.max(...r.workerCore).toFixed(3)} | ${((total * 1e6) / Math.max(1, r.deliveredShare * r.expectedPps)).toFixed(2)} | ${r.nodes === 2 ? Math.round(r.pipeKbps) : "–"} |`,
	);
}
process.exit(0);

/**
 * Meetings core under load, on loopback, with headless WebRTC bots
 * (mediasoup-client on @roamhq/wrtc, bench/bots/) joining through the real
 * protocol (REST-scheduled meeting, socket.io with tenant tokens):
 *
 *  1. join latency: socket connect → first decoded frame of the remote video
 *     (RTCVideoSink onframe), p50/p95 over sequential joins into a meeting whose
 *     host already publishes audio + video;
 *  2. memory: RSS of the gateway's Node process (and its V8 heap after a forced
 *     full GC) and of its mediasoup worker with 0…40 participants (each sending
 *     audio + low-resolution video and subscribed to the others of its meeting,
 *     consumers left paused), and the slope in MiB per participant;
 *  3. CPU at N consumers on one worker: P publishers × S subscribers (audio +
 *     video each), the gateway vs bare mediasoup (bench/bots/bare-sfu.ts) fed by
 *     the same bots in the same run, CPU from /proc/<pid>/stat of each server's
 *     Node process and its mediasoup-worker child.
 *
 * The gateway and the bare SFU are child processes (CONSENTRY_WORKERS=1); the
 * bots run in this process. Prints a markdown section for docs/benchmarks.md on
 * stdout, progress on stderr. Stops by itself (about 7 minutes on 2 cores).
 *
 *   node --import tsx bench/meeting-load.ts [--runs 5] [--seconds 6] [--joins 24]
 *     [--participants 10,20,40] [--meeting-size 10] [--loads 50,100,200] [--subscribers 25]
 *     [--phases rss,join,cpu] [--bare-speaker] [--width 160 --height 120 --fps 15 --bitrate 150000]
 */
import { execFileSync } from "node:child_process";
import os from "node:os";
import { parseArgs } from "node:util";
import { loadConfig } from "../server/config.js";
import { Bot } from "./bots/Bot.js";
import { SyntheticMedia } from "./bots/media.js";
import { cpuSeconds, machineCpu, rssMiB } from "./bots/proc.js";
import { BareProcess, GatewayProcess, type Meeting, type SfuUnderTest } from "./bots/servers.js";
import { median } from "./stats.js";

const { values } = parseArgs({
	options: {
		runs: { type: "string", default: "5" },
		seconds: { type: "string", default: "6" },
		joins: { type: "string", default: "24" },
		participants: { type: "string", default: "10,20,40" },
		"meeting-size": { type: "string", default: "10" },
		loads: { type: "string", default: "50,100,200" },
		subscribers: { type: "string", default: "25" },
		phases: { type: "string", default: "rss,join,cpu" },
		/** Give the bare SFU the gateway's active-speaker observer too (attributes the worker-side difference). */
		"bare-speaker": { type: "boolean", default: false },
		width: { type: "string", default: "160" },
		height: { type: "string", default: "120" },
		fps: { type: "string", default: "15" },
		bitrate: { type: "string", default: "150000" },
	},
});
const runs = Number(values.runs);
const seconds = Number(values.seconds);
const joins = Number(values.joins);
const participantSteps = values.participants.split(",").map(Number);
const meetingSize = Number(values["meeting-size"]);
const loads = values.loads.split(",").map(Number);
const subscribers = Number(values.subscribers);
const phases = new Set(values.phases.split(","));
const maxVideoBitrate = Number(values.bitrate);

const f1 = (x: number) => x.toFixed(1);
const log = (msg: string) => process.stderr.write(`[meeting-load ${(performance.now() / 1000).toFixed(0)}s] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, timeoutMs = 30_000, why?: () => string): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!cond()) {
		if (Date.now() > deadline)
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why ? `: ${why()}` : ""}`);
		await sleep(100);
	}
}

function percentile(xs: readonly number[], p: number): number {
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
}

/** % of the whole machine busy since `m0`. */
function busySince(m0: { busy: number; total: number }): number {
	const m = machineCpu();
	return (100 * (m.busy - m0.busy)) / (m.total - m0.total);
}

/** Least-squares slope of y over x. */
function slope(points: readonly [number, number][]): number {
	const n = points.length;
	const mx = points.reduce((a, [x]) => a + x, 0) / n;
	const my = points.reduce((a, [, y]) => a + y, 0) / n;
	const num = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
	const den = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
	return num / den;
}

const media = new SyntheticMedia({
	width: Number(values.width),
	height: Number(values.height),
	fps: Number(values.fps),
});
const bots = new Set<Bot>();
let botSeq = 0;

/** Joins one bot (the meeting's host if `host`), publishing audio + video if `publish`. */
async function joinBot(
	meeting: Meeting,
	o: { host?: boolean; publish: boolean; recv: boolean; consume?: boolean },
): Promise<Bot> {
	const name = `bot${++botSeq}`;
	const t0 = performance.now();
	const signal = await meeting.connect(o.host ? { role: "host" } : { role: "participant", sub: name });
	const bot = await Bot.join(signal, meeting.id, { ...o, displayName: name, send: o.publish });
	bots.add(bot);
	if (o.publish) await bot.publish(media, { audio: true, video: true, maxVideoBitrate });
	if (process.env.BENCH_VERBOSE) log(`${name} joined ${meeting.id} in ${(performance.now() - t0).toFixed(0)} ms`);
	return bot;
}

function closeBots(list: Iterable<Bot>): void {
	for (const b of list) {
		b.close();
		bots.delete(b);
	}
}

/** Median of 5 samples 300 ms apart (Node's RSS moves with GC). */
async function sampleRss(server: SfuUnderTest): Promise<{ node: number; worker: number }> {
	const node: number[] = [];
	const worker: number[] = [];
	for (let i = 0; i < 5; i++) {
		node.push(rssMiB(server.pid));
		worker.push(rssMiB(server.workerPid));
		await sleep(300);
	}
	return { node: median(node), worker: median(worker) };
}

// 2. Memory ------------------------------------------------------------------------------------------------------------

interface RssRow {
	participants: number;
	node: number;
	worker: number;
	workerCpu: number;
	nodeCpu: number;
	machineBusy: number;
	/** Node RSS right after a forced full GC, V8 heap used and external + array buffers then, MiB. */
	nodeAfterGc: number;
	heap: number;
	external: number;
}

async function memoryPhase(gw: GatewayProcess): Promise<RssRow[]> {
	// Warm-up: one join/publish/receive/leave cycle, so the baseline has every lazily loaded path in it.
	{
		const m = await gw.newMeeting(2);
		const a = await joinBot(m, { host: true, publish: true, recv: true });
		const b = await joinBot(m, { publish: true, recv: true });
		await Promise.all([a.firstFrame(), b.firstFrame()]);
		closeBots([a, b]);
		await m.end();
		await sleep(2000);
	}
	const rows: RssRow[] = [];
	const cpuWindow = async (n: number) => {
		const c0 = { node: cpuSeconds(gw.pid), worker: cpuSeconds(gw.workerPid), t: performance.now(), m: machineCpu() };
		const rss = await sampleRss(gw);
		await sleep(Math.max(0, seconds * 1000 - (performance.now() - c0.t)));
		const dt = (performance.now() - c0.t) / 1000;
		const cpu = {
			nodeCpu: (100 * (cpuSeconds(gw.pid) - c0.node)) / dt,
			workerCpu: (100 * (cpuSeconds(gw.workerPid) - c0.worker)) / dt,
			machineBusy: busySince(c0.m),
		};
		// After the CPU window (a full GC costs CPU): the same process after a forced full GC.
		await gw.gcAndMemory();
		await sleep(500);
		const mu = await gw.gcAndMemory(); // twice: the second finds what the first's finalizers freed
		await sleep(500);
		const afterGc = rssMiB(gw.pid);
		rows.push({
			participants: n,
			...rss,
			...cpu,
			nodeAfterGc: afterGc,
			heap: mu.heapUsed / 2 ** 20,
			external: (mu.external + mu.arrayBuffers) / 2 ** 20,
		});
		const r = rows.at(-1) as RssRow;
		log(
			`memory: ${n} participants: node RSS ${f1(r.node)} MiB (${f1(r.nodeAfterGc)} after GC, heap ${f1(r.heap)}, external ${f1(r.external)}), worker RSS ${f1(r.worker)} MiB, CPU node ${f1(r.nodeCpu)}% worker ${f1(r.workerCpu)}%`,
		);
	};
	await cpuWindow(0);
	const meetings: { meeting: Meeting; members: Bot[] }[] = [];
	let count = 0;
	for (const target of participantSteps) {
		while (count < target) {
			let cur = meetings.at(-1);
			if (!cur || cur.members.length >= meetingSize) {
				cur = { meeting: await gw.newMeeting(meetingSize), members: [] };
				meetings.push(cur);
			}
			cur.members.push(
				await joinBot(cur.meeting, { host: cur.members.length === 0, publish: true, recv: true, consume: false }),
			);
			count++;
		}
		await waitFor(
			`${target} participants sending and subscribed`,
			() =>
				meetings.every((m) =>
					m.members.every((b) => b.offered >= 2 * (m.members.length - 1) && b.send?.connectionState === "connected"),
				),
			60_000,
			() => meetings.map((m) => m.members.map((b) => b.describe()).join(" ")).join(" | "),
		);
		await sleep(2000);
		await cpuWindow(target);
	}
	for (const m of meetings) {
		closeBots(m.members);
		await m.meeting.end();
	}
	return rows;
}

// 1. Join latency -----------------------------------------------------------------------------------------------------

/** One join, in ms: the total and its steps in order (they add up to the total). */
interface JoinSample {
	total: number;
	steps: Record<JoinStep, number>;
}
const JOIN_STEPS = {
	connect: "socket connect (handshake, token)",
	join: "`join` request",
	device: "device.load (local)",
	send: "create send transport",
	recv: "create recv transport",
	caps: "`setRtpCapabilities` (server creates + announces the consumers)",
	media: "then to the first decoded frame (consume, resume, ICE + DTLS, key frame)",
} as const;
type JoinStep = keyof typeof JOIN_STEPS;

/**
 * Sequential joins into one meeting per server whose host publishes; the servers take turns join by join (and
 * which goes first alternates), so the machine's load drifts onto both alike.
 */
async function joinPhase(servers: SfuUnderTest[]): Promise<Map<string, JoinSample[]>> {
	const setups = [];
	for (const server of servers) {
		const m = await server.newMeeting(joins + 4);
		setups.push({ server, m, publisher: await joinBot(m, { host: true, publish: true, recv: false }) });
	}
	await sleep(1500);
	const samples = new Map<string, JoinSample[]>(servers.map((s) => [s.name, []]));
	for (let i = 0; i < joins; i++) {
		for (const { server, m } of i % 2 === 0 ? setups : [...setups].reverse()) {
			const t0 = performance.now();
			const signal = await m.connect({ role: "participant", sub: `joiner${i}` });
			const tConnected = performance.now();
			const bot = await Bot.join(signal, m.id, { displayName: `joiner${i}`, send: true, recv: true });
			bots.add(bot);
			const tFrame = await bot.firstFrame();
			const t = bot.timings;
			const at = (x: number | undefined) => x ?? Number.NaN;
			samples.get(server.name)?.push({
				total: tFrame - t0,
				steps: {
					connect: tConnected - t0,
					join: t.joined - tConnected,
					device: at(t.deviceLoaded) - t.joined,
					send: at(t.sendCreated) - at(t.deviceLoaded),
					recv: at(t.recvCreated) - at(t.sendCreated),
					caps: at(t.capsAcked) - at(t.recvCreated),
					media: tFrame - at(t.capsAcked),
				},
			});
			closeBots([bot]);
			await sleep(250);
		}
	}
	for (const { server, m, publisher } of setups) {
		closeBots([publisher]);
		await m.end();
		const tot = (samples.get(server.name) ?? []).map((s) => s.total);
		log(`join latency (${server.name}): p50 ${median(tot).toFixed(0)} ms, p95 ${percentile(tot, 95).toFixed(0)} ms`);
	}
	return samples;
}

// 3. CPU at N consumers ------------------------------------------------------------------------------------------------

interface LoadSample {
	server: "gateway" | "bare";
	consumers: number;
	nodeCpu: number;
	workerCpu: number;
	/** RTP packets/s the subscribers received (what the SFU delivered) and the publishers sent. */
	deliveredPps: number;
	sentPps: number;
	/** This process (bots) and the whole machine, % of one core. */
	botsCpu: number;
	machineBusy: number;
	/** The gateway's V8 heap used after a forced full GC, after the window (MiB). */
	heap: number;
}

async function loadSample(server: SfuUnderTest, consumers: number): Promise<LoadSample> {
	const publishers = consumers / (2 * subscribers);
	const m = await server.newMeeting(publishers + subscribers + 2);
	const pubs: Bot[] = [];
	const subs: Bot[] = [];
	try {
		for (let i = 0; i < publishers; i++) pubs.push(await joinBot(m, { host: i === 0, publish: true, recv: false }));
		for (let i = 0; i < subscribers; i += 5) {
			const batch = Math.min(5, subscribers - i);
			subs.push(
				...(await Promise.all(Array.from({ length: batch }, () => joinBot(m, { publish: false, recv: true })))),
			);
		}
		await waitFor(
			`${consumers} consumers flowing (${server.name})`,
			() => subs.every((b) => b.videoFramesSeen >= publishers && b.audioSeen >= publishers),
			30_000,
			() => subs.map((b) => b.describe()).join(" "),
		);
		const errors = [...pubs, ...subs].flatMap((b) => b.errors);
		if (errors.length) throw new Error(`bot errors: ${errors.slice(0, 3).join("; ")}`);
		await sleep(2000);
		// getStats of ~30 bots takes a while under load: each count is timed at the middle of its own reads.
		const packets = async () => {
			const t = performance.now();
			const [r, s] = await Promise.all([
				Promise.all(subs.map((b) => b.packets())),
				Promise.all(pubs.map((b) => b.packets())),
			]);
			return {
				t: (t + performance.now()) / 2,
				received: r.reduce((a, p) => a + p.received, 0),
				sent: s.reduce((a, p) => a + p.sent, 0),
			};
		};
		const p0 = await packets();
		const s0 = {
			t: performance.now(),
			node: cpuSeconds(server.pid),
			worker: cpuSeconds(server.workerPid),
			bots: process.cpuUsage(),
			machine: machineCpu(),
		};
		await sleep(seconds * 1000);
		const dt = (performance.now() - s0.t) / 1000;
		const node = cpuSeconds(server.pid) - s0.node;
		const worker = cpuSeconds(server.workerPid) - s0.worker;
		const bu = process.cpuUsage(s0.bots);
		const p1 = await packets();
		const sample: LoadSample = {
			server: server.name,
			consumers,
			nodeCpu: (100 * node) / dt,
			workerCpu: (100 * worker) / dt,
			deliveredPps: (1000 * (p1.received - p0.received)) / (p1.t - p0.t),
			sentPps: (1000 * (p1.sent - p0.sent)) / (p1.t - p0.t),
			botsCpu: (100 * (bu.user + bu.system)) / 1e6 / dt,
			machineBusy: busySince(s0.machine),
			heap: server instanceof GatewayProcess ? (await server.gcAndMemory()).heapUsed / 2 ** 20 : Number.NaN,
		};
		log(
			`cpu: ${server.name} ${consumers} consumers (${publishers}×${subscribers}×2): worker ${sample.workerCpu.toFixed(1)}%, node ${sample.nodeCpu.toFixed(1)}%, sent ${sample.sentPps.toFixed(0)} pkt/s, delivered ${sample.deliveredPps.toFixed(0)} pkt/s, bots ${sample.botsCpu.toFixed(0)}%, machine busy ${sample.machineBusy.toFixed(0)}%`,
		);
		return sample;
	} finally {
		closeBots([...pubs, ...subs]);
		await m.end();
		await sleep(1000);
	}
}

// Main ------------------------------------------------------------------------------------------------------------------

const started = Date.now();
const config = loadConfig({ ...process.env, CONSENTRY_WORKERS: "1" }); // resolves (and checks) the worker binary
const servers: SfuUnderTest[] = [];
const stopAll = async () => {
	closeBots([...bots]);
	media.stop();
	await Promise.allSettled(servers.map((s) => s.stop()));
};
process.once("SIGINT", () => {
	stopAll().finally(() => process.exit(130));
});

let rssRows: RssRow[] = [];
let joinSamples = new Map<string, JoinSample[]>();
const loadSamples: LoadSample[][] = [];
try {
	const gw = await GatewayProcess.start({ MEDIASOUP_WORKER_BIN: config.mediasoup.workerBin });
	servers.push(gw);
	const bare = await BareProcess.start(config.mediasoup.workerBin, { activeSpeaker: values["bare-speaker"] });
	servers.push(bare);
	log(
		`gateway pid ${gw.pid} (worker ${gw.workerPid}) at ${gw.url}; bare SFU pid ${bare.pid} (worker ${bare.workerPid})`,
	);

	if (phases.has("rss")) rssRows = await memoryPhase(gw);
	if (phases.has("join")) joinSamples = await joinPhase([gw, bare]);
	if (phases.has("cpu")) {
		for (let r = 0; r < runs; r++) {
			const run: LoadSample[] = [];
			for (const n of loads) {
				if (n % (2 * subscribers) !== 0) throw new Error(`--loads: ${n} is not a multiple of 2 × ${subscribers}`);
				// Alternate which server goes first, so drift on a noisy machine falls on both.
				for (const s of r % 2 === 0 ? [gw, bare] : [bare, gw]) run.push(await loadSample(s, n));
			}
			loadSamples.push(run);
		}
	}
} finally {
	await stopAll();
}

// Report ----------------------------------------------------------------------------------------------------------------

const out: string[] = [];
const cores = os.availableParallelism();
const cpuModel = os.cpus()[0]?.model.trim() ?? "?";
const git = (...args: string[]) => {
	try {
		return execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
	} catch {
		return "";
	}
};
const dirty = git("status", "--porcelain", "--", "server", "shared").split("\n").filter(Boolean).length;
const revision = `${git("rev-parse", "--short", "HEAD") || "?"}${dirty ? ` + ${dirty} uncommitted server/shared files` : ""}`;
out.push("## Meetings core: join latency, memory, CPU vs bare mediasoup");
out.push("");
out.push(
	`${new Date().toISOString().slice(0, 10)}, ${cores} cores (${cpuModel}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, ` +
		`${process.platform} ${process.arch}, Node ${process.version}, mediasoup 3.27.1 (one worker), gateway at ${revision}; no browser: ` +
		`bots are mediasoup-client 3.24 on @roamhq/wrtc 0.10 (libwebrtc) in the benchmark process, on the same 2 cores. ` +
		`Synthetic media: Opus 440 Hz tone + VP8 ${values.width}×${values.height} @ ${values.fps} fps (one layer, ≤ ${maxVideoBitrate / 1000} kbit/s). ` +
		`Run took ${Math.round((Date.now() - started) / 1000)} s.`,
);
out.push("");
out.push("```sh");
out.push(`node --import tsx bench/meeting-load.ts ${process.argv.slice(2).join(" ")}`.trim());
out.push("```");
if (joinSamples.size) {
	out.push("");
	out.push(
		`**Join latency** (${joins} sequential joins per server into a meeting whose host publishes; each joiner connects, joins, ` +
			"opens a send and a receive transport like the browser client, and stops at the first *decoded* frame of the host's video " +
			"(wrtc `RTCVideoSink.onframe`), then leaves):",
	);
	out.push("");
	out.push("| server | p50 ms | p95 ms | min ms | max ms |");
	out.push("|---|---:|---:|---:|---:|");
	const label = (name: string) => (name === "gateway" ? "gateway (socket.io + token)" : "bare mediasoup (Node IPC)");
	for (const [name, s] of joinSamples) {
		const tot = s.map((x) => x.total);
		out.push(
			`| ${label(name)} | **${median(tot).toFixed(0)}** | **${percentile(tot, 95).toFixed(0)}** | ${Math.min(...tot).toFixed(0)} | ${Math.max(...tot).toFixed(0)} |`,
		);
	}
	out.push("");
	out.push("Where the time goes (median of each step, ms):");
	out.push("");
	out.push(`| step | ${[...joinSamples.keys()].map(label).join(" | ")} |`);
	out.push(`|---|${[...joinSamples.keys()].map(() => "---:").join("|")}|`);
	for (const [k, text] of Object.entries(JOIN_STEPS)) {
		out.push(
			`| ${text} | ${[...joinSamples.values()].map((s) => median(s.map((x) => x.steps[k as JoinStep])).toFixed(1)).join(" | ")} |`,
		);
	}
}
if (rssRows.length) {
	const pts = (k: "node" | "nodeAfterGc" | "heap" | "external" | "worker") =>
		rssRows.map((r) => [r.participants, r[k]] as [number, number]);
	out.push("");
	out.push(
		`**Memory** (gateway child process, after one warm-up join/leave; participants in meetings of ${meetingSize}, each ` +
			"sending audio + video over a connected send transport and subscribed to everyone else in its meeting: the server " +
			"creates the 2 × (members − 1) consumers on its receive transport, but the bot leaves them paused, so the Node " +
			"side holds every object of a real meeting while nothing is forwarded to or decoded by the bots (this box cannot " +
			"decode hundreds of tracks; the per-consumer cost with media flowing is under CPU below). RSS = median of 5 " +
			`\`VmRSS\` reads; CPU over a ${seconds} s window from /proc/<pid>/stat, % of one core):`,
	);
	out.push("");
	out.push(
		"| participants | gateway Node RSS MiB | … after a forced full GC | V8 heap used MiB | external + ArrayBuffers MiB | mediasoup-worker RSS MiB | Node CPU % | worker CPU % | machine busy % |",
	);
	out.push("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
	for (const r of rssRows)
		out.push(
			`| ${r.participants} | ${f1(r.node)} | ${f1(r.nodeAfterGc)} | ${f1(r.heap)} | ${f1(r.external)} | ${f1(r.worker)} | ${f1(r.nodeCpu)} | ${f1(r.workerCpu)} | ${r.machineBusy.toFixed(0)} |`,
		);
	const sl = (k: "node" | "nodeAfterGc" | "heap" | "external" | "worker") => `**${slope(pts(k)).toFixed(2)}**`;
	out.push(
		`| **slope, MiB per participant** | ${sl("node")} | ${sl("nodeAfterGc")} | ${sl("heap")} | ${sl("external")} | ${sl("worker")} | | | |`,
	);
}
if (loadSamples.length) {
	const heapByLoad: [number, number][] = [];
	out.push("");
	out.push(
		`**CPU at N consumers on one worker** (P publishers × ${subscribers} subscribers × audio + video = N consumers; ` +
			"the same bots against the gateway and against bare mediasoup (bench/bots/bare-sfu.ts: same codecs and transport " +
			`options, no socket.io/meeting logic, ${values["bare-speaker"] ? "but WITH the gateway's active-speaker observer (--bare-speaker)" : "no active-speaker observer"}), alternating which goes first; a ` +
			`${seconds} s window after every remote track decoded a frame; CPU = utime + stime of the server's Node process ` +
			"and of its mediasoup-worker child from /proc, % of one core; medians of " +
			`${loadSamples.length} runs; ratio = median of the per-run ratios of (Node + worker) CPU, per-run values in ` +
			"parentheses; delivery = packets the subscribers received ÷ (packets the publishers sent × subscribers), from " +
			"the bots' getStats):",
	);
	out.push("");
	out.push(
		"| N consumers | P × S | gateway worker % | gateway Node % | bare worker % | bare Node % | **gateway / bare**, median of per-run ratios (each run) | ratio of the medians | worker-only ratio | pkt/s out of the SFU (gateway / bare) | delivery % (gateway / bare) | bots % | machine busy % |",
	);
	out.push("|---:|---|---:|---:|---:|---:|---|---:|---:|---|---|---:|---:|");
	for (const n of loads) {
		const of = (s: "gateway" | "bare") =>
			loadSamples.map((run) => run.find((x) => x.consumers === n && x.server === s) as LoadSample);
		const g = of("gateway");
		const b = of("bare");
		const ratios = g.map((x, i) => (x.nodeCpu + x.workerCpu) / ((b[i]?.nodeCpu ?? 0) + (b[i]?.workerCpu ?? 0)));
		const wratios = g.map((x, i) => x.workerCpu / (b[i]?.workerCpu ?? Number.NaN));
		const med = (xs: LoadSample[], k: keyof LoadSample) => median(xs.map((x) => x[k] as number));
		const delivery = (xs: LoadSample[]) =>
			median(xs.map((x) => (100 * x.deliveredPps) / (x.sentPps * subscribers))).toFixed(0);
		out.push(
			`| ${n} | ${n / (2 * subscribers)} × ${subscribers} | ${f1(med(g, "workerCpu"))} | ${f1(med(g, "nodeCpu"))} | ${f1(med(b, "workerCpu"))} | ${f1(med(b, "nodeCpu"))} | **${median(ratios).toFixed(2)}** (${ratios.map((r) => r.toFixed(2)).join(", ")}) | ${((med(g, "workerCpu") + med(g, "nodeCpu")) / (med(b, "workerCpu") + med(b, "nodeCpu"))).toFixed(2)} | ${median(wratios).toFixed(2)} | ${med(g, "deliveredPps").toFixed(0)} / ${med(b, "deliveredPps").toFixed(0)} | ${delivery(g)} / ${delivery(b)} | ${med([...g, ...b], "botsCpu").toFixed(0)} | ${med([...g, ...b], "machineBusy").toFixed(0)} |`,
		);
		heapByLoad.push([n, med(g, "heap")]);
	}
	if (heapByLoad.length > 1) {
		out.push("");
		out.push(
			`Gateway V8 heap used after a forced full GC at the end of each window (median): ${heapByLoad.map(([, h]) => f1(h)).join(" / ")} MiB ` +
				`at ${loads.join(" / ")} consumers (${loads.map((n) => n / (2 * subscribers) + subscribers).join(" / ")} peers): ` +
				`${(slope(heapByLoad) * 1024).toFixed(1)} KiB per consumer added.`,
		);
	}
}
const gwWarnings = (servers.find((s) => s instanceof GatewayProcess) as GatewayProcess | undefined)?.warnings;
if (gwWarnings?.size) {
	out.push("");
	out.push(
		`Gateway warnings during the run: ${[...gwWarnings].map(([w, n]) => `\`${w.slice(0, 200)}\` ×${n}`).join("; ")}.`,
	);
}
console.log(out.join("\n"));
process.exit(0);

/**
 * Recorder load, in process (RTP → depacketizer → WebM (recorder/MatroskaWriter) → S3, no ffmpeg per track): CPU and memory per
 * recorded stream, tap open → first frame in the muxer, container overhead, a start burst, and the loss at random
 * kill -9 moments. The real recorder child (RecorderProcess, the gateway's default config) and a real S3 API (moto).
 *
 * Sample media is encoded ONCE by ffmpeg (Opus 32 kbit/s mono speech from flite; VP8 640×480 30 fps ~1 Mbit/s from
 * testsrc, a key frame every 2 s), captured as RTP and kept in memory, then replayed in real time to every track from
 * this one process (paced by the RTP timestamps, looped with continuous sequence numbers and timestamps, one SSRC
 * per track). An audio + video stream is two tracks.
 *
 * - Steps N = --streams (1, 10, 100, 200): a fresh recorder, its idle CPU/RSS over 3 s, N streams opened and started
 *   over 1 s, 3 s of warm-up, then --seconds measured in --window sub-windows: CPU = utime + stime of the recorder
 *   (/proc), median over the sub-windows; RSS/PSS from smaps_rollup at the end; per stream = (recorder − idle) / N.
 *   Also "whole run": the recorder's CPU from the first open to the last close (minus idle) per second of a stream's
 *   media — its need, including a backlog it caught up on, whatever CPU share it got on a shared machine (it also
 *   holds the objects' opening and final uploads, so it is above the steady-state figure).
 *   Then the replay stops, every track closes (its frames counted by the recorder), and the objects' sizes are
 *   compared with the RTP payload sent (container overhead, audio and video apart).
 * - Burst: --burst audio + video streams opened at once and their media started in the same instant, 12 s:
 *   frames written ÷ frames received (the recorder's count), and ÷ frames sent.
 * - Crash: --crashes rounds of 2 audio + video streams recording, the recorder killed with SIGKILL at a random
 *   moment 3–10 s in, a new one started and `recover` run: seconds lost per track = kill time − the end of the
 *   recovered object (its last checkpoint).
 *
 * Prints a markdown section for docs/benchmarks.md on stdout, progress on stderr.
 *
 *   node --import tsx bench/recorder-load.ts [--streams 1,10,100,200] [--seconds 10] [--window 5] [--burst 200]
 *     [--crashes 20] [--capture 20] [--audio-kbps 32] [--video-kbps 1000] [--runs 1] [--video-codec vp8|h264]
 */
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { ObjectWritten, StartStages, TrackStats } from "../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../contracts/StorageTargetTypes.js";
import { isVp8KeyframeStart, parseRtp } from "../recorder/rtp.js";
import { RecorderProcess } from "../server/recording/RecorderProcess.js";
import { startS3 } from "../test/helpers/moto.js";
import { probeMedia } from "../test/helpers/webm.js";
import { cpuSeconds } from "./bots/proc.js";
import { machine, median, percentile } from "./stats.js";

const { values } = parseArgs({
	options: {
		seconds: { type: "string", default: "10" },
		window: { type: "string", default: "5" },
		streams: { type: "string", default: "1,10,100,200" },
		capture: { type: "string", default: "20" },
		"audio-kbps": { type: "string", default: "32" },
		"video-kbps": { type: "string", default: "1000" },
		"video-codec": { type: "string", default: "vp8" },
		burst: { type: "string", default: "200" },
		crashes: { type: "string", default: "20" },
		runs: { type: "string", default: "1" },
		senders: { type: "string", default: "4" },
		"burst-seconds": { type: "string", default: "12" },
		"burst-drain-ms": { type: "string", default: "600000" },
	},
});
const seconds = Number(values.seconds);
const windowS = Number(values.window);
const streamSteps = values.streams.split(",").filter(Boolean).map(Number);
const captureS = Number(values.capture);
const audioKbps = Number(values["audio-kbps"]);
const videoKbps = Number(values["video-kbps"]);
const h264 = values["video-codec"] === "h264";
if (!["vp8", "h264"].includes(values["video-codec"])) throw new Error("--video-codec is vp8 or h264");
const burstStreams = Number(values.burst);
const crashes = Number(values.crashes);
const runs = Number(values.runs);
const BURST_S = Number(values["burst-seconds"]);
const senders = Number(values.senders);
const GOP_FRAMES = 60;
const FPS = 30;
const started = performance.now();
const log = (msg: string) =>
	console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const MiB = 2 ** 20;

// ---------------------------------------------------------------------------------------------------------------
// Sample media, captured once.

interface Sample {
	data: Buffer;
	/** Sequence number and timestamp of the capture (rewritten on replay). */
	tsRel: number;
	/** Seconds from the first packet, by the RTP clock. */
	t: number;
	payloadBytes: number;
	marker: boolean;
}

interface Media {
	kind: "audio" | "video";
	clockRate: number;
	payloadType: number;
	samples: Sample[];
	/** One loop of the capture, in clock units and in seconds (last packet's time + one frame). */
	periodTs: number;
	periodS: number;
	frames: number;
	payloadBytes: number;
}

const SPEECH =
	"Good morning everyone and thank you for joining the weekly planning meeting. Before we start I want to remind " +
	"you that this meeting is recorded and that the recording goes only to our own storage bucket. First item on the " +
	"agenda is the release of the gateway. The recorder passed its tests last night and the benchmark numbers look " +
	"reasonable so far. Second item is the notice gate in the browser client which now shows the notice before any " +
	"media is sent. Third item is hiring and we have two candidates this week. Any questions before we continue";

async function captureMedia(kind: "audio" | "video", secs: number): Promise<Media> {
	const open = async () => {
		const s = dgram.createSocket({ type: "udp4", recvBufferSize: 4 * MiB });
		await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
		return s;
	};
	const rtp = await open();
	const rtcp = await open();
	const raw: Buffer[] = [];
	rtp.on("message", (m) => raw.push(m));
	const payloadType = kind === "audio" ? 100 : 101;
	const args =
		kind === "audio"
			? [
					...["-f", "lavfi", "-i", `flite=text='${SPEECH}':voice=slt`, "-af", "aresample=48000,apad"],
					...["-t", String(secs), "-c:a", "libopus", "-ac", "1", "-b:a", `${audioKbps}k`, "-application", "voip"],
				]
			: [
					...["-f", "lavfi", "-i", `testsrc=size=640x480:rate=${FPS}`, "-t", String(secs)],
					...(h264
						? ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "baseline"]
						: ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"]),
					...["-pix_fmt", "yuv420p", "-b:v", `${videoKbps}k`],
					...["-g", String(GOP_FRAMES), "-keyint_min", String(GOP_FRAMES)],
				];
	const child = spawn(
		"ffmpeg",
		[
			...["-hide_banner", "-loglevel", "error", "-re", ...args],
			...["-payload_type", String(payloadType), "-ssrc", "1", "-f", "rtp"],
			`rtp://127.0.0.1:${rtp.address().port}?rtcpport=${rtcp.address().port}&pkt_size=1200`,
		],
		{ stdio: ["ignore", "ignore", "pipe"] },
	);
	let stderr = "";
	child.stderr.on("data", (d: Buffer) => {
		stderr += d.toString();
	});
	const code = await new Promise<number | null>((r) => child.once("exit", r));
	await sleep(200);
	rtp.close();
	rtcp.close();
	if (code !== 0) throw new Error(`ffmpeg (${kind} capture) exited ${code}: ${stderr}`);

	const headers = raw.map((b) => parseRtp(b));
	const first = headers[0];
	if (!first) throw new Error(`no ${kind} RTP captured`);
	for (let i = 1; i < headers.length; i++) {
		const h = headers[i];
		const prev = headers[i - 1];
		if (!h || !prev || h.sequence !== ((prev.sequence + 1) & 0xffff)) throw new Error(`${kind} capture lost packets`);
	}
	// H.264 from ffmpeg's RTP muxer: an IDR starts with its SPS, alone or in a STAP-A (type 24) with the PPS.
	const nal = (((raw[0] as Buffer)[first.payloadOffset] as number) & 0x1f) as number;
	const startsKey = h264 ? nal === 7 || nal === 24 || nal === 5 : isVp8KeyframeStart(raw[0] as Buffer, first);
	if (kind === "video" && !startsKey) throw new Error("video does not start at a key frame");
	let samples = raw.map((data, i) => {
		const h = headers[i] as NonNullable<(typeof headers)[number]>;
		const tsRel = (h.timestamp - first.timestamp) >>> 0;
		return { data, tsRel, t: 0, payloadBytes: h.payloadLength, marker: h.marker };
	});
	if (kind === "video") {
		// Whole frames only: drop a frame cut short by the end of the capture.
		let last = samples.length - 1;
		while (last >= 0 && !samples[last]?.marker) last--;
		samples = samples.slice(0, last + 1);
	}
	const clockRate = kind === "audio" ? 48000 : 90000;
	const steps: number[] = [];
	for (let i = 1; i < samples.length; i++) {
		const d = (samples[i] as Sample).tsRel - (samples[i - 1] as Sample).tsRel;
		if (d > 0) steps.push(d);
	}
	const frameTs = median(steps);
	const periodTs = (samples[samples.length - 1] as Sample).tsRel + frameTs;
	for (const s of samples) s.t = s.tsRel / clockRate;
	return {
		kind,
		clockRate,
		payloadType,
		samples,
		periodTs,
		periodS: periodTs / clockRate,
		frames: kind === "audio" ? samples.length : samples.filter((s) => s.marker).length,
		payloadBytes: samples.reduce((a, s) => a + s.payloadBytes, 0),
	};
}

// ---------------------------------------------------------------------------------------------------------------
// Real-time replay of the captured packets to many tracks, from --senders threads (bench/replay-worker.ts), each
// with its own socket and event loop: one thread alone falls behind real time at a few hundred tracks on a busy box.

interface ReplayTrack {
	trackId: string;
	media: Media;
	/** Filled in when the replay stops. */
	packets: number;
	/** Packets the kernel accepted (send callbacks without error), and refused. */
	acked: number;
	errors: number;
	frames: number;
	payloadBytes: number;
	/** Date.now() when its first packet went out. */
	firstSentAt?: number;
}

/** Messages to and from a sender thread (bench/replay-worker.mjs). */
type ReplayWorkerIn =
	| { type: "add"; tracks: { trackId: string; kind: "audio" | "video"; port: number; ssrc: number; start: number }[] }
	| { type: "stop" };
interface ReplayWorkerOut {
	type: "stopped";
	tracks: {
		trackId: string;
		packets: number;
		acked: number;
		errors: number;
		frames: number;
		payloadBytes: number;
		firstSentAt?: number;
	}[];
	/** How late packets left against their schedule (ms): p50, p99, max over every packet. */
	lateMs: { p50: number; p99: number; max: number };
}

class Replayer {
	readonly #workers: Worker[];
	readonly tracks: ReplayTrack[] = [];
	#next = 0;
	/** How late packets left against their schedule in the last replay (ms, worst sender thread). */
	lateMs = { p50: 0, p99: 0, max: 0 };

	constructor(senders: number, media: { audio: Media; video: Media }) {
		const wire = (m: Media) => ({
			kind: m.kind,
			periodTs: m.periodTs,
			periodS: m.periodS,
			samples: m.samples.map((x) => ({ ...x, data: new Uint8Array(x.data) })),
		});
		const data = { audio: wire(media.audio), video: wire(media.video) };
		this.#workers = Array.from(
			{ length: senders },
			() => new Worker(new URL("./replay-worker.mjs", import.meta.url), { workerData: data }),
		);
	}

	/** Starts a track's replay at `start` (performance.now() time), on the next sender thread in turn. */
	add(trackId: string, media: Media, port: number, ssrc: number, start: number): ReplayTrack {
		const t: ReplayTrack = { trackId, media, packets: 0, acked: 0, errors: 0, frames: 0, payloadBytes: 0 };
		this.tracks.push(t);
		const w = this.#workers[this.#next++ % this.#workers.length] as Worker;
		const msg: ReplayWorkerIn = {
			type: "add",
			tracks: [{ trackId, kind: media.kind, port, ssrc, start: performance.timeOrigin + start }],
		};
		w.postMessage(msg);
		return t;
	}

	/** Stops every track at its next frame boundary; resolves once every packet was handed to the kernel. */
	async stopAll(): Promise<void> {
		const byId = new Map(this.tracks.map((t) => [t.trackId, t]));
		const outs = await Promise.all(
			this.#workers.map(
				(w) =>
					new Promise<ReplayWorkerOut>((resolve) => {
						w.once("message", resolve);
						w.postMessage({ type: "stop" } satisfies ReplayWorkerIn);
					}),
			),
		);
		for (const o of outs) for (const c of o.tracks) Object.assign(byId.get(c.trackId) ?? {}, c);
		this.lateMs = {
			p50: Math.max(...outs.map((o) => o.lateMs.p50)),
			p99: Math.max(...outs.map((o) => o.lateMs.p99)),
			max: Math.max(...outs.map((o) => o.lateMs.max)),
		};
		this.tracks.length = 0;
	}

	async close(): Promise<void> {
		await Promise.all(this.#workers.map((w) => w.terminate()));
	}
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements.

function smaps(pid: number): { rss: number; pss: number } {
	try {
		const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
		const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN) / 1024;
		return { rss: kb("Rss"), pss: kb("Pss") };
	} catch {
		return { rss: Number.NaN, pss: Number.NaN };
	}
}

log("capturing sample media (audio and video in parallel, real time)…");
const [audio, video] = await Promise.all([captureMedia("audio", captureS), captureMedia("video", captureS)]);
const kbps = (m: Media) => (m.payloadBytes * 8) / m.periodS / 1000;
for (const m of [audio, video]) {
	log(
		`${m.kind}: ${m.samples.length} packets, ${m.frames} frames in ${m.periodS.toFixed(2)} s, ${kbps(m).toFixed(1)} kbit/s`,
	);
}

const s3server = await startS3();
const s3 = new S3Client({
	endpoint: s3server.endpoint,
	region: "us-east-1",
	forcePathStyle: true,
	credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
});
await s3.send(new CreateBucketCommand({ Bucket: "customer" }));
const target: StorageTarget = {
	endpoint: s3server.endpoint,
	region: "us-east-1",
	bucket: "customer",
	prefix: "bench",
	credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
	forcePathStyle: true,
	encryption: { type: "none" },
};
const AUDIO = { kind: "audio", mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 } as const;
const VIDEO = {
	kind: "video",
	mimeType: h264 ? "video/H264" : "video/VP8",
	payloadType: 101,
	clockRate: 90000,
} as const;
const replayer = new Replayer(senders, { audio, video });
let stepNo = 0;

interface Rec {
	recorder: RecorderProcess;
	pid: number;
	objects: ObjectWritten[];
	startedAt: Map<string, number>;
	stages: Map<string, StartStages>;
	failures: string[];
}

async function startRecorder(closeDrainMs?: number): Promise<Rec> {
	const recorder = await RecorderProcess.create({
		config: { logLevel: "error", ...(closeDrainMs !== undefined ? { closeDrainMs } : {}) },
		stderr: "ignore",
	});
	const r: Rec = {
		recorder,
		pid: recorder.pid as number,
		objects: [],
		startedAt: new Map(),
		stages: new Map(),
		failures: [],
	};
	recorder.on("objectWritten", (o) => r.objects.push(o));
	recorder.on("trackStarted", (s) => {
		r.startedAt.set(s.trackId, Date.parse(s.at));
		if (s.stages) r.stages.set(s.trackId, s.stages);
	});
	recorder.on("trackFailed", (f) => r.failures.push(`${f.code}: ${f.message}`));
	return r;
}

interface Opened {
	trackId: string;
	media: Media;
	stream: number;
	ssrc: number;
	port: number;
	sessionId: string;
	/** openTrack asked → trackOpened (its ports bound), ms. */
	openMs: number;
}

async function openStreams(rec: RecorderProcess, streams: number): Promise<Opened[]> {
	stepNo++;
	const sessionId = `s${stepNo}`;
	const opened = await Promise.all(
		Array.from({ length: streams }, (_, i) =>
			Promise.all(
				[audio, video].map(async (media) => {
					const trackId = `s${stepNo}-${i}-${media.kind === "audio" ? "a" : "v"}`;
					const ssrc = 0x10000000 + stepNo * 1000 + i * 2 + (media.kind === "audio" ? 0 : 1);
					const asked = performance.now();
					const ports = await rec.openTrack({
						trackId,
						key: {
							prefix: "bench",
							meetingId: "m",
							sessionId,
							person: `p${i}`,
							kind: media.kind === "audio" ? "audio" : "camera",
						},
						codec: media.kind === "audio" ? AUDIO : VIDEO,
						ssrc,
						target,
						options: { allowHttp: true, allowPrivate: true },
					});
					return {
						trackId,
						media,
						stream: i,
						ssrc,
						port: ports.rtpPort,
						sessionId,
						openMs: performance.now() - asked,
					};
				}),
			),
		),
	);
	return opened.flat();
}

interface StepResult {
	streams: number;
	idleCore: number;
	/** Core per stream over the whole run (open → close, backlog included) per second of a stream's media. */
	wholeRunCore: number;
	core: number;
	perStreamCore: number;
	idleRss: number;
	rss: number;
	pss: number;
	perStreamRss: number;
	replayCore: number;
	firstFrameMs: number[];
	/** Per stage of the first frame's path: ms from its first packet sent (p50 over the tracks). */
	stageMs: {
		firstTenth: number;
		lastTenth: number;
		open: number;
		firstPacket: number;
		firstFrame: number;
		muxed: number;
	};
	overheadAudio: number;
	overheadVideo: number;
	framesReceived: number;
	framesWritten: number;
	framesSent: number;
	failures: number;
	failureReasons: string[];
	decodeErrors: number;
}

async function step(streams: number): Promise<StepResult> {
	const r = await startRecorder();
	await sleep(1500);
	const i0 = { at: performance.now(), cpu: cpuSeconds(r.pid) };
	await sleep(3000);
	const idleCore = (cpuSeconds(r.pid) - i0.cpu) / ((performance.now() - i0.at) / 1000);
	const idleRss = smaps(r.pid).rss;
	const whole0 = { at: performance.now(), cpu: cpuSeconds(r.pid) };
	const tracks = await openStreams(r.recorder, streams);
	const t0 = performance.now() + 50;
	const spacing = Math.min(1000 / streams, 100);
	const replays = tracks.map((o) => replayer.add(o.trackId, o.media, o.port, o.ssrc, t0 + o.stream * spacing));
	await sleep(t0 + streams * spacing - performance.now() + 3000);
	const cores: number[] = [];
	const replayCores: number[] = [];
	for (let w = 0; w < Math.max(1, Math.round(seconds / windowS)); w++) {
		const a = { at: performance.now(), cpu: cpuSeconds(r.pid), me: process.cpuUsage() };
		await sleep(windowS * 1000);
		const dt = (performance.now() - a.at) / 1000;
		cores.push((cpuSeconds(r.pid) - a.cpu) / dt);
		const me = process.cpuUsage(a.me);
		replayCores.push((me.user + me.system) / 1e6 / dt);
	}
	const mem = smaps(r.pid);
	await replayer.stopAll();
	await sleep(1000); // what was sent lands (socket buffers, jitter window) before the tracks close
	const stats = await Promise.all(tracks.map((t) => r.recorder.closeTrack(t.trackId).catch(() => undefined)));
	// The recorder's whole work from the first open to the last close (a backlog it built while starved of CPU and
	// caught up on is in it), per second of media of a stream: its need, whatever share of the CPU it got meanwhile.
	const wholeCpu = cpuSeconds(r.pid) - whole0.cpu - idleCore * ((performance.now() - whole0.at) / 1000);
	const mediaSeconds = tracks.reduce(
		(n, t, i) => n + (t.media.kind === "video" ? (stats[i]?.framesReceived ?? 0) / FPS : 0),
		0,
	);
	const firstFrameMs = tracks
		.map((t, i) => (r.startedAt.get(t.trackId) ?? Number.NaN) - (replays[i]?.firstSentAt ?? Number.NaN))
		.filter(Number.isFinite);
	const stageOf = (k: keyof StartStages) =>
		median(
			tracks
				.map((t, i) => (r.stages.get(t.trackId)?.[k] ?? Number.NaN) - (replays[i]?.firstSentAt ?? Number.NaN))
				.filter(Number.isFinite),
		);
	// The streams start `spacing` ms apart: the first tenth to start meets an idle recorder, the last tenth one that is
	// already recording the other 90 %.
	const byStart = (from: number, to: number) =>
		median(
			tracks
				.map((t, i) => ({ t, i }))
				.filter(({ t }) => t.stream >= from * streams && t.stream < to * streams)
				.map(({ t, i }) => (r.startedAt.get(t.trackId) ?? Number.NaN) - (replays[i]?.firstSentAt ?? Number.NaN))
				.filter(Number.isFinite),
		);
	const stageMs = {
		firstTenth: byStart(0, 0.1),
		lastTenth: byStart(0.9, 1),
		open: median(tracks.map((t) => t.openMs)),
		firstPacket: stageOf("firstPacket"),
		firstFrame: stageOf("firstFrame"),
		muxed: stageOf("muxed"),
	};
	const sizeOf = (kind: "audio" | "video") =>
		r.objects.filter((o) => o.key.includes(kind === "audio" ? "-audio-" : "-camera-")).reduce((n, o) => n + o.size, 0);
	const payloadOf = (kind: "audio" | "video") =>
		replays.filter((p) => p.media.kind === kind).reduce((n, p) => n + p.payloadBytes, 0);
	// A sample of objects decoded end to end.
	let decodeErrors = 0;
	for (const o of [r.objects[0], r.objects.at(-1)]) {
		if (!o) continue;
		const res = await s3.send(new GetObjectCommand({ Bucket: "customer", Key: o.key }));
		const bytes = Buffer.from(
			await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
		);
		if ((await probeMedia(bytes)).decodeErrors) decodeErrors++;
	}
	await r.recorder.close();
	const core = median(cores);
	const sum = (xs: (TrackStats | undefined)[], k: keyof TrackStats) => xs.reduce((n, s) => n + (s?.[k] ?? 0), 0);
	return {
		streams,
		idleCore,
		core,
		perStreamCore: (core - idleCore) / streams,
		wholeRunCore: mediaSeconds > 0 ? wholeCpu / mediaSeconds : Number.NaN,
		idleRss,
		rss: mem.rss,
		pss: mem.pss,
		perStreamRss: (mem.rss - idleRss) / streams,
		replayCore: median(replayCores),
		firstFrameMs,
		stageMs,
		overheadAudio: sizeOf("audio") / payloadOf("audio") - 1,
		overheadVideo: sizeOf("video") / payloadOf("video") - 1,
		framesReceived: sum(stats, "framesReceived"),
		framesWritten: sum(stats, "framesWritten"),
		framesSent: replays.reduce((n, p) => n + p.frames, 0),
		failures: r.failures.length,
		failureReasons: r.failures,
		decodeErrors,
	};
}

/** The kernel's UDP counters (this network namespace: other processes on the box count too). */
function udpCounters(): Record<string, number> {
	const lines = readFileSync("/proc/net/snmp", "utf8")
		.split("\n")
		.filter((l) => l.startsWith("Udp:"));
	const names = (lines[0] ?? "").split(/\s+/).slice(1);
	const vals = (lines[1] ?? "").split(/\s+/).slice(1).map(Number);
	return Object.fromEntries(names.map((n, i) => [n, vals[i] ?? 0]));
}

/**
 * Burst: every track opened at once and its media started in the same instant. Counts each frame at every stage:
 * sent (the kernel accepted the packet), kernel UDP drops, packets that reached the recorder's sockets, frames the
 * depacketizer made of them, frames in the objects; and every hole by cause. Then CPU of each process over the burst.
 */
async function burst(streams: number) {
	// Closing drains each track's socket until it is quiet (up to 10 min by default): a recorder the box starves of CPU
	// reads its backlog before the count, so "received ÷ sent" says whether anything was lost, not how far it lagged.
	const r = await startRecorder(Number(values["burst-drain-ms"]));
	const holes = new Map<string, { holes: number; frames: number; ms: number }>();
	r.recorder.on("trackHole", ({ hole }) => {
		const h = holes.get(hole.cause) ?? { holes: 0, frames: 0, ms: 0 };
		holes.set(hole.cause, {
			holes: h.holes + 1,
			frames: h.frames + (hole.frames ?? 0),
			ms: h.ms + (Date.parse(hole.to) - Date.parse(hole.from)),
		});
	});
	const udp0 = udpCounters();
	const cpu0 = {
		recorder: cpuSeconds(r.pid),
		moto: cpuSeconds(s3server.pid),
		me: process.cpuUsage(),
		at: performance.now(),
	};
	const opening = performance.now();
	const tracks = await openStreams(r.recorder, streams);
	const openMs = performance.now() - opening;
	const t0 = performance.now() + 50;
	const replays = tracks.map((o) => replayer.add(o.trackId, o.media, o.port, o.ssrc, t0));
	await sleep(BURST_S * 1000);
	await replayer.stopAll();
	// What was sent is still on its way (socket buffers, the recorder's event loop, its jitter window): let it land.
	await sleep(1500);
	const dt = (performance.now() - cpu0.at) / 1000;
	const me = process.cpuUsage(cpu0.me);
	const cores = {
		recorder: (cpuSeconds(r.pid) - cpu0.recorder) / dt,
		moto: (cpuSeconds(s3server.pid) - cpu0.moto) / dt,
		senders: (me.user + me.system) / 1e6 / dt,
	};
	const udp1 = udpCounters();
	const closing = performance.now();
	const stats = await Promise.all(tracks.map((t) => r.recorder.closeTrack(t.trackId).catch(() => undefined)));
	const closeS = (performance.now() - closing) / 1000;
	const udp2 = udpCounters();
	await r.recorder.close();
	const sum = (k: keyof TrackStats) => stats.reduce((n, s) => n + (s?.[k] ?? 0), 0);
	const d = (k: string) => (udp1[k] ?? 0) - (udp0[k] ?? 0);
	return {
		streams,
		tracks: tracks.length,
		openMs,
		sent: replays.reduce((n, p) => n + p.frames, 0),
		packetsSent: replays.reduce((n, p) => n + p.acked, 0),
		sendErrors: replays.reduce((n, p) => n + p.errors, 0),
		late: replayer.lateMs,
		kernel: {
			in: d("InDatagrams"),
			rcvbufErrors: (udp2.RcvbufErrors ?? 0) - (udp0.RcvbufErrors ?? 0),
			sndbufErrors: d("SndbufErrors"),
			inErrors: (udp2.InErrors ?? 0) - (udp0.InErrors ?? 0),
		},
		closeS,
		packetsReceived: sum("packets"),
		lostPackets: sum("lostPackets"),
		received: sum("framesReceived"),
		dropped: sum("framesDropped"),
		written: sum("framesWritten"),
		holes: Object.fromEntries(holes),
		cores,
		failures: r.failures.length,
		failureReasons: [...new Set(r.failures.map((f) => f.slice(0, 160)))],
	};
}

async function crashRounds(rounds: number) {
	const losses: number[] = [];
	let decodeErrors = 0;
	let objects = 0;
	const r = await startRecorder();
	for (let i = 0; i < rounds; i++) {
		const tracks = await openStreams(r.recorder, 2);
		const t0 = performance.now() + 20;
		for (const o of tracks) replayer.add(o.trackId, o.media, o.port, o.ssrc, t0);
		await sleep(3000 + Math.random() * 7000);
		const killedAt = Date.now();
		const crashed = new Promise((res) => r.recorder.once("crashed", res));
		process.kill(r.pid, "SIGKILL");
		await crashed;
		await replayer.stopAll();
		await r.recorder.restart();
		r.pid = r.recorder.pid as number;
		const recovered: ObjectWritten[] = [];
		const onObject = (o: ObjectWritten) => {
			if (o.recovered) recovered.push(o);
		};
		r.recorder.on("objectWritten", onObject);
		await r.recorder.recover({
			target,
			prefix: "bench",
			sessions: [{ meetingId: "m", sessionId: tracks[0]?.sessionId as string }],
			options: { allowHttp: true, allowPrivate: true },
		});
		r.recorder.off("objectWritten", onObject);
		for (const t of tracks) {
			const mine = recovered.filter((o) =>
				o.key.includes(`/p${t.stream}-${t.media.kind === "audio" ? "audio" : "camera"}-`),
			);
			const end = Math.max(...mine.map((o) => Date.parse(o.endedAt)), Number.NEGATIVE_INFINITY);
			losses.push(Number.isFinite(end) ? (killedAt - end) / 1000 : Number.POSITIVE_INFINITY);
		}
		objects += recovered.length;
		const sample = recovered[i % Math.max(1, recovered.length)];
		if (sample) {
			const res = await s3.send(new GetObjectCommand({ Bucket: "customer", Key: sample.key }));
			const bytes = Buffer.from(
				await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
			);
			if ((await probeMedia(bytes)).decodeErrors) decodeErrors++;
		}
		log(
			`crash ${i + 1}/${rounds}: lost ${losses
				.slice(-4)
				.map((x) => x.toFixed(2))
				.join(", ")} s`,
		);
	}
	await r.recorder.close();
	return { losses, decodeErrors, objects };
}

// ---------------------------------------------------------------------------------------------------------------
// The run.

const stepRuns = new Map<number, StepResult[]>();
for (let run = 0; run < runs; run++) {
	for (const n of streamSteps) {
		log(`run ${run + 1}: ${n} audio + video streams…`);
		const res = await step(n);
		stepRuns.set(n, [...(stepRuns.get(n) ?? []), res]);
		log(
			`  ${n}: ${(res.core * 100).toFixed(1)} % core (idle ${(res.idleCore * 100).toFixed(1)}), ${(res.perStreamCore * 1000).toFixed(2)} mcore/stream (whole run ${(res.wholeRunCore * 1000).toFixed(2)}), RSS ${res.rss.toFixed(0)} MiB (${res.perStreamRss.toFixed(2)}/stream), first frame p50 ${median(res.firstFrameMs).toFixed(0)} ms (first/last tenth to start ${res.stageMs.firstTenth.toFixed(0)}/${res.stageMs.lastTenth.toFixed(0)}; openTrack ${res.stageMs.open.toFixed(0)} before; packet read ${res.stageMs.firstPacket.toFixed(0)}, frame ${res.stageMs.firstFrame.toFixed(0)}, muxed ${res.stageMs.muxed.toFixed(0)}), written ${res.framesWritten}/${res.framesReceived}`,
		);
	}
}
const burstRes = burstStreams > 0 ? await burst(burstStreams) : undefined;
if (burstRes) log(`burst: ${JSON.stringify(burstRes)}`);
const crashRes = crashes > 0 ? await crashRounds(crashes) : undefined;
await replayer.close();
s3.destroy();
await s3server.stop();

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
const out: string[] = [];
out.push(`${new Date().toISOString().slice(0, 10)} — ${machine()} (at the end of the run).`);
out.push("");
out.push(
	`Sample media replayed from memory: audio Opus ${f1(kbps(audio))} kbit/s of payload, video ${h264 ? "H.264 (libx264 baseline, recorded as .mkv)" : "VP8"} 640×480 30 fps ${f1(kbps(video))} kbit/s (a key frame every 2 s). One stream = audio + video (2 tracks). ${runs} run(s) per step; per-step figures are medians over ${Math.round(seconds / windowS)} windows of ${windowS} s (and the median over runs).`,
);
out.push("");
out.push(
	"| streams | recorder core (idle) | **core per stream** | core per stream, whole run | RSS MiB (idle) | **RSS MiB per stream** | PSS MiB | replay core | first frame p50 / p95 ms | overhead audio / video | written ÷ received |",
);
out.push("|---|---|---|---|---|---|---|---|---|---|---|");
for (const [n, rs] of stepRuns) {
	const m = (f: (r: StepResult) => number) => median(rs.map(f));
	const ff = rs.flatMap((r) => r.firstFrameMs);
	out.push(
		`| ${n} | ${f2(m((r) => r.core))} (${f2(m((r) => r.idleCore))}) | **${m((r) => r.perStreamCore).toFixed(4)}** | ${m((r) => r.wholeRunCore).toFixed(4)} | ${f1(m((r) => r.rss))} (${f1(m((r) => r.idleRss))}) | **${f2(m((r) => r.perStreamRss))}** | ${f1(m((r) => r.pss))} | ${f2(m((r) => r.replayCore))} | ${ff.length ? `${median(ff).toFixed(0)} / ${percentile(ff, 95).toFixed(0)}` : "–"} | ${pct(m((r) => r.overheadAudio))} / ${pct(m((r) => r.overheadVideo))} | ${rs.reduce((a, r) => a + r.framesWritten, 0)} / ${rs.reduce((a, r) => a + r.framesReceived, 0)} (sent ${rs.reduce((a, r) => a + r.framesSent, 0)}); ${rs.reduce((a, r) => a + r.failures, 0)} failed, ${rs.reduce((a, r) => a + r.decodeErrors, 0)} decode errors |`,
	);
}
const reasons = new Map<string, number>();
for (const rs of stepRuns.values())
	for (const r of rs)
		for (const f of r.failureReasons) reasons.set(f.slice(0, 160), (reasons.get(f.slice(0, 160)) ?? 0) + 1);
if (reasons.size) {
	out.push("");
	out.push(`Track failures: ${[...reasons].map(([m, n]) => `${m} ×${n}`).join("; ")}.`);
}
if (burstRes) {
	const b = burstRes;
	out.push("");
	out.push(
		`**Burst**: ${b.streams} audio + video streams (${b.tracks} tracks) opened at once (${b.openMs.toFixed(0)} ms for every openTrack), media started in the same instant, ${BURST_S} s from ${senders} sender threads: **${b.written} of ${b.received} frames received written (${pct(b.written / b.received)})**; received ÷ sent ${pct(b.received / b.sent)} (${b.sent} frames sent).`,
	);
	out.push(
		`Stage by stage: packets the kernel took from the senders ${b.packetsSent} (refused ${b.sendErrors}; sender lateness p50 ${b.late.p50} ms, p99 ${b.late.p99} ms, max ${b.late.max} ms) → kernel UDP datagrams in ${b.kernel.in}, receive-buffer drops ${b.kernel.rcvbufErrors}, send-buffer drops ${b.kernel.sndbufErrors} (whole namespace) → packets the recorder read ${b.packetsReceived} (closing took ${f1(b.closeS)} s: the backlog the recorder still had to read when the media stopped), never arrived ${b.lostPackets} → frames ${b.received}, dropped (incomplete/undecodable) ${b.dropped} → written ${b.written}. Holes by cause: ${
			Object.entries(b.holes)
				.map(([c, h]) => `${c} ×${h.holes} (${h.frames} frames known, ${f1(h.ms / 1000)} s)`)
				.join(", ") || "none"
		}. CPU over the burst: recorder ${f2(b.cores.recorder)} core, moto ${f2(b.cores.moto)}, senders ${f2(b.cores.senders)}. ${b.failures} tracks failed${b.failureReasons.length ? ` (${b.failureReasons.join("; ")})` : ""}.`,
	);
}
if (crashRes) {
	const l = crashRes.losses;
	out.push("");
	out.push(
		`**Crash**: ${crashes} rounds of 2 audio + video streams, the recorder killed with SIGKILL 3–10 s in, a new one's recover: seconds lost per track (kill − end of the recovered object): median ${f2(median(l))}, p95 ${f2(percentile(l, 95))}, **max ${f2(Math.max(...l))}** (${l.length} tracks, ${crashRes.objects} objects recovered, ${crashRes.decodeErrors} of ${crashes} sampled objects with decode errors).`,
	);
}
console.log(out.join("\n"));

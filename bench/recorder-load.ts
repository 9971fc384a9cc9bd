/**
 * Recorder load: CPU and memory per recorded stream, and bytes in (RTP payload)
 * against bytes out (the S3 objects), with the real recorder child
 * (RecorderProcess with the gateway's default settings), its real ffmpegs and a
 * real S3 API (moto).
 *
 * Sample media is encoded ONCE by ffmpeg (Opus 32 kbit/s mono speech from
 * flite; VP8 640×480 30 fps ~500 kbit/s from testsrc, a key frame every 2 s),
 * sent as RTP to a UDP socket of this process and kept in memory. It is then
 * replayed in real time (paced by the captured RTP timestamps, looped with
 * continuous sequence numbers and timestamps, a fresh SSRC per track) to N
 * streams at once from this one process: audio-only streams (one track each)
 * and audio + video streams (two tracks each), N = 1, 10, 50. Each step starts
 * a fresh recorder, measures its idle baseline, opens the tracks, starts their
 * media one track every --spacing-ms, waits until every ffmpeg runs (a step
 * where some could not start is reported as not measured), measures a window (CPU = utime +
 * stime from /proc of the recorder and of each of its ffmpegs; RSS, PSS and
 * private memory from smaps_rollup), then closes the tracks (every object
 * completed) and checks a sample of the objects with ffprobe. The replay's own
 * CPU is outside the measured processes (reported apart). Last, a start burst:
 * --burst audio + video streams whose media all starts at once.
 *
 * Prints a markdown section for docs/benchmarks.md on stdout, progress on
 * stderr. Stops by itself (about 5 minutes on 2 cores).
 *
 *   node --import tsx bench/recorder-load.ts [--seconds 20] [--window 5] [--streams 1,10,50]
 *     [--modes audio,av] [--capture 20] [--audio-kbps 32] [--video-kbps 500] [--spacing-ms 200] [--burst 50]
 */
import { execFileSync, spawn } from "node:child_process";
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { RecorderProcess } from "../recorder/RecorderProcess.js";
import type { ObjectWritten, TrackFailed } from "../recorder/RecorderProtocol.js";

type SegmentRestarted = { reason: string };

import { isVp8KeyframeStart, parseRtp } from "../recorder/rtp.js";
import type { StorageTarget } from "../server/storage/StorageTargetTypes.js";
import { startS3 } from "../test/helpers/moto.js";
import { childrenOf } from "../test/helpers/proc-fds.js";
import { probe } from "../test/helpers/rtp-sender.js";
import { cpuSeconds, machineCpu } from "./bots/proc.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: {
		seconds: { type: "string", default: "20" },
		window: { type: "string", default: "5" },
		streams: { type: "string", default: "1,10,50" },
		modes: { type: "string", default: "audio,av" },
		capture: { type: "string", default: "20" },
		"audio-kbps": { type: "string", default: "32" },
		"video-kbps": { type: "string", default: "500" },
		"spacing-ms": { type: "string", default: "200" },
		burst: { type: "string", default: "50" },
	},
});
const seconds = Number(values.seconds);
const windowS = Number(values.window);
const streamSteps = values.streams.split(",").map(Number);
const modes = values.modes.split(",") as ("audio" | "av")[];
const captureS = Number(values.capture);
const audioKbps = Number(values["audio-kbps"]);
const videoKbps = Number(values["video-kbps"]);
/** Steady-state steps start one track every this many ms; the burst starts all at once. */
const spacingMs = Number(values["spacing-ms"]);
const burstStreams = Number(values.burst);
const BURST_S = 12;
const GOP_FRAMES = 60;
const FPS = 30;
const started = performance.now();
const log = (msg: string) =>
	console.error(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
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
					...["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", `${videoKbps}k`],
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
	if (kind === "video" && !isVp8KeyframeStart(raw[0] as Buffer, first))
		throw new Error("video does not start at a key frame");
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
// Real-time replay of the captured packets to many tracks from one socket.

interface ReplayTrack {
	trackId: string;
	media: Media;
	port: number;
	ssrc: number;
	/** performance.now() at which packet 0 of loop 0 is due. */
	start: number;
	next: number;
	seqBase: number;
	tsBase: number;
	stopping: boolean;
	done: boolean;
	packets: number;
	frames: number;
	payloadBytes: number;
}

class Replayer {
	readonly #socket = dgram.createSocket({ type: "udp4", sendBufferSize: 4 * MiB });
	readonly tracks: ReplayTrack[] = [];
	#timer: NodeJS.Timeout | undefined;

	add(trackId: string, media: Media, port: number, ssrc: number, start: number): ReplayTrack {
		const t: ReplayTrack = {
			trackId,
			media,
			port,
			ssrc,
			start,
			next: 0,
			seqBase: Math.floor(Math.random() * 0xffff),
			tsBase: Math.floor(Math.random() * 0xffffffff),
			stopping: false,
			done: false,
			packets: 0,
			frames: 0,
			payloadBytes: 0,
		};
		this.tracks.push(t);
		this.#timer ??= setInterval(() => this.#tick(), 1);
		return t;
	}

	/** Stops every track at its next frame boundary and resolves when all have stopped. */
	async stopAll(): Promise<void> {
		for (const t of this.tracks) t.stopping = true;
		while (this.tracks.some((t) => !t.done)) await sleep(10);
		clearInterval(this.#timer);
		this.#timer = undefined;
		this.tracks.length = 0;
	}

	close(): void {
		clearInterval(this.#timer);
		this.#socket.close();
	}

	#tick(): void {
		const now = performance.now();
		for (const t of this.tracks) {
			const { samples, periodS, periodTs } = t.media;
			while (!t.done) {
				const loop = Math.floor(t.next / samples.length);
				const s = samples[t.next % samples.length] as Sample;
				if (t.start + (loop * periodS + s.t) * 1000 > now) break;
				const b = Buffer.allocUnsafe(s.data.length);
				s.data.copy(b);
				b.writeUInt16BE((t.seqBase + t.next) & 0xffff, 2);
				b.writeUInt32BE((t.tsBase + loop * periodTs + s.tsRel) >>> 0, 4);
				b.writeUInt32BE(t.ssrc, 8);
				this.#socket.send(b, t.port, "127.0.0.1");
				t.next++;
				t.packets++;
				t.payloadBytes += s.payloadBytes;
				const endOfFrame = t.media.kind === "audio" || s.marker;
				if (endOfFrame) t.frames++;
				if (t.stopping && endOfFrame) t.done = true;
			}
		}
	}
}

// ---------------------------------------------------------------------------------------------------------------
// Process measurements (Linux /proc).

/** RSS, PSS (shared pages divided among the processes sharing them) and USS (private pages) in MiB. */
function smaps(pid: number): { rss: number; pss: number; uss: number } {
	try {
		const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
		const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN) / 1024;
		return { rss: kb("Rss"), pss: kb("Pss"), uss: kb("Private_Clean") + kb("Private_Dirty") };
	} catch {
		return { rss: Number.NaN, pss: Number.NaN, uss: Number.NaN };
	}
}

/** utime + stime + cutime + cstime: the process and its children it has reaped, in seconds. */
function cpuWithReaped(pid: number): number {
	const s = readFileSync(`/proc/${pid}/stat`, "utf8");
	const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
	return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const ffmpegsOf = (pid: number) =>
	childrenOf(pid)
		.filter((c) => c.comm === "ffmpeg")
		.map((c) => c.pid);
/** The S3 server's processes (moto and its children): everything this process started except the recorder. */
function s3Pids(recorderPid: number): number[] {
	const out: number[] = [];
	const walk = (pid: number) => {
		for (const c of childrenOf(pid)) {
			if (c.pid === recorderPid) continue;
			out.push(c.pid);
			walk(c.pid);
		}
	};
	walk(process.pid);
	return out;
}

interface Snapshot {
	at: number;
	rec: number;
	/** CPU seconds of each ffmpeg (by pid) still running. */
	ff: Map<number, number>;
	replay: number;
	s3: number;
	machine: { busy: number; total: number };
}

function snapshot(recPid: number, ffPids: number[]): Snapshot {
	const u = process.cpuUsage();
	return {
		at: performance.now(),
		rec: cpuSeconds(recPid),
		ff: new Map(ffPids.map((p) => [p, cpuSeconds(p)] as const).filter(([, c]) => !Number.isNaN(c))),
		replay: (u.user + u.system) / 1e6,
		s3: sum(s3Pids(recPid).map(cpuSeconds)),
		machine: machineCpu(),
	};
}

interface Memory {
	recRss: number;
	recPss: number;
	recUss: number;
	ffRss: number;
	ffPss: number;
	ffUss: number;
}

function memory(recPid: number, ffPids: number[]): Memory {
	const rec = smaps(recPid);
	const ff = ffPids.map(smaps).filter((m) => !Number.isNaN(m.rss));
	return {
		recRss: rec.rss,
		recPss: rec.pss,
		recUss: rec.uss,
		ffRss: sum(ff.map((m) => m.rss)),
		ffPss: sum(ff.map((m) => m.pss)),
		ffUss: sum(ff.map((m) => m.uss)),
	};
}

/** Per sub-window rates (CPU seconds per second = cores) between consecutive snapshots. */
function rates(snaps: Snapshot[], pick: (s: Snapshot) => number): number[] {
	const out: number[] = [];
	for (let i = 1; i < snaps.length; i++) {
		const a = snaps[i - 1] as Snapshot;
		const b = snaps[i] as Snapshot;
		out.push((pick(b) - pick(a)) / ((b.at - a.at) / 1000));
	}
	return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The run.

log("capturing sample media (audio and video in parallel, real time)…");
const [audio, video] = await Promise.all([captureMedia("audio", captureS), captureMedia("video", captureS)]);
const kbps = (m: Media) => (m.payloadBytes * 8) / m.periodS / 1000;
const pps = (m: Media) => m.samples.length / m.periodS;
for (const m of [audio, video]) {
	log(
		`${m.kind}: ${m.samples.length} packets, ${m.frames} frames in ${m.periodS.toFixed(2)} s, payload ${kbps(m).toFixed(1)} kbit/s, ${pps(m).toFixed(1)} packets/s`,
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
const VIDEO = { kind: "video", mimeType: "video/VP8", payloadType: 101, clockRate: 90000 } as const;

interface StepResult {
	mode: "audio" | "av";
	streams: number;
	tracks: number;
	idleRec: number;
	idleMem: Memory;
	rec: number;
	ff: number;
	replay: number;
	s3: number;
	busy: number;
	mem: Memory;
	perStreamCores: number;
	perStreamRss: number;
	perStreamPss: number;
	perStreamUss: number;
	inBytes: { audio: number; video: number };
	outBytes: { audio: number; video: number };
	objects: number;
	expectedObjects: number;
	checked: { frames: number; sent: number; objects: number; durationErr: number };
	closeWallS: number;
	closeCpuPerStream: number;
	closeS3Cpu: number;
	warmupS: number;
	/** Every track's ffmpeg ran through the window (otherwise the step did not measure N streams). */
	measured: boolean;
	failures: number;
	problems: string[];
}

const results: StepResult[] = [];
const warnings = new Map<string, number>();
const replayer = new Replayer();
let stepNo = 0;

interface Recorder {
	recorder: RecorderProcess;
	pid: number;
	objects: ObjectWritten[];
	failures: TrackFailed[];
	restarts: SegmentRestarted[];
}

/** A fresh recorder child as the gateway starts it (default config; log level warn, its stderr collected). */
async function startRecorder(): Promise<Recorder> {
	const recorder = await RecorderProcess.create({ config: { logLevel: "warn" }, stderr: "pipe" });
	let stderrTail = "";
	recorder.stderr?.on("data", (d: Buffer) => {
		stderrTail += d.toString();
		let nl = stderrTail.indexOf("\n");
		while (nl >= 0) {
			const line = stderrTail.slice(0, nl);
			stderrTail = stderrTail.slice(nl + 1);
			let msg: string | undefined;
			try {
				msg = (JSON.parse(line) as { msg?: string }).msg ?? line;
			} catch {
				// Not a log line: keep only the name of a Node warning (the rest of its text follows on other lines).
				msg = /Warning: (\w+)/.exec(line)?.[1];
			}
			if (msg) warnings.set(msg, (warnings.get(msg) ?? 0) + 1);
			nl = stderrTail.indexOf("\n");
		}
	});
	const r: Recorder = { recorder, pid: recorder.pid as number, objects: [], failures: [], restarts: [] };
	recorder.on("objectWritten", (o) => r.objects.push(o));
	recorder.on("trackFailed", (f) => r.failures.push(f));
	return r;
}

interface OpenedTrack {
	trackId: string;
	media: Media;
	stream: number;
	ssrc: number;
	port: number;
}

/** Opens `streams` streams' tracks (all requests at once, as the gateway does for a meeting). */
async function openStreams(rec: RecorderProcess, mode: "audio" | "av", streams: number): Promise<OpenedTrack[]> {
	const kinds: Media[] = mode === "audio" ? [audio] : [audio, video];
	const opened = await Promise.all(
		Array.from({ length: streams }, (_, i) =>
			Promise.all(
				kinds.map(async (media) => {
					const trackId = `s${stepNo}-${i}-${media.kind === "audio" ? "a" : "v"}`;
					const ssrc = 0x10000000 + stepNo * 1000 + i * 2 + (media.kind === "audio" ? 0 : 1);
					const ports = await rec.openTrack({
						trackId,
						key: {
							prefix: "bench",
							meetingId: `m${stepNo}`,
							sessionId: `s${stepNo}`,
							person: `p${i}`,
							kind: media.kind === "audio" ? "audio" : "camera",
						},
						codec: media.kind === "audio" ? AUDIO : VIDEO,
						ssrc,
						target,
						options: { allowHttp: true, allowPrivate: true },
					});
					return { trackId, media, stream: i, ssrc, port: ports.rtpPort };
				}),
			),
		),
	);
	return opened.flat();
}

/** Closes every track; a track that already failed is not open any more (its close is refused). */
async function closeAll(rec: RecorderProcess, tracks: OpenedTrack[], problems: string[]): Promise<void> {
	const refused: string[] = [];
	await Promise.all(
		tracks.map((t) =>
			rec.closeTrack(t.trackId).catch((err: unknown) => refused.push(`${t.trackId}: ${(err as Error).message}`)),
		),
	);
	if (refused.length) problems.push(`closeTrack refused ×${refused.length} (${refused[0]})`);
}

function failureSummary(failures: TrackFailed[]): string {
	const byMsg = new Map<string, number>();
	for (const f of failures) byMsg.set(`${f.code}: ${f.message}`, (byMsg.get(`${f.code}: ${f.message}`) ?? 0) + 1);
	return [...byMsg].map(([m, n]) => `${m} ×${n}`).join("; ");
}

async function step(mode: "audio" | "av", streams: number): Promise<StepResult> {
	stepNo++;
	const problems: string[] = [];
	const { recorder, pid: recPid, objects, failures, restarts } = await startRecorder();

	// Idle baseline of this fresh recorder.
	await sleep(1500);
	const idle0 = snapshot(recPid, []);
	await sleep(3000);
	const idle1 = snapshot(recPid, []);
	const idleRec = (idle1.rec - idle0.rec) / ((idle1.at - idle0.at) / 1000);
	const idleMem = memory(recPid, []);

	// Open the tracks, then replay to all of them, starting one stream every `spacing` ms (and at least spreading
	// the streams over a key-frame interval), so that the recorder can start their ffmpegs (see the burst below).
	const tracks = await openStreams(recorder, mode, streams);
	const gopMs = (GOP_FRAMES / FPS) * 1000;
	const spacing = Math.max(gopMs / streams, spacingMs * (mode === "av" ? 2 : 1));
	const t0 = performance.now() + 50;
	for (const o of tracks) replayer.add(o.trackId, o.media, o.port, o.ssrc, t0 + o.stream * spacing);

	// Warm-up: the last stream started, every ffmpeg running (of the tracks that did not fail), then 3 s more.
	await sleep(t0 + (streams - 1) * spacing - performance.now());
	const deadline = Date.now() + 60_000;
	while (ffmpegsOf(recPid).length < tracks.length - failures.length && Date.now() < deadline) await sleep(200);
	await sleep(3000);
	const warmupS = (performance.now() - t0) / 1000;
	const ffPids = ffmpegsOf(recPid);
	// A track whose ffmpeg could not start is failed for good: the step then does not measure N streams.
	const measured = failures.length === 0 && ffPids.length === tracks.length;
	if (ffPids.length !== tracks.length) problems.push(`${ffPids.length} ffmpegs for ${tracks.length} tracks`);
	log(`${mode} × ${streams}: ${ffPids.length} ffmpegs running after ${warmupS.toFixed(1)} s; measuring ${seconds} s`);

	// The window: snapshots every windowS seconds; memory at each.
	const snaps: Snapshot[] = [snapshot(recPid, ffPids)];
	const mems: Memory[] = [];
	for (let k = 0; k < Math.round(seconds / windowS); k++) {
		await sleep(windowS * 1000 - (performance.now() - (snaps[snaps.length - 1] as Snapshot).at));
		snaps.push(snapshot(recPid, ffPids));
		mems.push(memory(recPid, ffPids));
	}
	if (ffPids.some((p) => Number.isNaN(cpuSeconds(p)))) problems.push("an ffmpeg exited during the window");
	const first = snaps[0] as Snapshot;
	const last = snaps[snaps.length - 1] as Snapshot;
	const wall = (last.at - first.at) / 1000;
	const rec = median(rates(snaps, (s) => s.rec));
	const ff = median(
		snaps.slice(1).map((b, i) => {
			const a = snaps[i] as Snapshot;
			let d = 0;
			for (const [pid, c] of b.ff) d += c - (a.ff.get(pid) ?? c);
			return d / ((b.at - a.at) / 1000);
		}),
	);
	const mem = mems[mems.length - 1] as Memory;

	// Close: stop the replay at frame boundaries, close every track (resolves after its object is completed).
	const replayTracks = [...replayer.tracks];
	await replayer.stopAll();
	const closeStart = performance.now();
	const ffLive = sum(ffPids.map(cpuSeconds));
	const recAll0 = cpuWithReaped(recPid);
	const s3Cpu0 = sum(s3Pids(recPid).map(cpuSeconds));
	await closeAll(recorder, tracks, problems);
	const closeWallS = (performance.now() - closeStart) / 1000;
	const closeCpu = cpuWithReaped(recPid) - recAll0 - ffLive;
	const closeS3Cpu = sum(s3Pids(recPid).map(cpuSeconds)) - s3Cpu0;

	const inBytes = { audio: 0, video: 0 };
	const failed = new Set(failures.map((f) => f.trackId));
	for (const t of replayTracks) if (!failed.has(t.trackId)) inBytes[t.media.kind] += t.payloadBytes;
	const outBytes = { audio: 0, video: 0 };
	const byTrack = new Map(tracks.map((t) => [t.trackId, t.media.kind]));
	for (const o of objects) {
		const kind = o.trackId && !failed.has(o.trackId) ? byTrack.get(o.trackId) : undefined;
		if (!kind) continue;
		outBytes[kind] += o.size;
		if (o.truncated) problems.push(`${o.key} truncated`);
	}
	if (objects.length !== tracks.length) problems.push(`${objects.length} objects for ${tracks.length} tracks`);
	if (failures.length) problems.push(`trackFailed (bytes of these tracks left out): ${failureSummary(failures)}`);
	if (restarts.length) problems.push(`segmentRestarted ×${restarts.length} (${restarts[0]?.reason})`);

	// A sample of the objects, downloaded and probed: frames in the object against frames sent.
	const checked = { frames: 0, sent: 0, objects: 0, durationErr: 0 };
	const sampleStreams = [...new Set([0, Math.floor(streams / 2), streams - 1])];
	const lossy: string[] = [];
	for (const t of replayTracks.filter((x) => sampleStreams.includes(Number(x.trackId.split("-")[1])))) {
		const o = objects.find((x) => x.trackId === t.trackId);
		if (!o) continue;
		const res = await s3.send(new GetObjectCommand({ Bucket: "customer", Key: o.key }));
		const body = Buffer.from(
			await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
		);
		const p = probe(body);
		checked.objects++;
		checked.frames += p.packets;
		checked.sent += t.frames;
		const sentS = t.frames * (t.media.periodS / t.media.frames);
		checked.durationErr = Math.max(checked.durationErr, Math.abs(p.duration - sentS));
		if (p.packets < t.frames - 1) lossy.push(`${t.trackId} ${p.packets}/${t.frames}`);
	}
	if (lossy.length) problems.push(`frames missing from objects (recorded/sent): ${lossy.join(", ")}`);
	await recorder.close();

	const tracksN = tracks.length;
	const r: StepResult = {
		mode,
		streams,
		tracks: tracksN,
		idleRec,
		idleMem,
		rec,
		ff,
		replay: (last.replay - first.replay) / wall,
		s3: (last.s3 - first.s3) / wall,
		busy: (last.machine.busy - first.machine.busy) / (last.machine.total - first.machine.total),
		mem,
		perStreamCores: (rec + ff - idleRec) / streams,
		perStreamRss: (mem.recRss + mem.ffRss - idleMem.recRss) / streams,
		perStreamPss: (mem.recPss + mem.ffPss - idleMem.recPss) / streams,
		perStreamUss: (mem.recUss + mem.ffUss - idleMem.recUss) / streams,
		inBytes,
		outBytes,
		objects: objects.length,
		expectedObjects: tracksN,
		checked,
		closeWallS,
		closeCpuPerStream: closeCpu / streams,
		closeS3Cpu,
		warmupS,
		measured,
		failures: failures.length,
		problems,
	};
	log(
		`${mode} × ${streams}: Node ${(rec * 100).toFixed(1)} % (idle ${(idleRec * 100).toFixed(1)} %), ffmpeg ${(ff * 100).toFixed(1)} %, ` +
			`${r.perStreamCores.toFixed(4)} cores and ${r.perStreamRss.toFixed(1)} MiB RSS (${r.perStreamPss.toFixed(1)} PSS, ${r.perStreamUss.toFixed(1)} private) per stream; ` +
			`in ${sum(Object.values(inBytes))} B, out ${sum(Object.values(outBytes))} B; close ${closeWallS.toFixed(1)} s` +
			(problems.length ? `; PROBLEMS: ${problems.join("; ")}` : ""),
	);
	return r;
}

interface BurstResult {
	streams: number;
	tracks: number;
	openMs: number;
	maxRunning: number;
	failures: TrackFailed[];
	restarts: SegmentRestarted[];
	objects: number;
	inBytes: number;
	outBytes: number;
	problems: string[];
}

/** `streams` audio + video streams whose media all starts at the same moment (a meeting's recording starting). */
async function burst(streams: number): Promise<BurstResult> {
	stepNo++;
	const r = await startRecorder();
	await sleep(2000);
	const t = performance.now();
	const tracks = await openStreams(r.recorder, "av", streams);
	const openMs = performance.now() - t;
	const t0 = performance.now() + 20;
	for (const o of tracks) replayer.add(o.trackId, o.media, o.port, o.ssrc, t0);
	let maxRunning = 0;
	while (performance.now() - t0 < BURST_S * 1000) {
		maxRunning = Math.max(maxRunning, ffmpegsOf(r.pid).length);
		await sleep(250);
	}
	const inBytes = sum(replayer.tracks.map((t) => t.payloadBytes));
	await replayer.stopAll();
	const problems: string[] = [];
	await closeAll(r.recorder, tracks, problems);
	await r.recorder.close();
	const res = {
		streams,
		tracks: tracks.length,
		openMs,
		maxRunning,
		failures: r.failures,
		restarts: r.restarts,
		objects: r.objects.length,
		inBytes,
		outBytes: sum(r.objects.map((o) => o.size)),
		problems,
	};
	log(
		`burst of ${streams} audio + video streams: ${r.failures.length} of ${tracks.length} tracks failed` +
			(r.failures.length ? ` (${failureSummary(r.failures)})` : "") +
			`, ${r.restarts.length} segments restarted, at most ${maxRunning} ffmpegs at once`,
	);
	return res;
}

let burstResult: BurstResult | undefined;
try {
	for (const mode of modes) for (const n of streamSteps) results.push(await step(mode, n));
	if (burstStreams > 0) burstResult = await burst(burstStreams);
} finally {
	replayer.close();
	s3.destroy();
	await s3server.stop();
}

// ---------------------------------------------------------------------------------------------------------------
// The section for docs/benchmarks.md.

const pct = (x: number, d = 1) => `${(x * 100).toFixed(d)}`;
const f1 = (x: number) => x.toFixed(1);
const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
const over = (i: number, o: number) =>
	i > 0 ? `${((o - i) / i) * 100 >= 0 ? "+" : ""}${(((o - i) / i) * 100).toFixed(2)} %` : "–";
const label = (m: "audio" | "av") => (m === "audio" ? "audio only" : "audio + video");
const totalS = (performance.now() - started) / 1000;
const out: string[] = [];
out.push("## Recorder: CPU, memory and bytes per recorded stream");
out.push("");
out.push(`${new Date().toISOString().slice(0, 10)} — ${machine()} (at the end of the run); ffmpeg ${ffmpegVersion()}.`);
out.push(`Run took ${fmt(totalS)} s.`);
out.push("");
out.push("```sh");
out.push(
	`node --import tsx bench/recorder-load.ts --seconds ${seconds} --window ${windowS} --streams ${values.streams} --spacing-ms ${spacingMs} --burst ${burstStreams}`,
);
out.push("```");
out.push("");
out.push(
	`Sample media, encoded once by ffmpeg and replayed from memory: **audio** Opus ${f1(kbps(audio))} kbit/s of payload ` +
		`(flite speech, mono, 20 ms frames, ${f1(pps(audio))} packets/s); **video** VP8 640×480 ${FPS} fps, ${f1(kbps(video))} ` +
		`kbit/s of payload, ${f1(pps(video))} packets/s (≤ 1200 B), a key frame every ${GOP_FRAMES / FPS} s; each ` +
		`${f1(audio.periodS)} s long, looped. An audio-only stream is one track, an audio + video stream two. Each step: a ` +
		`fresh recorder (\`RecorderProcess.create\`, default config as the gateway starts it: 8 MiB parts, 10-min ` +
		`segments; log level warn), idle baseline over 3 s, N streams opened and replayed (the replay starts one stream ` +
		`every ${spacingMs} ms per track, at least spread over a key-frame interval), every ffmpeg running, 3 s more, ` +
		`then ${seconds} s measured in ${windowS}-s windows; CPU = median ` +
		"over the windows of utime + stime (/proc/<pid>/stat) of the recorder's Node process and of all its ffmpegs " +
		"(% of one core); memory at the end of the window from smaps_rollup: RSS, PSS (shared pages split among the " +
		"processes sharing them) and private (Private_Clean + Private_Dirty: what one more process adds); per stream = " +
		"(recorder + ffmpegs − the idle recorder) / N. Replay = this benchmark's process (sending every packet, outside the " +
		"measured processes); machine busy = /proc/stat over the window (everything on the box).",
);
out.push("");
out.push(
	"| stream | N | tracks | idle Node % | Node % | ffmpeg % (sum) | **cores per stream** | ffmpeg share | replay % | S3 % | machine busy % |",
);
out.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of results) {
	const share = r.ff / (r.rec - r.idleRec + r.ff);
	const per = r.measured ? `**${r.perStreamCores.toFixed(4)}**` : "not measured¹";
	out.push(
		`| ${label(r.mode)} | ${r.streams} | ${r.tracks} | ${pct(r.idleRec)} | ${pct(r.rec)} | ${pct(r.ff)} | ${per} | ${pct(share, 0)} % | ${pct(r.replay)} | ${pct(r.s3)} | ${pct(r.busy, 0)} |`,
	);
}
out.push("");
out.push(
	"| stream | N | Node RSS MiB (idle) | Node private MiB (idle) | ffmpeg RSS MiB (sum) | ffmpeg PSS MiB (sum) | ffmpeg private MiB (sum) | **RSS MiB per stream** | PSS MiB per stream | **private MiB per stream** |",
);
out.push("|---|---:|---|---|---:|---:|---:|---:|---:|---:|");
for (const r of results) {
	const m = r.mem;
	out.push(
		`| ${label(r.mode)} | ${r.streams} | ${f1(m.recRss)} (${f1(r.idleMem.recRss)}) | ${f1(m.recUss)} (${f1(r.idleMem.recUss)}) | ${f1(m.ffRss)} | ${f1(m.ffPss)} | ${f1(m.ffUss)} | ` +
			(r.measured
				? `**${f1(r.perStreamRss)}** | ${f1(r.perStreamPss)} | **${f1(r.perStreamUss)}** |`
				: "not measured¹ | | |"),
	);
}
out.push("");
out.push(
	"Bytes in = RTP payload sent to the recorder's ports (headers excluded; the VP8 payload descriptor counted as " +
		"payload); bytes out = the sizes `objectWritten` reported (= the objects in the bucket); overhead = (out − in) / in. " +
		"Check = a sample of objects (streams 0, N/2, N−1) downloaded and probed: frames in the objects / frames sent, and " +
		"the largest difference between an object's duration and the time sent. Close = from `closeTrack` of every track " +
		"(after the replay stopped) to the last one resolving (~2 s of it is ffmpeg's end-of-input timeout), with the CPU " +
		"of the recorder and its ffmpegs spent in it.",
);
out.push("");
out.push(
	"| stream | N | audio in → out | audio overhead | video in → out | video overhead | **stream overhead** | objects | check: frames, max Δ duration | close s | close CPU-s per stream | S3 CPU-s in close |",
);
out.push("|---|---:|---|---:|---|---:|---:|---:|---|---:|---:|---:|");
for (const r of results) {
	const i = r.inBytes.audio + r.inBytes.video;
	const o = r.outBytes.audio + r.outBytes.video;
	const v = r.mode === "av" ? `${fmt(r.inBytes.video)} → ${fmt(r.outBytes.video)}` : "–";
	out.push(
		`| ${label(r.mode)} | ${r.streams} | ${fmt(r.inBytes.audio)} → ${fmt(r.outBytes.audio)} | ${over(r.inBytes.audio, r.outBytes.audio)} | ${v} | ${r.mode === "av" ? over(r.inBytes.video, r.outBytes.video) : "–"} | **${over(i, o)}** | ${r.objects}/${r.expectedObjects} | ${fmt(r.checked.frames)}/${fmt(r.checked.sent)} in ${r.checked.objects}, ${r.checked.durationErr.toFixed(2)} s | ${f1(r.closeWallS)} | ${r.closeCpuPerStream.toFixed(3)} | ${r.closeS3Cpu.toFixed(2)} |`,
	);
}
out.push("");
const unmeasured = results.filter((r) => !r.measured);
if (unmeasured.length) {
	out.push(
		`¹ ${unmeasured.map((r) => `${label(r.mode)} × ${r.streams}: ${r.failures} of ${r.tracks} tracks failed to start`).join("; ")} ` +
			"(see Problems): the step did not record N streams, so no per-stream figure; bytes count only the tracks that ran.",
	);
	out.push("");
}
const av = results.filter((r) => r.mode === "av" && r.measured);
const aud = results.filter((r) => r.mode === "audio");
/** "a / b / c at N = 1 / 10 / 50: met at …" for one metric of some steps against a limit. */
function verdict(
	xs: StepResult[],
	pick: (r: StepResult) => number,
	limit: number,
	show: (x: number) => string,
): string {
	const vals = xs.map(pick);
	const met = xs.filter((_, i) => (vals[i] as number) <= limit).map((r) => r.streams);
	const which =
		met.length === xs.length
			? "met at every N"
			: met.length
				? `met at N = ${met.join(", ")} only`
				: "missed at every N";
	return `**${vals.map(show).join(" / ")}** at N = ${xs.map((r) => r.streams).join(" / ")}: ${which}`;
}
const overhead = (r: StepResult) => {
	const i = r.inBytes.audio + r.inBytes.video;
	return (r.outBytes.audio + r.outBytes.video - i) / i;
};
const showOver = (x: number) => over(1, 1 + x);
const targets: string[] = [];
if (av.length) {
	targets.push(
		`- ≤ 0.02 core per audio + video stream: ${verdict(
			av,
			(r) => r.perStreamCores,
			0.02,
			(x) => x.toFixed(4),
		)}`,
	);
	targets.push(
		`- ≤ 30 MiB per audio + video stream: summed RSS ${verdict(av, (r) => r.perStreamRss, 30, f1)}; PSS ` +
			`${verdict(av, (r) => r.perStreamPss, 30, f1)}; private ${verdict(av, (r) => r.perStreamUss, 30, f1)}`,
	);
	targets.push(`- container overhead ≤ 3 % of payload, audio + video: ${verdict(av, overhead, 0.03, showOver)}`);
}
if (aud.length) targets.push(`- the same, audio only: ${verdict(aud, overhead, 0.03, showOver)}`);
if (targets.length) {
	out.push(unmeasured.length ? "Targets (issue 5; steps not measured¹ left out):" : "Targets (issue 5):");
	out.push("");
	out.push(...targets);
	out.push("");
}
const big = av[av.length - 1];
out.push(
	"Anchors: LiveKit Egress admits a track egress at `track_cpu_cost` 0.5 CPU (an admission budget, not a measurement)" +
		(big
			? `; an audio + video stream here is two tracks at ${(big.perStreamCores / 2).toFixed(4)} core each at N = ` +
				`${big.streams}, ${fmt(0.5 / (big.perStreamCores / 2))}× less`
			: "") +
		". Jibri runs a whole Chrome (and an ffmpeg encoding its screen) per recording, one recording per Jibri instance.",
);
if (burstResult) {
	const b = burstResult;
	const restartReasons = new Map<string, number>();
	for (const x of b.restarts) restartReasons.set(x.reason, (restartReasons.get(x.reason) ?? 0) + 1);
	out.push("");
	out.push(
		`**Start burst** (what the steady-state steps avoid by starting one track every ${spacingMs} ms): a fresh ` +
			`recorder, ${b.streams} audio + video streams (${b.tracks} tracks) opened at once (${fmt(b.openMs)} ms for every ` +
			`\`openTrack\`), their media starting at the same moment, ${BURST_S} s of it: ` +
			(b.failures.length
				? `**${b.failures.length} of ${b.tracks} tracks failed** (${failureSummary(b.failures)})`
				: "no track failed") +
			`; ${b.restarts.length} segments restarted` +
			(b.restarts.length ? ` (${[...restartReasons].map(([m, n]) => `${m} ×${n}`).join("; ")})` : "") +
			`; at most ${b.maxRunning} ffmpegs running at once; **${b.objects} objects written** holding ` +
			`${fmt(b.outBytes)} bytes for ${fmt(b.inBytes)} bytes of payload sent (${pct(b.outBytes / b.inBytes, 0)} %)` +
			(b.problems.length ? `; ${b.problems.join("; ")}` : "") +
			".",
	);
}
const problems = results.flatMap((r) => r.problems.map((p) => `${label(r.mode)} × ${r.streams}: ${p}`));
out.push("");
out.push(
	problems.length
		? `Problems: ${problems.join("; ")}.`
		: "Problems: none (every object complete, no restarts or failures).",
);
if (warnings.size) {
	out.push("");
	out.push(
		`Recorder stderr (log lines at warn and above; Node warnings by name): ${[...warnings].map(([m, n]) => `\`${m.slice(0, 160)}\` ×${n}`).join("; ")}.`,
	);
}
console.log(out.join("\n"));

function ffmpegVersion(): string {
	try {
		return /ffmpeg version (\S+)/.exec(execFileSync("ffmpeg", ["-version"], { encoding: "utf8" }))?.[1] ?? "unknown";
	} catch {
		return "unknown";
	}
}

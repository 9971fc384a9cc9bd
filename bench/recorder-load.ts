/**
 * Recorder load, in process (RTP → depacketizer → mediabunny WebM → S3, no ffmpeg per track): CPU and memory per
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
 *     [--crashes 20] [--capture 20] [--audio-kbps 32] [--video-kbps 1000] [--runs 1]
 */
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import type { ObjectWritten, TrackStats } from "../contracts/RecorderProtocol.js";
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
		burst: { type: "string", default: "200" },
		crashes: { type: "string", default: "20" },
		runs: { type: "string", default: "1" },
	},
});
const seconds = Number(values.seconds);
const windowS = Number(values.window);
const streamSteps = values.streams.split(",").filter(Boolean).map(Number);
const captureS = Number(values.capture);
const audioKbps = Number(values["audio-kbps"]);
const videoKbps = Number(values["video-kbps"]);
const burstStreams = Number(values.burst);
const crashes = Number(values.crashes);
const runs = Number(values.runs);
const BURST_S = 12;
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
	/** Date.now() when its first packet went out. */
	firstSentAt?: number;
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
				t.firstSentAt ??= Date.now();
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
const VIDEO = { kind: "video", mimeType: "video/VP8", payloadType: 101, clockRate: 90000 } as const;
const replayer = new Replayer();
let stepNo = 0;

interface Rec {
	recorder: RecorderProcess;
	pid: number;
	objects: ObjectWritten[];
	startedAt: Map<string, number>;
	failures: string[];
}

async function startRecorder(): Promise<Rec> {
	const recorder = await RecorderProcess.create({ config: { logLevel: "error" }, stderr: "ignore" });
	const r: Rec = { recorder, pid: recorder.pid as number, objects: [], startedAt: new Map(), failures: [] };
	recorder.on("objectWritten", (o) => r.objects.push(o));
	recorder.on("trackStarted", (s) => r.startedAt.set(s.trackId, Date.parse(s.at)));
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
					return { trackId, media, stream: i, ssrc, port: ports.rtpPort, sessionId };
				}),
			),
		),
	);
	return opened.flat();
}

interface StepResult {
	streams: number;
	idleCore: number;
	core: number;
	perStreamCore: number;
	idleRss: number;
	rss: number;
	pss: number;
	perStreamRss: number;
	replayCore: number;
	firstFrameMs: number[];
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
	const stats = await Promise.all(tracks.map((t) => r.recorder.closeTrack(t.trackId).catch(() => undefined)));
	const firstFrameMs = tracks
		.map((t, i) => (r.startedAt.get(t.trackId) ?? Number.NaN) - (replays[i]?.firstSentAt ?? Number.NaN))
		.filter(Number.isFinite);
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
		idleRss,
		rss: mem.rss,
		pss: mem.pss,
		perStreamRss: (mem.rss - idleRss) / streams,
		replayCore: median(replayCores),
		firstFrameMs,
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

async function burst(streams: number) {
	const r = await startRecorder();
	const opening = performance.now();
	const tracks = await openStreams(r.recorder, streams);
	const openMs = performance.now() - opening;
	const t0 = performance.now() + 50;
	const replays = tracks.map((o) => replayer.add(o.trackId, o.media, o.port, o.ssrc, t0));
	await sleep(BURST_S * 1000);
	await replayer.stopAll();
	const stats = await Promise.all(tracks.map((t) => r.recorder.closeTrack(t.trackId).catch(() => undefined)));
	await r.recorder.close();
	const received = stats.reduce((n, s) => n + (s?.framesReceived ?? 0), 0);
	const written = stats.reduce((n, s) => n + (s?.framesWritten ?? 0), 0);
	const sent = replays.reduce((n, p) => n + p.frames, 0);
	const lost = stats.reduce((n, s) => n + (s?.lostPackets ?? 0), 0);
	return {
		streams,
		tracks: tracks.length,
		openMs,
		received,
		written,
		sent,
		lostPackets: lost,
		failures: r.failures.length,
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
			`  ${n}: ${(res.core * 100).toFixed(1)} % core (idle ${(res.idleCore * 100).toFixed(1)}), ${(res.perStreamCore * 1000).toFixed(2)} mcore/stream, RSS ${res.rss.toFixed(0)} MiB (${res.perStreamRss.toFixed(2)}/stream), first frame p50 ${median(res.firstFrameMs).toFixed(0)} ms, written ${res.framesWritten}/${res.framesReceived}`,
		);
	}
}
const burstRes = burstStreams > 0 ? await burst(burstStreams) : undefined;
if (burstRes) log(`burst: ${burstRes.written}/${burstRes.received} written/received, ${burstRes.sent} sent`);
const crashRes = crashes > 0 ? await crashRounds(crashes) : undefined;
replayer.close();
s3.destroy();
await s3server.stop();

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
const out: string[] = [];
out.push(`${new Date().toISOString().slice(0, 10)} — ${machine()} (at the end of the run).`);
out.push("");
out.push(
	`Sample media replayed from memory: audio Opus ${f1(kbps(audio))} kbit/s of payload, video VP8 640×480 30 fps ${f1(kbps(video))} kbit/s (a key frame every 2 s). One stream = audio + video (2 tracks). ${runs} run(s) per step; per-step figures are medians over ${Math.round(seconds / windowS)} windows of ${windowS} s (and the median over runs).`,
);
out.push("");
out.push(
	"| streams | recorder core (idle) | **core per stream** | RSS MiB (idle) | **RSS MiB per stream** | PSS MiB | replay core | first frame p50 / p95 ms | overhead audio / video | written ÷ received |",
);
out.push("|---|---|---|---|---|---|---|---|---|---|");
for (const [n, rs] of stepRuns) {
	const m = (f: (r: StepResult) => number) => median(rs.map(f));
	const ff = rs.flatMap((r) => r.firstFrameMs);
	out.push(
		`| ${n} | ${f2(m((r) => r.core))} (${f2(m((r) => r.idleCore))}) | **${m((r) => r.perStreamCore).toFixed(4)}** | ${f1(m((r) => r.rss))} (${f1(m((r) => r.idleRss))}) | **${f2(m((r) => r.perStreamRss))}** | ${f1(m((r) => r.pss))} | ${f2(m((r) => r.replayCore))} | ${ff.length ? `${median(ff).toFixed(0)} / ${percentile(ff, 95).toFixed(0)}` : "–"} | ${pct(m((r) => r.overheadAudio))} / ${pct(m((r) => r.overheadVideo))} | ${rs.reduce((a, r) => a + r.framesWritten, 0)} / ${rs.reduce((a, r) => a + r.framesReceived, 0)} (sent ${rs.reduce((a, r) => a + r.framesSent, 0)}); ${rs.reduce((a, r) => a + r.failures, 0)} failed, ${rs.reduce((a, r) => a + r.decodeErrors, 0)} decode errors |`,
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
	out.push("");
	out.push(
		`**Burst**: ${burstRes.streams} audio + video streams (${burstRes.tracks} tracks) opened at once (${burstRes.openMs.toFixed(0)} ms for every openTrack), media started in the same instant, ${BURST_S} s: **${burstRes.written} of ${burstRes.received} frames received written (${pct(burstRes.written / burstRes.received)})**; ${burstRes.sent} sent (received ÷ sent ${pct(burstRes.received / burstRes.sent)}; packets lost on the way ${burstRes.lostPackets}); ${burstRes.failures} tracks failed.`,
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

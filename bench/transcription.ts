/**
 * The embedded transcription engine (pocketsphinx 5.1.1 in a Python child per stream, behind the
 * TranscriptionEngine interface), on flite speech (the two test sentences, voices slt and awb):
 *
 * - real-time factor, batch: a stream gets all its audio at once; wall time to its last final ÷ audio length
 *   (1 stream, then 2 at once);
 * - CPU per stream, live: audio written in real time (20 ms chunks), the Python process's CPU time
 *   (/proc/<pid>/stat, model loading excluded) ÷ audio length, and its peak RSS (1 and 2 streams);
 * - caption latency at the engine, live: from the moment the last sample of an utterance's speech is written to
 *   the arrival of its final segment (p50 / p95 over every utterance);
 * - caption latency through the recorder: the same, from the end of speech in the RTP a sender ffmpeg paces in
 *   real time to the `transcriptSegment` final (adds Opus decoding in ffmpeg and the IPC);
 * - word error rate on the test speech.
 *
 * Prints a markdown section for docs/benchmarks.md on stdout, progress on stderr.
 *
 *   node --import tsx bench/transcription.ts [--reps 2]
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { pino } from "pino";
import type { TranscriptSegmentMessage } from "../contracts/RecorderProtocol.js";
import { PocketsphinxEngine } from "../recorder/transcription/PocketsphinxEngine.js";
import type { TranscriptionStream, TranscriptSegment } from "../recorder/transcription/TranscriptionEngineTypes.js";
import { wordErrorRate } from "../recorder/transcription/wer.js";
import { RecorderProcess } from "../server/recording/RecorderProcess.js";
import { SENTENCES, type Speech, sendSpeech, speak } from "../test/helpers/speech.js";
import { machine, median, percentile } from "./stats.js";

const { values } = parseArgs({ options: { reps: { type: "string", default: "2" } } });
const reps = Number(values.reps);
const log = pino({ level: "silent" });
const progress = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const engine = new PocketsphinxEngine({ memoryLimitBytes: 512 * 2 ** 20, maxRestarts: 0, restartWindowMs: 60_000 });
const TICKS = 100; // USER_HZ

interface Utterance {
	text: string;
	/** Stream offsets (ms) of the speech. */
	startMs: number;
	endMs: number;
}

/** reps × (0.5 s silence, sentence A, 1.5 s silence, sentence B, 1.5 s silence) and where each sentence is. */
function program(a: Speech, b: Speech): { pcm: Buffer; utterances: Utterance[] } {
	const parts: Buffer[] = [];
	const utterances: Utterance[] = [];
	let ms = 0;
	const add = (buf: Buffer) => {
		parts.push(buf);
		ms += buf.length / 32;
	};
	for (let r = 0; r < reps; r++) {
		add(Buffer.alloc(500 * 32));
		for (const s of [a, b]) {
			utterances.push({ text: s.text, startMs: ms, endMs: ms + s.speechEndMs });
			add(s.pcm);
			add(Buffer.alloc(1500 * 32));
		}
	}
	return { pcm: Buffer.concat(parts), utterances };
}

function cpuTicks(pid: number): number {
	try {
		const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
		const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
		return Number(f[11]) + Number(f[12]); // utime + stime
	} catch {
		return Number.NaN;
	}
}

function peakRssMiB(pid: number): number {
	try {
		const kb = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
		return Number(kb) / 1024;
	} catch {
		return Number.NaN;
	}
}

async function open(): Promise<{ s: TranscriptionStream; segs: { seg: TranscriptSegment; at: number }[] }> {
	const s = await engine.open({ log });
	const segs: { seg: TranscriptSegment; at: number }[] = [];
	s.on("segment", (seg) => segs.push({ seg, at: performance.now() }));
	return { s, segs };
}

const finalText = (segs: { seg: TranscriptSegment }[], from: number, to: number) =>
	segs
		.filter((x) => x.seg.final && x.seg.endMs > from && x.seg.startMs < to)
		.map((x) => x.seg.text)
		.join(" ");

/** Batch: all the audio at once; wall time to the end of the stream. */
async function batch(n: number, pcm: Buffer): Promise<number[]> {
	const streams = await Promise.all(Array.from({ length: n }, () => open()));
	const t0 = performance.now();
	await Promise.all(
		streams.map(async ({ s }) => {
			s.write(pcm);
			await s.end();
			return performance.now() - t0;
		}),
	);
	const wall = performance.now() - t0;
	return streams.map(() => wall / (pcm.length / 32));
}

interface LiveResult {
	cpuPct: number[];
	rssMiB: number[];
	latencies: number[];
	wers: number[];
}

/** Live: audio written in real time, 20 ms at a time, to n streams at once. */
async function live(n: number, pcm: Buffer, utterances: Utterance[]): Promise<LiveResult> {
	const streams = await Promise.all(Array.from({ length: n }, () => open()));
	const pids = streams.map(({ s }) => s.pids[0] as number);
	const cpu0 = pids.map(cpuTicks);
	const writtenAt = new Map<number, number>(); // utterance index → when its last speech sample was written
	const chunk = 20 * 32;
	const t0 = performance.now();
	let cpu1 = cpu0;
	let rss = pids.map(() => 0);
	for (let off = 0, k = 0; off < pcm.length; off += chunk, k++) {
		const wait = t0 + k * 20 - performance.now();
		if (wait > 0) await new Promise((r) => setTimeout(r, wait));
		for (const { s } of streams) s.write(pcm.subarray(off, off + chunk));
		const ms = (off + chunk) / 32;
		utterances.forEach((u, i) => {
			if (!writtenAt.has(i) && ms >= u.endMs) writtenAt.set(i, performance.now());
		});
		if (k % 25 === 0) {
			cpu1 = pids.map(cpuTicks);
			rss = pids.map(peakRssMiB);
		}
	}
	await new Promise((r) => setTimeout(r, 300));
	cpu1 = pids.map(cpuTicks);
	rss = pids.map(peakRssMiB);
	await Promise.all(streams.map(({ s }) => s.end()));
	const seconds = pcm.length / 32 / 1000;
	const latencies: number[] = [];
	const wers: number[] = [];
	for (const { segs } of streams) {
		utterances.forEach((u, i) => {
			// The last final that covers the utterance: when its caption was complete.
			const finals = segs.filter((x) => x.seg.final && x.seg.endMs > u.startMs && x.seg.startMs < u.endMs + 500);
			const last = finals.at(-1);
			const end = writtenAt.get(i);
			if (last && end !== undefined) latencies.push(last.at - end);
			wers.push(wordErrorRate(u.text, finalText(segs, u.startMs, u.endMs + 500)).wer);
		});
	}
	return {
		cpuPct: pids.map((_, i) => (((cpu1[i] as number) - (cpu0[i] as number)) / TICKS / seconds) * 100),
		rssMiB: rss,
		latencies,
		wers,
	};
}

/** Through the recorder process: RTP paced by a sender ffmpeg → final segment, per sentence. */
async function throughRecorder(a: Speech, b: Speech): Promise<number[]> {
	const recorder = await RecorderProcess.create({ config: { logLevel: "warn" }, stderr: "ignore" });
	const latencies: number[] = [];
	try {
		for (let r = 0; r < reps; r++) {
			for (const [i, s] of [a, b].entries()) {
				const trackId = `bench-${r}-${i}`;
				const finals: { seg: TranscriptSegmentMessage; at: number }[] = [];
				const on = (seg: TranscriptSegmentMessage) => {
					if (seg.trackId === trackId && seg.final) finals.push({ seg, at: performance.now() });
				};
				recorder.on("transcriptSegment", on);
				const ports = await recorder.openTranscription({
					trackId,
					codec: { kind: "audio", mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 },
					ssrc: 4242,
					engine: { type: "pocketsphinx" },
				});
				const lead = 0.5;
				const sentAt = performance.now();
				await sendSpeech(s, { ...ports, payloadType: 100, ssrc: 4242, leadSeconds: lead, tailSeconds: 2 }).done;
				await recorder.closeTranscription(trackId);
				recorder.off("transcriptSegment", on);
				const speechEnd = sentAt + lead * 1000 + s.speechEndMs;
				const last = finals.at(-1);
				if (last) latencies.push(last.at - speechEnd);
			}
		}
	} finally {
		await recorder.close();
	}
	return latencies;
}

const fmt = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");

async function main(): Promise<void> {
	const a = speak(SENTENCES.report, "slt");
	const b = speak(SENTENCES.weather, "awb");
	const { pcm, utterances } = program(a, b);
	const audioS = pcm.length / 32 / 1000;
	progress(`audio: ${audioS.toFixed(1)} s (${utterances.length} sentences)`);

	progress("batch, 1 stream");
	const b1 = await batch(1, pcm);
	progress("batch, 2 streams");
	const b2 = await batch(2, pcm);
	progress("live, 1 stream");
	const l1 = await live(1, pcm, utterances);
	progress("live, 2 streams");
	const l2 = await live(2, pcm, utterances);
	progress("through the recorder (RTP → final)");
	const rec = await throughRecorder(a, b);

	// WER per sentence (batch decoding is deterministic: one stream is enough).
	const { s, segs } = await open();
	s.write(pcm);
	await s.end();
	const werRows = [a, b].map((sp, i) => {
		const u = utterances[i] as Utterance;
		const hyp = finalText(segs, u.startMs, u.endMs + 500);
		return { sp, hyp, ...wordErrorRate(sp.text, hyp) };
	});
	const allRef = utterances.map((u) => u.text).join(" ");
	const allHyp = utterances.map((u) => finalText(segs, u.startMs, u.endMs + 500)).join(" ");
	const total = wordErrorRate(allRef, allHyp);

	const out: string[] = [];
	out.push("## Transcription: the embedded engine (pocketsphinx)");
	out.push("");
	out.push(
		"`npm run bench:transcription` (= `node --import tsx bench/transcription.ts --reps 2`): pocketsphinx 5.1.1 (bundled US English model) in a Python child per stream, through the `TranscriptionEngine` interface; flite speech (the test sentences, voices `slt` and `awb`, 16 kHz), " +
			`${reps} × (0.5 s silence, sentence A, 1.5 s, sentence B, 1.5 s) = ${audioS.toFixed(1)} s of audio per stream.`,
	);
	out.push("");
	out.push(`${new Date().toISOString().slice(0, 10)}, ${machine()}:`);
	out.push("");
	out.push(
		"| streams at once | real-time factor, batch (wall ÷ audio) | CPU per stream, live (% of a core) | peak RSS per stream | caption latency at the engine, p50 / p95 (n) |",
	);
	out.push("|---:|---:|---:|---:|---:|");
	for (const [n, bt, lv] of [
		[1, b1, l1],
		[2, b2, l2],
	] as const) {
		out.push(
			`| ${n} | ${fmt(median(bt))} | ${fmt(median(lv.cpuPct), 1)} % | ${fmt(median(lv.rssMiB), 0)} MiB | ${fmt(percentile(lv.latencies, 50), 0)} / ${fmt(percentile(lv.latencies, 95), 0)} ms (${lv.latencies.length}) |`,
		);
	}
	out.push("");
	out.push(
		`Caption latency through the recorder (end of speech in the RTP a sender ffmpeg paces in real time → the final \`transcriptSegment\` at the parent; adds the Opus decoding ffmpeg and IPC), ${rec.length} sentences: p50 **${fmt(percentile(rec, 50), 0)} ms**, p95 ${fmt(percentile(rec, 95), 0)} ms.`,
	);
	out.push("");
	out.push("| speech | recognized (final) | WER |");
	out.push("|---|---|---:|");
	for (const r of werRows) out.push(`| "${r.sp.text}" (${r.sp.voice}) | "${r.hyp}" | ${fmt(r.wer, 3)} |`);
	out.push(`| all ${utterances.length} sentences | | **${fmt(total.wer, 3)}** |`);
	out.push("");
	out.push(
		`Live WER (each stream, each sentence, real-time feeding): median ${fmt(median([...l1.wers, ...l2.wers]), 3)}, worst ${fmt(Math.max(...l1.wers, ...l2.wers), 3)}.`,
	);
	process.stdout.write(`${out.join("\n")}\n`);
}

await main();

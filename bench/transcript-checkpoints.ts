/**
 * The transcript's checkpoints in the customer's bucket, over a synthetic hour of talk: one final segment every
 * 2–3 s (4 speakers, 6–30 words each, dated by sender reports as a browser's audio is), each checkpoint CHECKPOINT_MS
 * (2 s) after the first segment since the last, into a local S3 API (moto).
 *
 * - incremental (this code): the real TranscriptWriter (server/transcription/TranscriptWriter.ts): a part with what
 *   is new per checkpoint; every checkpoint of the hour written;
 * - baseline (main before it, 48ed37f): TranscriptionService's checkpoint as it was — a new CaptureBucket per
 *   write, the whole transcript sorted, transcript.json (pretty-printed) and transcript.vtt rewritten (two PUTs).
 *   Its bytes are counted for every checkpoint of the hour (the bodies are built); the PUTs are made, and timed,
 *   in the minute before each mark (10, 30, 60), where the cost per checkpoint is what the transcript's length
 *   makes it.
 *
 * Reported per mark: bytes uploaded and PUTs in that minute of talk, the process CPU (user + system, the gateway
 * side: moto is another process) and wall time per checkpoint (medians over the minute); over the hour: bytes and
 * PUTs in all. Then, for the incremental writer at the hour: the final write (transcript.json + .vtt audited,
 * audit.jsonl, the parts deleted), `consentry verify` on a session of that length still being written (every part
 * read), and the session finished from the bucket after a node loss (all parts read).
 *
 *   node --import tsx bench/transcript-checkpoints.ts [--minutes 60] [--seed 7]
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { pino } from "pino";
import { EXIT, verifyCommand } from "../cli/verify/command.js";
import type { StorageTarget } from "../contracts/StorageTargetTypes.js";
import { EventLog } from "../server/audit/EventLog.js";
import { CaptureBucket } from "../server/capture/CaptureBucket.js";
import { NODE_LOST } from "../server/capture/LostSessions.js";
import { DEFAULT_POLICY } from "../server/compliance/CaptureTypes.js";
import { DEFAULT_TEXTS } from "../server/compliance/noticeTexts.js";
import { Store } from "../server/store/Store.js";
import type { TranscriptDocument, TranscriptEntry } from "../server/transcription/TranscriptTypes.js";
import {
	CHECKPOINT_MS,
	finishTranscriptFromBucket,
	TranscriptWriter,
	toWebVtt,
} from "../server/transcription/TranscriptWriter.js";
import { startS3 } from "../test/helpers/moto.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: { minutes: { type: "string", default: "60" }, seed: { type: "string", default: "7" } },
});
const MINUTES = Number(values.minutes);
const MARKS = [10, 30, 60].filter((m) => m <= MINUTES);
const log = pino({ level: "silent" });
const progress = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const endpointPolicy = { allowHttp: true, allowPrivate: true };

// A small deterministic PRNG (mulberry32): the same hour every run.
let seed = Number(values.seed) >>> 0;
const rand = () => {
	seed = (seed + 0x6d2b79f5) >>> 0;
	let t = seed;
	t = Math.imul(t ^ (t >>> 15), t | 1);
	t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
	return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const WORDS =
	"so the quarterly numbers are in and we should look at them before friday I think the customer asked about the migration plan again which means we need an owner for it and a date that we can actually keep let me share my screen okay can everyone see this the second column is the one that matters here".split(
		" ",
	);
const SPEAKERS = Array.from({ length: 4 }, (_, i) => ({
	speaker: `psn_${String(i).repeat(64)}`,
	displayName: ["Ana Lima", "Ben Okafor", "Chloé Martin", "Dev Patel"][i] as string,
	offsetMs: 40 + i * 13,
}));

/** The hour's final segments (arrival time, ms since the session's start) and the checkpoints' times. */
function hourOfTalk(startedAt: number): { at: number; entry: TranscriptEntry }[] {
	const out: { at: number; entry: TranscriptEntry }[] = [];
	for (let t = 2000 + rand() * 1000; t < MINUTES * 60_000; t += 2000 + rand() * 1000) {
		const who = SPEAKERS[Math.floor(rand() * SPEAKERS.length)] as (typeof SPEAKERS)[number];
		const words = 6 + Math.floor(rand() * 25);
		const text = Array.from({ length: words }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(" ");
		const durMs = words * 330;
		const end = startedAt + t - 600;
		const start = end - durMs;
		out.push({
			at: t,
			entry: {
				speaker: who.speaker,
				displayName: who.displayName,
				start: new Date(start).toISOString(),
				end: new Date(end).toISOString(),
				text,
				clock: "capture",
				captureStartAt: start + who.offsetMs + 0.25,
				captureEndAt: end + who.offsetMs + 0.25,
				clockOffsetMs: who.offsetMs,
			},
		});
	}
	return out;
}

/** Checkpoints: each CHECKPOINT_MS after the first segment since the last one; the segments each one carries. */
function checkpoints(segments: { at: number; entry: TranscriptEntry }[]): { at: number; entries: TranscriptEntry[] }[] {
	const out: { at: number; entries: TranscriptEntry[] }[] = [];
	let due: { at: number; entries: TranscriptEntry[] } | undefined;
	for (const s of segments) {
		if (due && s.at > due.at) {
			out.push(due);
			due = undefined;
		}
		if (!due) due = { at: s.at + CHECKPOINT_MS, entries: [] };
		due.entries.push(s.entry);
	}
	if (due) out.push(due);
	return out;
}

/** main's TranscriptionService checkpoint (#write with final = false, then #put), as of 48ed37f. */
async function baselineCheckpoint(
	target: StorageTarget,
	events: EventLog,
	where: { tenantId: string; meetingId: string; sessionId: string },
	header: Omit<TranscriptDocument, "kind" | "version" | "entries" | "captures">,
	entries: TranscriptEntry[],
	put: boolean,
): Promise<{ bytes: number; puts: number }> {
	const doc: TranscriptDocument = {
		kind: "consentry.transcript",
		version: 1,
		...header,
		checkpointedAt: new Date().toISOString(),
		entries: [...entries].sort((a, b) => a.start.localeCompare(b.start)),
		captures: [],
	};
	const json = `${JSON.stringify(doc, null, 2)}\n`;
	const vtt = toWebVtt(doc.entries, Date.parse(doc.startedAt), doc.disclaimer);
	if (!put) return { bytes: Buffer.byteLength(json) + Buffer.byteLength(vtt), puts: 2 };
	const bucket = new CaptureBucket(target, endpointPolicy, events, { ...where, kind: "transcription" });
	let bytes = 0;
	try {
		for (const [name, text, type] of [
			["transcript.json", json, "application/json"],
			["transcript.vtt", vtt, "text/vtt"],
		] as const)
			bytes += (await bucket.put(name, text, type)).size;
	} finally {
		bucket.destroy();
	}
	return { bytes, puts: 2 };
}

interface Sample {
	minute: number;
	bytes: number;
	puts: number;
	cpuMs?: number;
	wallMs?: number;
}

function cpuMs(u: NodeJS.CpuUsage): number {
	return (u.user + u.system) / 1000;
}

const s3server = await startS3();
const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-tckpt-"));
const BUCKET = "acme-transcripts";
const target: StorageTarget = {
	endpoint: s3server.endpoint,
	region: "us-east-1",
	bucket: BUCKET,
	prefix: "rec",
	credentials: { accessKeyId: "AKIABENCH", secretAccessKey: "bench" },
	forcePathStyle: true,
	encryption: { type: "none" },
};
const store = await Store.open({ file: path.join(dir, "audit.sqlite") });
const events = await EventLog.open(store);
const loadBefore = os.loadavg()[0]?.toFixed(2);
try {
	const admin = new S3Client({
		endpoint: s3server.endpoint,
		region: "us-east-1",
		forcePathStyle: true,
		credentials: target.credentials,
	});
	await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
	admin.destroy();
	const startedAt = Date.now();
	const segments = hourOfTalk(startedAt);
	const ckpts = checkpoints(segments);
	const tenantId = "acme";
	const meetingId = "k3m9x2p7q4wz";
	await events.append("meeting.started", { tenantId, meetingId, actor: "acme:ana", data: {} });
	const header = {
		meeting: meetingId,
		policy: DEFAULT_POLICY,
		startedAt: new Date(startedAt).toISOString(),
		engine: "aws",
		disclaimer: DEFAULT_TEXTS.en.transcriptionDisclaimer,
	};
	const inWindow = (at: number) => MARKS.some((m) => at > (m - 1) * 60_000 && at <= m * 60_000);
	const chars = segments.reduce((n, s) => n + s.entry.text.length, 0);
	progress(
		`${segments.length} segments (mean ${(chars / segments.length).toFixed(0)} characters), ${ckpts.length} checkpoints over ${MINUTES} min`,
	);

	const run = async (mode: "baseline" | "incremental") => {
		const sessionId = `${mode}-session`;
		const where = { tenantId, meetingId, sessionId };
		const writer =
			mode === "incremental"
				? new TranscriptWriter({
						target,
						endpointPolicy,
						events,
						where,
						header: { ...header, session: sessionId },
						log,
						checkpointMs: 3_600_000, // checkpoints are driven here, at their simulated times
					})
				: undefined;
		const entries: TranscriptEntry[] = [];
		const samples: Sample[] = [];
		let i = 0;
		for (const c of ckpts) {
			const minute = Math.ceil(c.at / 60_000);
			const timed = inWindow(c.at);
			let s: Sample;
			if (writer) {
				for (const e of c.entries) writer.add(e);
				const before = { ...writer.uploads };
				const u = process.cpuUsage();
				const t = performance.now();
				await writer.checkpoint();
				const wallMs = performance.now() - t;
				s = {
					minute,
					bytes: writer.uploads.bytes - before.bytes,
					puts: writer.uploads.puts - before.puts,
					cpuMs: cpuMs(process.cpuUsage(u)),
					wallMs,
				};
			} else {
				entries.push(...c.entries);
				const u = process.cpuUsage();
				const t = performance.now();
				const r = await baselineCheckpoint(target, events, where, { ...header, session: sessionId }, entries, timed);
				const wallMs = performance.now() - t;
				s = { minute, ...r, ...(timed ? { cpuMs: cpuMs(process.cpuUsage(u)), wallMs } : {}) };
			}
			samples.push(s);
			if (++i % 200 === 0) progress(`${mode}: ${i}/${ckpts.length} checkpoints`);
		}
		return { samples, writer, sessionId };
	};

	const base = await run("baseline");
	const inc = await run("incremental");
	const writer = inc.writer as TranscriptWriter;

	// The node is lost at the hour: the session finished from its parts (a copy: the writer's own parts stay for the
	// final write below).
	const lostId = "lost-session";
	{
		const copy = new TranscriptWriter({
			target,
			endpointPolicy,
			events,
			where: { tenantId, meetingId, sessionId: lostId },
			header: { ...header, session: lostId },
			log,
			checkpointMs: 3_600_000,
		});
		for (const c of ckpts) {
			for (const e of c.entries) copy.add(e);
			await copy.checkpoint();
		}
	}
	await events.append("session.on", {
		tenantId,
		meetingId,
		actor: "acme:ana",
		data: { kind: "transcription", sessionId: lostId, policy: DEFAULT_POLICY, startedAt: header.startedAt },
	});
	// The customer's auditor meanwhile: `consentry verify` on the session's folder (unfinished: every part read).
	process.env.AWS_ACCESS_KEY_ID ??= target.credentials.accessKeyId;
	process.env.AWS_SECRET_ACCESS_KEY ??= target.credentials.secretAccessKey;
	let t = performance.now();
	let verifyOut = "";
	const verifyCode = await verifyCommand(
		[`s3://${BUCKET}/rec/${meetingId}/${lostId}`, "--endpoint", s3server.endpoint, "--json"],
		{ out: (x) => (verifyOut += x), err: (x) => (verifyOut += x) },
	);
	const verifyMs = performance.now() - t;
	if (verifyCode !== EXIT.unfinished) throw new Error(`verify on the unfinished session: ${verifyCode} ${verifyOut}`);
	let u = process.cpuUsage();
	t = performance.now();
	const recovered = await finishTranscriptFromBucket(
		{ target, endpointPolicy, events, log },
		{
			where: { tenantId, meetingId, sessionId: lostId },
			startedAt: header.startedAt,
			policy: DEFAULT_POLICY,
			engine: header.engine,
			disclaimer: header.disclaimer,
		},
		NODE_LOST,
	);
	const recovery = { ms: performance.now() - t, cpuMs: cpuMs(process.cpuUsage(u)) };
	if (recovered.doc.entries.length !== segments.length)
		throw new Error(`recovered ${recovered.doc.entries.length} entries of ${segments.length}`);

	// The session's end at the hour: the final write, then its parts deleted.
	u = process.cpuUsage();
	t = performance.now();
	await writer.finish({ endedAt: new Date().toISOString(), endReason: "stopped" });
	const final = { ms: performance.now() - t, cpuMs: cpuMs(process.cpuUsage(u)) };

	const fmtB = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);
	const row = (name: string, samples: Sample[], m: number) => {
		const w = samples.filter((s) => s.minute === m);
		const bytes = w.reduce((n, s) => n + s.bytes, 0);
		const puts = w.reduce((n, s) => n + s.puts, 0);
		const cpu = w.flatMap((s) => (s.cpuMs === undefined ? [] : [s.cpuMs]));
		const wall = w.flatMap((s) => (s.wallMs === undefined ? [] : [s.wallMs]));
		return `| ${m} | ${name} | ${fmtB(bytes)} (${((bytes / 60) * 8e-3).toFixed(1)} kbit/s) | ${puts} | ${median(cpu).toFixed(2)} ms | ${median(wall).toFixed(1)} ms |`;
	};
	const total = (samples: Sample[]) => ({
		bytes: samples.reduce((n, s) => n + s.bytes, 0),
		puts: samples.reduce((n, s) => n + s.puts, 0),
	});
	const tb = total(base.samples);
	const ti = total(inc.samples);
	console.log(`### Transcript checkpoints: incremental parts against whole rewrites (${MINUTES} min of talk)\n`);
	console.log(
		`Machine: ${machine()}; load average (1 min) ${loadBefore} before, ${os.loadavg()[0]?.toFixed(2)} after. ${segments.length} final segments (one every 2–3 s, 4 speakers, mean ${(chars / segments.length).toFixed(0)} characters of text), ${ckpts.length} checkpoints; moto on loopback.\n`,
	);
	console.log(
		"| minute of talk | writer | bytes uploaded in that minute | PUTs in that minute | process CPU per checkpoint (median) | wall per checkpoint (median) |",
	);
	console.log("|---|---|---|---|---|---|");
	for (const m of MARKS) {
		console.log(row("baseline: whole transcript.json + .vtt", base.samples, m));
		console.log(row("incremental: one part", inc.samples, m));
	}
	console.log(
		`\nOver the ${MINUTES} min: baseline ${fmtB(tb.bytes)} in ${tb.puts} PUTs; incremental ${fmtB(ti.bytes)} in ${ti.puts} PUTs (${(tb.bytes / ti.bytes).toFixed(0)}× fewer bytes).`,
	);
	console.log(
		`At the end (${writer.parts} parts): the final write (transcript.json ${fmtB(
			Buffer.byteLength(JSON.stringify(writer.entries, null, 2)),
		)} + .vtt audited, audit.jsonl, parts deleted in ${writer.uploads.deletes} DeleteObjects) ${final.ms.toFixed(0)} ms wall, ${final.cpuMs.toFixed(0)} ms CPU; a session lost at the end finished from its ${recovered.parts} parts (listed, read 8 at a time, final written, parts deleted) in ${(recovery.ms / 1000).toFixed(2)} s wall, ${recovery.cpuMs.toFixed(0)} ms CPU; before that, \`consentry verify\` on its folder (unfinished, every part read and checked) took ${(verifyMs / 1000).toFixed(2)} s.`,
	);
} finally {
	await store.close();
	await s3server.stop();
	rmSync(dir, { recursive: true, force: true });
}

/**
 * `consentry verify` on a 1-hour recording session: how long an auditor waits, and at how many MB/s.
 *
 * The session is built in a local S3 API (moto) as the gateway lays it out for one hour of a 4-person meeting: per
 * person an Opus track (32 kbit/s) and a VP8 camera (800 kbit/s), each in 10-minute objects (6 per track per hour,
 * uploaded by multipart as the recorder does), chat.jsonl, and the audit trail and manifest the gateway writes — the
 * trail appended with the real EventLog (hash chain, pseudonyms, the entries CaptureService and RecordingService
 * append) and exported with its meeting export. Object bytes are synthetic (the verifier only hashes them).
 * Baseline in the same run: reading and hashing every object once, as many at once as the verifier does, with nothing
 * else (the floor for any verifier). Also the command on the meeting's folder (what the customer runs), and the
 * folder check alone (cli/verify/meetingFolder.ts) on this meeting and on a folder of 4,000 objects in 40 sessions.
 *
 *   node --import tsx bench/verify.ts [--runs 3] [--people 4] [--video-kbps 800]
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { Bucket } from "../cli/verify/bucket.js";
import { verifyCommand } from "../cli/verify/command.js";
import { surveyMeeting } from "../cli/verify/meetingFolder.js";
import { DEFAULT_LIMITS, verifySession } from "../cli/verify/verifySession.js";
import { type AppendInput, EventLog, type EventType } from "../server/audit/EventLog.js";
import type { Manifest, ManifestTrack } from "../server/recording/RecordingTypes.js";
import { Store } from "../server/store/Store.js";
import { startS3 } from "../test/helpers/moto.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: {
		runs: { type: "string", default: "3" },
		people: { type: "string", default: "4" },
		"video-kbps": { type: "string", default: "800" },
	},
});
const RUNS = Number(values.runs);
const PEOPLE = Number(values.people);
const VIDEO_KBPS = Number(values["video-kbps"]);
const AUDIO_KBPS = 32;
const SEGMENT_S = 600;
const SEGMENTS = 6;
const FOLDER_SESSIONS = 40;
const FOLDER_OBJECTS = 100;

process.env.AWS_ACCESS_KEY_ID = "AKIABENCH";
process.env.AWS_SECRET_ACCESS_KEY = "bench";

const s3server = await startS3();
const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-verify-"));
const BUCKET = "acme-meetings";
const s3 = new S3Client({
	endpoint: s3server.endpoint,
	region: "us-east-1",
	forcePathStyle: true,
	credentials: { accessKeyId: "AKIABENCH", secretAccessKey: "bench" },
});
try {
	await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
	const built = await buildSession();
	console.log(
		`session: ${built.objects} objects, ${(built.bytes / 1e6).toFixed(0)} MB, ${built.entries} audit entries, built in ${(built.ms / 1000).toFixed(1)} s`,
	);
	const bucket = new Bucket({ bucket: BUCKET, endpoint: s3server.endpoint });
	const baseline: number[] = [];
	const verify: number[] = [];
	const meeting: number[] = [];
	const meetingFolder = built.prefix.split("/").slice(0, -1).join("/");
	for (let i = 0; i < RUNS; i++) {
		let t = performance.now();
		const queue = [...built.keys];
		await Promise.all(
			Array.from({ length: DEFAULT_LIMITS.concurrency }, async () => {
				for (let key = queue.shift(); key !== undefined; key = queue.shift()) await bucket.hash(key);
			}),
		);
		baseline.push(performance.now() - t);
		t = performance.now();
		const r = await verifySession(bucket, built.prefix, DEFAULT_LIMITS);
		verify.push(performance.now() - t);
		if (!r.ok) throw new Error(`the bench session does not verify: ${JSON.stringify(r.problems.slice(0, 5))}`);
		// What the customer runs: `consentry verify s3://BUCKET/PREFIX/MEETING` (finds the sessions, checks the folder).
		t = performance.now();
		let out = "";
		const code = await verifyCommand([`s3://${BUCKET}/${meetingFolder}`, "--endpoint", s3server.endpoint, "--json"], {
			out: (x) => (out += x),
			err: (x) => (out += x),
		});
		meeting.push(performance.now() - t);
		if (code !== 0) throw new Error(`the bench meeting does not verify (exit ${code}): ${out.slice(0, 2000)}`);
		console.log(
			`run ${i + 1}: read+hash only ${(baseline[i] as number).toFixed(0)} ms, verify session ${(verify[i] as number).toFixed(0)} ms (${r.problems.length} warnings), verify meeting folder ${(meeting[i] as number).toFixed(0)} ms`,
		);
	}
	// The folder check alone (list the meeting's folder, find its latest trail, name what is stray/unfinished/deleted),
	// on this meeting, then on a large one: FOLDER_SESSIONS session folders of FOLDER_OBJECTS objects each.
	const survey = async (folder: string) => {
		const t0 = performance.now();
		await surveyMeeting(bucket, folder, DEFAULT_LIMITS);
		return performance.now() - t0;
	};
	const surveyHere: number[] = [];
	for (let i = 0; i < RUNS; i++) surveyHere.push(await survey(meetingFolder));
	const large = "consentry/largemeeting";
	const tiny: string[] = [];
	for (let s = 0; s < FOLDER_SESSIONS; s++)
		for (let o = 1; o <= FOLDER_OBJECTS; o++) tiny.push(`${large}/${randomUUID()}/psn_${s}-audio-${o}.webm`);
	await Promise.all(
		Array.from({ length: 8 }, async (_, w) => {
			for (let i = w; i < tiny.length; i += 8)
				await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: tiny[i], Body: "x" }));
		}),
	);
	const surveyLarge: number[] = [];
	for (let i = 0; i < RUNS; i++) surveyLarge.push(await survey(large));
	bucket.destroy();
	const mb = built.bytes / 1e6;
	console.log(
		`\n1-hour session, ${PEOPLE} people × (audio ${AUDIO_KBPS} kbit/s + camera ${VIDEO_KBPS} kbit/s), ${built.objects} objects, ${mb.toFixed(0)} MB:`,
	);
	console.log(
		`  verify: median ${(median(verify) / 1000).toFixed(2)} s = ${(mb / (median(verify) / 1000)).toFixed(0)} MB/s (runs: ${verify.map((x) => (x / 1000).toFixed(2)).join(", ")} s)`,
	);
	console.log(
		`  consentry verify on the meeting folder (the command, JSON out): median ${(median(meeting) / 1000).toFixed(2)} s = ${(mb / (median(meeting) / 1000)).toFixed(0)} MB/s (runs: ${meeting.map((x) => (x / 1000).toFixed(2)).join(", ")} s)`,
	);
	console.log(
		`  the folder check alone: this meeting ${median(surveyHere).toFixed(0)} ms (runs: ${surveyHere.map((x) => x.toFixed(0)).join(", ")}); a folder of ${FOLDER_SESSIONS * FOLDER_OBJECTS} objects in ${FOLDER_SESSIONS} session folders ${median(surveyLarge).toFixed(0)} ms (runs: ${surveyLarge.map((x) => x.toFixed(0)).join(", ")})`,
	);
	console.log(
		`  baseline, read + SHA-256 of every object only: median ${(median(baseline) / 1000).toFixed(2)} s = ${(mb / (median(baseline) / 1000)).toFixed(0)} MB/s`,
	);
	console.log(`  ${machine()}, ${new Date().toISOString()}`);
} finally {
	s3.destroy();
	await s3server.stop();
	rmSync(dir, { recursive: true, force: true });
}

/** One hour of a meeting, as the gateway leaves it in the bucket. */
async function buildSession(): Promise<{
	prefix: string;
	keys: string[];
	objects: number;
	bytes: number;
	entries: number;
	ms: number;
}> {
	const t0 = performance.now();
	const store = await Store.open({ file: path.join(dir, "audit.sqlite") });
	const log = await EventLog.open(store);
	const tenantId = "acme";
	const meetingId = "k3m9x2p7q4wz";
	const sessionId = randomUUID();
	const prefix = `consentry/${meetingId}/${sessionId}`;
	const policy = { name: "notice" as const, version: 1, ackTimeoutMs: 30_000 };
	const where = { tenantId, meetingId };
	const append = async (items: (AppendInput & { type: EventType })[]) => await log.appendMany(items);
	const people = Array.from({ length: PEOPLE }, (_, i) => ({
		key: `acme:person${i}`,
		peerId: randomUUID(),
		noticeId: randomUUID(),
		producers: { audio: randomUUID(), camera: randomUUID() },
		offsetMs: 20 + i * 7, // their clock against the gateway's
	}));
	const host = people[0] as (typeof people)[number];
	await append([
		{ type: "meeting.started", ...where, actor: host.key, data: {} },
		...people.map((p) => ({ type: "person.joined" as const, ...where, actor: p.key, data: { peerId: p.peerId } })),
	]);
	const startedAt = new Date().toISOString();
	await append([
		{ type: "session.on", ...where, actor: host.key, data: { kind: "recording", sessionId, policy, startedAt } },
		...people.map((p) => ({
			type: "notice.sent" as const,
			...where,
			data: {
				kind: "recording",
				sessionId,
				noticeId: p.noticeId,
				person: p.key,
				peerId: p.peerId,
				via: "session_start",
				locale: "en",
				textSha256: createHash("sha256").update("notice text").digest("hex"),
				consentRequired: false,
			},
		})),
	]);
	const tracks: ManifestTrack[] = [];
	let answeredAt = 0;
	const keys: string[] = [];
	let bytes = 0;
	const block = randomBytes(1 << 20);
	for (const p of people) {
		await append([
			{
				type: "notice.shown",
				...where,
				actor: p.key,
				data: { kind: "recording", sessionId, noticeId: p.noticeId, peerId: p.peerId },
			},
		]);
		const clickAt = Date.now() + p.offsetMs - 150; // on their clock, 150 ms before the answer arrives
		const [ack] = await append([
			{
				type: "notice.acknowledged",
				...where,
				actor: p.key,
				data: { kind: "recording", sessionId, noticeId: p.noticeId, peerId: p.peerId, policy },
			},
		]);
		if (!ack) throw new Error("no acknowledgement appended");
		answeredAt = Date.parse(ack.at);
		const person = (await log.pseudonym(tenantId, p.key)) as string;
		await append(
			(["audio", "camera"] as const).map((kind) => ({
				type: "gate.opened" as const,
				...where,
				data: {
					kind: "recording",
					sessionId,
					person: p.key,
					peerId: p.peerId,
					producerId: p.producers[kind],
					source: kind === "audio" ? "mic" : "camera",
					reason: "acknowledged",
				},
			})),
		);
		for (const kind of ["audio", "camera"] as const) {
			const trackId = `${sessionId}_${p.producers[kind]}`;
			const openedAt = Date.now();
			const firstCaptureAt = clickAt + 90;
			const kbps = kind === "audio" ? AUDIO_KBPS : VIDEO_KBPS;
			const fps = kind === "audio" ? 50 : 30;
			const objects: ManifestTrack["objects"] = [];
			for (let seq = 1; seq <= SEGMENTS; seq++) {
				const key = `${prefix}/${person}-${kind}-${seq}.webm`;
				const size = Math.round((kbps * 1000 * SEGMENT_S) / 8) + 1000 + seq;
				const sha256 = await upload(key, size, block);
				const start = openedAt + (seq - 1) * SEGMENT_S * 1000;
				const capture = firstCaptureAt + (seq - 1) * SEGMENT_S * 1000;
				const o = {
					key,
					seq,
					size,
					sha256,
					startedAt: new Date(start).toISOString(),
					endedAt: new Date(start + SEGMENT_S * 1000).toISOString(),
					frames: fps * SEGMENT_S,
					firstCaptureAt: capture,
					firstFrameAt: capture - p.offsetMs,
				};
				objects.push(o);
				keys.push(key);
				bytes += size;
				const { firstFrameAt: _, ...written } = o;
				await append([
					{
						type: "storage.object_written",
						...where,
						data: { kind: "recording", sessionId, trackId, bucket: BUCKET, ...written },
					},
				]);
			}
			tracks.push({
				trackId,
				person,
				kind,
				producerId: p.producers[kind],
				codec:
					kind === "audio"
						? { mimeType: "audio/opus", clockRate: 48000, channels: 2 }
						: { mimeType: "video/VP8", clockRate: 90000 },
				openedAt: new Date(openedAt).toISOString(),
				closedAt: new Date(openedAt + SEGMENTS * SEGMENT_S * 1000).toISOString(),
				closeReason: "stopped",
				coveredBy: { type: ack.type, seq: ack.seq, hash: ack.hash, at: ack.at },
				framesReceived: fps * SEGMENT_S * SEGMENTS,
				framesWritten: fps * SEGMENT_S * SEGMENTS,
				holes: [],
				capture: {
					clickAt,
					closeAt: firstCaptureAt + SEGMENTS * SEGMENT_S * 1000 + 20,
					firstCaptureAt,
					lastCaptureAt: firstCaptureAt + SEGMENTS * SEGMENT_S * 1000,
					clockOffsetMs: p.offsetMs,
					packetsBeforeClick: 0,
					packetsAfterClose: 0,
					packetsUndated: 0,
					senderReports: SEGMENTS * SEGMENT_S,
					clockSteps: 0,
					minTransitMs: 3,
				},
				objects,
			});
		}
	}
	// 60 chat lines from the people covered, said while the session ran (between the last answer and its end).
	const t = Date.now();
	const pseudonyms = await Promise.all(people.map((p) => log.pseudonym(tenantId, p.key)));
	const chat = Array.from({ length: 60 }, (_, i) => ({
		at: new Date(answeredAt + ((t - answeredAt) * i) / 60).toISOString(),
		from: pseudonyms[i % PEOPLE] ?? null,
		text: `message ${i}`,
	}));
	const chatText = chat.map((c) => JSON.stringify(c)).join("\n") + "\n";
	await append([
		...tracks.map((tr) => ({
			type: "gate.closed" as const,
			...where,
			data: {
				kind: "recording",
				sessionId,
				person: people.find((_, i) => pseudonyms[i] === tr.person)?.key ?? "",
				producerId: tr.producerId,
				reason: "stopped",
			},
		})),
		{ type: "session.off", ...where, actor: host.key, data: { kind: "recording", sessionId, reason: "stopped" } },
	]);
	const chatObj = await putText(`${prefix}/chat.jsonl`, chatText);
	const exported = await log.exportMeeting(tenantId, meetingId);
	const audit = await putText(`${prefix}/audit.jsonl`, exported);
	const header = JSON.parse(exported.slice(0, exported.indexOf("\n"))) as { chainHead: unknown; meetingHead: unknown };
	const manifest: Manifest = {
		kind: "consentry.recording.manifest",
		version: 2,
		tenant: tenantId,
		meeting: meetingId,
		session: sessionId,
		policy,
		startedAt,
		endedAt: new Date(Date.now() + SEGMENTS * SEGMENT_S * 1000).toISOString(),
		endReason: "stopped",
		persons: [...new Set(tracks.map((tr) => tr.person))],
		notRecorded: [],
		tracks,
		chat: { ...chatObj, messages: chat.length },
		audit: { ...audit, chainHead: header.chainHead, meetingHead: header.meetingHead },
		disclaimer: "…",
	};
	await putText(`${prefix}/manifest.json`, `${JSON.stringify(manifest, null, 2)}\n`);
	const entries = exported.split("\n").filter(Boolean).length - 1;
	await store.close();
	return { prefix, keys, objects: keys.length, bytes, entries, ms: performance.now() - t0 };
}

/** A multipart upload of `size` synthetic bytes (as the recorder streams an object); returns its SHA-256. */
async function upload(key: string, size: number, block: Buffer): Promise<string> {
	const h = createHash("sha256");
	let left = size;
	let n = 0;
	const body = Readable.from(
		(function* () {
			while (left > 0) {
				const chunk = Buffer.from(block.subarray(0, Math.min(left, block.length)));
				chunk.writeUInt32BE(n++ >>> 0, 0);
				left -= chunk.length;
				h.update(chunk);
				yield chunk;
			}
		})(),
	);
	await new Upload({
		client: s3,
		params: { Bucket: BUCKET, Key: key, Body: body, ContentType: "video/webm" },
		partSize: 16 * 1024 * 1024,
		queueSize: 2,
	}).done();
	return h.digest("hex");
}

async function putText(key: string, text: string): Promise<{ key: string; size: number; sha256: string }> {
	const body = Buffer.from(text);
	await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentLength: body.length }));
	return { key, size: body.length, sha256: createHash("sha256").update(body).digest("hex") };
}

import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT, verifyCommand } from "../cli/verify/command.js";
import { EventLog } from "../server/audit/EventLog.js";
import { NODE_LOST } from "../server/capture/LostSessions.js";
import { DEFAULT_POLICY } from "../server/compliance/CaptureTypes.js";
import { DataSubjectBucket } from "../server/privacy/DataSubjectBucket.js";
import { Store } from "../server/store/Store.js";
import type { TranscriptDocument, TranscriptEntry, TranscriptPart } from "../server/transcription/TranscriptTypes.js";
import { finishTranscriptFromBucket, TranscriptWriter } from "../server/transcription/TranscriptWriter.js";
import { startBucket, type TestBucket, targetOf } from "./helpers/bucket.js";

/**
 * The transcript's checkpoints in the bucket, on a real S3 API (moto) and the real audit trail: each checkpoint
 * writes only what is new (`transcript.part-NNNNNN.json`), a session whose gateway died is finished from its parts
 * (the `finishLost` / `recoverAll` path) and `consentry verify` passes on the result; verify names a part deleted or
 * altered, in a session still being written and beside a final transcript.
 */
const log = pino({ level: "silent" });
const policy = { allowHttp: true, allowPrivate: true };
const tenantId = "acme";
let bucket: TestBucket;
let store: Store;
let events: EventLog;
let dir: string;

beforeAll(async () => {
	bucket = await startBucket("acme-transcripts");
	dir = mkdtempSync(path.join(os.tmpdir(), "consentry-parts-"));
	store = await Store.open({ file: path.join(dir, "store.sqlite") });
	events = await EventLog.open(store);
	process.env.AWS_ACCESS_KEY_ID ??= "x";
	process.env.AWS_SECRET_ACCESS_KEY ??= "x";
});

afterAll(async () => {
	await store?.close();
	await bucket?.stop();
	if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A transcription session in the trail: started, two people who answered its notice; returns their pseudonyms. */
async function session(): Promise<{ meetingId: string; sessionId: string; startedAt: string; speakers: string[] }> {
	const meetingId = `m${randomUUID().slice(0, 8)}`;
	const sessionId = randomUUID();
	const where = { tenantId, meetingId };
	const people = ["acme:ana", "acme:ben"];
	const startedAt = new Date().toISOString();
	await events.appendMany([
		{ type: "meeting.started", ...where, actor: people[0], data: {} },
		...people.map((p) => ({ type: "person.joined" as const, ...where, actor: p, data: { peerId: p } })),
		{
			type: "session.on",
			...where,
			actor: people[0],
			data: { kind: "transcription", sessionId, policy: DEFAULT_POLICY, startedAt },
		},
		...people.map((p) => ({
			type: "notice.acknowledged" as const,
			...where,
			actor: p,
			data: { kind: "transcription", sessionId, noticeId: randomUUID(), peerId: p, policy: DEFAULT_POLICY },
		})),
	]);
	const speakers = await Promise.all(people.map(async (p) => (await events.pseudonym(tenantId, p)) as string));
	return { meetingId, sessionId, startedAt, speakers };
}

function writerFor(s: { meetingId: string; sessionId: string; startedAt: string }): TranscriptWriter {
	return new TranscriptWriter({
		target: targetOf(bucket, "rec"),
		endpointPolicy: policy,
		events,
		where: { tenantId, meetingId: s.meetingId, sessionId: s.sessionId },
		header: {
			meeting: s.meetingId,
			session: s.sessionId,
			policy: DEFAULT_POLICY,
			startedAt: s.startedAt,
			engine: "vosk",
			disclaimer: "Machine-made: may be incomplete or wrong.",
		},
		log,
		checkpointMs: 3_600_000, // the test writes its checkpoints itself
	});
}

let said = 0;
/** A final segment of `speaker`, a few seconds after the last. */
function line(speaker: string, startedAt: string): TranscriptEntry {
	const start = Date.parse(startedAt) + 1000 + said * 2500;
	said++;
	return {
		speaker,
		displayName: speaker.slice(4, 10),
		start: new Date(start).toISOString(),
		end: new Date(start + 2000).toISOString(),
		text: `line ${said}: so the quarterly numbers are in and we should look at them before Friday`,
		clock: "arrival",
	};
}

async function keys(prefix: string): Promise<{ key: string; size: number }[]> {
	const r = await bucket.s3.send(new ListObjectsV2Command({ Bucket: bucket.name, Prefix: `${prefix}/` }));
	return (r.Contents ?? []).map((o) => ({ key: o.Key as string, size: o.Size ?? 0 }));
}

async function verify(location: string): Promise<{ code: number; out: string }> {
	let out = "";
	const code = await verifyCommand([`s3://${bucket.name}/${location}`, "--endpoint", bucket.server.endpoint], {
		out: (t) => (out += t),
		err: (t) => (out += t),
	});
	return { code, out };
}

const put = (key: string, body: string) =>
	bucket.s3.send(new PutObjectCommand({ Bucket: bucket.name, Key: key, Body: body }));
const del = (key: string) => bucket.s3.send(new DeleteObjectCommand({ Bucket: bucket.name, Key: key }));

describe("transcript checkpoints", () => {
	it("write only what is new; a session whose node died is finished from its parts, and verifies", async () => {
		const s = await session();
		const base = `rec/${s.meetingId}/${s.sessionId}`;
		const w = writerFor(s);
		const [ana, ben] = s.speakers as [string, string];

		// 60 checkpoints of one or two new lines each: one PUT each, of the new lines only (its size does not grow).
		const sizes: number[] = [];
		for (let i = 0; i < 60; i++) {
			w.add(line(ana, s.startedAt));
			if (i % 3 === 0) w.add(line(ben, s.startedAt));
			await w.checkpoint();
			sizes.push(
				(await keys(base)).find((o) => o.key.endsWith(`part-${String(i + 1).padStart(6, "0")}.json`))?.size ?? 0,
			);
		}
		await w.checkpoint(); // nothing new: nothing written
		expect(w.uploads.puts).toBe(60);
		expect(w.parts).toBe(60);
		const listed = await keys(base);
		expect(listed.map((o) => o.key.slice(base.length + 1))).toEqual(
			Array.from({ length: 60 }, (_, i) => `transcript.part-${String(i + 1).padStart(6, "0")}.json`),
		);
		expect(w.uploads.bytes).toBe(listed.reduce((n, o) => n + o.size, 0));
		// A part with one line is as large at the 60th checkpoint as at the 2nd: ~1 KB, not the transcript so far.
		expect(sizes[58]).toBeLessThan(1500);
		expect(Math.abs((sizes[58] as number) - (sizes[1] as number))).toBeLessThan(50);
		const p2 = await bucket.json<TranscriptPart>(`${base}/transcript.part-000002.json`);
		expect(p2).toMatchObject({
			kind: "consentry.transcript.part",
			part: 2,
			session: s.sessionId,
			entries: [{ speaker: ana }],
		});
		expect(p2.entries).toHaveLength(1);

		// A session still being written: unfinished (exit 3), nothing wrong.
		const pending = await verify(`rec/${s.meetingId}`);
		expect(pending.code, pending.out).toBe(EXIT.unfinished);
		expect(pending.out).toMatch(/still being written \(60 checkpoint part\(s\)/);

		// The node dies (kill -9): a line said after the last checkpoint is lost with it; the new home finishes the
		// session from the bucket (finishLost → finishTranscriptFromBucket).
		w.add(line(ana, s.startedAt));
		const killedAt = Date.now();
		const done = await finishTranscriptFromBucket(
			{ target: targetOf(bucket, "rec"), endpointPolicy: policy, events, log },
			{
				where: { tenantId, meetingId: s.meetingId, sessionId: s.sessionId },
				startedAt: s.startedAt,
				policy: DEFAULT_POLICY,
				engine: "vosk",
				disclaimer: "Machine-made: may be incomplete or wrong.",
			},
			NODE_LOST,
		);
		expect(done.parts).toBe(60);
		const t = await bucket.json<TranscriptDocument>(`${base}/transcript.json`);
		expect(t.entries).toEqual(w.entries.slice(0, 80)); // every checkpointed line, in order; not the lost one
		expect(t).toMatchObject({ endReason: "node_lost", holes: [{ from: t.endedAt, cause: "node_lost" }] });
		expect(Date.parse(t.endedAt as string)).toBeLessThanOrEqual(killedAt);
		expect((await bucket.bytes(`${base}/transcript.vtt`)).toString()).toContain("line 80:");
		// The parts are gone (in transcript.json now); the proof is beside it.
		expect((await keys(base)).map((o) => o.key.slice(base.length + 1)).sort()).toEqual([
			"audit.jsonl",
			"transcript.json",
			"transcript.vtt",
		]);
		const ok = await verify(base);
		expect(ok.code, ok.out).toBe(EXIT.verified);

		// Stopped between the final write and the parts' deletion: the parts left agree with it, verify passes; one
		// altered (a line changed) fails, naming it.
		const part7 = `${base}/transcript.part-000007.json`;
		const entries7 = t.entries.filter((e) => e.text.startsWith("line 10:") || e.text.startsWith("line 11:"));
		const left = { ...p2, part: 7, entries: entries7 };
		await put(part7, JSON.stringify(left));
		const leftOk = await verify(`rec/${s.meetingId}`);
		expect(leftOk.code, leftOk.out).toBe(EXIT.verified);
		await put(part7, JSON.stringify({ ...left, entries: [{ ...entries7[0], text: "something nobody said" }] }));
		const altered = await verify(`rec/${s.meetingId}`);
		expect(altered.code, altered.out).toBe(EXIT.failed);
		expect(altered.out).toMatch(
			/transcript\.part-000007\.json: 1 of its 1 entries are not in the final transcript\.json/,
		);
		await del(part7);
	});

	it("verify fails on a part deleted or altered while the session is written; recovery marks the missing part a hole", async () => {
		const s = await session();
		const base = `rec/${s.meetingId}/${s.sessionId}`;
		const w = writerFor(s);
		for (let i = 0; i < 3; i++) {
			w.add(line(s.speakers[i % 2] as string, s.startedAt));
			await w.checkpoint();
		}
		const p2 = `${base}/transcript.part-000002.json`;
		const saved = (await bucket.bytes(p2)).toString();

		await put(p2, saved.replace(s.sessionId, randomUUID()));
		const foreign = await verify(base);
		expect(foreign.code, foreign.out).toBe(EXIT.failed);
		expect(foreign.out).toMatch(/transcript\.part-000002\.json: names meeting .*, session .*, but sits in/);

		await del(p2);
		const gap = await verify(base);
		expect(gap.code, gap.out).toBe(EXIT.failed);
		expect(gap.out).toMatch(/transcript\.part-000002\.json: deleted: checkpoint part 2 of 3 is missing/);

		// Finished from what is left: parts 1 and 3, the span of part 2 a hole.
		await finishTranscriptFromBucket(
			{ target: targetOf(bucket, "rec"), endpointPolicy: policy, events, log },
			{
				where: { tenantId, meetingId: s.meetingId, sessionId: s.sessionId },
				startedAt: s.startedAt,
				policy: DEFAULT_POLICY,
				engine: "vosk",
				disclaimer: "x",
			},
			NODE_LOST,
		);
		const t = await bucket.json<TranscriptDocument>(`${base}/transcript.json`);
		expect(t.entries.map((e) => e.text)).toEqual([w.entries[0]?.text, w.entries[2]?.text]);
		expect(t.holes?.map((h) => h.cause)).toEqual(["checkpoint_missing", "node_lost"]);
		const ok = await verify(base);
		expect(ok.code, ok.out).toBe(EXIT.verified);

		// A session of an older gateway (its checkpoint the whole transcript.json, `checkpointedAt`) is finished as before.
		const old = await session();
		const oldBase = `rec/${old.meetingId}/${old.sessionId}`;
		const checkpointedAt = new Date().toISOString();
		const entries = [line(old.speakers[0] as string, old.startedAt), line(old.speakers[1] as string, old.startedAt)];
		await put(
			`${oldBase}/transcript.json`,
			JSON.stringify({
				kind: "consentry.transcript",
				version: 1,
				meeting: old.meetingId,
				session: old.sessionId,
				policy: DEFAULT_POLICY,
				startedAt: old.startedAt,
				checkpointedAt,
				engine: "vosk",
				disclaimer: "x",
				entries,
				captures: [],
			}),
		);
		await finishTranscriptFromBucket(
			{ target: targetOf(bucket, "rec"), endpointPolicy: policy, events, log },
			{
				where: { tenantId, meetingId: old.meetingId, sessionId: old.sessionId },
				startedAt: old.startedAt,
				policy: DEFAULT_POLICY,
				engine: "vosk",
				disclaimer: "x",
			},
			NODE_LOST,
		);
		const finished = await bucket.json<TranscriptDocument>(`${oldBase}/transcript.json`);
		expect(finished).toMatchObject({ endedAt: checkpointedAt, endReason: "node_lost", entries });
		expect(finished.checkpointedAt).toBeUndefined();
		expect((await verify(oldBase)).code).toBe(EXIT.verified);
	});

	it("an erasure removes the parts left beside a final transcript that hold the person's lines; verify passes", async () => {
		const s = await session();
		const base = `rec/${s.meetingId}/${s.sessionId}`;
		const [ana, ben] = s.speakers as [string, string];
		const w = writerFor(s);
		for (const who of [ana, ben, ana]) {
			w.add(line(who, s.startedAt));
			await w.checkpoint();
		}
		// Its gateway stopped between the final write and the parts' deletion: the parts are back.
		const parts = await Promise.all([1, 2, 3].map((n) => bucket.bytes(`${base}/transcript.part-00000${n}.json`)));
		await w.finish({ endedAt: new Date().toISOString(), endReason: "stopped" });
		for (const [i, b] of parts.entries()) await put(`${base}/transcript.part-00000${i + 1}.json`, b.toString());
		expect((await verify(base)).code).toBe(EXIT.verified);

		const dsr = new DataSubjectBucket(targetOf(bucket, "rec"), policy);
		try {
			const folder = (await dsr.sessions(s.meetingId)).find((f) => f.sessionId === s.sessionId);
			if (!folder) throw new Error("no session folder");
			const pointers = await dsr.locate([s.meetingId], ben);
			expect(pointers.filter((p) => p.key.includes("transcript.part-")).map((p) => p.key)).toEqual([
				`${base}/transcript.part-000002.json`,
			]);
			await dsr.eraseSession(folder, ben, {
				requestId: `dsr_${randomBytes(16).toString("hex")}`,
				tenantId,
				events,
			});
		} finally {
			dsr.destroy();
		}
		const left = (await keys(base)).map((o) => o.key.slice(base.length + 1));
		expect(left.filter((k) => k.startsWith("transcript.part-"))).toEqual([
			"transcript.part-000001.json",
			"transcript.part-000003.json",
		]);
		expect((await bucket.json<TranscriptDocument>(`${base}/transcript.json`)).entries.map((e) => e.speaker)).toEqual([
			ana,
			ana,
		]);
		const ok = await verify(base);
		expect(ok.code, ok.out).toBe(EXIT.verified);
	});
});

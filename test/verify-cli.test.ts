import { spawn, spawnSync } from "node:child_process";
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bot } from "../bench/bots/Bot.js";
import { SyntheticMedia } from "../bench/bots/media.js";
import { EXIT, verifyCommand } from "../cli/verify/command.js";
import type { FolderReport } from "../cli/verify/meetingFolder.js";
import type { SessionReport } from "../cli/verify/report.js";
import { sentNotices } from "../server/audit/notices.js";
import type { Gateway } from "../server/Gateway.js";
import type { Manifest } from "../server/recording/RecordingTypes.js";
import type { NoticeView } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { connect, type RawClient, signalOf } from "./helpers/signaling.js";
import { type FakeVoskServer, startFakeVosk } from "./helpers/stt-servers.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * `consentry verify` against a real recording: a real gateway (mediasoup, recorder) records two people who answered
 * the notice and one who never did (headless WebRTC bots sending real Opus + VP8), into a real S3 API (moto). The
 * untouched session verifies; then each tampering, made to the bucket as someone covering their tracks would, fails
 * naming what — and the session is put back before the next one.
 */
let vosk: FakeVoskServer;
let acme: ReturnType<typeof testTenant>;
let bucket: TestBucket;
let gw: Gateway;
let media: SyntheticMedia;
const bots: Bot[] = [];
const clients: RawClient[] = [];
let base: string;
/** The transcription session's folder, and the meeting's. */
let tbase: string;
let mbase: string;
let danPsn: string;
const golden = new Map<string, Buffer>();

beforeAll(async () => {
	vosk = await startFakeVosk("hello everyone");
	acme = testTenant("acme", { transcriptionEngine: { type: "vosk", endpoint: vosk.endpoint, languageCode: "en-US" } });
	bucket = await startBucket("acme-verify");
	gw = await startGateway({ tenants: [acme], env: storageEnv() });
	await saveStorageTarget(gw, acme, bucket, "rec");
	media = new SyntheticMedia({ width: 320, height: 180, fps: 15 });
	const m = await api(gw, "POST", "/api/meetings", acme.token("v-host"), {
		title: "Audited",
		settings: { lobby: false },
	});
	const meetingId = m.body.id as string;
	const people: { c: RawClient; notice: Promise<NoticeView>; tnotice?: Promise<NoticeView>; peerId: string }[] = [];
	for (const [token, name] of [
		[acme.token("v-host"), "Hana"],
		[acme.token("bob", "participant"), "Bob"],
		[acme.token("dan", "participant"), "Dan"],
	] as const) {
		const c = await connect(gw.url, token);
		clients.push(c);
		const notice = c.next("captureNotice", 20_000) as Promise<NoticeView>;
		notice.catch(() => undefined);
		const bot = await Bot.join(signalOf(c), meetingId, { displayName: name, send: true, recv: false });
		bots.push(bot);
		await bot.publish(media, { audio: true, video: true, maxVideoBitrate: 300_000 });
		const peerId = [...(gw.rooms.get(meetingId)?.peers.values() ?? [])].find((p) => p.displayName === name)?.id;
		people.push({ c, notice, peerId: String(peerId) });
	}
	const [host, bob, dan] = people as [(typeof people)[0], (typeof people)[0], (typeof people)[0]];
	await waitFor(
		() => [...(gw.rooms.get(meetingId)?.peers.values() ?? [])].every((p) => p.producers.size === 2),
		20_000,
		"everyone sending",
	);
	await host.c.call("startCapture", { kind: "recording" });
	for (const p of [host, bob])
		await p.c.call("acknowledgeNotice", { noticeId: (await p.notice).id, clickedAt: Date.now() });
	await dan.notice; // Dan sees the notice and never answers
	await waitFor(() => gw.recorder?.openTracks.length === 4, 20_000, "4 tracks recording");
	for (const p of people) {
		p.tnotice = p.c.next("captureNotice", 20_000) as Promise<NoticeView>;
		p.tnotice.catch(() => undefined);
	}
	await host.c.call("startCapture", { kind: "transcription" });
	for (const p of [host, bob])
		await p.c.call("acknowledgeNotice", { noticeId: (await p.tnotice)?.id, clickedAt: Date.now() });
	await dan.tnotice;
	await bob.c.call("chat", { text: "hello, on the record" });
	await dan.c.call("chat", { text: "Dan never answered: this must not be written" });
	await new Promise((r) => setTimeout(r, 5_000));
	// Under load the engine's streams start late: go on once both consenting speakers' audio (≥ 1 s each) reached it.
	await waitFor(
		() => vosk.connections.filter((c) => c.binaryBytes >= 32_000).length >= 2,
		30_000,
		"two speakers' audio at the engine",
	);
	const session = gw.capture.session(meetingId, "recording");
	const tsession = gw.capture.session(meetingId, "transcription");
	mbase = `rec/${meetingId}`;
	tbase = `${mbase}/${tsession?.id}`;
	// Transcription first: its final transcript objects are then in the trail the recording's audit.jsonl exports.
	await host.c.call("stopCapture", { kind: "transcription" });
	await waitFor(
		async () =>
			(await gw.events.list({ tenantId: "acme", meetingId, type: "storage.object_written" })).filter(
				(e) => e.data.kind === "transcription" && e.data.sessionId === tsession?.id,
			).length === 2,
		30_000,
		"the transcript written",
	);
	await host.c.call("stopCapture", { kind: "recording" });
	base = `${mbase}/${session?.id}`;
	await waitFor(() => bucket.json(`${base}/manifest.json`).catch(() => undefined), 60_000, "manifest.json");
	danPsn = String(
		(await gw.events.list({ tenantId: "acme", meetingId })).flatMap(sentNotices).find((n) => n.peerId === dan.peerId)
			?.person,
	);
	// The recorder deletes the session's last checkpoints as it closes: the session as it stays once they are gone.
	await waitFor(async () => !(await keys()).some((k) => k.endsWith(".ckpt")), 15_000, "checkpoints deleted").catch(
		() => undefined,
	);
	for (const key of await keys()) {
		const bytes = await bucket.bytes(key).catch(() => undefined);
		if (bytes) golden.set(key, bytes);
	}
}, 120_000);

afterAll(async () => {
	for (const b of bots) b.close();
	for (const c of clients) c.close();
	media?.stop();
	await gw?.close();
	await bucket?.stop();
	await vosk?.close();
});

async function keys(): Promise<string[]> {
	const r = await bucket.s3.send(new ListObjectsV2Command({ Bucket: bucket.name, Prefix: `${mbase}/` }));
	return (r.Contents ?? []).map((o) => o.Key as string);
}
const put = (key: string, body: Buffer | string) =>
	bucket.s3.send(new PutObjectCommand({ Bucket: bucket.name, Key: key, Body: body }));
const del = (key: string) => bucket.s3.send(new DeleteObjectCommand({ Bucket: bucket.name, Key: key }));
const manifest = () => JSON.parse((golden.get(`${base}/manifest.json`) as Buffer).toString()) as Manifest;
const sha256 = async (b: Buffer) => (await import("node:crypto")).createHash("sha256").update(b).digest("hex");

/** Puts the session back as the gateway wrote it. */
async function restore(): Promise<void> {
	for (const k of await keys()) if (!golden.has(k)) await del(k);
	for (const [k, v] of golden) await put(k, v);
}

async function verify(...extra: string[]): Promise<{
	code: number;
	json: { ok: boolean; outcome: string; sessions: SessionReport[]; folders: FolderReport[] };
	text: string;
}> {
	let out = "";
	const where = extra[0]?.startsWith("s3://") ? (extra.shift() as string) : `s3://${bucket.name}/${base}`;
	const args = [where, "--endpoint", bucket.server.endpoint, ...extra];
	const code = await verifyCommand([...args, "--json"], { out: (t) => (out += t), err: () => undefined });
	let text = "";
	await verifyCommand(args, { out: (t) => (text += t), err: () => undefined });
	return { code, json: JSON.parse(out), text };
}

/** What the folder check named, as "severity kind subject: message" lines. */
function folder(r: { json: { folders: FolderReport[] } }): string[] {
	return r.json.folders.flatMap((f) => f.problems.map((p) => `${p.severity} ${p.kind} ${p.subject}: ${p.message}`));
}

/** The failures of a report, as "check subject: message" lines. */
function failures(r: { json: { sessions: SessionReport[] } }): string[] {
	return r.json.sessions.flatMap((s) =>
		s.problems.filter((p) => p.severity === "fail").map((p) => `${p.check} ${p.subject}: ${p.message}`),
	);
}

describe("consentry verify on a real recording", () => {
	process.env.AWS_ACCESS_KEY_ID = "AKIATEST";
	process.env.AWS_SECRET_ACCESS_KEY = "secret-value";

	it("passes on the untouched session: every check, exit 0", async () => {
		const m = manifest();
		expect(m.tracks).toHaveLength(4);
		expect(m.persons).not.toContain(danPsn);
		const r = await verify();
		expect(failures(r)).toEqual([]);
		expect(r.code).toBe(EXIT.verified);
		const s = r.json.sessions[0] as SessionReport;
		expect(s.checks.map((c) => c.status)).toEqual(Array(8).fill("pass"));
		expect(r.json.sessions[0]?.problems).toEqual([]);
		expect(s.stats).toMatchObject({ tracks: 4, persons: 2, chatLines: 1 });
		expect(r.text).toContain("VERIFIED");
		expect(r.text).toContain("All 1 session(s) verified.");
	});

	it("a flipped byte in an object: fails, naming the object", async () => {
		const key = manifest().tracks.find((t) => t.kind === "camera")?.objects[0]?.key as string;
		const bytes = Buffer.from(golden.get(key) as Buffer);
		const at = Math.floor(bytes.length / 2);
		bytes[at] = (bytes[at] as number) ^ 0x01;
		await put(key, bytes);
		const r = await verify();
		await restore();
		expect(r.code).toBe(EXIT.failed);
		expect(failures(r)).toEqual([
			expect.stringMatching(new RegExp(`^objects ${key}: SHA-256 .* its bytes were changed`)),
		]);
		expect(r.text).toContain(`✗ ${key}: SHA-256`);
	});

	it("a deleted object: fails, naming it", async () => {
		const key = manifest().tracks.find((t) => t.kind === "audio")?.objects[0]?.key as string;
		await del(key);
		const r = await verify();
		await restore();
		expect(r.code).toBe(EXIT.failed);
		expect(failures(r)).toEqual([expect.stringMatching(new RegExp(`^listing ${key}: deleted`))]);
	});

	it("an added object: fails, naming it (and, named for the person who never answered, that too)", async () => {
		const key = `${base}/${danPsn}-audio-1.webm`;
		await put(key, golden.get(manifest().tracks[0]?.objects[0]?.key as string) as Buffer);
		const r = await verify();
		await restore();
		expect(r.code).toBe(EXIT.failed);
		expect(failures(r)).toEqual([
			expect.stringMatching(new RegExp(`^listing ${key}: added`)),
			expect.stringMatching(new RegExp(`^unanswered ${key}: an object of ${danPsn}, who never answered`)),
		]);
	});

	it("a checkpoint left behind: a warning when it only copies listed bytes, a failure when it holds anything else", async () => {
		const m = manifest();
		const o = m.tracks[0]?.objects[0] as Manifest["tracks"][number]["objects"][number];
		const piece = (golden.get(o.key) as Buffer).subarray(100, 1100);
		const ckpt = (body: Buffer) =>
			Buffer.concat([
				Buffer.from(
					`${JSON.stringify({ v: 1, at: Date.now(), entries: [{ key: o.key, offset: 100, size: 1000, at: 0, frames: 3 }] })}\n`,
				),
				body,
			]);
		const key = `${base}/${Date.now()}-1.ckpt`;
		await put(key, ckpt(piece));
		const copy = await verify();
		const other = Buffer.from(piece);
		other[10] = (other[10] as number) ^ 0xff;
		await put(key, ckpt(other));
		const foreign = await verify();
		await restore();
		expect(failures(copy)).toEqual([]);
		expect(copy.code).toBe(EXIT.verified);
		expect(copy.json.sessions[0]?.problems).toEqual([
			expect.objectContaining({ check: "listing", severity: "warn", subject: key }),
		]);
		expect(foreign.code).toBe(EXIT.failed);
		expect(failures(foreign)).toEqual([
			expect.stringMatching(new RegExp(`^listing ${key}: added: a checkpoint .* is not that object's bytes`)),
		]);
	});

	it("a reordered audit line: the chain breaks", async () => {
		const m = manifest();
		const lines = (golden.get(m.audit.key) as Buffer).toString().split("\n");
		[lines[3], lines[4]] = [lines[4] as string, lines[3] as string];
		await put(m.audit.key, lines.join("\n"));
		const r = await verify();
		await restore();
		expect(r.code).toBe(EXIT.failed);
		const f = failures(r);
		expect(f).toContainEqual(expect.stringMatching(new RegExp(`^objects ${m.audit.key}: SHA-256`)));
		expect(f).toContainEqual(
			expect.stringMatching(/^audit-chain .*audit\.jsonl entry \d+ \(line \d+\): (sequence|meeting_link)/),
		);
	});

	it("an edited audit line (re-hashed into the manifest too): the chain breaks at that entry", async () => {
		const m = manifest();
		const text = (golden.get(m.audit.key) as Buffer).toString();
		const lines = text.split("\n");
		const i = lines.findIndex((l) => l.includes('"type":"notice.acknowledged"'));
		lines[i] = (lines[i] as string).replace(/"at":"[^"]+"/, '"at":"2020-01-01T00:00:00.000Z"');
		const edited = Buffer.from(lines.join("\n"));
		await put(m.audit.key, edited);
		await put(
			`${base}/manifest.json`,
			JSON.stringify({ ...m, audit: { ...m.audit, size: edited.length, sha256: await sha256(edited) } }),
		);
		const r = await verify();
		await restore();
		expect(r.code).toBe(EXIT.failed);
		expect(failures(r)).toContainEqual(
			expect.stringMatching(new RegExp(`^audit-chain .*audit\\.jsonl entry \\d+ \\(line ${i + 1}\\): hash: .*altered`)),
		);
	});

	it("a manifest edited to hide a track (its objects deleted too): the trail names them", async () => {
		const m = manifest();
		const hidden = m.tracks.find((t) => t.kind === "camera") as Manifest["tracks"][number];
		for (const o of hidden.objects) await del(o.key);
		await put(
			`${base}/manifest.json`,
			JSON.stringify({ ...m, tracks: m.tracks.filter((t) => t !== hidden && t.trackId !== hidden.trackId) }),
		);
		const r = await verify();
		await restore();
		expect(r.code).toBe(EXIT.failed);
		const f = failures(r);
		for (const o of hidden.objects)
			expect(f).toContainEqual(
				expect.stringMatching(
					new RegExp(`^audit-objects ${o.key}: .*the manifest does not list it: a track or object was hidden`),
				),
			);
		expect(f).toContainEqual(expect.stringMatching(/^audit-objects audit entry \d+ \(gate.opened.*a track was hidden/));
	});

	it("a click moved back in the manifest: the capture-time check names the track", async () => {
		const m = manifest();
		const t = m.tracks[0] as Manifest["tracks"][number];
		const c = t.capture as NonNullable<typeof t.capture>;
		expect(c.clickAt).not.toBeNull();
		const moved = {
			...m,
			tracks: m.tracks.map((x) => (x === t ? { ...x, capture: { ...c, clickAt: (c.clickAt as number) - 60_000 } } : x)),
		};
		await put(`${base}/manifest.json`, JSON.stringify(moved));
		const r = await verify();
		await restore();
		expect(r.code).toBe(EXIT.failed);
		expect(failures(r)).toContainEqual(
			expect.stringMatching(new RegExp(`^capture-time track ${t.trackId} .*the click .* before the notice was sent`)),
		);
	});

	it("a chat line of a person who never answered (manifest re-hashed to match): fails, naming the line", async () => {
		const m = manifest();
		const chat = Buffer.concat([
			golden.get(m.chat.key) as Buffer,
			Buffer.from(`${JSON.stringify({ at: new Date().toISOString(), from: danPsn, text: "slipped in" })}\n`),
		]);
		await put(m.chat.key, chat);
		await put(
			`${base}/manifest.json`,
			JSON.stringify({ ...m, chat: { ...m.chat, size: chat.length, sha256: await sha256(chat), messages: 2 } }),
		);
		const r = await verify();
		await restore();
		expect(r.code).toBe(EXIT.failed);
		expect(failures(r)).toEqual([
			expect.stringMatching(
				new RegExp(`^unanswered ${m.chat.key} line 2: a chat line of ${danPsn}, who never answered`),
			),
		]);
	});

	it("a chat line of someone who answered, dated after the session ended: fails, naming the line", async () => {
		const m = manifest();
		const first = JSON.parse((golden.get(m.chat.key) as Buffer).toString().split("\n")[0] as string) as {
			from: string;
		};
		const late = new Date(Date.parse(m.endedAt) + 60_000).toISOString();
		const chat = Buffer.concat([
			golden.get(m.chat.key) as Buffer,
			Buffer.from(`${JSON.stringify({ at: late, from: first.from, text: "after the end" })}\n`),
		]);
		await put(m.chat.key, chat);
		await put(
			`${base}/manifest.json`,
			JSON.stringify({ ...m, chat: { ...m.chat, size: chat.length, sha256: await sha256(chat), messages: 2 } }),
		);
		const r = await verify();
		await restore();
		expect(r.code).toBe(EXIT.failed);
		expect(failures(r)).toEqual([
			expect.stringMatching(
				new RegExp(`^unanswered ${m.chat.key} line 2: said at .* when no answer of ${first.from} covered them`),
			),
		]);
	});

	it("a hostile manifest: wrong types reported one by one, a huge one not read; never a crash", async () => {
		const m = manifest() as unknown as Record<string, unknown>;
		await put(`${base}/manifest.json`, JSON.stringify({ ...m, version: "2", tracks: [{ person: 7 }], persons: null }));
		const bad = await verify();
		await put(`${base}/manifest.json`, Buffer.alloc(2 * 1024 * 1024, 0x20));
		const huge = await verify("--max-manifest-bytes", String(1024 * 1024));
		await del(`${base}/manifest.json`);
		await put(`${base}/manifest.json`, "{not json");
		const notJson = await verify();
		await restore();
		expect(bad.code).toBe(EXIT.failed);
		const f = failures(bad);
		expect(f).toContainEqual(expect.stringMatching(/^manifest .*manifest\.json version: /));
		expect(f).toContainEqual(expect.stringMatching(/^manifest .*manifest\.json tracks\.0\.person: /));
		expect(f).toContainEqual(expect.stringMatching(/^manifest .*manifest\.json persons: /));
		expect(huge.code).toBe(EXIT.failed);
		expect(failures(huge)).toEqual([expect.stringMatching(/larger than 1048576 bytes: not read/)]);
		expect(notJson.code).toBe(EXIT.failed);
		expect(failures(notJson)).toEqual([expect.stringMatching(/not JSON/)]);
	});

	it("a hostile audit.jsonl and chat.jsonl (nesting too deep to hash, lines of the wrong shape): reported, never a crash", async () => {
		const m = manifest();
		const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
		// Linked to the meeting's last entry, so the chain walks up to hashing it, where it is too deep to hash.
		const text = (golden.get(m.audit.key) as Buffer).toString();
		const last = JSON.parse(text.trim().split("\n").at(-1) as string) as { hash: string; entry: { seq: number } };
		const audit = Buffer.from(
			`${text}{"kind":"entry","hash":"${"a".repeat(64)}","entry":{"v":1,"seq":${last.entry.seq + 2},"at":"x","tenant":"acme","meeting":"${m.meeting}","type":"x","actor":null,"data":{"x":${deep}},"prev":"${"0".repeat(64)}","meetingPrev":"${last.hash}"}}\n`,
		);
		const chat = Buffer.from('{"at":"yesterday","from":7}\nnot json\n');
		await put(m.audit.key, audit);
		await put(m.chat.key, chat);
		await put(
			`${base}/manifest.json`,
			JSON.stringify({
				...m,
				audit: { ...m.audit, size: audit.length, sha256: await sha256(audit) },
				chat: { ...m.chat, size: chat.length, sha256: await sha256(chat), messages: 0 },
			}),
		);
		const r = await verify();
		await restore();
		expect(r.code).toBe(EXIT.failed);
		const f = failures(r);
		expect(f).toContainEqual(
			expect.stringMatching(/^audit-chain .*audit\.jsonl header \(line 1\): format: it could not be verified at all/),
		);
		expect(f).toContainEqual(expect.stringMatching(new RegExp(`^unanswered ${m.chat.key} line 1: not a chat line`)));
		expect(f).toContainEqual(expect.stringMatching(new RegExp(`^unanswered ${m.chat.key} line 2: not JSON`)));
	});

	it("the transcription session verifies against the meeting's trail; a line of the person who never answered fails", async () => {
		const good = await verify(`s3://${bucket.name}/${tbase}`);
		expect(failures(good)).toEqual([]);
		expect(good.code).toBe(EXIT.verified);
		const s = good.json.sessions[0] as SessionReport;
		expect(s).toMatchObject({ kind: "transcription", ok: true });
		expect(s.stats.chatLines).toBeGreaterThanOrEqual(1);
		const key = `${tbase}/transcript.json`;
		const t = JSON.parse((golden.get(key) as Buffer).toString()) as { entries: { speaker: string; start: string }[] };
		const line = { ...(t.entries[0] as object), speaker: danPsn, displayName: "Dan", text: "slipped in" };
		await put(key, JSON.stringify({ ...t, entries: [...t.entries, line] }));
		const bad = await verify(`s3://${bucket.name}/${tbase}`);
		await restore();
		expect(bad.code).toBe(EXIT.failed);
		expect(failures(bad)).toEqual([
			expect.stringMatching(new RegExp(`^objects ${key}: .*the trail recorded .*changed`)),
			expect.stringMatching(
				new RegExp(`^unanswered ${key} entries.${t.entries.length}: a line of ${danPsn}, who never answered`),
			),
		]);
	});

	it("could not run: bad arguments, an unreachable bucket, nothing there (exit 2, not 1)", async () => {
		const run = async (args: string[]) => {
			let err = "";
			const code = await verifyCommand(args, { out: () => undefined, err: (t) => (err += t) });
			return { code, err };
		};
		expect((await run([])).code).toBe(EXIT.couldNotRun);
		expect((await run(["s3://x/y", "--bogus"])).code).toBe(EXIT.couldNotRun);
		const down = await run(["s3://acme-verify/rec", "--endpoint", "http://127.0.0.1:9"]);
		expect(down).toMatchObject({ code: EXIT.couldNotRun });
		expect(down.err).toContain("could not list");
		const none = await run([`s3://${bucket.name}/nothing/here`, "--endpoint", bucket.server.endpoint]);
		expect(none.code).toBe(EXIT.couldNotRun);
		expect(none.err).toContain("no session at");
		const missing = await run(["s3://no-such-bucket/x", "--endpoint", bucket.server.endpoint]);
		expect(missing.code).toBe(EXIT.couldNotRun);
		expect(missing.err).toContain("no such bucket");
	});

	it("the npm bin: finds the session by its id, verifies it (exit 0), and the meeting folder too", async () => {
		const sessionId = base.split("/").at(-1) as string;
		const r = spawnSync(
			process.execPath,
			[
				"--import",
				"tsx",
				"cli/consentry.ts",
				"verify",
				`s3://${bucket.name}/rec`,
				"--session",
				sessionId,
				"--endpoint",
				bucket.server.endpoint,
			],
			{ encoding: "utf8", env: { ...process.env, AWS_ACCESS_KEY_ID: "AKIATEST", AWS_SECRET_ACCESS_KEY: "x" } },
		);
		expect(r.stderr).toBe("");
		expect(r.stdout).toContain("All 1 session(s) verified.");
		expect(r.status).toBe(0);
		const meeting = await verify(`s3://${bucket.name}/${mbase}`);
		expect(failures(meeting)).toEqual([]);
		expect(meeting.json.sessions.map((x) => x.kind).sort()).toEqual(["recording", "transcription"]);
		expect(meeting.code).toBe(EXIT.verified);
	});

	describe("the meeting folder: every object verified, or named with why not", () => {
		const meeting = () => verify(`s3://${bucket.name}/${mbase}`);
		const sid = () => base.split("/").at(-1) as string;
		const tsid = () => tbase.split("/").at(-1) as string;
		const esc = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

		it("untouched: every object in a finished session, every session of the trail there (exit 0)", async () => {
			const r = await meeting();
			expect(folder(r)).toEqual([]);
			expect(r.code).toBe(EXIT.verified);
			expect(r.json).toMatchObject({ ok: true, outcome: "verified" });
			expect(r.json.folders).toEqual([
				expect.objectContaining({
					prefix: mbase,
					objects: golden.size,
					sessions: { finished: 2, unfinished: 0 },
					trail: `${base}/audit.jsonl`,
				}),
			]);
			expect(r.text).toContain(
				"PASS  nothing stray, unfinished or deleted: every object is in a finished session's folder, every session the trail records is there",
			);
		});

		it("the storage prefix (one folder per meeting) is no meeting folder: nothing there (exit 2)", async () => {
			let err = "";
			const code = await verifyCommand([`s3://${bucket.name}/rec`, "--endpoint", bucket.server.endpoint], {
				out: () => undefined,
				err: (t) => (err += t),
			});
			expect(code).toBe(EXIT.couldNotRun);
			expect(err).toContain(
				`no session at s3://${bucket.name}/rec/ (nothing there, nor in the folders below it; a storage prefix`,
			);
		});

		it("a stray object directly in the meeting folder: exit 1, named", async () => {
			await put(`${mbase}/notes.txt`, "hello");
			const r = await meeting();
			await restore();
			expect(r.code).toBe(EXIT.failed);
			expect(r.json.outcome).toBe("failed");
			expect(failures(r)).toEqual([]);
			expect(folder(r)).toEqual([
				`fail stray ${mbase}/notes.txt: stray: 5 bytes directly in the meeting folder, in no session's folder (the gateway writes only into session folders)`,
			]);
			expect(r.text).toContain(`✗ ${mbase}/notes.txt: stray:`);
			expect(r.text).toContain("0 of 2 session(s) failed verification; 1 problem(s) in the folder");
		});

		it("a stray object in a session folder no manifest lists: exit 1, named (recording and transcription)", async () => {
			await put(`${base}/extra.bin`, "12345678");
			await put(`${tbase}/extra.bin`, "1234");
			const r = await meeting();
			await restore();
			expect(r.code).toBe(EXIT.failed);
			expect([...failures(r)].sort()).toEqual(
				[
					`listing ${base}/extra.bin: added: in the bucket (8 bytes) but not in the manifest`,
					`listing ${tbase}/extra.bin: added: in the bucket (4 bytes), not part of a transcript`,
				].sort(),
			);
			expect(folder(r)).toEqual([]);
		});

		it("a whole session folder deleted, that the trail records: exit 1, named", async () => {
			for (const k of await keys()) if (k.startsWith(`${tbase}/`)) await del(k);
			const r = await meeting();
			await restore();
			expect(r.code).toBe(EXIT.failed);
			expect(failures(r)).toEqual([]);
			expect(folder(r)).toEqual([
				expect.stringMatching(
					new RegExp(
						`^fail deleted ${esc(tbase)}/: deleted: the trail records transcription session ${tsid()} \\(${esc(base)}/audit\\.jsonl entry \\d+, session\\.on at [^,]+ \\(line \\d+\\), ended ${esc(base)}/audit\\.jsonl entry \\d+, session\\.off at [^,]+ \\(line \\d+\\), 2 object\\(s\\) written in this folder\\), the bucket holds nothing of it$`,
					),
				),
			]);
		});

		it("the last session's folder deleted with its trail: only an earlier trail knows it started (exit 3, not a pass)", async () => {
			for (const k of await keys()) if (k.startsWith(`${base}/`)) await del(k);
			const r = await meeting();
			await restore();
			// The transcription's trail was exported while the recording still ran: it holds its start, nothing after.
			expect(folder(r)).toEqual([
				expect.stringMatching(
					new RegExp(
						`^pending unfinished ${esc(base)}/: no manifest yet — rerun after the meeting ends \\(the trail records recording session ${sid()} started, ${esc(tbase)}/audit\\.jsonl entry \\d+, session\\.on .*: if the meeting has ended, its folder was deleted\\)$`,
					),
				),
			]);
			expect(r.code).toBe(EXIT.unfinished);
			expect(r.json).toMatchObject({ ok: false, outcome: "unfinished" });
		});

		it("a manifest deleted from a finished session: exit 1 (the trail records its end), not 'unfinished'", async () => {
			await del(`${base}/manifest.json`);
			const r = await meeting();
			const alone = await verify();
			await restore();
			const want = expect.stringMatching(
				new RegExp(
					`^fail deleted ${esc(base)}/manifest\\.json: deleted: no manifest\\.json, though the trail records this recording session ended \\(${esc(base)}/audit\\.jsonl entry \\d+, session\\.off at `,
				),
			);
			expect(folder(r)).toEqual([want]);
			expect(r.code).toBe(EXIT.failed);
			// The session's folder alone (PATH is the session): the same.
			expect(folder(alone)).toEqual([want]);
			expect(alone.code).toBe(EXIT.failed);
		});

		it("an object the manifest lists, deleted: exit 1, named", async () => {
			const key = manifest().tracks.find((t) => t.kind === "camera")?.objects[0]?.key as string;
			await del(key);
			const r = await meeting();
			await restore();
			expect(r.code).toBe(EXIT.failed);
			expect(failures(r)).toEqual([
				`listing ${key}: deleted: the manifest lists this object of track ${manifest().tracks.find((t) => t.kind === "camera")?.trackId}, the bucket does not hold it`,
			]);
			expect(folder(r)).toEqual([]);
		});

		it("audit.jsonl deleted: the recording's (its manifest lists it) and the transcription's: exit 1, named", async () => {
			await del(`${base}/audit.jsonl`);
			const rec = await meeting();
			await restore();
			await del(`${tbase}/audit.jsonl`);
			const tr = await meeting();
			await restore();
			expect(rec.code).toBe(EXIT.failed);
			expect(failures(rec)).toEqual([
				`listing ${base}/audit.jsonl: deleted: the manifest lists this audit.jsonl, the bucket does not hold it`,
				`audit-chain ${base}/audit.jsonl: missing: nothing can be checked against the trail`,
			]);
			expect(tr.code).toBe(EXIT.failed);
			expect(failures(tr)).toEqual([]);
			expect(folder(tr)).toEqual([
				`fail deleted ${tbase}/audit.jsonl: deleted: missing (the gateway writes the meeting's trail beside every final transcript; it can be missing without tampering only if its gateway stopped between the two writes)`,
			]);
		});

		it("a copy of the trail rewritten (the transcription's audit.jsonl, an entry edited): exit 1, named", async () => {
			const key = `${tbase}/audit.jsonl`;
			const lines = (golden.get(key) as Buffer).toString().split("\n");
			const i = lines.findIndex((l) => l.includes('"type":"notice.acknowledged"'));
			lines[i] = (lines[i] as string).replace(/"at":"[^"]+"/, '"at":"2020-01-01T00:00:00.000Z"');
			await put(key, lines.join("\n"));
			const r = await meeting();
			await restore();
			expect(r.code).toBe(EXIT.failed);
			expect(folder(r)).toEqual([
				expect.stringMatching(new RegExp(`^fail trail ${esc(key)} entry \\d+ \\(line ${i + 1}\\): hash: .*altered`)),
			]);
		});

		it("a transcript.json that is a checkpoint: unfinished (exit 3) in a new folder, exit 1 where the trail records the end", async () => {
			const t = JSON.parse((golden.get(`${tbase}/transcript.json`) as Buffer).toString()) as Record<string, unknown>;
			const { endedAt: _e, endReason: _r, ...rest } = t;
			const ckpt = JSON.stringify({ ...rest, checkpointedAt: "2026-12-02T04:00:00.000Z" });
			const other = "0b9d3c62-7a51-4c1e-9f4e-2d8a1e5b6c70";
			await put(`${mbase}/${other}/transcript.json`, JSON.stringify({ ...JSON.parse(ckpt), session: other }));
			const fresh = await meeting();
			await restore();
			await put(`${tbase}/transcript.json`, ckpt);
			const replaced = await meeting();
			await restore();
			expect(folder(fresh)).toEqual([
				`pending unfinished ${mbase}/${other}/: transcription session still being written (transcript.json is a checkpoint of 2026-12-02T04:00:00.000Z): no final transcript yet — rerun after the meeting ends`,
			]);
			expect(failures(fresh)).toEqual([]);
			expect(fresh.code).toBe(EXIT.unfinished);
			expect(fresh.text).toContain(
				"All 2 finished session(s) verified; 1 unfinished (no manifest yet — rerun after the meeting ends).",
			);
			expect(folder(replaced)).toEqual([
				expect.stringMatching(
					new RegExp(
						`^fail deleted ${esc(tbase)}/transcript\\.json: a checkpoint \\(written 2026-12-02T04:00:00\\.000Z\\), not the final transcript, though the trail records the session ended`,
					),
				),
			]);
			expect(replaced.code).toBe(EXIT.failed);
		});

		it("transcript checkpoint parts: only parts is unfinished (exit 3), exit 1 where the trail records the end; parts left beside the final transcript pass if they agree with it", async () => {
			const t = JSON.parse((golden.get(`${tbase}/transcript.json`) as Buffer).toString()) as {
				meeting: string;
				session: string;
				entries: unknown[];
			};
			expect(t.entries.length).toBeGreaterThan(0);
			const part = (session: string, n: number, entries: unknown[]) =>
				JSON.stringify({ ...t, kind: "consentry.transcript.part", session, part: n, entries });
			const other = "5c1e8a2d-3b4f-4e6a-9d7c-1f2e3a4b5c6d";
			await put(`${mbase}/${other}/transcript.part-000001.json`, part(other, 1, t.entries));
			const fresh = await meeting();
			await restore();
			// The final transcript replaced by its parts (deleted, parts left): the trail records the end.
			await del(`${tbase}/transcript.json`);
			await put(`${tbase}/transcript.part-000001.json`, part(t.session, 1, t.entries));
			const replaced = await meeting();
			await restore();
			// A gateway stopped between the final write and deleting the parts: they agree; then one altered.
			await put(`${tbase}/transcript.part-000001.json`, part(t.session, 1, t.entries.slice(0, 1)));
			const left = await meeting();
			await put(
				`${tbase}/transcript.part-000002.json`,
				part(t.session, 2, [{ ...(t.entries[0] as object), text: "something nobody said" }]),
			);
			const altered = await meeting();
			await restore();
			expect(folder(fresh)).toEqual([
				expect.stringMatching(
					new RegExp(
						`^pending unfinished ${esc(mbase)}/${other}/: transcription session still being written \\(1 checkpoint part\\(s\\)`,
					),
				),
			]);
			expect(fresh.code).toBe(EXIT.unfinished);
			expect(folder(replaced)).toEqual([
				expect.stringMatching(
					new RegExp(
						`^fail deleted ${esc(tbase)}/transcript\\.json: deleted: no transcript\\.json \\(1 checkpoint part\\(s\\)\\), though the trail records this transcription session ended`,
					),
				),
			]);
			expect(replaced.code).toBe(EXIT.failed);
			expect(failures(left)).toEqual([]);
			expect(left.code).toBe(EXIT.verified);
			expect(failures(altered)).toEqual([
				expect.stringMatching(
					new RegExp(
						`^listing ${esc(tbase)}/transcript\\.part-000002\\.json: 1 of its 1 entries are not in the final transcript\\.json beside it`,
					),
				),
			]);
			expect(altered.code).toBe(EXIT.failed);
		});

		it("a session still recording (real: a new session, its checkpoints in the bucket): exit 3, named; a stray in it: exit 1; once it ends: exit 0", async () => {
			const meetingId = mbase.split("/").at(-1) as string;
			const [host, bob] = clients as [RawClient, RawClient];
			const notices = [host, bob].map((c) => c.next("captureNotice", 20_000) as Promise<NoticeView>);
			const dan = (clients[2] as RawClient).next("captureNotice", 20_000);
			dan.catch(() => undefined);
			await host.call("startCapture", { kind: "recording" });
			for (const [i, c] of [host, bob].entries())
				await c.call("acknowledgeNotice", { noticeId: (await notices[i])?.id, clickedAt: Date.now() });
			const live = gw.capture.session(meetingId, "recording")?.id as string;
			const folderKeys = async () => (await keys()).filter((k) => k.startsWith(`${mbase}/${live}/`));
			await waitFor(async () => (await folderKeys()).length > 0, 20_000, "the live session's first checkpoint");
			const running = await meeting();
			// The npm bin's process exits 3 (async: this process runs the gateway that is recording).
			const bin = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
				const child = spawn(
					process.execPath,
					[
						"--import",
						"tsx",
						"cli/consentry.ts",
						"verify",
						`s3://${bucket.name}/${mbase}`,
						"--endpoint",
						bucket.server.endpoint,
					],
					{ env: { ...process.env, AWS_ACCESS_KEY_ID: "AKIATEST", AWS_SECRET_ACCESS_KEY: "x" } },
				);
				let stdout = "";
				child.stdout.on("data", (d: Buffer) => {
					stdout += d.toString();
				});
				child.once("close", (status) => resolve({ status, stdout }));
			});
			await put(`${mbase}/${live}/notes.txt`, "hi");
			const stray = await meeting();
			await del(`${mbase}/${live}/notes.txt`);
			await host.call("stopCapture", { kind: "recording" });
			await waitFor(() => bucket.json(`${mbase}/${live}/manifest.json`).catch(() => undefined), 60_000, "manifest");
			await waitFor(async () => !(await folderKeys()).some((k) => k.endsWith(".ckpt")), 15_000, "checkpoints gone");
			const done = await meeting();

			expect(folder(running)).toEqual([
				expect.stringMatching(
					new RegExp(
						`^pending unfinished ${esc(mbase)}/${live}/: no manifest yet — rerun after the meeting ends \\(a session still recording, or its node stopped and has not finished it yet: \\d+ object\\(s\\), last written 20`,
					),
				),
			]);
			expect(failures(running)).toEqual([]);
			expect(running.code).toBe(EXIT.unfinished);
			expect(running.json).toMatchObject({ ok: false, outcome: "unfinished" });
			expect(running.text).toContain(`… ${mbase}/${live}/: no manifest yet — rerun after the meeting ends`);
			expect(bin.status).toBe(3);
			expect(bin.stdout).toContain(`UNFINISHED  s3://${bucket.name}/${mbase}/`);
			expect(bin.stdout).toContain("1 unfinished (no manifest yet — rerun after the meeting ends)");
			expect(stray.code).toBe(EXIT.failed);
			expect(folder(stray)).toContainEqual(
				`fail stray ${mbase}/${live}/notes.txt: stray: 2 bytes in an unfinished session's folder, not an object a capture session writes`,
			);
			expect(failures(done)).toEqual([]);
			expect(folder(done)).toEqual([]);
			expect(done.code).toBe(EXIT.verified);
			expect(done.json.sessions).toHaveLength(3);
		}, 120_000);
	});
});

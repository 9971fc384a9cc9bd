import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bot } from "../bench/bots/Bot.js";
import { SyntheticMedia } from "../bench/bots/media.js";
import { DSR_EXIT, dsrCommand } from "../cli/dsr/command.js";
import { verifyCommand } from "../cli/verify/command.js";
import type { Gateway } from "../server/Gateway.js";
import type { NoticeView } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, postgresFor, startGateway, storeEnv, TEST_DATABASE } from "./helpers/gateway.js";
import { testOperator } from "./helpers/operator.js";
import { freePort } from "./helpers/ports.js";
import { type S3Proxy, startS3Proxy } from "./helpers/s3-proxy.js";
import { connect, type RawClient, signalOf } from "./helpers/signaling.js";
import { type FakeVoskServer, startFakeVosk } from "./helpers/stt-servers.js";
import { AUDIENCE, testTenant, writeTenantsFile } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * Data-subject requests end to end (issue #14): a real gateway records and transcribes Hana (host) and Bob into a
 * real S3 API (moto, behind a proxy that can fail); Bob chats. Access and export show what is held and where in the
 * bucket; another tenant's admin and unknown people get "nothing held"; the erasure, with the bucket failing, leaves
 * the request pending with the store part done, a retry finishes it: nothing in any table links Bob, the chain
 * verifies, his objects and lines are gone and `consentry verify` accepts both sessions with their erasure record.
 */
let vosk: FakeVoskServer;
const acme = testTenant("acme", { transcriptionEngine: { type: "vosk", endpoint: "", languageCode: "en-US" } });
const other = testTenant("other");
const operator = testOperator();
let bucket: TestBucket;
let proxy: S3Proxy;
let gw: Gateway;
let media: SyntheticMedia;
let dbFile: string;
let env: Record<string, string>;
const bots: Bot[] = [];
const clients: RawClient[] = [];
let meetingId: string;
let recBase: string;
let trBase: string;
let bobPsn: string;
const admin = () => acme.token("it-admin", "admin");

beforeAll(async () => {
	vosk = await startFakeVosk("hello everyone");
	(acme.capture as { transcriptionEngine: { endpoint: string } }).transcriptionEngine.endpoint = vosk.endpoint;
	bucket = await startBucket("acme-dsr");
	proxy = await startS3Proxy(bucket.server.endpoint);
	dbFile = path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-dsr-")), "store.sqlite");
	env = { ...storageEnv(), CONSENTRY_DB_FILE: dbFile, CONSENTRY_OPERATOR_KEYS_FILE: operator.keysFile };
	gw = await startGateway({ tenants: [acme, other], env });
	await saveStorageTarget(gw, acme, bucket, "rec", { endpoint: proxy.endpoint });
	media = new SyntheticMedia({ width: 320, height: 180, fps: 15 });
	const m = await api(gw, "POST", "/api/meetings", acme.token("hana"), {
		title: "Erasable",
		settings: { lobby: false },
	});
	meetingId = m.body.id as string;
	const people: { c: RawClient; notice: Promise<NoticeView>; tnotice?: Promise<NoticeView> }[] = [];
	for (const [token, name] of [
		[acme.token("hana"), "Hana"],
		[acme.token("bob", "participant"), "Bob"],
	] as const) {
		const c = await connect(gw.url, token);
		clients.push(c);
		const notice = c.next("captureNotice", 20_000) as Promise<NoticeView>;
		notice.catch(() => undefined);
		const bot = await Bot.join(signalOf(c), meetingId, { displayName: name, send: true, recv: false });
		bots.push(bot);
		await bot.publish(media, { audio: true, video: true, maxVideoBitrate: 200_000 });
		people.push({ c, notice });
	}
	const [host, bob] = people as [(typeof people)[0], (typeof people)[0]];
	await waitFor(
		() => [...(gw.rooms.get(meetingId)?.peers.values() ?? [])].every((p) => p.producers.size === 2),
		20_000,
		"everyone sending",
	);
	await host.c.call("startCapture", { kind: "recording" });
	for (const p of people) await p.c.call("acknowledgeNotice", { noticeId: (await p.notice).id, clickedAt: Date.now() });
	await waitFor(() => gw.recorder?.openTracks.length === 4, 20_000, "4 tracks recording");
	for (const p of people) {
		p.tnotice = p.c.next("captureNotice", 20_000) as Promise<NoticeView>;
		p.tnotice.catch(() => undefined);
	}
	const speaking = new Set<string>();
	host.c.socket.on("caption", (c: { peerId: string }) => speaking.add(c.peerId));
	await host.c.call("startCapture", { kind: "transcription" });
	for (const p of people)
		await p.c.call("acknowledgeNotice", { noticeId: (await p.tnotice)?.id, clickedAt: Date.now() });
	await bob.c.call("chat", { text: "Bob's words, on the record" });
	await host.c.call("chat", { text: "Hana's words" });
	await new Promise((r) => setTimeout(r, 3_000));
	// Both heard by the engine (a caption of each), so each has a line in the transcript.
	await waitFor(() => speaking.size === 2, 20_000, "a caption of each speaker");
	const session = gw.capture.session(meetingId, "recording");
	const tsession = gw.capture.session(meetingId, "transcription");
	recBase = `rec/${meetingId}/${session?.id}`;
	trBase = `rec/${meetingId}/${tsession?.id}`;
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
	await waitFor(() => bucket.json(`${recBase}/manifest.json`).catch(() => undefined), 60_000, "manifest.json");
	await waitFor(async () => !(await keys()).some((k) => k.endsWith(".ckpt")), 15_000, "checkpoints deleted").catch(
		() => undefined,
	);
	expect((await api(gw, "POST", `/api/meetings/${meetingId}/end`, acme.token("hana"))).status).toBe(200);
	for (const b of bots) b.close();
	bobPsn = String((await gw.events.pseudonym("acme", "acme:bob")) ?? "");
}, 150_000);

afterAll(async () => {
	for (const b of bots) b.close();
	for (const c of clients) c.close();
	media?.stop();
	await gw?.close();
	await proxy?.close();
	await bucket?.stop();
	await vosk?.close();
});

async function keys(): Promise<string[]> {
	const r = await bucket.s3.send(new ListObjectsV2Command({ Bucket: bucket.name, Prefix: `rec/${meetingId}/` }));
	return (r.Contents ?? []).map((o) => o.Key as string);
}

async function verify(base: string): Promise<{ code: number; fails: string[] }> {
	let out = "";
	process.env.AWS_ACCESS_KEY_ID = "AKIATEST";
	process.env.AWS_SECRET_ACCESS_KEY = "secret-value";
	const code = await verifyCommand([`s3://${bucket.name}/${base}`, "--endpoint", bucket.server.endpoint, "--json"], {
		out: (t) => (out += t),
		err: () => undefined,
	});
	const json = JSON.parse(out) as {
		sessions: { problems: { severity: string; check: string; subject: string; message: string }[] }[];
	};
	return {
		code,
		fails: json.sessions.flatMap((s) =>
			s.problems.filter((p) => p.severity === "fail").map((p) => `${p.check} ${p.subject}: ${p.message}`),
		),
	};
}

/** The newest pending erasure request, read from the store directly (SQLite file, or its PostgreSQL database). */
async function pendingRequest(): Promise<
	{ id: string; state: string; steps: string; person_key: string | null } | undefined
> {
	const q =
		"SELECT id, state, steps, person_key FROM dsr_requests WHERE state = 'pending' ORDER BY created_at DESC LIMIT 1";
	if (TEST_DATABASE === "sqlite") {
		const db = new BetterSqlite3(dbFile, { readonly: true });
		try {
			return db.prepare(q).get() as never;
		} finally {
			db.close();
		}
	}
	const c = new pg.Client({ connectionString: await postgresFor(dbFile) });
	await c.connect();
	try {
		return (await c.query(q)).rows[0];
	} finally {
		await c.end();
	}
}

/** Every row of every table of the store, as text, per table (SQLite file, or its PostgreSQL database). */
async function dumpStore(): Promise<Map<string, string>> {
	const out = new Map<string, string>();
	const text = (rows: unknown[]) =>
		JSON.stringify(rows, (_k, v) => (v && typeof v === "object" && v.type === "Buffer" ? "<bytes>" : v));
	if (TEST_DATABASE === "sqlite") {
		const db = new BetterSqlite3(dbFile, { readonly: true });
		try {
			const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
			for (const { name } of tables) out.set(name, text(db.prepare(`SELECT * FROM "${name}"`).all()));
		} finally {
			db.close();
		}
		return out;
	}
	const c = new pg.Client({ connectionString: await postgresFor(dbFile) });
	await c.connect();
	try {
		const t = await c.query<{ table_name: string }>(
			"SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
		);
		for (const { table_name } of t.rows)
			out.set(table_name, text((await c.query(`SELECT * FROM "${table_name}"`)).rows));
	} finally {
		await c.end();
	}
	return out;
}

describe("data-subject requests", () => {
	it("access and export: what the store holds and where Bob's data is in the bucket", async () => {
		expect(bobPsn).toMatch(/^psn_/);
		const a = await api(gw, "POST", "/api/dsr/access", admin(), { person: { subject: "bob" } });
		expect(a.status).toBe(200);
		expect(a.body).toMatchObject({
			kind: "consentry.dsr.access",
			held: true,
			person: { subject: "bob", pseudonym: bobPsn },
		});
		expect(a.body.meetings).toEqual([meetingId]);
		const objects = (a.body.bucket as { objects: { key: string; holds: string; foundBy: string; lines?: number }[] })
			.objects;
		const media = objects.filter((o) => o.holds === "media");
		expect(media.length).toBeGreaterThanOrEqual(2);
		for (const o of media) expect(o.key).toContain(`${recBase}/${bobPsn}-`);
		expect(objects).toContainEqual(expect.objectContaining({ key: `${recBase}/chat.jsonl`, holds: "chat", lines: 1 }));
		expect(objects.some((o) => o.key === `${trBase}/transcript.json` && (o.lines ?? 0) > 0)).toBe(true);

		const res = await fetch(`${gw.url}/api/dsr/export`, {
			method: "POST",
			headers: { authorization: `Bearer ${admin()}`, "content-type": "application/json" },
			body: JSON.stringify({ person: { pseudonym: bobPsn } }),
		});
		expect(res.headers.get("content-disposition")).toContain("attachment");
		const doc = (await res.json()) as {
			kind: string;
			version: number;
			held: boolean;
			audit: { entries: { type: string; data: Record<string, unknown>; omitted?: { recipients: number } }[] };
		};
		expect(doc).toMatchObject({ kind: "consentry.dsr.export", version: 1, held: true });
		expect(doc.audit.entries.map((e) => e.type)).toEqual(
			expect.arrayContaining(["person.joined", "notices.sent", "notice.acknowledged", "gate.opened"]),
		);
		// The starts' notices to both people are one entry each; Bob's copy keeps his own line only, and says so.
		const started = doc.audit.entries.filter((e) => e.type === "notices.sent");
		expect(started).toHaveLength(2); // recording, transcription
		for (const e of started) {
			expect(e.data.recipients).toEqual([expect.objectContaining({ person: bobPsn })]);
			expect(e.omitted).toEqual({ recipients: 1 });
		}
		// Every request is in the chain: who asked and the outcome, never the person.
		const asked = await gw.events.list({ tenantId: "acme", type: "dsr.access" });
		expect(asked.at(-1)?.data).toMatchObject({ outcome: "held" });
		expect(JSON.stringify(asked.at(-1))).not.toContain(bobPsn);
	});

	it("unknown people, another tenant's admin and other roles get nothing", async () => {
		const unknown = await api(gw, "POST", "/api/dsr/access", admin(), { person: { subject: "nobody" } });
		const real = await api(gw, "POST", "/api/dsr/access", admin(), { person: { subject: "bob" } });
		expect(unknown.status).toBe(200);
		expect(Object.keys(unknown.body).sort()).toEqual(Object.keys(real.body).sort());
		expect(unknown.body.held).toBe(false);
		// Another tenant's admin: Bob's pseudonym and subject are not theirs; the same "nothing held".
		for (const person of [{ pseudonym: bobPsn }, { subject: "bob" }]) {
			const r = await api(gw, "POST", "/api/dsr/access", other.token("admin", "admin"), { person });
			expect(r.status).toBe(200);
			expect(r.body).toMatchObject({ held: false, meetings: [] });
		}
		expect(
			(await api(gw, "POST", "/api/dsr/access", acme.token("hana"), { person: { subject: "bob" } })).body.code,
		).toBe("admin_only");
		expect((await api(gw, "POST", "/api/dsr/access", admin(), { person: { pseudonym: "psn_x" } })).status).toBe(400);
		// The operator: the same answer, as an operator.action in the tenant's chain.
		const op = await api(gw, "POST", "/api/operator/tenants/acme/dsr/access", operator.token(), {
			person: { subject: "bob" },
			reason: "request by letter",
		});
		expect(op.body).toMatchObject({ held: true });
		const acts = await gw.events.list({ tenantId: "acme", type: "operator.action" });
		expect(acts.at(-1)?.data).toMatchObject({ action: "dsr.access", operator: "ops-alice", outcome: "held" });
	});

	it("erasure (the CLI): the bucket failing leaves it pending with the store done; a retry finishes; nothing links Bob", async () => {
		proxy.fault = () => 503;
		// Access with the bucket unreachable: the store's part, and the bucket named unreachable.
		const partial = await api(gw, "POST", "/api/dsr/access", admin(), { person: { subject: "bob" } });
		expect(partial.body).toMatchObject({ held: true, bucket: { state: "unreachable", objects: [] } });
		let out = "";
		const cli = (...args: string[]) => {
			out = "";
			return dsrCommand([...args, "--gateway", gw.url, "--token", admin()], {
				out: (t) => (out += t),
				err: (t) => (out += t),
			});
		};
		expect(await cli("erase", "--subject", "bob", "--delete-objects", "--reason", "art. 17 request")).toBe(
			DSR_EXIT.pending,
		);
		const first = JSON.parse(out) as { requestId: string; error: string };
		expect(first).toMatchObject({ state: "pending", steps: { store: true, bucket: "pending" } });
		expect(first.error).toMatch(/^bucket_unreachable/);
		// The store part is done already: no half-erased person.
		expect(await gw.events.pseudonym("acme", "acme:bob")).toBeNull();
		proxy.fault = undefined;
		const id = first.requestId;
		expect(await cli("status", "--request", id)).toBe(DSR_EXIT.pending);
		expect((await api(gw, "GET", `/api/dsr/erasures/${id}`, other.token("admin", "admin"))).status).toBe(404);
		expect(await cli("retry", "--request", id)).toBe(DSR_EXIT.done);
		expect(JSON.parse(out)).toMatchObject({ state: "done", error: null, steps: { store: true, bucket: "done" } });
		const erasures = await gw.events.list({ tenantId: "acme", type: "dsr.erasure" });
		expect(erasures.map((e) => e.data.outcome)).toEqual(["pending", "done"]);
		expect(JSON.stringify(erasures)).not.toContain(bobPsn);

		// The store: neither Bob's subject nor his person key anywhere; his pseudonym only in the chain (immutable,
		// unlinkable now) and in the request's own row.
		for (const [table, rows] of await dumpStore()) {
			expect(rows.includes('"bob"') || rows.includes("acme:bob"), `${table} names bob`).toBe(false);
			if (table !== "events" && table !== "dsr_requests")
				expect(rows.includes(bobPsn), `${table} holds his psn`).toBe(false);
		}
		const results = await gw.events.verify({ tenantId: "acme" });
		expect(results.every((r) => r.ok)).toBe(true);
		// The bucket: his media objects gone, his chat and transcript lines gone, Hana's kept.
		const left = await keys();
		expect(left.filter((k) => k.includes(bobPsn))).toEqual([]);
		const chat = (await bucket.bytes(`${recBase}/chat.jsonl`)).toString();
		expect(chat).not.toContain(bobPsn);
		expect(chat).toContain("Hana's words");
		const transcript = await bucket.json<{ entries: { speaker: string }[] }>(`${trBase}/transcript.json`);
		expect(transcript.entries.some((e) => e.speaker === bobPsn)).toBe(false);
		expect(left).toContain(`${recBase}/erasure-${id}.json`);
		// The tombstone in the chain, and `consentry verify` accepts both sessions with their erasure record.
		const tomb = await gw.events.list({ tenantId: "acme", meetingId, type: "dsr.objects_erased" });
		expect(tomb.map((e) => e.data.sessionId).sort()).toEqual(
			[recBase.split("/").at(-1), trBase.split("/").at(-1)].sort(),
		);
		for (const base of [recBase, trBase]) {
			const v = await verify(base);
			expect(v.fails, base).toEqual([]);
			expect(v.code).toBe(0);
		}
		// Any other change still fails: the erasure record edited, or an object of Hana's deleted.
		const recordKey = `${recBase}/erasure-${id}.json`;
		const record = await bucket.bytes(recordKey);
		await bucket.s3.send(
			new PutObjectCommand({ Bucket: bucket.name, Key: recordKey, Body: Buffer.concat([record, Buffer.from(" ")]) }),
		);
		expect((await verify(recBase)).fails.join("\n")).toMatch(
			/no dsr.objects_erased entry in its trail names this record/,
		);
		await bucket.s3.send(new PutObjectCommand({ Bucket: bucket.name, Key: recordKey, Body: record }));
		expect((await verify(recBase)).code).toBe(0);
		// Access now: nothing held. A repeat erasure: done, nothing more.
		expect((await api(gw, "POST", "/api/dsr/access", admin(), { person: { subject: "bob" } })).body.held).toBe(false);
		const again = await api(gw, "POST", "/api/dsr/erasures", admin(), {
			person: { subject: "bob" },
			deleteObjects: true,
		});
		expect(again.body).toMatchObject({ state: "done" });
	});

	it("a gateway killed mid-erasure (store step committed, bucket step hanging): the next start finishes it", async () => {
		// The gateway as its own process (dist/server/main.js), on the same store, with the operator's keys.
		await gw.close();
		const port = await freePort();
		const child = spawn(process.execPath, ["dist/server/main.js"], {
			env: {
				...process.env,
				CONSENTRY_HTTP_HOST: "127.0.0.1",
				CONSENTRY_HTTP_PORT: String(port),
				CONSENTRY_WORKERS: "1",
				CONSENTRY_AUDIENCE: AUDIENCE,
				CONSENTRY_GATEWAY_ID: "test",
				CONSENTRY_TENANTS_FILE: writeTenantsFile([acme, other]),
				CONSENTRY_LOG_LEVEL: "warn",
				...env,
				...(await storeEnv(dbFile)),
			},
			stdio: ["ignore", "ignore", "inherit"],
		});
		const url = `http://127.0.0.1:${port}`;
		let id = "";
		try {
			await waitFor(async () => (await fetch(`${url}/healthz`)).ok, 30_000, "the gateway process to answer");
			proxy.fault = () => "blackhole"; // every bucket request taken and never answered
			void fetch(`${url}/api/operator/tenants/acme/dsr/erasures`, {
				method: "POST",
				headers: { authorization: `Bearer ${operator.token()}`, "content-type": "application/json" },
				body: JSON.stringify({ person: { subject: "hana" }, deleteObjects: true, reason: "customer left" }),
			}).catch(() => undefined);
			const row = await waitFor(
				async () => {
					const r = await pendingRequest();
					return r && (JSON.parse(r.steps) as { store: boolean }).store ? r : undefined;
				},
				20_000,
				"the store step committed",
			);
			expect(row).toMatchObject({ state: "pending", person_key: null });
			id = row.id;
		} finally {
			child.kill("SIGKILL");
			await new Promise((r) => child.once("exit", r));
		}
		// Killed between the steps: the store part done (Hana unlinkable), the bucket untouched.
		expect((await keys()).some((k) => k.includes(`erasure-${id}`))).toBe(false);
		proxy.fault = undefined;
		gw = await startGateway({ tenants: [acme, other], env });
		await waitFor(
			async () => (await api(gw, "GET", `/api/dsr/erasures/${id}`, admin())).body.state === "done",
			30_000,
			"the erasure finished at start-up",
		);
		expect(await gw.events.pseudonym("acme", "acme:hana")).toBeNull();
		expect((await keys()).filter((k) => /psn_[0-9a-f]{64}-(audio|camera)/.test(k))).toEqual([]);
		// Two erasure records on the recording session (Bob's, Hana's): it still verifies, and so does the transcript.
		for (const base of [recBase, trBase]) expect((await verify(base)).fails, base).toEqual([]);
		expect((await gw.events.verify({ tenantId: "acme" })).every((v) => v.ok)).toBe(true);
		const resumed = await waitFor(
			async () =>
				(await gw.events.list({ tenantId: "acme", type: "dsr.erasure" })).find((e) => e.data.requestId === id),
			5_000,
			"the resumed request in the chain",
		);
		expect(resumed.data).toMatchObject({ outcome: "done", resumed: "start-up" });
	});

	it("a guest, by the pseudonym shown to them: refused while the meeting is live, then erased", async () => {
		const m = await api(gw, "POST", "/api/meetings", acme.token("hana"), {
			title: "Live",
			settings: { lobby: false, allowGuests: true },
		});
		const id = m.body.id as string;
		const c = await connect(gw.url, acme.token("hana"));
		const g = await connect(gw.url);
		clients.push(c, g);
		await c.call("join", { meetingId: id, displayName: "Hana" });
		// Guests wait in the lobby (the chain's lobby.entered names them by pseudonym).
		const gj = (await g.call("join", { meetingId: id, displayName: "Gus" })) as { status: string; peerId: string };
		expect(gj.status).toBe("lobby");
		const joined = await waitFor(
			async () =>
				(await gw.events.list({ tenantId: "acme", meetingId: id, type: "lobby.entered" })).find(
					(e) => e.data.peerId === gj.peerId,
				),
			5_000,
			"the guest in the chain",
		);
		const guestPsn = String(joined?.actor);
		const a = await api(gw, "POST", "/api/dsr/access", admin(), { person: { pseudonym: guestPsn } });
		expect(a.body).toMatchObject({ held: true, person: { subject: null, pseudonym: guestPsn, guest: true } });
		// Live: refused, for the guest and for the host.
		for (const person of [{ pseudonym: guestPsn }, { subject: "hana" }]) {
			const r = await api(gw, "POST", "/api/dsr/erasures", admin(), { person });
			expect(r.status).toBe(409);
			expect(r.body.code).toBe("person_in_live_meeting");
		}
		expect((await api(gw, "POST", `/api/meetings/${id}/end`, acme.token("hana"))).status).toBe(200);
		const e = await api(gw, "POST", "/api/dsr/erasures", admin(), { person: { pseudonym: guestPsn } });
		expect(e.body).toMatchObject({ state: "done", steps: { store: true, bucket: "not_asked" } });
		expect(await gw.events.resolvePseudonym("acme", guestPsn)).toBeNull();
		expect((await api(gw, "POST", "/api/dsr/access", admin(), { person: { pseudonym: guestPsn } })).body.held).toBe(
			false,
		);
		expect((await gw.events.verify({ tenantId: "acme" })).every((v) => v.ok)).toBe(true);
	});
});

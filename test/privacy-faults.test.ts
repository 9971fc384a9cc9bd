import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import BetterSqlite3 from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StoreUnavailableError } from "../server/errors.js";
import type { Gateway } from "../server/Gateway.js";
import { createLogger } from "../server/logger.js";
import { LogFiles } from "../server/privacy/LogFiles.js";
import { GATEWAY_CHAIN } from "../server/privacy/SecurityHold.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testOperator } from "./helpers/operator.js";
import { type S3Proxy, startS3Proxy } from "./helpers/s3-proxy.js";
import { ENGINES, postgresServer } from "./helpers/stores.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * Issue 14 under faults, on both engines (this file brings its own PostgreSQL, which it stops and resumes, so it
 * runs once, in the first half of `npm test`): the store down while the operator sets or lifts the security hold,
 * while a data-subject request is made and while the retention job runs — each answers 503 `store_unavailable`,
 * nothing is half-done, and once the store is back the same requests succeed. Then a burst of erasures and exports
 * of one person from two gateways on one store (two Gateway instances in this process, each with its own store
 * connections, lease holder and request bookkeeping): one erasure takes effect, every answer is clear, no
 * export is half-erased, the chain verifies and the bucket's objects are erased once, with one erasure record.
 */
const acme = testTenant("acme");
const operator = testOperator();
const op = operator.token();
const admin = () => acme.token("it-admin", "admin");

describe.each(ENGINES)("privacy duties under faults, on %s", (engine) => {
	let gw: Gateway;
	/** The burst's two gateways (the store's default timeout: 5 s). */
	const burstGateways: Gateway[] = [];
	let env: Record<string, string>;
	let bucket: TestBucket;
	let proxy: S3Proxy;
	let files: LogFiles;
	let down: () => void;
	let up: () => void;

	beforeAll(async () => {
		bucket = await startBucket(`acme-faults-${engine}`);
		proxy = await startS3Proxy(bucket.server.endpoint);
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-faults-"));
		const file = path.join(dir, "store.sqlite");
		env = {
			...storageEnv(),
			CONSENTRY_DB_FILE: file,
			CONSENTRY_OPERATOR_KEYS_FILE: operator.keysFile,
			CONSENTRY_RETENTION_INTERVAL_MINUTES: "0",
			// A query (PostgreSQL) or a wait for another process's lock (SQLite) this long: store_unavailable.
			CONSENTRY_DATABASE_TIMEOUT_MS: "800",
		};
		if (engine === "postgres") {
			const server = await postgresServer();
			env.CONSENTRY_DATABASE_URL = await server.createDatabase(`faults_${process.pid}`);
			down = () => server.pause();
			up = () => server.resume();
		} else {
			// SQLite "down": another process holds the file's write lock (a stuck process, a backup tool).
			let other: BetterSqlite3.Database | undefined;
			down = () => {
				other = new BetterSqlite3(file);
				other.exec("BEGIN EXCLUSIVE");
			};
			up = () => {
				other?.exec("ROLLBACK");
				other?.close();
				other = undefined;
			};
		}
		files = new LogFiles({ dir: path.join(dir, "logs"), retentionDays: 14, prefix: "consentry-faults" });
		gw = await startGateway({
			tenants: [acme],
			env,
			log: createLogger(process.env.TEST_LOG_LEVEL ?? "silent", files),
			gateway: { logFiles: files },
		});
		await saveStorageTarget(gw, acme, bucket, "rec", { endpoint: proxy.endpoint });
	}, 60_000);

	afterAll(async () => {
		up?.();
		await gw?.close();
		for (const g of burstGateways) await g.close();
		files?.close();
		await proxy?.close();
		await bucket?.stop();
	});

	/**
	 * A person with something everywhere: a meeting they host, entries in the chain, and in the bucket a media
	 * object and a chat line of theirs next to another person's.
	 */
	async function seed(subject: string): Promise<{ meetingId: string; psn: string; other: string; base: string }> {
		const m = await api(gw, "POST", "/api/meetings", acme.token(subject), { title: `${subject}'s` });
		const meetingId = m.body.id as string;
		await gw.events.append("person.joined", { tenantId: "acme", meetingId, actor: `acme:${subject}` });
		await gw.events.append("person.joined", { tenantId: "acme", meetingId, actor: "acme:olga" });
		const psn = (await gw.events.pseudonym("acme", `acme:${subject}`)) as string;
		const other = (await gw.events.pseudonym("acme", "acme:olga")) as string;
		const base = `rec/${meetingId}/s1`;
		const put = (key: string, body: Buffer | string) =>
			bucket.s3.send(new PutObjectCommand({ Bucket: bucket.name, Key: key, Body: body }));
		await put(`${base}/${psn}-audio-1.webm`, randomBytes(2048));
		await put(`${base}/${other}-audio-1.webm`, randomBytes(2048));
		const at = new Date().toISOString();
		await put(
			`${base}/chat.jsonl`,
			`${JSON.stringify({ at, from: psn, text: "mine" })}\n${JSON.stringify({ at, from: other, text: "hers" })}\n`,
		);
		return { meetingId, psn, other, base };
	}

	const keys = async (prefix: string) =>
		((await bucket.s3.send(new ListObjectsV2Command({ Bucket: bucket.name, Prefix: prefix }))).Contents ?? [])
			.map((o) => o.Key as string)
			.sort();
	const chainOf = async (g: Gateway, tenantId: string, type: string) =>
		(await g.events.list({ tenantId, limit: 100_000 })).filter((e) => e.type === type);

	it("the store down: 503 store_unavailable for the hold and the data-subject requests, nothing half-done; back up, the same requests succeed", async () => {
		const bob = await seed("bob");
		const until = new Date(Date.now() + 10 * 86_400_000).toISOString();
		const set = await api(gw, "PUT", "/api/operator/security-hold", op, { reason: "incident 7", until });
		expect(set.status).toBe(200);
		const holdId = (set.body.hold as { id: string }).id;
		await gw.sweepLogs(); // (the sweep reads the hold: every 10 minutes in production)

		down();
		try {
			const t0 = Date.now();
			const refused = [
				await api(gw, "PUT", "/api/operator/security-hold", op, { reason: "incident 8", until }),
				await api(gw, "DELETE", "/api/operator/security-hold", op, { reason: "closed" }),
				await api(gw, "POST", "/api/dsr/access", admin(), { person: { subject: "bob" } }),
				await api(gw, "POST", "/api/dsr/export", admin(), { person: { subject: "bob" } }),
				await api(gw, "POST", "/api/dsr/erasures", admin(), { person: { subject: "bob" }, deleteObjects: true }),
				await api(gw, "POST", `/api/operator/tenants/acme/dsr/erasures`, op, {
					person: { pseudonym: bob.psn },
					deleteObjects: true,
					reason: "asked by letter",
				}),
			];
			expect(refused.map((r) => [r.status, r.body.code])).toEqual(refused.map(() => [503, "store_unavailable"]));
			// The retention job: refused the same way (its next run goes on: server/retention/RetentionService.test.ts).
			await expect(gw.retention.runOnce()).rejects.toBeInstanceOf(StoreUnavailableError);
			// The log files' sweep goes on with the hold as last read (it does not stop for the outage).
			await expect(gw.sweepLogs()).resolves.toEqual([]);
			expect(files.holdUntil).toBe(Date.parse(until));
			expect(Date.now() - t0).toBeLessThan(25_000);
		} finally {
			up();
		}

		// Nothing half-done: the first hold in force and recorded once, never replaced nor lifted; Bob untouched.
		const hold = await api(gw, "GET", "/api/operator/security-hold", op);
		expect(hold.body.hold).toMatchObject({ id: holdId, reason: "incident 7", active: true });
		expect((hold.body.history as unknown[]).length).toBe(1);
		const holdActions = (await chainOf(gw, GATEWAY_CHAIN, "operator.action")).map((e) => e.data.action);
		expect(holdActions).toEqual(["security_hold.set"]);
		expect(await gw.events.pseudonym("acme", "acme:bob")).toBe(bob.psn);
		expect(await chainOf(gw, "acme", "person.erased")).toEqual([]);
		expect(await keys(`${bob.base}/`)).toEqual(
			[`${bob.base}/${bob.psn}-audio-1.webm`, `${bob.base}/${bob.other}-audio-1.webm`, `${bob.base}/chat.jsonl`].sort(),
		);

		// Back up: the same requests succeed.
		expect((await api(gw, "PUT", "/api/operator/security-hold", op, { reason: "incident 8", until })).status).toBe(200);
		expect((await api(gw, "DELETE", "/api/operator/security-hold", op, { reason: "closed" })).body).toMatchObject({
			changed: true,
		});
		expect((await chainOf(gw, GATEWAY_CHAIN, "operator.action")).map((e) => e.data.action)).toEqual([
			"security_hold.set",
			"security_hold.set",
			"security_hold.lift",
		]);
		const access = await api(gw, "POST", "/api/dsr/access", admin(), { person: { subject: "bob" } });
		expect([access.status, access.body.held]).toEqual([200, true]);
		const erased = await api(gw, "POST", "/api/dsr/erasures", admin(), {
			person: { subject: "bob" },
			deleteObjects: true,
		});
		expect([erased.status, erased.body.state]).toEqual([200, "done"]);
		expect((await chainOf(gw, "acme", "person.erased")).length).toBe(1);
		expect(await keys(`${bob.base}/`)).not.toContain(`${bob.base}/${bob.psn}-audio-1.webm`);
		expect((await gw.events.verify()).every((r) => r.ok)).toBe(true);
		expect(await gw.retention.runOnce()).toMatchObject({ entries: 0 });
	});

	it("the store down in the middle of the bucket step: 503; the record says what went; the same request by pseudonym finishes it, once", async () => {
		const dave = await seed("dave");
		let downed = false;
		// The store goes down as the first object is deleted: after the erasure record and the rewrites, before
		// the chain's tombstone.
		proxy.fault = (req) => {
			if (req.method === "DELETE" && !downed) {
				downed = true;
				down();
			}
			return undefined;
		};
		let first: Awaited<ReturnType<typeof api>>;
		try {
			first = await api(gw, "POST", "/api/dsr/erasures", admin(), { person: { subject: "dave" }, deleteObjects: true });
		} finally {
			proxy.fault = undefined;
			if (downed) up();
		}
		expect(downed).toBe(true);
		expect([first.status, first.body.code]).toEqual([503, "store_unavailable"]);
		// The store step is done (one transaction), the bucket step half: its record, written first, names the object
		// deleted; no tombstone yet.
		expect(await gw.events.pseudonym("acme", "acme:dave")).toBeNull();
		const records = (await keys(`${dave.base}/`)).filter((k) => /erasure-dsr_[0-9a-f]+\.json$/.test(k));
		expect(records.length).toBe(1);
		const record = await bucket.json<{ removed: { key: string }[] }>(records[0] as string);
		expect(record.removed.map((r) => r.key)).toEqual([`${dave.base}/${dave.psn}-audio-1.webm`]);
		const tombstones = async () =>
			(await chainOf(gw, "acme", "dsr.objects_erased")).filter((e) => e.meetingId === dave.meetingId);
		expect(await tombstones()).toEqual([]);
		// The same request (by the pseudonym: nothing links the subject any more) finishes it.
		const again = await api(gw, "POST", "/api/dsr/erasures", admin(), {
			person: { pseudonym: dave.psn },
			deleteObjects: true,
		});
		expect([again.status, again.body.state]).toEqual([200, "done"]);
		expect((await tombstones()).length).toBe(1);
		expect((await keys(`${dave.base}/`)).filter((k) => k.includes("erasure-"))).toEqual(
			[records[0] as string, (records[0] as string).replace(/\.json$/, ".audit.jsonl")].sort(),
		);
		expect(await keys(`${dave.base}/`)).not.toContain(`${dave.base}/${dave.psn}-audio-1.webm`);
		expect((await gw.events.verify()).every((r) => r.ok)).toBe(true);
	});

	// (CONSENTRY_TEST_BURSTS=n runs the burst n times, each for a new person: a race shows up over repeats.)
	it.each(Array.from({ length: Number(process.env.CONSENTRY_TEST_BURSTS ?? 1) }, (_, i) => (i ? `carl${i}` : "carl")))(
		"a burst for one person from two gateways on one store: one erasure takes effect, exports are whole or empty, objects erased once (%s)",
		async (who) => {
			if (burstGateways.length === 0) {
				// Two more gateway processes on the same store, with the store's default timeout (5 s): the outage's
				// short one would count a request's wait for the tenant's lock behind its peers as the store being down.
				const { CONSENTRY_DATABASE_TIMEOUT_MS: _short, ...rest } = env;
				for (const id of ["burst-1", "burst-2"])
					burstGateways.push(await startGateway({ tenants: [acme], env: { ...rest, CONSENTRY_GATEWAY_ID: id } }));
			}
			const [p1, p2] = burstGateways as [Gateway, Gateway];
			const carl = await seed(who);
			const before = await api(gw, "POST", "/api/dsr/export", admin(), { person: { subject: who } });
			const entries = (before.body.audit as { entries: unknown[] }).entries.length;
			expect(entries).toBeGreaterThan(0);
			expect((before.body.bucket as { objects: unknown[] }).objects.length).toBe(2); // media + chat

			const erase = (i: number) =>
				api(i % 2 ? p2 : p1, "POST", "/api/dsr/erasures", admin(), {
					person: i % 3 ? { subject: who } : { pseudonym: carl.psn },
					deleteObjects: true,
				});
			const exportOf = (i: number) =>
				api(i % 2 ? p2 : p1, "POST", "/api/dsr/export", admin(), { person: { subject: who } });
			const t0 = Date.now();
			const [erasures, exports] = await Promise.all([
				Promise.all(Array.from({ length: 20 }, (_, i) => erase(i))),
				Promise.all(Array.from({ length: 6 }, (_, i) => exportOf(i))),
			]);
			const ms = Date.now() - t0;

			for (const r of [...erasures, ...exports]) if (r.status !== 200) console.log("refused", r.status, r.body);
			// Every erasure answers 200 done: the one that took effect, the ones that joined it, or (after it) nothing left.
			expect(erasures.map((r) => [r.status, r.body.state])).toEqual(erasures.map(() => [200, "done"]));
			const effective = (await chainOf(gw, "acme", "person.erased")).filter((e) => e.data.pseudonym === carl.psn);
			expect(effective.length).toBe(1);
			const requestId = effective[0]?.data.requestId;
			expect(erasures.some((r) => r.body.requestId === requestId)).toBe(true);
			// Each export is the whole before or the whole after, never half.
			for (const x of exports) {
				expect(x.status).toBe(200);
				const b = x.body as {
					held: boolean;
					audit: { entries: unknown[] };
					store: { meetingsHosted: unknown[] };
					bucket: { objects: unknown[] };
				};
				const whole = [b.held, b.audit.entries.length, b.store.meetingsHosted.length, b.bucket.objects.length];
				expect([
					[true, entries, 1, 2],
					[false, 0, 0, 0],
				]).toContainEqual(whole);
			}
			// The bucket: erased once, one record and its trail, the other person's object and line kept.
			expect(await keys(`${carl.base}/`)).toEqual(
				[
					`${carl.base}/${carl.other}-audio-1.webm`,
					`${carl.base}/chat.jsonl`,
					`${carl.base}/erasure-${requestId}.json`,
					`${carl.base}/erasure-${requestId}.audit.jsonl`,
				].sort(),
			);
			expect((await bucket.bytes(`${carl.base}/chat.jsonl`)).toString()).not.toContain(carl.psn);
			expect((await bucket.bytes(`${carl.base}/chat.jsonl`)).toString()).toContain(carl.other);
			const tombstones = (await chainOf(gw, "acme", "dsr.objects_erased")).filter(
				(e) => e.meetingId === carl.meetingId,
			);
			expect(tombstones.length).toBe(1);
			expect((await gw.events.verify()).every((r) => r.ok)).toBe(true);
			console.log(`[privacy-faults ${engine}] 20 erasures + 6 exports of one person, 2 gateways: ${ms} ms`);
		},
	);
});

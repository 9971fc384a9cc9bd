import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { ENGINES, openTestStore, postgresServer } from "../../test/helpers/stores.js";
import { EventLog } from "../audit/EventLog.js";
import { exportMeeting as exportMeetingFromFile } from "../audit/meetingExport.js";
import { verifyExport, verifyTenant } from "../audit/verify.js";
import { StoreUnavailableError } from "../errors.js";
import { createLogger } from "../logger.js";
import { openDatabase } from "../store/Database.js";
import { type Engine, Store } from "../store/Store.js";
import { RetentionService } from "./RetentionService.js";

const DAY = 86_400_000;
const log = createLogger("silent");
const stores: Store[] = [];
afterEach(async () => {
	for (const s of stores.splice(0)) await s.close().catch(() => undefined);
});

/**
 * Issue 14 retention, store level, on both engines: the purge cuts the oldest entries of a tenant's chain, writes a
 * checkpoint that the verifier takes as the chain's new start, survives a crash between batches, runs once across
 * purgers, and a terminated tenant's wipe leaves only what the operator keeps.
 */
describe.each(ENGINES)("retention purge on %s", (engine) => {
	async function setup(file?: string, given?: Store) {
		const store = given ?? (await openTestStore(engine, file ? { file } : {}));
		stores.push(store);
		const clock = { t: Date.parse("2026-01-01T00:00:00Z") };
		const events = await EventLog.open(store, { now: () => clock.t });
		const purger = (o: { batch?: number; afterBatch?: (t: string, n: number) => void; id?: string } = {}) =>
			new RetentionService({
				store,
				events,
				tenants: () => [
					{ id: "acme", days: 30 },
					{ id: "globex", days: 365 },
				],
				gatewayId: o.id ?? "gw-a",
				intervalMs: 0,
				now: () => clock.t,
				log,
				...(o.batch ? { batch: o.batch } : {}),
				...(o.afterBatch ? { afterBatch: o.afterBatch } : {}),
			});
		// 40 old entries (day 0): meetings m-old (ends) and m-long (goes on after the cut), and globex's.
		for (let i = 0; i < 40; i++) {
			await events.append("person.joined", {
				tenantId: "acme",
				meetingId: i % 2 ? "m-old" : "m-long",
				actor: `acme:u${i % 3}`,
				data: { i },
			});
		}
		await events.append("meeting.started", { tenantId: "globex", meetingId: "g1", actor: "globex:z" });
		clock.t += 40 * DAY;
		// 10 recent entries: m-long goes on, m-new starts.
		for (let i = 0; i < 10; i++) {
			await events.append("person.left", {
				tenantId: "acme",
				meetingId: i % 2 ? "m-new" : "m-long",
				actor: `acme:u${i % 3}`,
				data: { i },
			});
		}
		return { store, events, clock, purger };
	}

	it("cuts what is older than the tenant's retention; what remains verifies from the checkpoint", async () => {
		const file =
			engine === "sqlite" ? path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-ret-")), "s.db") : undefined;
		const { events, purger } = await setup(file);
		const before = await events.verify({ tenantId: "acme" });
		expect(before[0]).toMatchObject({ ok: true, entries: 50 });
		const anchor = (await events.head("acme")) as { seq: number; hash: string };

		const report = await purger({ batch: 15 }).runOnce();
		expect(report?.entries).toBe(40);
		const [acme] = await events.verify({ tenantId: "acme" });
		// 10 kept + 3 checkpoints (batches of 15, 15, 10).
		expect(acme).toMatchObject({ ok: true, entries: 13, purged: { throughSeq: 40 } });
		expect((await events.verify({ tenantId: "acme", anchor }))[0]?.ok).toBe(true);
		const remaining = await events.list({ tenantId: "acme" });
		expect(remaining.filter((e) => e.type !== "chain.checkpoint").every((e) => e.type === "person.left")).toBe(true);
		const last = remaining.filter((e) => e.type === "chain.checkpoint").at(-1);
		expect(last?.data).toMatchObject({ throughSeq: 40, purged: 10, purgedTotal: 40, reason: "retention" });
		expect(Object.keys(last?.data.meetingHeads as object)).toEqual(["m-long"]);
		// globex (365 days) untouched.
		expect((await events.verify({ tenantId: "globex" }))[0]).toMatchObject({ ok: true, entries: 1 });
		// A meeting cut in the middle still exports and verifies offline (its start: the checkpoint).
		const text = await events.exportMeeting("acme", "m-long");
		expect(verifyExport(text)).toMatchObject({ ok: true, entries: 5 });
		expect(verifyExport(await events.exportMeeting("acme", "m-new"))).toMatchObject({ ok: true, entries: 5 });
		// Without the checkpoint the cut export does not verify.
		const [h, ...rest] = text.trim().split("\n");
		const bare = JSON.parse(h as string);
		delete bare.checkpoint;
		expect(verifyExport([JSON.stringify(bare), ...rest].join("\n"))).toMatchObject({
			ok: false,
			break: { reason: "meeting_link" },
		});
		// The offline tools on the SQLite file (scripts/audit.ts): verify and a cut meeting's export.
		if (file) {
			const raw = openDatabase(file);
			try {
				expect(verifyTenant(raw, "acme")).toMatchObject({ ok: true, entries: 13 });
				expect(verifyExport(exportMeetingFromFile(raw, "acme", "m-long"))).toMatchObject({ ok: true, entries: 5 });
			} finally {
				raw.close();
			}
		}
		// New entries keep extending the chain, and a second run finds nothing more.
		await events.append("person.joined", { tenantId: "acme", meetingId: "m-long", actor: "acme:u9" });
		expect((await events.verify({ tenantId: "acme" }))[0]?.ok).toBe(true);
		expect((await purger().runOnce())?.entries).toBe(0);
	});

	it("a crash between batches leaves a chain that verifies; the next run goes on", async () => {
		const { events, purger } = await setup();
		let batches = 0;
		const crashing = purger({
			batch: 8,
			afterBatch: () => {
				if (++batches === 2) throw new Error("crash");
			},
		});
		await expect(crashing.runOnce()).rejects.toThrow("crash");
		expect((await events.verify({ tenantId: "acme" }))[0]).toMatchObject({ ok: true, purged: { throughSeq: 16 } });
		const report = await purger({ batch: 8 }).runOnce();
		expect(report?.entries).toBe(24);
		expect((await events.verify({ tenantId: "acme" }))[0]).toMatchObject({ ok: true });
		expect((await events.list({ tenantId: "acme", type: "person.joined" })).length).toBe(0);
	});

	it("the store down mid-run: store_unavailable, nothing half-done; the next run completes what was due", async () => {
		const o = await outageStore(engine);
		const { store, events, clock, purger } = await setup(undefined, o.store);
		const at = new Date(clock.t - 40 * DAY).toISOString();
		for (const id of ["m-old", "m-long"])
			await store.db
				.insertInto("meetings")
				.values({
					id,
					tenant_id: "acme",
					host_subject: "u0",
					title: id,
					scheduled_for: null,
					settings: "{}",
					passcode_hash: null,
					state: "ended",
					created_at: at,
					started_at: at,
					ended_at: at,
				})
				.execute();
		await store.db
			.insertInto("removed_persons")
			.values({ meeting_id: "m-old", person: "acme:u1", removed_at: at })
			.execute();
		let batches = 0;
		const job = purger({
			batch: 8,
			afterBatch: () => {
				if (++batches === 1) o.down();
			},
		});
		const t0 = Date.now();
		await expect(job.runOnce()).rejects.toBeInstanceOf(StoreUnavailableError);
		expect(Date.now() - t0).toBeLessThan(5_000);
		o.up();
		// One batch went, whole: its checkpoint is in the chain, which verifies; nothing else moved.
		expect((await events.verify({ tenantId: "acme" }))[0]).toMatchObject({ ok: true, purged: { throughSeq: 8 } });
		expect((await store.db.selectFrom("meetings").select("id").orderBy("id").execute()).map((r) => r.id)).toEqual([
			"m-long",
			"m-old",
		]);
		// The next run of the job (the same process: its lease, which the outage kept it from releasing) completes it.
		const report = await job.runOnce();
		expect(report?.entries).toBe(32);
		expect((await events.verify({ tenantId: "acme" }))[0]).toMatchObject({ ok: true, purged: { throughSeq: 40 } });
		expect((await events.list({ tenantId: "acme", type: "person.joined" })).length).toBe(0);
		// m-old's entries all went, so did its row and what hung off it; m-long goes on after the cut.
		expect((await store.db.selectFrom("meetings").select("id").execute()).map((r) => r.id)).toEqual(["m-long"]);
		expect(await store.db.selectFrom("removed_persons").selectAll().execute()).toEqual([]);
	});

	it("two purgers at once: one runs, the other finds the lease taken", async () => {
		const { events, purger } = await setup();
		const a = purger({ id: "gw-a", batch: 5 });
		const b = purger({ id: "gw-b", batch: 5 });
		const [ra, rb] = await Promise.all([a.runOnce(), b.runOnce()]);
		expect([ra, rb].filter((r) => r === null)).toHaveLength(1);
		expect((ra ?? rb)?.entries).toBe(40);
		// The same process twice at once: the second call does not start a run of its own.
		const [r1, r2] = await Promise.all([a.runOnce(), a.runOnce()]);
		expect(r2).toBeNull();
		expect(r1?.entries).toBe(0);
		expect((await events.verify({ tenantId: "acme" }))[0]?.ok).toBe(true);
	});

	it("the database refuses any other delete: only the recorded prefix may go", async () => {
		const { store, purger, events } = await setup();
		await purger().runOnce();
		const head = (await events.head("acme"))?.seq as number;
		await expect(
			store.db.deleteFrom("events").where("tenant_id", "=", "acme").where("seq", "=", head).execute(),
		).rejects.toThrow(/append-only/);
		await expect(store.db.deleteFrom("events").where("tenant_id", "=", "globex").execute()).rejects.toThrow(
			/append-only/,
		);
	});

	it("a chain truncated without a checkpoint does not verify", async () => {
		const { store, events } = await setup();
		// What an attacker who can also write audit_purges does: the database lets it go, the verifier does not.
		await store.db
			.insertInto("audit_purges")
			.values({ tenant_id: "acme", through_seq: 10, through_hash: "x", purged: 10, checkpoint_seq: 0, at: "now" })
			.execute();
		await store.db.deleteFrom("events").where("tenant_id", "=", "acme").where("seq", "<=", 10).execute();
		expect((await events.verify({ tenantId: "acme" }))[0]).toMatchObject({
			ok: false,
			break: { reason: "checkpoint", seq: 11 },
		});
	});

	it("a terminated tenant's wipe: no row of theirs but the kept operator actions and the checkpoint", async () => {
		const { store, events, purger } = await setup();
		await events.append("operator.action", {
			tenantId: "acme",
			data: { operator: "ops", action: "tenant.terminate", reason: "contract ended" },
		});
		await store.db
			.insertInto("meetings")
			.values({
				id: "m-old",
				tenant_id: "acme",
				host_subject: "alice",
				title: "t",
				scheduled_for: null,
				settings: "{}",
				passcode_hash: null,
				state: "ended",
				created_at: "2026-01-01T00:00:00Z",
				started_at: null,
				ended_at: "2026-01-01T01:00:00Z",
			})
			.execute();
		const p = purger({ batch: 20 });
		const out = await p.wipeTenant("acme", { operator: "ops", reason: "wipe after termination" });
		expect(out.entries).toBe(51);
		const left = await events.list({ tenantId: "acme" });
		expect(left.map((e) => e.type)).toEqual([
			"operator.action",
			"chain.checkpoint",
			"chain.checkpoint",
			"chain.checkpoint",
		]);
		expect(left[0]?.data).toMatchObject({
			action: "tenant.wiped",
			kept: [expect.objectContaining({ data: expect.objectContaining({ action: "tenant.terminate" }) })],
		});
		expect((await events.verify({ tenantId: "acme" }))[0]?.ok).toBe(true);
		const rows = await p.repository.countTenantRows("acme");
		expect({ ...rows, events: 0 }).toEqual(Object.fromEntries(Object.keys(rows).map((k) => [k, 0])));
		// Idempotent: a second wipe changes nothing.
		expect((await p.wipeTenant("acme", { operator: "ops", reason: "again" })).entries).toBe(0);
		expect((await events.verify({ tenantId: "acme" }))[0]?.ok).toBe(true);
		expect((await events.verify({ tenantId: "globex" }))[0]).toMatchObject({ ok: true, entries: 1 });
	});
});

/**
 * A store that can be taken down under its user: SQLite's file locked by another process (`BEGIN EXCLUSIVE`) past a
 * short busy timeout; PostgreSQL stopped (SIGSTOP of the server and its backends) past a short query timeout.
 */
async function outageStore(engine: Engine): Promise<{ store: Store; down(): void; up(): void }> {
	if (engine === "sqlite") {
		const file = path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-ret-")), "s.db");
		const store = await Store.open({ file, busyTimeoutMs: 300 });
		let other: BetterSqlite3.Database | undefined;
		return {
			store,
			down: () => {
				other = new BetterSqlite3(file);
				other.exec("BEGIN EXCLUSIVE");
			},
			up: () => {
				other?.exec("ROLLBACK");
				other?.close();
				other = undefined;
			},
		};
	}
	const server = await postgresServer();
	const url = await server.createDatabase(`outage_${process.pid}_${Date.now()}`);
	const store = await Store.open({ url, connectTimeoutMs: 800, queryTimeoutMs: 800 });
	return { store, down: () => server.pause(), up: () => server.resume() };
}

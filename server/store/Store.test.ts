import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import BetterSqlite3 from "better-sqlite3";
import fc from "fast-check";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { ENGINES, openTestStore, postgresServer } from "../../test/helpers/stores.js";
import { ConfigError, StoreUnavailableError } from "../errors.js";
import { isUniqueViolation } from "./Database.js";
import { SCHEMA_VERSION, Store } from "./Store.js";

describe.each(ENGINES)("Store on %s", (engine) => {
	it("migrates to the current schema, with the one-live-meeting rule as a constraint", async () => {
		const store = await openTestStore(engine);
		try {
			expect(await store.schemaVersion()).toBe(SCHEMA_VERSION);
			const row = (id: string) => ({
				id,
				tenant_id: "t",
				host_subject: "alice",
				title: "x",
				scheduled_for: null,
				settings: "{}",
				passcode_hash: null,
				state: "live" as const,
				created_at: new Date().toISOString(),
				started_at: null,
				ended_at: null,
			});
			await store.db.insertInto("meetings").values(row("m1")).execute();
			const err = await store.db
				.insertInto("meetings")
				.values(row("m2"))
				.execute()
				.then(
					() => undefined,
					(e: unknown) => e,
				);
			expect(isUniqueViolation(err)).toBe(true);
		} finally {
			await store.close();
		}
	});
});

describe("Store on postgres", () => {
	it("the audit chain's rule holds per INSERT statement: a row that does not extend its head fails the whole statement", async () => {
		const store = await openTestStore("postgres");
		const G = "0".repeat(64);
		const row = (seq: number, prev: string, meetingPrev: string | null, hash: string | null = `h${seq}`) => ({
			tenant_id: "acme",
			seq,
			at: "2026-12-01T00:00:00Z",
			meeting_id: meetingPrev === null ? null : "m1",
			type: "gate.opened",
			actor: null,
			data: "{}",
			prev_hash: prev,
			meeting_prev_hash: meetingPrev,
			hash,
		});
		const insert = (...rows: ReturnType<typeof row>[]) => store.db.insertInto("events").values(rows).execute();
		try {
			// A valid chain written in one statement: 1 (meeting m1), 2 (no meeting), 3 (m1 again, after 1).
			await insert(row(1, G, G), row(2, "h1", null), row(3, "h2", "h1"));
			const refused = /extend its tenant chain/;
			await expect(insert(row(4, G, null))).rejects.toThrow(refused); // wrong prev
			await expect(insert(row(5, "h4", null))).rejects.toThrow(refused); // a gap
			await expect(insert(row(4, "h3", G))).rejects.toThrow(refused); // not the meeting's last entry
			await expect(insert(row(4, "h3", null, null))).rejects.toThrow(refused); // no hash
			await expect(insert(row(4, "h3", "h3"), row(5, "h4", "WRONG"))).rejects.toThrow(refused); // one bad row
			await expect(insert(row(3, "h2", "h1"))).rejects.toThrow(/duplicate key/); // a fork: the position is taken
			await expect(store.db.updateTable("events").set({ data: "{}" }).execute()).rejects.toThrow(/append-only/);
			await insert(row(4, "h3", "h3"), row(5, "h4", null));
			const seqs = await store.db.selectFrom("events").select("seq").orderBy("seq").execute();
			expect(seqs.map((r) => Number(r.seq))).toEqual([1, 2, 3, 4, 5]);
		} finally {
			await store.close();
		}
	});

	it("the chain trigger (checking rows against the statement's own rows) accepts exactly what the per-row rule accepts", async () => {
		// Property: for any existing chain (a contiguous range of positions per tenant, as retention leaves it) and any
		// INSERT statement (valid batches after the head or in a purged prefix, then mutated: wrong or missing hashes,
		// gaps, taken positions, rows in any order), the trigger accepts the statement exactly when every inserted row
		// links to the entry before it (seq - 1) and to its meeting's previous entry, as the rule reads (the model).
		const store = await openTestStore("postgres");
		const G = "0".repeat(64);
		type R = {
			t: string;
			seq: number;
			m: string | null;
			prev: string | null;
			mprev: string | null;
			hash: string | null;
		};
		const key = (r: { t: string; seq: number }) => `${r.t}:${r.seq}`;
		const accepts = (existing: readonly R[], batch: readonly R[]): boolean => {
			const all = new Map<string, R>();
			for (const r of existing) all.set(key(r), r);
			for (const r of batch) {
				if (all.has(key(r))) return false; // the primary key
				all.set(key(r), r);
			}
			return batch.every((n) => {
				if (n.hash === null || n.prev === null) return false;
				const want = n.seq === 1 ? G : (all.get(`${n.t}:${n.seq - 1}`)?.hash ?? null);
				if (n.prev !== want) return false;
				if (n.m === null) return n.mprev === null;
				let last: R | undefined;
				for (const r of all.values())
					if (r.t === n.t && r.m === n.m && r.seq < n.seq && (!last || r.seq > last.seq)) last = r;
				return n.mprev === (last?.hash ?? G);
			});
		};
		const meeting = fc.constantFrom<string | null>(null, "m1", "m2");
		const tenantPlan = fc.record({
			lo: fc.integer({ min: 1, max: 4 }),
			existing: fc.array(meeting, { maxLength: 5 }),
			prefix: fc.array(meeting, { maxLength: 4 }),
			after: fc.array(meeting, { maxLength: 6 }),
		});
		const mutation = fc.record({
			row: fc.nat(),
			field: fc.constantFrom("prev", "mprev", "hash", "seq", "none", "none"),
			pick: fc.nat(),
		});
		const lit = (v: string | null) => (v === null ? "NULL" : `'${v}'`);
		try {
			await store.withConnection(async (c) => {
				await fc.assert(
					fc.asyncProperty(
						fc.record({
							a: tenantPlan,
							b: tenantPlan,
							mutations: fc.array(mutation, { maxLength: 2 }),
							order: fc.nat(),
						}),
						async ({ a, b, mutations, order }) => {
							const existing: R[] = [];
							const batch: R[] = [];
							for (const [t, plan] of [["a", a] as const, ["b", b] as const]) {
								for (const [i, m] of plan.existing.entries())
									existing.push({ t, seq: plan.lo + i, m, prev: "x", mprev: null, hash: `${t}e${plan.lo + i}` });
								const hi = plan.lo + plan.existing.length - 1;
								// A valid batch: a purged prefix written again from genesis, and/or rows after the head.
								const rows = [
									...plan.prefix.map((m, i) => ({ m, seq: 1 + i })),
									...plan.after.map((m, i) => ({ m, seq: hi + 1 + i })),
								];
								for (const { m, seq } of rows) batch.push({ t, seq, m, prev: null, mprev: null, hash: `${t}n${seq}` });
								const all = [...existing, ...batch].filter((r) => r.t === t);
								for (const n of batch.filter((r) => r.t === t)) {
									n.prev = n.seq === 1 ? G : (all.find((r) => r.seq === n.seq - 1)?.hash ?? G);
									const before = all.filter((r) => r.m === n.m && r.seq < n.seq).sort((x, y) => y.seq - x.seq)[0];
									n.mprev = n.m === null ? null : (before?.hash ?? G);
								}
							}
							const hashes = [G, null, ...[...existing, ...batch].map((r) => r.hash)];
							for (const mu of mutations) {
								const n = batch[mu.row % Math.max(1, batch.length)];
								if (!n || mu.field === "none") continue;
								if (mu.field === "seq") n.seq += (mu.pick % 3) - 1 || 2;
								else n[mu.field] = hashes[mu.pick % hashes.length] ?? null;
							}
							if (!batch.length) return;
							const shuffled = batch
								.map((r, i) => ({ r, k: (i * 7 + order) % batch.length }))
								.sort((x, y) => x.k - y.k);
							const values = (rs: readonly R[]) =>
								rs
									.map(
										(r) =>
											`(${lit(r.t)}, ${r.seq}, '2026-12-02T00:00:00Z', ${lit(r.m)}, 'gate.opened', NULL, '{}', ${lit(r.prev)}, ${lit(r.mprev)}, ${lit(r.hash)})`,
									)
									.join(",");
							const cols = "(tenant_id, seq, at, meeting_id, type, actor, data, prev_hash, meeting_prev_hash, hash)";
							await c.query("BEGIN");
							try {
								// The chain as it stands (written with the triggers off: any range, as after a purge).
								await c.query("SET LOCAL session_replication_role = replica");
								if (existing.length) await c.query(`INSERT INTO events ${cols} VALUES ${values(existing)}`);
								await c.query("SET LOCAL session_replication_role = origin");
								const ok = await c.query(`INSERT INTO events ${cols} VALUES ${values(shuffled.map((x) => x.r))}`).then(
									() => true,
									(e: Error) => {
										if (!/extend its tenant chain|duplicate key/.test(e.message)) throw e;
										return false;
									},
								);
								expect(ok).toBe(accepts(existing, batch));
							} finally {
								await c.query("ROLLBACK");
							}
						},
					),
					{ numRuns: 300 },
				);
			});
		} finally {
			await store.close();
		}
	});

	it("refuses a database written by a newer gateway, and migrates only once", async () => {
		const server = await postgresServer();
		const url = await server.createDatabase("newer");
		const first = await Store.open({ url });
		await first.close();
		const again = await Store.open({ url }); // idempotent
		expect(await again.schemaVersion()).toBe(SCHEMA_VERSION);
		await sql`UPDATE consentry_schema SET version = ${SCHEMA_VERSION + 5}`.execute(again.db);
		await again.close();
		const refused = await Store.open({ url }).then(
			() => undefined,
			(e: unknown) => e,
		);
		expect(refused).toBeInstanceOf(ConfigError);
		expect(String((refused as Error).message)).toMatch(/newer consentry/);
	});

	it("nodes starting at once migrate the schema once (an advisory lock)", async () => {
		const server = await postgresServer();
		const url = await server.createDatabase("together");
		const stores = await Promise.all([1, 2, 3].map(() => Store.open({ url })));
		for (const s of stores) expect(await s.schemaVersion()).toBe(SCHEMA_VERSION);
		await Promise.all(stores.map((s) => s.close()));
	});

	it("answers store_unavailable quickly when PostgreSQL cannot be reached", async () => {
		const server = await postgresServer();
		const url = await server.createDatabase("down");
		const store = await Store.open({ url, connectTimeoutMs: 500, poolSize: 1 });
		try {
			// Unreachable: nothing listens there.
			const bad = new URL(url);
			bad.port = String(server.port === 1 ? 2 : 1);
			const refused = await Store.open({ url: bad.toString(), connectTimeoutMs: 500 }).then(
				() => undefined,
				(e: unknown) => e,
			);
			expect(refused).toBeInstanceOf(StoreUnavailableError);
			expect((refused as StoreUnavailableError).status).toBe(503);
			// Hanging (the server stopped answering): the pool's one connection is busy with a query that waits, and
			// the next one is refused within the connect timeout instead of queueing forever.
			server.pause();
			const t0 = Date.now();
			const hung = store.guard(() => sql`SELECT 1`.execute(store.db)).catch((e: unknown) => e);
			const second = await store.guard(() => sql`SELECT 1`.execute(store.db)).catch((e: unknown) => e);
			expect(second).toBeInstanceOf(StoreUnavailableError);
			expect(Date.now() - t0).toBeLessThan(2000);
			server.resume();
			await hung;
			// Back up: everything resumes.
			const ok = await store.guard(() => sql<{ one: number }>`SELECT 1 AS one`.execute(store.db));
			expect(ok.rows[0]?.one).toBe(1);
		} finally {
			server.resume();
			await store.close();
		}
	});
});

describe("Store on sqlite", () => {
	it("answers store_unavailable when another process holds the file's lock past the busy timeout; reads go on; a snapshot sees one state", async () => {
		const file = path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-store-")), "s.db");
		const store = await Store.open({ file, busyTimeoutMs: 200 });
		const other = new BetterSqlite3(file);
		try {
			const write = () =>
				store.guard(() =>
					store.db
						.insertInto("job_leases")
						.values({ name: `n${Math.random()}`, holder: "h", until: 1 })
						.execute(),
				);
			await write();
			other.exec("BEGIN EXCLUSIVE");
			const t0 = Date.now();
			const refused = await write().catch((e: unknown) => e);
			expect(refused).toBeInstanceOf(StoreUnavailableError);
			expect(Date.now() - t0).toBeLessThan(2000);
			// (WAL: reads are not held up by another process's write lock.)
			expect((await store.db.selectFrom("job_leases").selectAll().execute()).length).toBe(1);
			other.exec("ROLLBACK");
			// A snapshot: a write committed by another process meanwhile is not seen inside it.
			const seen = await store.snapshot(async (x) => {
				const before = (await x.selectFrom("job_leases").selectAll().execute()).length;
				other.prepare("INSERT INTO job_leases (name, holder, until) VALUES ('o', 'h', 1)").run();
				return [before, (await x.selectFrom("job_leases").selectAll().execute()).length];
			});
			expect(seen).toEqual([1, 1]);
			await write();
			expect((await store.db.selectFrom("job_leases").selectAll().execute()).length).toBe(3);
		} finally {
			other.close();
			await store.close();
		}
	});
});

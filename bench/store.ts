/**
 * The store layer on both engines (server/store): the statements a join or a start costs, each its own
 * transaction — a meeting start + end (the one-live-meeting unique index decides), a host-seat claim + release —
 * against the engine's bare one-row transaction on the same machine (the floor: an INSERT of one row in its own
 * transaction, no index beyond the key). PostgreSQL: a throwaway server (test/helpers/postgres.ts) with the
 * settings a real one keeps (fsync on, synchronous_commit on), 1 and 16 calls in flight. SQLite: a real file,
 * WAL, synchronous=NORMAL, as the gateway opens it. Medians of runs; stops by itself in under a minute.
 *
 *   node --import tsx bench/store.ts [--runs 3] [--ms 1500]
 *
 * What the pool size (CONSENTRY_DATABASE_POOL_SIZE) changes: PostgreSQL only, one row per pool size, `--in-flight`
 * calls outstanding (more than the smaller pools hold, as a busy gateway's requests are):
 *
 *   node --import tsx bench/store.ts --pools 4,10,20 [--in-flight 32]
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { sql } from "kysely";
import { HostSeats } from "../server/meetings/HostSeats.js";
import { MeetingStore } from "../server/meetings/MeetingStore.js";
import { MeetingSettingsSchema } from "../server/meetings/MeetingTypes.js";
import { Store } from "../server/store/Store.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: {
		runs: { type: "string", default: "3" },
		ms: { type: "string", default: "1500" },
		pools: { type: "string" },
		"in-flight": { type: "string", default: "32" },
	},
});
const runs = Number(values.runs);
const ms = Number(values.ms);
const settings = MeetingSettingsSchema.parse({});

/** Calls per second of `op` with `inFlight` calls outstanding, for `ms`. */
async function rate(op: (i: number) => Promise<unknown>, inFlight: number): Promise<number> {
	let i = 0;
	let done = 0;
	const until = performance.now() + ms;
	const t0 = performance.now();
	await Promise.all(
		Array.from({ length: inFlight }, async () => {
			while (performance.now() < until) {
				await op(i++);
				done++;
			}
		}),
	);
	return (done / (performance.now() - t0)) * 1000;
}

async function measure(name: string, store: Store, inFlight: number): Promise<Record<string, number>> {
	await sql`CREATE TABLE IF NOT EXISTS floor (id BIGINT PRIMARY KEY, body TEXT NOT NULL)`.execute(store.db);
	const meetings = new MeetingStore(store);
	const seats = new HostSeats(store);
	// One meeting per host in flight (a start and its end), so the unique index is checked but never refuses.
	const ids: string[] = [];
	for (let k = 0; k < inFlight; k++)
		ids.push((await meetings.create({ tenantId: "acme", hostSubject: `host${k}`, title: "bench", settings })).id);
	let floorId = 0;
	const out: Record<string, number[]> = { floor: [], startEnd: [], seat: [] };
	for (let r = 0; r < runs; r++) {
		out.floor?.push(
			await rate(
				() => sql`INSERT INTO floor (id, body) VALUES (${floorId++}, ${"x".repeat(200)})`.execute(store.db),
				inFlight,
			),
		);
		const slots = [...ids];
		out.startEnd?.push(
			await rate(async () => {
				const id = slots.pop() as string;
				await meetings.start(id);
				await meetings.end(id);
				slots.push(id);
			}, inFlight),
		);
		out.seat?.push(
			await rate(async (i) => {
				const host = `seat${i % 10_000}`;
				await seats.claim("acme", host, `gw:${i}`, "m");
				await seats.release("acme", host, `gw:${i}`);
			}, inFlight),
		);
	}
	const res = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, median(v)]));
	console.log(
		`${name.padEnd(22)} in flight ${String(inFlight).padStart(2)}: floor ${fmt(res.floor)} tx/s; start+end ${fmt(res.startEnd)}/s (${fmt(2 * (res.startEnd ?? 0))} statements/s, ratio to floor ${((2 * (res.startEnd ?? 0)) / (res.floor ?? 1)).toFixed(2)}); seat claim+release ${fmt(res.seat)}/s`,
	);
	return res as Record<string, number>;
}
const fmt = (x: number | undefined) => Math.round(x ?? 0).toLocaleString("en-US");

console.log(machine());
const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-store-"));
const pg = await startPostgres({ durable: true });
try {
	if (values.pools) {
		const inFlight = Number(values["in-flight"]);
		for (const [i, poolSize] of values.pools.split(",").map(Number).entries()) {
			const store = await Store.open({ url: await pg.createDatabase(`benchpool${i}_${poolSize}`), poolSize });
			await measure(`PostgreSQL, pool ${poolSize}`, store, inFlight);
			await store.close();
		}
	} else {
		const lite = await Store.open({ file: path.join(dir, "store.sqlite") });
		await measure("SQLite (file, WAL)", lite, 1);
		await lite.close();
		for (const inFlight of [1, 16]) {
			const store = await Store.open({ url: await pg.createDatabase(`bench${inFlight}`), poolSize: 16 });
			await measure("PostgreSQL 15 (durable)", store, inFlight);
			await store.close();
		}
	}
} finally {
	await pg.stop();
	rmSync(dir, { recursive: true, force: true });
}

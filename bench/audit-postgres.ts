/**
 * The audit chain on PostgreSQL (a throwaway, durable server: fsync on): the engine's bare one-row transaction rate
 * (the floor), single appends awaited one at a time (ratio to the floor), group commit in one process (appends in
 * flight together), and 3 processes — standing for 3 gateway nodes — writing one tenant's chain at once, with
 * appends in flight (each process batches what arrives together). Medians of runs. Results: docs/benchmarks.md.
 *
 *   node --import tsx bench/audit-postgres.ts [--runs 3] [--single 1000] [--per-process 5000] [--in-flight 64]
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { sql } from "kysely";
import { EventLog } from "../server/audit/EventLog.js";
import { Store } from "../server/store/Store.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: {
		runs: { type: "string", default: "3" },
		single: { type: "string", default: "1000" },
		"per-process": { type: "string", default: "5000" },
		"in-flight": { type: "string", default: "64" },
	},
});
const runs = Number(values.runs);
const SINGLE = Number(values.single);
const PER_PROC = Number(values["per-process"]);
const IN_FLIGHT = Number(values["in-flight"]);
const rate = (count: number, ms: number) => (count / ms) * 1000;
const fmt = (x: number) => Math.round(x).toLocaleString("en-US");

const server = await startPostgres({ durable: true });
const url = await server.createDatabase("bench_audit");
const store = await Store.open({ url });
const log = await EventLog.open(store);
let n = 0;
const entry = () => {
	const i = n++;
	return {
		type: "gate.opened" as const,
		tenantId: "acme",
		meetingId: `meeting${i % 50}`,
		actor: `acme:user${i % 200}`,
		data: { peerId: `peer-${i % 997}`, producerId: `prod-${i % 5000}`, kind: "audio", reason: "acknowledged" },
	};
};

try {
	await sql`CREATE TABLE floor (tenant_id TEXT NOT NULL, seq BIGINT NOT NULL, meeting_id TEXT, body TEXT,
		PRIMARY KEY (tenant_id, seq))`.execute(store.db);
	const floor: number[] = [];
	for (let r = 0, i = 0; r < runs; r++) {
		const t = performance.now();
		for (let k = 0; k < SINGLE; k++) {
			const seq = ++i;
			await store.db.transaction().execute(async (trx) => {
				await sql`INSERT INTO floor VALUES ('acme', ${seq}, ${`meeting${seq % 50}`}, ${"x".repeat(400)})`.execute(trx);
			});
		}
		floor.push(rate(SINGLE, performance.now() - t));
	}
	console.log(`floor, bare 1-row transactions: ${floor.map(fmt).join(", ")} /s → median ${fmt(median(floor))}`);

	const single: number[] = [];
	for (let r = 0; r < runs; r++) {
		const t = performance.now();
		for (let i = 0; i < SINGLE; i++) {
			const e = entry();
			await log.append(e.type, e);
		}
		single.push(rate(SINGLE, performance.now() - t));
	}
	console.log(
		`single appends, each awaited: ${single.map(fmt).join(", ")} /s → median ${fmt(median(single))} (ratio to the floor ${(median(single) / median(floor)).toFixed(2)})`,
	);

	const grouped: number[] = [];
	let perCommit = 0;
	for (let r = 0; r < runs; r++) {
		const c0 = log.commits;
		const t = performance.now();
		let left = PER_PROC;
		await Promise.all(
			Array.from({ length: IN_FLIGHT }, async () => {
				while (left-- > 0) {
					const e = entry();
					await log.append(e.type, e);
				}
			}),
		);
		grouped.push(rate(PER_PROC, performance.now() - t));
		perCommit = PER_PROC / (log.commits - c0);
	}
	console.log(
		`group commit, 1 process, ${IN_FLIGHT} appends in flight: ${grouped.map(fmt).join(", ")} /s → median ${fmt(median(grouped))} (${perCommit.toFixed(1)} entries per commit)`,
	);

	const multi: number[] = [];
	let multiPerCommit = 0;
	for (let r = 0; r < runs; r++) {
		const startAt = Date.now() + 3000;
		const res = await Promise.all(
			[0, 1, 2].map((w) =>
				promisify(execFile)(process.execPath, [
					"--import",
					"tsx",
					fileURLToPath(new URL("../server/audit/appendRace.child.ts", import.meta.url)),
					url,
					`bench${r}w${w}`,
					String(PER_PROC),
					String(startAt),
					"0",
					String(IN_FLIGHT),
					"one",
				]).then(({ stdout }) => JSON.parse(stdout) as { appended: number; ms: number; commits: number; cpuMs: number }),
			),
		);
		multi.push(rate(3 * PER_PROC, Math.max(...res.map((x) => x.ms))));
		multiPerCommit = (3 * PER_PROC) / res.reduce((sum, x) => sum + x.commits, 0);
		console.error(
			`run ${r}: ${res.map((x) => `${x.appended} in ${x.ms} ms, ${x.commits} commits, ${x.cpuMs} ms of CPU`).join("; ")}`,
		);
	}
	console.log(
		`3 processes, one tenant's chain, ${IN_FLIGHT} in flight each: ${multi.map(fmt).join(", ")} /s → median ${fmt(median(multi))} (${multiPerCommit.toFixed(0)} entries per commit)`,
	);
	const [v] = await log.verify({ tenantId: "acme" });
	console.log(`chain after the runs: ${v?.entries} entries, verifies: ${v?.ok}`);
	console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}`);
} finally {
	await store.close();
	await server.stop();
}

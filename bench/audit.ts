/**
 * Audit trail: append rate (single appends, each its own IMMEDIATE transaction,
 * and batches), the append rate of 4 processes sharing the file, then the time
 * to verify a tenant chain of 1,000,000 entries and to export one meeting from
 * it. Medians of runs, on a real database file (WAL, synchronous=NORMAL, as the
 * gateway opens it). Stops by itself in about 1.5 minutes (results: docs/benchmarks.md).
 *
 *   node --import tsx bench/audit.ts [--runs 5] [--entries 1000000]
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { type AppendInput, EventLog, type EventType } from "../server/audit/EventLog.js";
import { verifyExport } from "../server/audit/verify.js";
import { openDatabase } from "../server/store/Database.js";
import { Store } from "../server/store/Store.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: {
		runs: { type: "string", default: "5" },
		entries: { type: "string", default: "1000000" },
	},
});
const runs = Number(values.runs);
const total = Number(values.entries);
const SINGLE = 20_000;
const BATCH_RUN = 100_000;
const BATCH = 100;

const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-audit-"));
const file = path.join(dir, "audit.db");
const store = await Store.open({ file });
const log = await EventLog.open(store);
const db = openDatabase(file); // a second connection, for the floor's bare transactions

// Entries shaped like the gateway's: 200 people, 50 meetings, small data, a person named in some.
let n = 0;
function next(): AppendInput & { type: EventType } {
	const i = n++;
	return {
		type: i % 7 === 0 ? "lobby.admitted" : "gate.opened",
		tenantId: "acme",
		meetingId: `meeting${String(i % 50).padStart(5, "0")}`,
		actor: `acme:user${i % 200}`,
		data:
			i % 7 === 0
				? { peerId: `peer-${i % 997}`, person: `guest:${i % 300}` }
				: { peerId: `peer-${i % 997}`, producerId: `prod-${i % 5000}`, kind: "audio", reason: "acknowledged" },
	};
}
const rate = (count: number, ms: number) => (count / ms) * 1000;
const fmt = (x: number) => Math.round(x).toLocaleString("en-US");

// The floor under single appends on this disk: one bare row per IMMEDIATE transaction, no hashing, no trigger.
db.exec(`CREATE TABLE floor (tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, meeting_id TEXT, body TEXT,
	PRIMARY KEY (tenant_id, seq)) WITHOUT ROWID; CREATE INDEX floor_m ON floor (tenant_id, meeting_id, seq);`);
const floorInsert = db.prepare("INSERT INTO floor VALUES ('acme', ?, ?, ?)");
const floorTx = db.transaction((i: number) => floorInsert.run(i, `meeting${i % 50}`, "x".repeat(400)));
const floor: number[] = [];
for (let r = 0, i = 0; r < runs; r++) {
	const t = performance.now();
	for (let k = 0; k < SINGLE; k++) floorTx.immediate(++i);
	floor.push(rate(SINGLE, performance.now() - t));
}
console.log(`floor, bare 1-row transactions: ${floor.map(fmt).join(", ")} rows/s → median ${fmt(median(floor))}`);

const single: number[] = [];
for (let r = 0; r < runs; r++) {
	const t = performance.now();
	for (let i = 0; i < SINGLE; i++) {
		const e = next();
		await log.append(e.type, e);
	}
	single.push(rate(SINGLE, performance.now() - t));
}
console.log(`single appends: ${single.map(fmt).join(", ")} entries/s → median ${fmt(median(single))}`);

const batched: number[] = [];
for (let r = 0; r < runs; r++) {
	const t = performance.now();
	for (let i = 0; i < BATCH_RUN; i += BATCH) await log.appendMany(Array.from({ length: BATCH }, next));
	batched.push(rate(BATCH_RUN, performance.now() - t));
}
console.log(`batches of ${BATCH}: ${batched.map(fmt).join(", ")} entries/s → median ${fmt(median(batched))}`);

// 4 processes appending single entries (and a few batches of 5) to the same file at once, no pauses.
const PER_PROC = 5_000;
const multi: number[] = [];
for (let r = 0; r < Math.min(runs, 3); r++) {
	const startAt = Date.now() + 2500;
	const res = await Promise.all(
		[0, 1, 2, 3].map((w) =>
			promisify(execFile)(process.execPath, [
				"--import",
				"tsx",
				fileURLToPath(new URL("../server/audit/appendRace.child.ts", import.meta.url)),
				file,
				`bench${r}w${w}`,
				String(PER_PROC),
				String(startAt),
				"0",
			]).then(({ stdout }) => JSON.parse(stdout) as { appended: number; ms: number }),
		),
	);
	multi.push(rate(4 * PER_PROC, Math.max(...res.map((x) => x.ms))));
}
console.log(`4 processes, one file: ${multi.map(fmt).join(", ")} entries/s → median ${fmt(median(multi))}`);

// Fill the tenant chain up to `total`, then verify it.
const fillStart = performance.now();
let have = (await log.head("acme"))?.seq ?? 0;
while (have < total) {
	const k = Math.min(1000, total - have);
	await log.appendMany(Array.from({ length: k }, next));
	have += k;
}
const fillS = (performance.now() - fillStart) / 1000;
console.log(
	`filled to ${fmt(have)} acme entries in ${fillS.toFixed(1)} s; file ${fmt(statSync(file).size / 2 ** 20)} MiB`,
);

const verifyS: number[] = [];
for (let r = 0; r < 3; r++) {
	const t = performance.now();
	const [res] = await log.verify({ tenantId: "acme" });
	verifyS.push((performance.now() - t) / 1000);
	if (!res?.ok || res.entries !== have) throw new Error(`verify failed: ${JSON.stringify(res)}`);
}
console.log(
	`verify ${fmt(have)} entries: ${verifyS.map((s) => s.toFixed(2)).join(", ")} s → median ${median(verifyS).toFixed(2)} s (${fmt(have / median(verifyS))} entries/s)`,
);

const exportS: number[] = [];
let exportEntries = 0;
for (let r = 0; r < 3; r++) {
	const t = performance.now();
	const text = await log.exportMeeting("acme", "meeting00007");
	const mid = performance.now();
	const res = verifyExport(text);
	exportS.push((mid - t) / 1000);
	exportEntries = res.entries;
	if (!res.ok) throw new Error(`export verify failed: ${JSON.stringify(res.break)}`);
}
console.log(`export one meeting (${fmt(exportEntries)} entries) from it: median ${median(exportS).toFixed(2)} s`);

console.log(`\n${new Date().toISOString().slice(0, 10)} — ${machine()}`);
db.close();
await store.close();
rmSync(dir, { recursive: true, force: true });

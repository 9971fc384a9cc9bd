/**
 * Data-subject requests (server/privacy/DataSubjectService.ts) on the store alone: access, export and erasure of one
 * person who appears in N audit entries (and hosts N/10 meetings), in a tenant whose chain also holds as many
 * entries of other people — the person's entries are found by pseudonym across the whole tenant chain, so the
 * chain's size is what costs. No bucket (deleteObjects false): the bucket's cost is one list per meeting and one
 * read per session, S3's. SQLite (a real file, WAL) and PostgreSQL (a throwaway durable server). Each run a new
 * person; medians of runs.
 *
 * Then a burst (issue 14 faults): `--burst` erasure requests (by subject) and a quarter as many exports of one
 * person with 1,000 entries, all at once: the time until every one is answered, against one erasure alone of an
 * equal person in the same run; checks that one erasure took effect (one `person.erased`) and that each export
 * is whole or empty.
 *
 *   node --import tsx bench/dsr.ts [--runs 3] [--sizes 1000,10000] [--burst 20] [--no-postgres]
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { EventLog } from "../server/audit/EventLog.js";
import { createLogger } from "../server/logger.js";
import { MeetingStore } from "../server/meetings/MeetingStore.js";
import { MeetingSettingsSchema } from "../server/meetings/MeetingTypes.js";
import { DataSubjectService } from "../server/privacy/DataSubjectService.js";
import { Store } from "../server/store/Store.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: {
		runs: { type: "string", default: "3" },
		sizes: { type: "string", default: "1000,10000" },
		"no-postgres": { type: "boolean", default: false },
		burst: { type: "string", default: "20" },
	},
});
const runs = Number(values.runs);
const sizes = String(values.sizes).split(",").map(Number);
const settings = MeetingSettingsSchema.parse({});
const by = { role: "admin" as const, tenantId: "acme", subject: "it-admin" };

/** A person with `n` entries over n/10 meetings they host, and `n` entries of others in between. */
async function populate(store: Store, events: EventLog, subject: string, n: number): Promise<void> {
	const meetings = new MeetingStore(store);
	const ids: string[] = [];
	for (let i = 0; i < Math.max(1, n / 10); i++)
		ids.push((await meetings.create({ tenantId: "acme", hostSubject: subject, title: "bench", settings })).id);
	for (let i = 0; i < n; i += 1000) {
		const batch = [];
		for (let k = i; k < Math.min(n, i + 1000); k++) {
			const meetingId = ids[k % ids.length] as string;
			batch.push({
				type: "person.joined" as const,
				tenantId: "acme",
				meetingId,
				actor: `acme:${subject}`,
				data: { peerId: `p${k}` },
			});
			batch.push({
				type: "host.muted" as const,
				tenantId: "acme",
				meetingId,
				actor: `acme:other${k % 50}`,
				data: { peerId: `q${k}`, kind: "audio" },
			});
		}
		await events.appendMany(batch);
	}
}

async function measure(name: string, store: Store): Promise<void> {
	const events = await EventLog.open(store);
	const dsr = await DataSubjectService.create({
		store,
		events,
		targets: undefined,
		endpointPolicy: { allowHttp: true, allowPrivate: true },
		log: createLogger("silent"),
	});
	for (const n of sizes) {
		const t: Record<string, number[]> = { access: [], export: [], erase: [] };
		let chain = 0;
		for (let r = 0; r < runs; r++) {
			const subject = `p${n}_${r}`;
			await populate(store, events, subject, n);
			chain = (await events.head("acme"))?.seq ?? 0;
			let t0 = performance.now();
			const a = await dsr.access("acme", { subject }, by);
			t.access?.push(performance.now() - t0);
			if (a.counts.auditEntries !== n) throw new Error(`access found ${a.counts.auditEntries} entries, not ${n}`);
			t0 = performance.now();
			const doc = await dsr.export("acme", { subject }, by);
			t.export?.push(performance.now() - t0);
			if (doc.audit.entries.length !== n) throw new Error("export incomplete");
			t0 = performance.now();
			const e = await dsr.erase("acme", { person: { subject }, deleteObjects: false }, by);
			t.erase?.push(performance.now() - t0);
			if (e.state !== "done" || e.steps.rows?.meetings !== Math.max(1, n / 10)) throw new Error("erasure incomplete");
		}
		const f = (k: string) => `${median(t[k] ?? []).toFixed(0)} ms`;
		console.log(
			`${name.padEnd(24)} ${String(n).padStart(6)} entries (chain ${chain}): access ${f("access")}, export ${f("export")}, erase ${f("erase")}`,
		);
	}
	const burst = Number(values.burst);
	if (burst > 0) {
		const n = 1000;
		const one: number[] = [];
		const all: number[] = [];
		for (let r = 0; r < runs; r++) {
			const alone = `b${r}_alone`;
			const crowd = `b${r}_crowd`;
			await populate(store, events, alone, n);
			await populate(store, events, crowd, n);
			let t0 = performance.now();
			await dsr.erase("acme", { person: { subject: alone }, deleteObjects: false }, by);
			one.push(performance.now() - t0);
			const psn = await events.pseudonym("acme", `acme:${crowd}`);
			t0 = performance.now();
			const [erasures, exports] = await Promise.all([
				Promise.all(
					Array.from({ length: burst }, () =>
						dsr.erase("acme", { person: { subject: crowd }, deleteObjects: false }, by),
					),
				),
				Promise.all(Array.from({ length: Math.ceil(burst / 4) }, () => dsr.export("acme", { subject: crowd }, by))),
			]);
			all.push(performance.now() - t0);
			const effective = (await events.list({ tenantId: "acme", type: "person.erased", limit: 100_000 })).filter(
				(e) => e.data.pseudonym === psn,
			);
			if (effective.length !== 1 || erasures.some((e) => e.state !== "done")) throw new Error("burst: not one erasure");
			if (exports.some((d) => d.audit.entries.length !== (d.held ? n : 0))) throw new Error("burst: a half export");
		}
		console.log(
			`${name.padEnd(24)} burst of ${burst} erasures + ${Math.ceil(burst / 4)} exports of one person (${n} entries): all answered in ${median(all).toFixed(0)} ms; one erasure alone ${median(one).toFixed(0)} ms`,
		);
	}
	await events.settled();
}

console.log(machine());
const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-dsr-"));
try {
	const lite = await Store.open({ file: path.join(dir, "store.sqlite") });
	await measure("SQLite (file, WAL)", lite);
	await lite.close();
	if (!values["no-postgres"]) {
		const pg = await startPostgres({ durable: true });
		try {
			const store = await Store.open({ url: await pg.createDatabase("benchdsr"), poolSize: 8, queryTimeoutMs: 60_000 });
			await measure("PostgreSQL (durable)", store);
			await store.close();
		} finally {
			await pg.stop();
		}
	}
} finally {
	rmSync(dir, { recursive: true, force: true });
}
console.log(machine());

/**
 * The membership check of the transcript link and the playback page ("was this person in the meeting?"), asked on
 * every request — a transcript page following a running session asks every 2–10 s. Before: every entry naming the
 * person, read from the whole tenant chain (`listForPerson`: a scan of the tenant's entries), then searched for their
 * `person.joined`. Now: `EventLog.joined`, one probe of the partial index `events_joins` (migration 13). Both answers are compared on
 * every call. A tenant chain of `--entries` entries (SQLite file), 200 people over 50 meetings; medians of `--runs`.
 *
 *   node --import tsx bench/membership.ts [--entries 200000] [--runs 30]
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { EventLog } from "../server/audit/EventLog.js";
import { Store } from "../server/store/Store.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: { entries: { type: "string", default: "200000" }, runs: { type: "string", default: "30" } },
});
const entries = Number(values.entries);
const runs = Number(values.runs);
const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-membership-"));
const store = await Store.open({ file: path.join(dir, "audit.db") });
const log = await EventLog.open(store);
try {
	for (let i = 0; i < entries; i += 1000) {
		await log.appendMany(
			Array.from({ length: Math.min(1000, entries - i) }, (_, k) => {
				const j = i + k;
				return {
					type: j % 10 === 0 ? ("person.joined" as const) : ("gate.opened" as const),
					tenantId: "acme",
					meetingId: `meeting${j % 50}`,
					actor: `acme:user${j % 200}`,
					data: { peerId: `peer-${j % 997}`, kind: "audio" },
				};
			}),
		);
	}
	const before: number[] = [];
	const after: number[] = [];
	for (let r = 0; r < runs; r++) {
		const person = `acme:user${(r * 7) % 200}`;
		const meeting = `meeting${(r * 3) % 50}`;
		let t = performance.now();
		const old = (await log.listForPerson("acme", person)).some(
			(e) => e.type === "person.joined" && e.meetingId === meeting,
		);
		before.push(performance.now() - t);
		t = performance.now();
		const now = await log.joined("acme", person, meeting);
		after.push(performance.now() - t);
		if (old !== now) throw new Error(`answers differ for ${person} in ${meeting}: ${old} vs ${now}`);
	}
	console.log(
		`| ${entries.toLocaleString("en-US")} entries | ${median(before).toFixed(2)} ms | ${median(after).toFixed(3)} ms | ${(median(before) / median(after)).toFixed(0)}× | (${machine()}, ${runs} runs) |`,
	);
} finally {
	await store.close();
	if (process.env.KEEP) console.log(dir);
	else rmSync(dir, { recursive: true, force: true });
}

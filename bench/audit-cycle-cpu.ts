/**
 * The audit trail's CPU per entry in the notice gate's cycle, in this process (no sockets): per cycle, one
 * `appendMany` shaped like a recording start (`session.on` + one `notice.sent` per person) and then one `append` per
 * person shaped like its `notice.acknowledged`, as 500 acknowledgements arriving together make them (group commit).
 * Measured: this process's CPU per cycle (the SQLite work runs on this thread; on PostgreSQL only the gateway's
 * side is counted), median and minimum of the cycles after the warm-ups. The gateway's whole cycle is
 * `bench:capture`; the transport's floor `bench:signaling-floor`.
 *
 *   node --import tsx bench/audit-cycle-cpu.ts [--engine sqlite|postgres] [--people 500] [--cycles 10]
 *     [--start per-person|one-entry] [--new-persons]
 *
 * `--start one-entry`: the start is `session.on` + the one `notices.sent` the gateway writes now (data.recipients:
 * [{person, peerId, noticeId, locale}], data.texts) instead of one `notice.sent` per person (502 entries, not 1,001).
 * (The gateway also records acknowledgements that wait for a commit in one `notices.acknowledged`: not modelled here,
 * this bench measures the trail's cost per entry.)
 * `--new-persons`: every cycle names persons never seen before (guests: each gets a new pseudonym secret).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { EventLog } from "../server/audit/EventLog.js";
import { Store } from "../server/store/Store.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: {
		engine: { type: "string", default: "sqlite" },
		people: { type: "string", default: "500" },
		cycles: { type: "string", default: "10" },
		start: { type: "string", default: "per-person" },
		"new-persons": { type: "boolean", default: false },
	},
});
const oneEntry = values.start === "one-entry";
const engine = values.engine === "postgres" ? "postgres" : "sqlite";
const people = Number(values.people);
const cycles = Number(values.cycles);
const WARMUP = 4;
const loadAtStart = os.loadavg()[0] ?? 0;

const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-audit-cycle-"));
const pg = engine === "postgres" ? await startPostgres({ durable: true }) : undefined;
const store = pg
	? await Store.open({ url: await pg.createDatabase("audit_cycle") })
	: await Store.open({ file: path.join(dir, "store.sqlite") });
const log = await EventLog.open(store);
const named = (r: number) =>
	Array.from({ length: people }, (_, i) => ({
		person: values["new-persons"] ? `bench:guest-${r}-${i}` : `bench:user-${i}`,
		peerId: randomUUID(),
	}));
let persons = named(0);
const cpu: number[] = [];
try {
	for (let r = 0; r < cycles + WARMUP; r++) {
		if (values["new-persons"]) persons = named(r);
		const sessionId = randomUUID();
		const notices = persons.map(() => randomUUID());
		const c0 = process.cpuUsage();
		const start = log.appendMany([
			{
				type: "session.on",
				tenantId: "bench",
				meetingId: "m1",
				actor: "bench:host",
				data: { kind: "recording", sessionId },
			},
			...(oneEntry
				? [
						{
							type: "notices.sent" as const,
							tenantId: "bench",
							meetingId: "m1",
							data: {
								kind: "recording",
								sessionId,
								via: "session_start",
								consentRequired: false,
								texts: { en: "a".repeat(64) },
								recipients: persons.map((p, i) => ({
									person: p.person,
									peerId: p.peerId,
									noticeId: notices[i] as string,
									locale: "en",
								})),
							},
						},
					]
				: persons.map((p, i) => ({
						type: "notice.sent" as const,
						tenantId: "bench",
						meetingId: "m1",
						data: {
							kind: "recording",
							sessionId,
							noticeId: notices[i] as string,
							person: p.person,
							peerId: p.peerId,
							via: "session_start",
							locale: "en",
							textSha256: "a".repeat(64),
							consentRequired: false,
						},
					}))),
		]);
		const acks = persons.map((p, i) =>
			log.append("notice.acknowledged", {
				tenantId: "bench",
				meetingId: "m1",
				actor: p.person,
				data: { kind: "recording", sessionId, noticeId: notices[i] as string, peerId: p.peerId },
			}),
		);
		await start;
		await Promise.all(acks);
		const c = process.cpuUsage(c0);
		if (r >= WARMUP) cpu.push((c.user + c.system) / 1000);
	}
} finally {
	await store.close();
	await pg?.stop();
	rmSync(dir, { recursive: true, force: true });
}
const entries = oneEntry ? people + 2 : 2 * people + 1;
const med = median(cpu);
const min = Math.min(...cpu);
process.stdout.write(
	`| ${engine}${oneEntry ? ", one start entry" : ""}${values["new-persons"] ? ", new persons" : ""} | ${machine()} (${loadAtStart.toFixed(1)} at the start) | ${entries} | ${med.toFixed(1)} ms | ${min.toFixed(1)} ms | ${((med / entries) * 1000).toFixed(1)} µs | ${((min / entries) * 1000).toFixed(1)} µs |\n`,
);

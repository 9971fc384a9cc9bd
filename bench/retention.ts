/**
 * Issue 14 retention: (1) the purge of 100,000 old audit entries of one tenant (the retention job: batches of 5,000,
 * a checkpoint per batch, meetings whose last entry went deleted too) on SQLite (a file) and PostgreSQL (a throwaway
 * server), time and entries/s, then a full verify of what remains; (2) what the gateway's own log files cost per
 * line: the logger writing to stdout only vs stdout + the daily files (CONSENTRY_LOG_DIR), in child processes whose
 * stdout is /dev/null, rounds alternating. Results: docs/benchmarks.md.
 *
 *   node --import tsx bench/retention.ts [--entries 100000] [--lines 50000] [--rounds 5] [--no-postgres]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { EventLog } from "../server/audit/EventLog.js";
import { createLogger } from "../server/logger.js";
import { LogFiles } from "../server/privacy/LogFiles.js";
import { RetentionService } from "../server/retention/RetentionService.js";
import { Store } from "../server/store/Store.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: {
		entries: { type: "string", default: "100000" },
		lines: { type: "string", default: "50000" },
		rounds: { type: "string", default: "5" },
		"no-postgres": { type: "boolean", default: false },
		child: { type: "string" },
	},
});
const LINES = Number(values.lines);

// Child: log LINES request-like lines (every 50th a security line) and report ns per line on stderr.
if (values.child) {
	const dir = values.child === "files" ? mkdtempSync(path.join(os.tmpdir(), "consentry-bench-logs-")) : undefined;
	const files = dir ? new LogFiles({ dir, retentionDays: 14, prefix: "consentry-bench" }) : undefined;
	const log = createLogger("info", files).child({ component: "http" });
	const t = process.hrtime.bigint();
	for (let i = 0; i < LINES; i++) {
		if (i % 50 === 0)
			log.warn(
				{
					method: "GET",
					path: "/api/meetings",
					status: 401,
					ms: 1,
					client: "203.0.113.0/24",
					address: "203.0.113.7",
					security: true,
				},
				"request refused",
			);
		else log.info({ method: "GET", path: "/api/meetings", status: 200, ms: 1, client: "203.0.113.0/24" }, "request");
	}
	const ns = Number(process.hrtime.bigint() - t) / LINES;
	files?.close();
	if (dir) rmSync(dir, { recursive: true, force: true });
	process.stderr.write(JSON.stringify({ ns }));
	process.exit(0);
}

const ENTRIES = Number(values.entries);
const DAY = 86_400_000;
const log = createLogger("silent");
console.log(`machine: ${machine()}, ${new Date().toISOString()}`);

async function purgeBench(engine: "sqlite" | "postgres"): Promise<void> {
	let stop: (() => Promise<void>) | undefined;
	let store: Store;
	let dir: string | undefined;
	if (engine === "postgres") {
		const pg = await startPostgres();
		stop = () => pg.stop();
		store = await Store.open({ url: await pg.createDatabase("bench_retention") });
	} else {
		dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-ret-"));
		store = await Store.open({ file: path.join(dir, "store.sqlite") });
	}
	try {
		const clock = { t: Date.parse("2026-01-01T00:00:00Z") };
		const events = await EventLog.open(store, { now: () => clock.t });
		const t0 = performance.now();
		for (let i = 0; i < ENTRIES; i += 2000) {
			await events.appendMany(
				Array.from({ length: Math.min(2000, ENTRIES - i) }, (_, k) => ({
					type: "gate.opened" as const,
					tenantId: "acme",
					meetingId: `m${Math.floor((i + k) / 100)}`, // 100 entries per meeting: 1,000 meetings
					actor: `acme:user${(i + k) % 300}`,
					data: { peerId: `peer-${(i + k) % 997}`, kind: "audio", reason: "acknowledged" },
				})),
			);
		}
		const seedMs = performance.now() - t0;
		clock.t += 400 * DAY;
		await events.append("meeting.started", { tenantId: "acme", meetingId: "recent", actor: "acme:host" });
		const service = new RetentionService({
			store,
			events,
			tenants: () => [{ id: "acme", days: 365 }],
			gatewayId: "bench",
			intervalMs: 0,
			now: () => clock.t,
			log,
		});
		const report = await service.runOnce();
		const ms = report?.ms ?? Number.NaN;
		const v0 = performance.now();
		const [v] = await events.verify({ tenantId: "acme" });
		const verifyMs = performance.now() - v0;
		console.log(
			`${engine}: seeded ${ENTRIES.toLocaleString("en-US")} entries in ${(seedMs / 1000).toFixed(1)} s; purge ${report?.entries.toLocaleString("en-US")} entries in ${(ms / 1000).toFixed(2)} s = ${Math.round(((report?.entries ?? 0) / ms) * 1000).toLocaleString("en-US")} entries/s (${report?.tenants[0]?.meetings} meetings); verify of what remains: ${v?.ok ? "ok" : "BROKEN"}, ${v?.entries} entries, ${verifyMs.toFixed(0)} ms; load ${os.loadavg()[0]?.toFixed(1)}`,
		);
	} finally {
		await store.close();
		await stop?.();
		if (dir) rmSync(dir, { recursive: true, force: true });
	}
}

await purgeBench("sqlite");
if (!values["no-postgres"]) await purgeBench("postgres");

// The log writer's cost per line.
const self = fileURLToPath(import.meta.url);
const sample = (mode: "stdout" | "files"): number => {
	const r = spawnSync(process.execPath, ["--import", "tsx", self, "--child", mode, "--lines", String(LINES)], {
		stdio: ["ignore", "ignore", "pipe"],
		encoding: "utf8",
	});
	return (JSON.parse(r.stderr.trim().split("\n").at(-1) as string) as { ns: number }).ns;
};
const stdoutOnly: number[] = [];
const withFiles: number[] = [];
for (let r = 0; r < Number(values.rounds); r++) {
	if (r % 2) {
		withFiles.push(sample("files"));
		stdoutOnly.push(sample("stdout"));
	} else {
		stdoutOnly.push(sample("stdout"));
		withFiles.push(sample("files"));
	}
}
const a = median(stdoutOnly);
const b = median(withFiles);
console.log(
	`log line (${LINES.toLocaleString("en-US")} lines, ${values.rounds} alternating rounds, medians): stdout only ${(a / 1000).toFixed(2)} µs, stdout + files ${(b / 1000).toFixed(2)} µs (+${((b - a) / 1000).toFixed(2)} µs); load ${os.loadavg()[0]?.toFixed(1)}`,
);

/**
 * The operator's reach (docs/operator.md), on two gateway instances sharing one SQLite store file (separate store
 * connections: what they share is the file and its change feed, as two processes would):
 *
 * 1. Suspend a tenant with N live meetings × P people, all held by instance B, through instance A's operator API:
 *    from the request to each person's `ejected` event; the last person per run, and p99 over everyone. Meanwhile
 *    people of another tenant join B; their join latency is compared with the same joins on an idle gateway
 *    (same run).
 * 2. A tenant change (PUT on A) until B's copy has it: p50/p99 over many changes.
 *
 * `--engine postgres`: the two instances on one throwaway durable PostgreSQL instead (each its own pool and LISTEN
 * connection); `--bus off` then detaches B from the cluster bus, so changes reach it by the poll alone (the
 * "before" of the bus, same run conditions).
 *
 *   npm run bench:operator [-- --meetings 20 --people 10 --runs 3 --changes 50 --engine sqlite|postgres --bus on|off]
 */
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadConfig } from "../server/config.js";
import { Gateway } from "../server/Gateway.js";
import { createLogger } from "../server/logger.js";
import { CROWD_ON_LOOPBACK } from "../test/helpers/gateway.js";
import { testOperator } from "../test/helpers/operator.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { connect, type RawClient } from "../test/helpers/signaling.js";
import { AUDIENCE, testTenant, writeTenantsFile } from "../test/helpers/tenants.js";
import { machine, median, percentile } from "./stats.js";

const { values } = parseArgs({
	options: {
		meetings: { type: "string", default: "20" },
		people: { type: "string", default: "10" },
		runs: { type: "string", default: "3" },
		changes: { type: "string", default: "50" },
		"poll-ms": { type: "string", default: "200" },
		engine: { type: "string", default: "sqlite" },
		bus: { type: "string", default: "on" },
	},
});
const N = Number(values.meetings);
const P = Number(values.people);
const RUNS = Number(values.runs);
const CHANGES = Number(values.changes);

const op = testOperator();
const victim = testTenant("victim");
const bystander = testTenant("bystander");
const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-op-"));
const log = createLogger("silent");
const pgServer = values.engine === "postgres" ? await startPostgres({ durable: true }) : undefined;
const databaseUrl = pgServer ? await pgServer.createDatabase("bench_operator") : undefined;
const start = (id: string) =>
	Gateway.create(
		loadConfig({
			...process.env,
			CONSENTRY_HTTP_HOST: "127.0.0.1",
			CONSENTRY_HTTP_PORT: "0",
			CONSENTRY_WORKERS: "1",
			CONSENTRY_DB_FILE: path.join(dir, "store.sqlite"),
			...(databaseUrl ? { CONSENTRY_DATABASE_URL: databaseUrl } : {}),
			CONSENTRY_AUDIENCE: AUDIENCE,
			CONSENTRY_GATEWAY_ID: id,
			CONSENTRY_TENANTS_FILE: writeTenantsFile([victim, bystander]),
			CONSENTRY_OPERATOR_KEYS_FILE: op.keysFile,
			CONSENTRY_OPERATOR_POLL_MS: values["poll-ms"],
			CONSENTRY_RECORDER: "false",
			...CROWD_ON_LOOPBACK,
		}),
		log,
	);
const a = await start("bench-a");
const b = await start("bench-b");
if (values.bus === "off") b.directory.listen(undefined);

async function call(gw: Gateway, method: string, url: string, token: string, body?: unknown) {
	const res = await fetch(`${gw.url}${url}`, {
		method,
		headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
		...(body ? { body: JSON.stringify(body) } : {}),
	});
	const json = (await res.json()) as Record<string, unknown>;
	if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
	return json;
}

/** Schedules and fills N meetings of the victim tenant on B; returns the people. */
async function fill(run: number): Promise<RawClient[]> {
	const people: RawClient[] = [];
	for (let m = 0; m < N; m++) {
		const host = `h${run}-${m}`;
		const mt = (await call(b, "POST", "/api/meetings", victim.token(host), {
			title: "bench",
			settings: { lobby: false, maxParticipants: Math.max(P, 2) },
		})) as { joinCode: string };
		for (let p = 0; p < P; p++) {
			const c = await connect(b.url, p === 0 ? victim.token(host) : victim.token(`p${run}-${m}-${p}`, "participant"));
			await c.call("join", { meetingId: mt.joinCode, displayName: `p${p}` });
			people.push(c);
		}
	}
	return people;
}

/** One bystander joining a meeting on B: connect + join, ms. */
async function bystanderJoins(count: number, joinCode: string): Promise<number[]> {
	const out: number[] = [];
	for (let i = 0; i < count; i++) {
		const t0 = performance.now();
		const c = await connect(b.url, bystander.token(`by-${i}-${Math.random()}`, "participant"));
		await c.call("join", { meetingId: joinCode, displayName: "by" });
		out.push(performance.now() - t0);
		c.close();
	}
	return out;
}

const byHost = "by-host";
const byMeeting = (await call(b, "POST", "/api/meetings", bystander.token(byHost), {
	title: "bystanders",
	settings: { lobby: false, maxParticipants: 500 },
})) as { joinCode: string };
const byHostConn = await connect(b.url, bystander.token(byHost));
await byHostConn.call("join", { meetingId: byMeeting.joinCode, displayName: "host" });
await bystanderJoins(5, byMeeting.joinCode); // warm

const lastOut: number[] = [];
const everyone: number[] = [];
const idleJoins: number[] = [];
const busyJoins: number[] = [];
for (let run = 0; run < RUNS; run++) {
	const people = await fill(run);
	idleJoins.push(...(await bystanderJoins(10, byMeeting.joinCode)));
	const t0 = performance.now();
	const out = people.map((c) => c.next("ejected", 10_000).then(() => performance.now() - t0));
	const suspend = call(a, "POST", "/api/operator/tenants/victim/suspend", op.token(), { reason: `bench run ${run}` });
	const busy = bystanderJoins(10, byMeeting.joinCode);
	const times = await Promise.all(out);
	await suspend;
	busyJoins.push(...(await busy));
	lastOut.push(Math.max(...times));
	everyone.push(...times);
	for (const c of people) c.close();
	await call(a, "POST", "/api/operator/tenants/victim/reinstate", op.token(), { reason: "bench" });
	while (b.tenants.state("victim").state !== "active") await new Promise((r) => setTimeout(r, 5));
	console.log(`run ${run + 1}: ${people.length} people out, last after ${Math.max(...times).toFixed(0)} ms`);
}

// A tenant change reaching the other instance.
const reach: number[] = [];
for (let i = 0; i < CHANGES; i++) {
	const name = `bystander ${i}`;
	const t0 = performance.now();
	await call(a, "PUT", "/api/operator/tenants/bystander", op.token(), { name, reason: "bench" });
	while (b.tenants.get("bystander").name !== name) await new Promise((r) => setTimeout(r, 1));
	reach.push(performance.now() - t0);
	await new Promise((r) => setTimeout(r, Math.random() * 50));
}

byHostConn.close();
await b.close();
await a.close();
await pgServer?.stop();

const f = (x: number) => x.toFixed(0);
console.log(`\nmachine: ${machine()}`);
console.log(
	`${values.engine}${pgServer ? ` (durable), cluster bus ${values.bus}` : ""}; poll interval ${values["poll-ms"]} ms; ${N} meetings × ${P} people, ${RUNS} runs, all on instance B, suspended through A`,
);
console.log(
	`suspend → last person ejected: runs ${lastOut.map(f).join(", ")} ms; all ${everyone.length} ejections: p50 ${f(median(everyone))} ms, p99 ${f(percentile(everyone, 99))} ms`,
);
console.log(
	`other tenant's join (connect + join) on B: idle median ${f(median(idleJoins))} ms, during the suspension ${f(median(busyJoins))} ms (ratio ${(median(busyJoins) / median(idleJoins)).toFixed(2)})`,
);
console.log(
	`tenant change A → B's copy: p50 ${f(median(reach))} ms, p99 ${f(percentile(reach, 99))} ms over ${CHANGES} changes`,
);
process.exit(0);

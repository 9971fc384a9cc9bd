/**
 * Join latency through a cluster redirect vs direct (issue 12 placement; target: p50 ratio ≤ 1.2). Two gateway nodes
 * on one throwaway PostgreSQL (durable: fsync on, as deployed), each with its public URL; a meeting placed on node B.
 * Each sample is what a client does from nothing to "joined": open a signaling connection and send `join`.
 *   direct:   connect to B → join → joined
 *   redirect: connect to A → join → redirect → connect to B → join → joined
 *   lookup:   GET A /api/meetings/{id}/public (it names the node) → connect to B → join → joined — what the browser
 *             client does when the join page looked the meeting up (it does as the ID is typed or in the link)
 * The kinds take turns (same noise for all), each by a new participant. With load: both nodes also hold a busy
 * meeting (`--people` bots each sending a chat message a second), and the machine's load is printed.
 *
 *   npm run bench:redirect [-- --samples 200 --people 20]
 */
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadConfig } from "../server/config.js";
import { Gateway } from "../server/Gateway.js";
import { createLogger } from "../server/logger.js";
import type { JoinAnswer } from "../shared/protocol.js";
import { CROWD_ON_LOOPBACK } from "../test/helpers/gateway.js";
import { freePort } from "../test/helpers/ports.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { connect, type RawClient } from "../test/helpers/signaling.js";
import { AUDIENCE, testTenant, writeTenantsFile } from "../test/helpers/tenants.js";
import { machine, median, percentile } from "./stats.js";

const { values } = parseArgs({
	options: {
		samples: { type: "string", default: "200" },
		people: { type: "string", default: "20" },
	},
});
const SAMPLES = Number(values.samples);
const PEOPLE = Number(values.people);

const acme = testTenant("acme");
const tenantsFile = writeTenantsFile([acme]);
const log = createLogger("silent");
const pg = await startPostgres({ durable: true });
const url = await pg.createDatabase("redirect");
const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-redirect-"));

async function node(id: string): Promise<Gateway> {
	const port = await freePort();
	return Gateway.create(
		loadConfig({
			...process.env,
			CONSENTRY_HTTP_HOST: "127.0.0.1",
			CONSENTRY_HTTP_PORT: String(port),
			CONSENTRY_PUBLIC_URL: `http://127.0.0.1:${port}`,
			CONSENTRY_WORKERS: "1",
			CONSENTRY_DB_FILE: path.join(dir, `${id}.sqlite`),
			CONSENTRY_DATABASE_URL: url,
			CONSENTRY_AUDIENCE: AUDIENCE,
			CONSENTRY_GATEWAY_ID: id,
			CONSENTRY_TENANTS_FILE: tenantsFile,
			CONSENTRY_RECORDER: "false",
			CONSENTRY_METRICS: "false",
			...CROWD_ON_LOOPBACK,
		}),
		log,
	);
}

const a = await node("node-a");
const b = await node("node-b");
const open: RawClient[] = [];

async function createMeeting(gw: Gateway, host: string): Promise<string> {
	const res = await fetch(`${gw.url}/api/meetings`, {
		method: "POST",
		headers: { authorization: `Bearer ${acme.token(host)}`, "content-type": "application/json" },
		body: JSON.stringify({ title: host, settings: { lobby: false } }),
	});
	return ((await res.json()) as { id: string }).id;
}

/** Joins `meetingId` starting at `gw`, following redirects; returns the connection and the nodes it went through. */
const parts = { connect: [] as number[], join: [] as number[] };
async function join(start: string, token: string, meetingId: string, name: string) {
	let t = performance.now();
	let c = await connect(start, token);
	parts.connect.push(performance.now() - t);
	let hops = 0;
	for (;;) {
		t = performance.now();
		const r = await c.req("join", { meetingId, displayName: name });
		parts.join.push(performance.now() - t);
		if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
		const answer = r.data as JoinAnswer;
		if (answer.status !== "redirect") return { client: c, answer, hops };
		hops++;
		c.close();
		t = performance.now();
		c = await connect(answer.redirect.url, token);
		parts.connect.push(performance.now() - t);
	}
}

/** Places a meeting on the wanted node: hosts keep starting meetings through it until one lands there. */
async function meetingOn(gw: Gateway, tag: string): Promise<{ id: string; host: RawClient }> {
	for (let i = 0; ; i++) {
		const host = `${tag}-host-${i}`;
		const id = await createMeeting(gw, host);
		const j = await join(gw.url, acme.token(host), id, host);
		open.push(j.client);
		if (j.answer.status === "joined" && j.answer.cluster?.node === gw.node?.nodeId) return { id, host: j.client };
	}
}

await a.node?.beat();
await b.node?.beat();
// Load: a busy meeting on each node.
const timers: NodeJS.Timeout[] = [];
for (const gw of [a, b]) {
	const busy = await meetingOn(gw, `busy-${gw.node?.nodeId}`);
	for (let i = 0; i < PEOPLE; i++) {
		const j = await join(gw.url, acme.token(`busy-${gw.node?.nodeId}-${i}`, "participant"), busy.id, `p${i}`);
		open.push(j.client);
		const t = setInterval(() => void j.client.req("chat", { text: "busy" }).catch(() => undefined), 1000);
		t.unref();
		timers.push(t);
	}
}
const target = await meetingOn(b, "target");

const direct: number[] = [];
const redirected: number[] = [];
const lookedUp: number[] = [];
const warmup = 10;
for (let i = 0; i < SAMPLES + warmup; i++) {
	const kinds = ["direct", "redirect", "lookup"] as const;
	for (let k = 0; k < 3; k++) {
		const kind = kinds[(i + k) % 3] as (typeof kinds)[number];
		const token = acme.token(`${kind}-${i}`, "participant");
		const t0 = performance.now();
		let start = kind === "direct" ? b.url : a.url;
		if (kind === "lookup") {
			// The client's own path: the join page's lookup on A names the meeting's node; it connects there.
			const pub = (await (await fetch(`${a.url}/api/meetings/${target.id}/public`)).json()) as {
				node?: { url: string };
			};
			start = pub.node?.url ?? a.url;
		}
		const j = await join(start, token, target.id, `${kind} ${i}`);
		const ms = performance.now() - t0;
		if (j.answer.status !== "joined" || j.hops !== (kind === "redirect" ? 1 : 0)) throw new Error(`unexpected ${kind}`);
		if (i >= warmup) (kind === "direct" ? direct : kind === "redirect" ? redirected : lookedUp).push(ms);
		await j.client.call("leave", {});
		j.client.close();
	}
}

const f = (x: number) => x.toFixed(1);
console.log(`machine: ${machine()}`);
console.log(
	`PostgreSQL durable; load: ${PEOPLE} people chatting in a busy meeting on each node; ${SAMPLES} samples each`,
);
console.log(
	`direct   p50 ${f(median(direct))} ms  p90 ${f(percentile(direct, 90))} ms  p99 ${f(percentile(direct, 99))} ms`,
);
console.log(
	`redirect p50 ${f(median(redirected))} ms  p90 ${f(percentile(redirected, 90))} ms  p99 ${f(percentile(redirected, 99))} ms`,
);
console.log(
	`lookup   p50 ${f(median(lookedUp))} ms  p90 ${f(percentile(lookedUp, 90))} ms  p99 ${f(percentile(lookedUp, 99))} ms`,
);
console.log(`p50 ratio redirect/direct: ${(median(redirected) / median(direct)).toFixed(2)} (target ≤ 1.2)`);
console.log(`p50 ratio lookup+direct/direct: ${(median(lookedUp) / median(direct)).toFixed(2)}`);
console.log(
	`parts (all joins): connect p50 ${f(median(parts.connect))} ms, join request p50 ${f(median(parts.join))} ms`,
);
console.log(`load avg at the end: ${os.loadavg()[0]?.toFixed(1)}`);

for (const t of timers) clearInterval(t);
for (const c of open) c.close();
await a.close();
await b.close();
await pg.stop();
process.exit(0);

/**
 * Join latency through a cluster redirect vs direct (issue 12; target: p50 ratio ≤ 1.2). Two gateway nodes (in this
 * process) on one throwaway PostgreSQL (durable: fsync on, as deployed), each with its public URL; a meeting placed on
 * node B. The kinds of path, from nothing to a signaling connection on B:
 *   direct:           connect to B, the meeting named in the handshake (what the browser client does)
 *   direct-unnamed:   connect to B without it (an older client; no store read at the handshake)
 *   redirect:         connect to A → join → redirect answer → connect to B (a client that doesn't name the meeting)
 *   handshake:        connect to A naming the meeting → refused with the redirect → connect to B naming it
 *   lookup:           GET A /api/meetings/{id}/public (it names the node) → connect to B — the browser's join page
 *                     makes this lookup as the ID is typed or read from the link; paid inline here
 * then, by definition:
 *   signaling (default): `join` → `joined`
 *   --full:              the repository's join latency (docs/benchmarks.md "Meetings core: join latency"): a
 *                        mediasoup-client bot on wrtc joins, loads the device, opens a send and a receive transport,
 *                        tells its RTP capabilities, consumes, and stops at the first decoded frame of the host's
 *                        video (the host is a bot publishing VP8 160×120 @ 15 fps + Opus on B)
 * The kinds take turns (same noise for all), each by a new participant. With load: both nodes also hold a busy
 * meeting (`--people` bots each sending a chat message a second), and the machine's load is printed.
 *
 *   npm run bench:redirect [-- --samples 200 --people 20]
 *   npm run bench:redirect -- --full [--samples 30]
 */
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { loadConfig } from "../server/config.js";
import { Gateway } from "../server/Gateway.js";
import { createLogger } from "../server/logger.js";
import { ConnectRedirectSchema, type JoinAnswer, JoinRedirectSchema } from "../shared/protocol.js";
import { CROWD_ON_LOOPBACK } from "../test/helpers/gateway.js";
import { freePort } from "../test/helpers/ports.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { connect, type RawClient } from "../test/helpers/signaling.js";
import { AUDIENCE, testTenant, writeTenantsFile } from "../test/helpers/tenants.js";
import { Bot } from "./bots/Bot.js";
import { SyntheticMedia } from "./bots/media.js";
import { gatewaySignal, type Signal } from "./bots/signal.js";
import { machine, median, percentile } from "./stats.js";

const { values } = parseArgs({
	options: {
		samples: { type: "string" },
		people: { type: "string", default: "20" },
		full: { type: "boolean", default: false },
	},
});
const FULL = values.full;
const SAMPLES = Number(values.samples ?? (FULL ? 30 : 200));
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

/** Joins `meetingId` starting at `gw` (signaling only, no meeting named in the handshake), following redirects. */
async function join(start: string, token: string, meetingId: string, name: string) {
	let c = await connect(start, token);
	let hops = 0;
	for (;;) {
		const r = await c.req("join", { meetingId, displayName: name });
		if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
		const answer = r.data as JoinAnswer;
		if (answer.status !== "redirect") return { client: c, answer, hops };
		hops++;
		c.close();
		c = await connect(answer.redirect.url, token);
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

/** --full: a meeting on `gw` whose host is a bot publishing audio + video. */
async function publishingMeetingOn(gw: Gateway): Promise<{ id: string; host: Bot }> {
	for (let i = 0; ; i++) {
		const host = `target-host-${i}`;
		const id = await createMeeting(gw, host);
		const signal = await gatewaySignal(gw.url, acme.token(host));
		const bot = await Bot.join(signal, id, { displayName: host, send: true, recv: false }).catch(() => undefined);
		if (!bot || !gw.rooms.get(id)) {
			bot?.close();
			signal.close();
			continue;
		}
		await bot.publish(media as SyntheticMedia, { audio: true, video: true, maxVideoBitrate: 150_000 });
		return { id, host: bot };
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
const media = FULL ? new SyntheticMedia({ width: 160, height: 120, fps: 15 }) : undefined;
const target = FULL ? await publishingMeetingOn(b) : await meetingOn(b, "target");
if (FULL) await sleep(1500); // the host's encoder running

const KINDS = ["direct", "direct-unnamed", "redirect", "handshake", "lookup"] as const;
type Kind = (typeof KINDS)[number];

let fallbacks = 0;
/** A signaling connection on the meeting's node, reached the way `kind` says; not joined yet. */
async function reach(kind: Kind, token: string, name: string): Promise<{ signal: Signal; hops: number }> {
	const named = kind === "redirect" || kind === "direct-unnamed" ? {} : { meetingId: target.id };
	let start = kind.startsWith("direct") ? b.url : a.url;
	if (kind === "lookup") {
		const pub = (await (await fetch(`${a.url}/api/meetings/${target.id}/public`)).json()) as { node?: { url: string } };
		start = pub.node?.url ?? a.url;
	}
	try {
		const first = await gatewaySignal(start, token, named);
		if (kind === "handshake") {
			// A could not tell at the handshake (the store was slow to answer): the client sends the join and follows
			// the join-answer redirect, as the browser client does. Counted.
			fallbacks++;
		} else if (kind !== "redirect") return { signal: first, hops: 0 };
		const answer = await first.request("join", { meetingId: target.id, displayName: name });
		const r = JoinRedirectSchema.parse(answer);
		first.close();
		return { signal: await gatewaySignal(r.redirect.url, token, named), hops: 1 };
	} catch (err) {
		const r = ConnectRedirectSchema.safeParse((err as { data?: unknown }).data);
		if (!r.success) throw err;
		return { signal: await gatewaySignal(r.data.redirect.url, token, named), hops: 1 };
	}
}

const samples = new Map<Kind, number[]>(KINDS.map((k) => [k, []]));
const reached = new Map<Kind, number[]>(KINDS.map((k) => [k, []]));
const warmup = FULL ? 3 : 10;
/** Rounds dropped whole (their kinds stay paired) because one sample failed: the store stalled on this busy box. */
const dropped: string[] = [];
for (let i = 0, kept = 0; kept < SAMPLES + warmup; i++) {
	const round = new Map<Kind, { ms: number; reached: number }>();
	try {
		for (let k = 0; k < KINDS.length; k++) {
			const kind = KINDS[(i + k) % KINDS.length] as Kind;
			const name = `${kind} ${i}`;
			const token = acme.token(`${kind}-${i}`, "participant");
			const t0 = performance.now();
			const { signal, hops } = await reach(kind, token, name);
			const tReached = performance.now();
			if (hops !== (kind.startsWith("direct") || kind === "lookup" ? 0 : 1)) throw new Error(`unexpected ${kind}`);
			let ms: number;
			if (FULL) {
				const bot = await Bot.join(signal, target.id, { displayName: name, send: true, recv: true }).catch(
					(err: unknown) => {
						signal.close();
						throw err;
					},
				);
				ms = await bot.firstFrame().finally(() => bot.close());
				ms -= t0;
				await sleep(250);
			} else {
				const answer = await signal.request("join", { meetingId: target.id, displayName: name });
				ms = performance.now() - t0;
				if (answer.status !== "joined") throw new Error(`unexpected ${kind}: ${answer.status}`);
				await signal.request("leave", {});
				signal.close();
			}
			round.set(kind, { ms, reached: tReached - t0 });
		}
	} catch (err) {
		dropped.push(err instanceof Error ? err.message : String(err));
		if (dropped.length > 10) throw err;
		await sleep(1000);
		continue;
	}
	if (kept++ < warmup) continue;
	for (const [kind, r] of round) {
		samples.get(kind)?.push(r.ms);
		reached.get(kind)?.push(r.reached);
	}
}

const f = (x: number) => x.toFixed(1);
const p50 = (k: Kind) => median(samples.get(k) ?? []);
console.log(`machine: ${machine()}`);
console.log(
	`${FULL ? "full join (to the first decoded frame of the host's video)" : "signaling join (to joined)"}; PostgreSQL durable; load: ${PEOPLE} people chatting in a busy meeting on each node; ${SAMPLES} samples each`,
);
for (const k of KINDS) {
	const xs = samples.get(k) ?? [];
	console.log(
		`${k.padEnd(15)} p50 ${f(median(xs))} ms  p90 ${f(percentile(xs, 90))} ms  p99 ${f(percentile(xs, 99))} ms  (connection on B reached: p50 ${f(median(reached.get(k) ?? []))} ms)`,
	);
}
console.log(`p50 ratio handshake/direct: ${(p50("handshake") / p50("direct")).toFixed(2)} (target ≤ 1.2)`);
console.log(
	`p50 ratio redirect/direct-unnamed: ${(p50("redirect") / p50("direct-unnamed")).toFixed(2)} (the join-answer redirect; target ≤ 1.2)`,
);
console.log(`p50 ratio lookup/direct: ${(p50("lookup") / p50("direct")).toFixed(2)}`);
console.log(`p50 ratio direct/direct-unnamed: ${(p50("direct") / p50("direct-unnamed")).toFixed(2)}`);
// Direct twice (named or not: the same path on the home node, whose room is there), pooled as the baseline; and each
// kind's cost over direct paired by round (the kinds of a round ran back to back), robust to the load drifting.
const directs = [...(samples.get("direct") ?? []), ...(samples.get("direct-unnamed") ?? [])];
const paired = (k: Kind) =>
	median((samples.get(k) ?? []).map((x, j) => x - ((samples.get("direct") ?? [])[j] ?? Number.NaN)));
console.log(`direct pooled (named + unnamed) p50 ${f(median(directs))} ms`);
for (const k of ["redirect", "handshake", "lookup"] as const) {
	console.log(
		`${k}: p50 / pooled direct p50 = ${(p50(k) / median(directs)).toFixed(2)}; added over direct, paired by round: median ${f(paired(k))} ms`,
	);
}
console.log(`rounds dropped (a sample failed): ${dropped.length}${dropped.length ? ` (${dropped.join("; ")})` : ""}`);
console.log(`handshakes A let through (the join-answer redirect followed instead): ${fallbacks}`);
console.log(`load avg at the end: ${os.loadavg()[0]?.toFixed(1)}`);

if (FULL) target.host.close();
media?.stop();
for (const t of timers) clearInterval(t);
for (const c of open) c.close();
await a.close();
await b.close();
await pg.stop();
process.exit(0);

/**
 * Fencing (issue 12): how long a meeting's node cut off from PostgreSQL takes to step aside, and its people to be
 * back in on another node. Two gateway nodes on one throwaway PostgreSQL, each reaching it through its own TCP proxy;
 * each round a new meeting with a host and a participant (signaling bots), then the home node's proxy is cut.
 *   ejected:  cut → both people got `ejected` with `node_fenced` (floor: dead time − time since the last heartbeat)
 *   back:     cut → both joined again on the other node (they retry every 250 ms, the other node first)
 * Then the proxy is restored and the fenced node comes back before the next round.
 *
 *   npm run bench:fence [-- --rounds 5]
 */
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadConfig } from "../server/config.js";
import { Gateway } from "../server/Gateway.js";
import { createLogger } from "../server/logger.js";
import { joinVia, rejoin } from "../test/helpers/clusterNodes.js";
import { CROWD_ON_LOOPBACK } from "../test/helpers/gateway.js";
import { freePort } from "../test/helpers/ports.js";
import { startPostgres } from "../test/helpers/postgres.js";
import type { RawClient } from "../test/helpers/signaling.js";
import { startTcpProxy, type TcpProxy, viaProxy } from "../test/helpers/tcpProxy.js";
import { AUDIENCE, testTenant, writeTenantsFile } from "../test/helpers/tenants.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" } } });
const ROUNDS = Number(values.rounds);
const DEAD_MS = 3000;

const acme = testTenant("acme");
const tenantsFile = writeTenantsFile([acme]);
const log = createLogger("silent");
const pg = await startPostgres({ durable: true });
const url = await pg.createDatabase("fence");
const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-fence-"));
const u = new URL(url);

async function node(id: string, proxy: TcpProxy): Promise<Gateway> {
	const port = await freePort();
	return Gateway.create(
		loadConfig({
			...process.env,
			CONSENTRY_HTTP_HOST: "127.0.0.1",
			CONSENTRY_HTTP_PORT: String(port),
			CONSENTRY_PUBLIC_URL: `http://127.0.0.1:${port}`,
			CONSENTRY_WORKERS: "1",
			CONSENTRY_DB_FILE: path.join(dir, `${id}.sqlite`),
			CONSENTRY_DATABASE_URL: viaProxy(url, proxy),
			CONSENTRY_NODE_DEAD_MS: String(DEAD_MS),
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

const proxies = [
	await startTcpProxy({ host: u.hostname, port: Number(u.port) }),
	await startTcpProxy({ host: u.hostname, port: Number(u.port) }),
];
const nodes = [await node("node-a", proxies[0] as TcpProxy), await node("node-b", proxies[1] as TcpProxy)];
const urlOf = (g: Gateway) => g.node?.url as string;
const open: RawClient[] = [];
const ejected: number[] = [];
const back: number[] = [];
await new Promise((r) => setTimeout(r, 1500));

for (let round = 0; round < ROUNDS; round++) {
	const hostToken = acme.token(`host-${round}`);
	const partToken = acme.token(`part-${round}`, "participant");
	const res = await fetch(`${urlOf(nodes[0] as Gateway)}/api/meetings`, {
		method: "POST",
		headers: { authorization: `Bearer ${hostToken}`, "content-type": "application/json" },
		body: JSON.stringify({ title: `round ${round}`, settings: { lobby: false } }),
	});
	const { id } = (await res.json()) as { id: string };
	const host = await joinVia(urlOf(nodes[0] as Gateway), hostToken, { meetingId: id, displayName: "H" });
	const part = await joinVia(urlOf(nodes[1] as Gateway), partToken, { meetingId: id, displayName: "P" });
	open.push(host.client, part.client);
	const homeId = host.answer.status === "joined" ? host.answer.cluster?.node : undefined;
	const i = nodes.findIndex((g) => g.node?.nodeId === homeId);
	const home = nodes[i] as Gateway;
	const other = nodes[1 - i] as Gateway;
	const out = [host, part].map((p) => p.client.next("ejected", 10_000).then((e) => ({ e, at: Date.now() })));
	const cutAt = Date.now();
	proxies[i]?.cut();
	const gone = await Promise.all(out);
	if (gone.some((g) => g.e.reason !== "node_fenced")) throw new Error("not ejected with node_fenced");
	ejected.push(Math.max(...gone.map((g) => g.at)) - cutAt);
	const again = await Promise.all(
		[
			[hostToken, "H"],
			[partToken, "P"],
		].map(([t, n]) => rejoin([urlOf(other), urlOf(home)], t, { meetingId: id, displayName: n })),
	);
	open.push(...again.map((a) => a.client));
	back.push(Math.max(...again.map((a) => a.at)) - cutAt);
	console.log(`round ${round + 1}: ejected ${ejected.at(-1)} ms, back in ${back.at(-1)} ms after the cut`);
	proxies[i]?.restore();
	while (!home.node?.healthy || home.node.fenced) await new Promise((r) => setTimeout(r, 100));
	await new Promise((r) => setTimeout(r, 1500)); // the other node sees it alive again
}

console.log(`machine: ${machine()}`);
console.log(`dead time ${DEAD_MS} ms, heartbeat 1000 ms, ${ROUNDS} rounds`);
console.log(`cut → people ejected (node_fenced): p50 ${median(ejected)} ms, max ${Math.max(...ejected)} ms`);
console.log(`cut → people back in on the other node: p50 ${median(back)} ms, max ${Math.max(...back)} ms`);
console.log(`load avg at the end: ${os.loadavg()[0]?.toFixed(1)}`);

for (const c of open) c.close();
for (const p of proxies) p.restore();
await Promise.all(nodes.map((g) => g.close()));
for (const p of proxies) await p.close();
await pg.stop();

/**
 * A REST flood from one address against a normal client elsewhere (docs/security.md "REST API", docs/benchmarks.md).
 *
 * The gateway runs as a child process (bench/bots/servers.ts, one mediasoup worker). A flooder child process (niced:
 * on this one machine it stands for a remote attacker, whose own CPU is not the gateway's) sends from one loopback
 * address (127.0.0.2), on 64 keep-alive connections, `GET /api/meetings` with tokens of the right issuer signed by a
 * wrong key (each one the gateway verifies costs a key lookup and an HMAC), as fast as it is answered. Meanwhile
 * this process, from another address (127.0.1.1, one keep-alive connection), makes normal requests: `GET
 * /api/meetings` with a good host token, one after another with 10 ms between, and times each.
 *
 * Each configuration alternates idle and flood phases in a few rounds (so the machine's other load drifts over both
 * alike). Configurations: the REST limits at their defaults (the flood is cut to 429 after 1200 requests a minute,
 * before any token is verified; past 2400 its connections are closed and new ones dropped); the same with
 * CONSENTRY_TRUST_PROXY (no X-Forwarded-For is sent, so addresses are the sockets', but as behind a proxy nothing is
 * closed or dropped: every flood request gets its 429); and the limits out of the way (every flooded token is
 * verified: 401).
 *
 *   node --import tsx bench/rest-flood.ts [--requests 300] [--rounds 3] [--connections 64]
 */
import { spawn } from "node:child_process";
import http from "node:http";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import jwt from "jsonwebtoken";
import { DEFAULT_REST_LIMITS } from "../server/config.js";
import { CROWD_ON_LOOPBACK } from "../test/helpers/gateway.js";
import { AUDIENCE } from "../test/helpers/tenants.js";
import { cpuSeconds } from "./bots/proc.js";
import { GatewayProcess } from "./bots/servers.js";
import { machine, median, percentile } from "./stats.js";

const FLOOD_ADDRESS = "127.0.0.2";
const CLIENT_ADDRESS = "127.0.1.1";
const TIMEOUT_MS = 5_000;

/** server/config.ts's REST defaults, for the variables servers.ts's CROWD_ON_LOOPBACK overrides. */
const DEFAULT_ENV: Record<string, string> = {
	CONSENTRY_REST_WINDOW_SECONDS: String(DEFAULT_REST_LIMITS.windowMs / 1000),
	CONSENTRY_REST_REQUESTS_PER_ADDRESS: String(DEFAULT_REST_LIMITS.requestsPerAddress),
	CONSENTRY_REST_DSR_PER_CALLER: String(DEFAULT_REST_LIMITS.dsrPerCaller),
	CONSENTRY_REST_CHANGES_PER_CALLER: String(DEFAULT_REST_LIMITS.changesPerCaller),
	CONSENTRY_REST_MEETINGS_PER_CALLER: String(DEFAULT_REST_LIMITS.meetingsPerCaller),
};

/** One GET over `agent`; its status and latency (ms). A failure or timeout counts as status 0 and TIMEOUT_MS. */
function get(url: string, agent: http.Agent, token: string): Promise<{ status: number; ms: number }> {
	const t0 = performance.now();
	return new Promise((resolve) => {
		const req = http.get(url, { agent, headers: { authorization: `Bearer ${token}` }, timeout: TIMEOUT_MS }, (res) => {
			res.resume();
			res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
		});
		req.on("timeout", () => req.destroy(new Error("timeout")));
		req.on("error", () => resolve({ status: 0, ms: TIMEOUT_MS }));
	});
}

// The flooder child -------------------------------------------------------------------------------------------------

if (process.argv[2] === "--flooder") {
	const url = `${process.argv[3]}/api/meetings`;
	const connections = Number(process.argv[4]);
	const agent = new http.Agent({ keepAlive: true, maxSockets: connections, localAddress: FLOOD_ADDRESS });
	// The right issuer and audience, a wrong key: the gateway finds the tenant's key and checks the HMAC, then 401.
	const forged = (i: number) =>
		jwt.sign({ role: "host" }, "not-the-tenant-key", {
			algorithm: "HS256",
			issuer: "bench",
			audience: AUDIENCE,
			subject: `forger${i}`,
			expiresIn: 3600,
		});
	const tokens = Array.from({ length: 100 }, (_, i) => forged(i));
	let flooding = false;
	let codes: Record<string, number> = {};
	const loop = async (i: number) => {
		for (let n = i; flooding; n++) {
			const r = await get(url, agent, tokens[n % tokens.length] as string);
			codes[r.status] = (codes[r.status] ?? 0) + 1;
		}
	};
	let loops: Promise<void>[] = [];
	process.on("message", async (m) => {
		if (m === "flood") {
			flooding = true;
			codes = {};
			loops = Array.from({ length: connections }, (_, i) => loop(i));
		} else if (m === "pause") {
			flooding = false;
			await Promise.all(loops);
			process.send?.(codes);
		} else process.exit(0);
	});
	process.on("disconnect", () => process.exit(0)); // the parent went away: stop flooding
	process.send?.("ready");
} else {
	await main();
}

// The measuring parent ----------------------------------------------------------------------------------------------

async function main(): Promise<void> {
	const { values } = parseArgs({
		options: {
			requests: { type: "string", default: "300" },
			rounds: { type: "string", default: "3" },
			connections: { type: "string", default: "64" },
		},
	});
	const requests = Number(values.requests);
	const rounds = Number(values.rounds);
	const connections = Number(values.connections);
	const log = (m: string) => process.stderr.write(`[rest-flood] ${m}\n`);
	const configs = [
		{ name: "default REST limits", env: { ...DEFAULT_ENV } },
		// As behind a proxy: the flood's connections are not closed nor dropped, each request answered 429.
		{
			name: "default REST limits, CONSENTRY_TRUST_PROXY (no connection cut)",
			env: { ...DEFAULT_ENV, CONSENTRY_TRUST_PROXY: "true" },
		},
		{ name: "REST limits out of the way", env: { ...CROWD_ON_LOOPBACK } },
	];
	const rows: string[] = [];
	for (const config of configs) {
		const gw = await GatewayProcess.start(config.env);
		const agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: CLIENT_ADDRESS });
		try {
			const token = gw.token("normal-host", "host");
			const url = `${gw.url}/api/meetings`;
			for (let i = 0; i < 20; i++) await get(url, agent, token); // warm-up
			const idle = { ms: [] as number[], bad: 0, cpu: 0, s: 0 };
			const flood = { ms: [] as number[], bad: 0, cpu: 0, s: 0 };
			const floodCodes: Record<string, number> = {};
			let floodSeconds = 0;
			const flooder = spawn(
				"nice",
				[
					"-n",
					"19",
					process.execPath,
					"--import",
					"tsx",
					fileURLToPath(import.meta.url),
					"--flooder",
					gw.url,
					String(connections),
				],
				{ stdio: ["ignore", "inherit", "inherit", "ipc"] },
			);
			await new Promise((res) => flooder.once("message", res)); // "ready"
			for (let r = 0; r < rounds; r++) {
				for (const [kind, into] of [
					["idle", idle],
					["flood", flood],
				] as const) {
					log(`${config.name}: round ${r + 1}/${rounds} ${kind}`);
					const tFlood = performance.now();
					if (kind === "flood") {
						flooder.send("flood");
						await new Promise((res) => setTimeout(res, 1000)); // the flood builds up
					}
					const cpu0 = cpuSeconds(gw.pid);
					const t0 = performance.now();
					for (let i = 0; i < Math.ceil(requests / rounds); i++) {
						const x = await get(url, agent, token);
						into.ms.push(x.ms);
						if (x.status !== 200) into.bad++;
						await new Promise((res) => setTimeout(res, 10));
					}
					into.s += (performance.now() - t0) / 1000;
					into.cpu += cpuSeconds(gw.pid) - cpu0;
					if (kind === "flood") {
						const codes = await new Promise<Record<string, number>>((resolve) => {
							flooder.once("message", (x) => resolve(x as Record<string, number>));
							flooder.send("pause");
						});
						floodSeconds += (performance.now() - tFlood) / 1000;
						for (const [c, n] of Object.entries(codes)) floodCodes[c] = (floodCodes[c] ?? 0) + n;
					}
				}
			}
			flooder.send("exit");
			await new Promise((res) => (flooder.exitCode !== null ? res(undefined) : flooder.once("exit", res)));
			const f = (x: number) => x.toFixed(1);
			const pct = (x: { cpu: number; s: number }) => `${Math.round((100 * x.cpu) / x.s)} %`;
			const sent = Object.values(floodCodes).reduce((a, b) => a + b, 0);
			rows.push(
				`| ${config.name} | ${f(median(idle.ms))} / ${f(percentile(idle.ms, 99))} | ${f(median(flood.ms))} / ${f(percentile(flood.ms, 99))} | **${(percentile(flood.ms, 99) / percentile(idle.ms, 99)).toFixed(2)}** | ${idle.bad} / ${flood.bad} | ${pct(idle)} → ${pct(flood)} | ${Math.round(sent / floodSeconds)}/s: ${Object.entries(
					floodCodes,
				)
					.map(([c, n]) => `${c === "0" ? "failed" : c} ${n}`)
					.join(", ")} |`,
			);
		} finally {
			agent.destroy();
			await gw.stop();
		}
	}
	const load = os
		.loadavg()
		.map((l) => l.toFixed(2))
		.join(" ");
	process.stdout.write(
		[
			"### REST flood from one address vs a normal client elsewhere (`npm run bench:rest-flood`)",
			"",
			`${machine()}; load average at the end ${load}; ${requests} normal requests idle and ${requests} under flood, alternating in ${rounds} rounds; the flooder (niced) on ${connections} keep-alive connections, tokens of the right issuer with a wrong signature.`,
			"",
			"| configuration | normal request idle p50 / p99 (ms) | under flood p50 / p99 (ms) | p99 flood ÷ idle | normal requests not 200 idle / flood | gateway Node CPU idle → flood | flood requests per s; outcomes (failed: connection closed or dropped) |",
			"|---|---|---|---|---|---|---|",
			...rows,
			"",
		].join("\n"),
	);
}

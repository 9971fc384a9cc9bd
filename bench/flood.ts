/**
 * A flood from one address against a normal join from others (docs/security.md, docs/benchmarks.md).
 *
 * The gateway runs as a child process (bench/bots/servers.ts, one mediasoup worker). A flooder child process opens
 * many tokenless sockets from one loopback address (127.0.0.2) and sends, on each, oversized-but-allowed messages
 * as fast as it is answered: `setRtpCapabilities` bodies of ~60 KB holding 5,000 codec parameters (under the 64 KiB
 * message cap), four in flight per socket, reconnecting whenever a socket is closed or refused. Meanwhile this
 * process makes normal joins into a live meeting, each from an address of its own (127.0.1.x): connect with a
 * participant token, `join`, `createWebRtcTransport`, `setRtpCapabilities`, leave; and reads /healthz.
 *
 * Each configuration alternates idle and flood phases in a few rounds (so the machine's other load drifts over
 * both alike); the ratio compared is join p95 under flood ÷ join p95 idle. The flooder runs under `nice -n 19`: on
 * this one machine it stands for a remote attacker, whose own CPU is not the gateway's. It is started once per
 * configuration and told when to flood and when to stop (its start-up stays out of the measurements). Configurations: the default limits, and the per-address limits out of the way (the bounded
 * body walk and replies alone).
 *
 *   node --import tsx bench/flood.ts [--joins 40] [--rounds 4] [--sockets 64] [--warmup 2]
 */
import { spawn } from "node:child_process";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { io, type Socket } from "socket.io-client";
import { DEFAULT_LIMITS } from "../server/config.js";
import type { Response } from "../shared/protocol.js";
import { CROWD_ON_LOOPBACK } from "../test/helpers/gateway.js";
import { cpuSeconds } from "./bots/proc.js";
import { GatewayProcess } from "./bots/servers.js";
import { machine, median, percentile } from "./stats.js";

const FLOOD_ADDRESS = "127.0.0.2";
/** A join slower than this counts as failed (and as this long). */
const JOIN_TIMEOUT_MS = 5_000;

/** server/config.ts's defaults for the variables servers.ts overrides, spelled out (checked against DEFAULT_LIMITS). */
const DEFAULT_ENV: Record<string, string> = {
	CONSENTRY_MAX_CONNECTIONS_PER_ADDRESS: String(DEFAULT_LIMITS.maxConnectionsPerAddress),
	CONSENTRY_CONNECTS_PER_ADDRESS_PER_SECOND: String(DEFAULT_LIMITS.connectsPerAddressPerSecond),
	CONSENTRY_MAX_GUEST_CONNECTIONS_PER_ADDRESS: String(DEFAULT_LIMITS.maxGuestConnectionsPerAddress),
	CONSENTRY_MAX_GUEST_CONNECTIONS: String(DEFAULT_LIMITS.maxGuestConnections),
	CONSENTRY_REQUESTS_PER_ADDRESS_PER_SECOND: String(DEFAULT_LIMITS.requestsPerAddressPerSecond),
	CONSENTRY_SIGNALING_KIB_PER_ADDRESS_PER_SECOND: String(DEFAULT_LIMITS.bytesPerAddressPerSecond / 1024),
};
const body = {
	rtpCapabilities: {
		codecs: [
			{
				kind: "audio",
				mimeType: "audio/opus",
				clockRate: 48000,
				parameters: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i])),
			},
		],
	},
};

/** CPU seconds of the gateway's Node process and its mediasoup worker. */
const gatewayCpu = (gw: GatewayProcess) => cpuSeconds(gw.pid) + cpuSeconds(gw.workerPid);

/** Connects from this local address (engine.io-client hands `localAddress` to ws; its types don't list it). */
const from = (localAddress: string): object => ({ localAddress });

// The flooder child -------------------------------------------------------------------------------------------------

if (process.argv[2] === "--flooder") {
	// Started once per configuration (its own start-up stays out of the measurements); floods on "flood", stops and
	// reports on "pause", exits on "exit" or when the parent goes away.
	const url = process.argv[3] as string;
	const sockets = Number(process.argv[4]);
	const fresh = () => ({
		sent: 0,
		answered: 0,
		codes: {} as Record<string, number>,
		refused: 0,
		closed: 0,
		connected: 0,
	});
	let stats = fresh();
	let stopping = true;
	const open = new Set<Socket>();
	const one = () => {
		if (stopping) return;
		const s = io(url, { transports: ["websocket"], reconnection: false, timeout: 5000, ...from(FLOOD_ADDRESS) });
		open.add(s);
		let alive = true;
		const pump = () => {
			if (!alive || stopping) return;
			stats.sent++;
			s.timeout(10_000)
				.emitWithAck("setRtpCapabilities", body)
				.then(
					(r: Response<"setRtpCapabilities">) => {
						stats.answered++;
						const code = r.ok ? "ok" : r.error.code;
						stats.codes[code] = (stats.codes[code] ?? 0) + 1;
					},
					() => undefined,
				)
				.finally(pump);
		};
		s.once("connect", () => {
			stats.connected++;
			for (let i = 0; i < 4; i++) pump();
		});
		const again = (counter: "refused" | "closed") => () => {
			if (!alive || stopping) return;
			alive = false;
			stats[counter]++;
			open.delete(s);
			s.close();
			setTimeout(one, 100);
		};
		s.once("connect_error", again("refused"));
		s.once("disconnect", again("closed"));
	};
	process.on("message", (m) => {
		if (m === "flood") {
			stopping = false;
			stats = fresh();
			for (let i = 0; i < sockets; i++) one();
		} else if (m === "pause") {
			stopping = true;
			for (const s of open) s.close();
			open.clear();
			process.send?.(stats);
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
			joins: { type: "string", default: "40" },
			sockets: { type: "string", default: "64" },
			warmup: { type: "string", default: "2" },
			rounds: { type: "string", default: "4" },
		},
	});
	const joins = Number(values.joins);
	const sockets = Number(values.sockets);
	const log = (m: string) => process.stderr.write(`[flood] ${m}\n`);
	let addr = 0;

	/**
	 * One normal join from an address of its own; returns its latency in ms (connect → join answered) and of the
	 * whole sequence. A join that fails or takes longer than JOIN_TIMEOUT_MS counts as that long (and as failed).
	 */
	async function join(gw: GatewayProcess, meetingId: string): Promise<{ join: number; all: number; failed: boolean }> {
		try {
			return { ...(await joinOnce(gw, meetingId)), failed: false };
		} catch {
			return { join: JOIN_TIMEOUT_MS, all: JOIN_TIMEOUT_MS, failed: true };
		}
	}

	async function joinOnce(gw: GatewayProcess, meetingId: string): Promise<{ join: number; all: number }> {
		const localAddress = `127.0.1.${(addr++ % 250) + 1}`;
		const t0 = performance.now();
		const s = io(gw.url, {
			transports: ["websocket"],
			reconnection: false,
			timeout: JOIN_TIMEOUT_MS,
			...from(localAddress),
			auth: { token: gw.token(`joiner${addr}`, "participant") },
		});
		try {
			await new Promise<void>((resolve, reject) => {
				s.once("connect", () => resolve());
				s.once("connect_error", reject);
			});
			const req = async (name: string, data: unknown) => {
				const r = (await s.timeout(JOIN_TIMEOUT_MS).emitWithAck(name, data)) as Response<"join">;
				if (!r.ok) throw new Error(`${name}: ${r.error.code}`);
			};
			await req("join", { meetingId, displayName: "Joiner" });
			const tJoin = performance.now() - t0;
			await req("createWebRtcTransport", { direction: "recv" });
			await req("setRtpCapabilities", {
				rtpCapabilities: { codecs: [{ kind: "audio", mimeType: "audio/opus", clockRate: 48000, channels: 2 }] },
			});
			await req("leave", {});
			return { join: tJoin, all: performance.now() - t0 };
		} finally {
			s.close();
		}
	}

	async function health(gw: GatewayProcess): Promise<number> {
		const t0 = performance.now();
		try {
			await (await fetch(`${gw.url}/healthz`, { signal: AbortSignal.timeout(JOIN_TIMEOUT_MS) })).json();
			return performance.now() - t0;
		} catch {
			return JOIN_TIMEOUT_MS;
		}
	}

	async function phase(gw: GatewayProcess, meetingId: string, n: number) {
		const j: number[] = [];
		const all: number[] = [];
		const h: number[] = [];
		let failed = 0;
		for (let i = 0; i < n; i++) {
			const r = await join(gw, meetingId);
			j.push(r.join);
			all.push(r.all);
			if (r.failed) failed++;
			h.push(await health(gw));
			await new Promise((res) => setTimeout(res, 100));
		}
		return { j, all, h, failed };
	}

	// servers.ts sets the loopback-crowd limits (bots stand for many people); the first configuration sets the
	// gateway's own defaults back (checked against server/config.ts below), the second leaves the crowd limits on.
	const configs = [
		{ name: "default limits", env: { ...DEFAULT_ENV } },
		{ name: "per-address limits off", env: { ...CROWD_ON_LOOPBACK } },
	];
	const rows: string[] = [];
	const notes: string[] = [];
	const rounds = Number(values.rounds);
	type Stats = {
		sent: number;
		answered: number;
		codes: Record<string, number>;
		refused: number;
		closed: number;
		connected: number;
	};
	for (const config of configs) {
		const gw = await GatewayProcess.start(config.env);
		try {
			const m = await gw.newMeeting(500);
			const hostSignal = await m.connect({ role: "host" });
			await hostSignal.request("join", { meetingId: m.id, displayName: "Host" });
			for (let i = 0; i < Number(values.warmup); i++) await join(gw, m.id);
			const idle = { j: [] as number[], all: [] as number[], h: [] as number[], failed: 0, cpu: 0, s: 0 };
			const flood = { j: [] as number[], all: [] as number[], h: [] as number[], failed: 0, cpu: 0, s: 0 };
			const total: Stats = { sent: 0, answered: 0, codes: {}, refused: 0, closed: 0, connected: 0 };
			// The flooder is niced: on this one machine it stands for a remote attacker, whose own CPU is not ours.
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
					String(sockets),
				],
				{ stdio: ["ignore", "inherit", "inherit", "ipc"] },
			);
			await new Promise((res) => flooder.once("message", res)); // "ready"
			// Idle and flood alternate in short rounds, so the machine's other load drifts over both alike.
			for (let r = 0; r < rounds; r++) {
				for (const [kind, into] of [
					["idle", idle],
					["flood", flood],
				] as const) {
					log(`${config.name}: round ${r + 1}/${rounds} ${kind}`);
					if (kind === "flood") {
						flooder.send("flood");
						await new Promise((res) => setTimeout(res, 2000)); // the flood builds up
					}
					const cpu0 = gatewayCpu(gw);
					const t0 = performance.now();
					const p = await phase(gw, m.id, Math.ceil(joins / rounds));
					into.s += (performance.now() - t0) / 1000;
					into.cpu += gatewayCpu(gw) - cpu0;
					into.j.push(...p.j);
					into.all.push(...p.all);
					into.h.push(...p.h);
					into.failed += p.failed;
					if (kind === "flood") {
						const st = await new Promise<Stats>((resolve) => {
							flooder.once("message", (x) => resolve(x as Stats));
							flooder.send("pause");
						});
						await new Promise((res) => setTimeout(res, 500)); // its sockets close
						for (const k of ["sent", "answered", "refused", "closed", "connected"] as const) total[k] += st[k];
						for (const [c, n] of Object.entries(st.codes)) total.codes[c] = (total.codes[c] ?? 0) + n;
					}
				}
			}
			flooder.send("exit");
			await new Promise((res) => (flooder.exitCode !== null ? res(undefined) : flooder.once("exit", res)));
			hostSignal.close();
			const f = (x: number) => x.toFixed(1);
			const pct = (x: { cpu: number; s: number }) => `${Math.round((100 * x.cpu) / x.s)} %`;
			const ratio = percentile(flood.j, 95) / percentile(idle.j, 95);
			rows.push(
				`| ${config.name} | ${f(median(idle.j))} / ${f(percentile(idle.j, 95))} | ${f(median(flood.j))} / ${f(percentile(flood.j, 95))}${flood.failed ? ` (${flood.failed} failed)` : ""} | **${ratio.toFixed(2)}** | ${f(percentile(idle.all, 95))} → ${f(percentile(flood.all, 95))} | ${f(percentile(idle.h, 95))} → ${f(percentile(flood.h, 95))} | ${pct(idle)} → ${pct(flood)} | ${total.connected} accepted, ${total.refused} refused, ${total.closed} closed by the gateway | ${Object.entries(
					total.codes,
				)
					.map(([c, n]) => `${c} ${n}`)
					.join(", ")} |`,
			);
			notes.push(
				`${config.name}: ${f(flood.s)} s of flood; the flooder sent ${total.sent} messages (~${Math.round((total.sent * JSON.stringify(body).length) / 2 ** 20)} MiB), ${total.answered} answered`,
			);
		} finally {
			await gw.stop();
		}
	}
	const load = os
		.loadavg()
		.map((l) => l.toFixed(2))
		.join(" ");
	process.stdout.write(
		[
			`### Flood from one address vs a normal join elsewhere (\`npm run bench:flood\`)`,
			"",
			`${machine()}; load average at the end ${load}; ${joins} joins idle and ${joins} under flood, alternating in ${rounds} rounds, ${sockets} flooding sockets attempted (niced).`,
			"",
			"| configuration | join idle p50 / p95 (ms) | join under flood p50 / p95 (ms) | p95 flood ÷ idle | join + transport + caps p95 idle → flood (ms) | /healthz p95 idle → flood (ms) | gateway CPU (Node + worker) idle → flood | flooder sockets | flooder replies |",
			"|---|---|---|---|---|---|---|---|---|",
			...rows,
			"",
			...notes.map((n) => `- ${n}`),
			"",
		].join("\n"),
	);
	process.exit(0);
}

/**
 * The two SFUs under test, each a child process of the benchmark so its CPU
 * and memory are its own: the real gateway (`node --import tsx server/main.ts`,
 * configured by environment variables, with a tenant whose tokens the bots
 * carry) and bare mediasoup (bench/bots/bare-sfu.ts). Both expose the same
 * `SfuUnderTest` so the same bot code drives either.
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import jwt from "jsonwebtoken";
import type { RequestData } from "../../shared/protocol.js";
import { CROWD_ON_LOOPBACK } from "../../test/helpers/gateway.js";
import type { BareFromServer, BareToServer } from "./bare-sfu.js";
import { childrenNamed } from "./proc.js";
import { gatewaySignal, type NewConsumer, type Signal } from "./signal.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface Meeting {
	id: string;
	/** Opens a signaling channel as this meeting's host (the first to join: it starts the meeting) or as a participant. */
	connect(who: { role: "host" } | { role: "participant"; sub: string }): Promise<Signal>;
	end(): Promise<void>;
}

export interface SfuUnderTest {
	readonly name: "gateway" | "bare";
	/** The Node process. */
	readonly pid: number;
	/** Its mediasoup-worker child. */
	readonly workerPid: number;
	newMeeting(maxParticipants: number): Promise<Meeting>;
	stop(): Promise<void>;
}

async function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.on("error", reject);
		srv.listen(0, "127.0.0.1", () => {
			const { port } = srv.address() as net.AddressInfo;
			srv.close(() => resolve(port));
		});
	});
}

async function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
	if (child.exitCode !== null || child.signalCode !== null) return;
	await new Promise<void>((resolve) => {
		const t = setTimeout(() => {
			child.kill("SIGKILL");
			resolve();
		}, timeoutMs);
		child.once("exit", () => {
			clearTimeout(t);
			resolve();
		});
	});
}

const AUDIENCE = "consentry-bench";

/** The gateway as a child process, with one tenant (HS256) whose tokens the bench mints. */
export class GatewayProcess implements SfuUnderTest {
	readonly name = "gateway";
	readonly pid: number;
	readonly workerPid: number;
	readonly url: string;
	/** What the gateway logged at warn level or above, or wrote to stderr: message → times. */
	readonly warnings: Map<string, number>;
	readonly #child: ChildProcess;
	readonly #dir: string;
	readonly #secret: string;
	readonly #tenant = "bench";
	readonly #memoryWaiters: ((m: NodeJS.MemoryUsage) => void)[];
	#hosts = 0;

	private constructor(
		child: ChildProcess,
		workerPid: number,
		url: string,
		dir: string,
		secret: string,
		memoryWaiters: ((m: NodeJS.MemoryUsage) => void)[],
		warnings: Map<string, number>,
	) {
		this.#child = child;
		this.warnings = warnings;
		this.#memoryWaiters = memoryWaiters;
		this.pid = child.pid as number;
		this.workerPid = workerPid;
		this.url = url;
		this.#dir = dir;
		this.#secret = secret;
	}

	/**
	 * Starts `node --import tsx server/main.ts` (plus --expose-gc and the bench/bots/gc-probe.ts preload, idle
	 * until signalled); `env` adds to (and wins over) the defaults set here.
	 */
	static async start(env: Record<string, string> = {}): Promise<GatewayProcess> {
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-"));
		const secret = randomBytes(32).toString("base64url");
		const tenantsFile = path.join(dir, "tenants.json");
		writeFileSync(
			tenantsFile,
			JSON.stringify({ tenants: [{ id: "bench", name: "bench", keys: [{ alg: "HS256", secret }] }] }),
		);
		const port = await freePort();
		const child = spawn(
			process.execPath,
			[
				"--expose-gc",
				// BENCH_GATEWAY_NODE_ARGS: extra node flags for the gateway child (e.g. a profiler preload).
				...(process.env.BENCH_GATEWAY_NODE_ARGS?.split(" ").filter(Boolean) ?? []),
				"--import",
				"tsx",
				"--import",
				"./bench/bots/gc-probe.ts",
				"server/main.ts",
			],
			{
				cwd: root,
				env: {
					...process.env,
					CONSENTRY_HTTP_HOST: "127.0.0.1",
					CONSENTRY_HTTP_PORT: String(port),
					CONSENTRY_RTC_LISTEN_IP: "127.0.0.1",
					CONSENTRY_RTC_MIN_PORT: "40000",
					CONSENTRY_RTC_MAX_PORT: "40999",
					CONSENTRY_WORKERS: "1",
					CONSENTRY_LOG_LEVEL: "info",
					CONSENTRY_DB_FILE: path.join(dir, "store.sqlite"),
					CONSENTRY_TENANTS_FILE: tenantsFile,
					CONSENTRY_AUDIENCE: AUDIENCE,
					CONSENTRY_GATEWAY_ID: "bench",
					// The bots all connect from loopback, standing for many people: per-address limits out of the way.
					...CROWD_ON_LOOPBACK,
					...env,
				},
				stdio: ["ignore", "pipe", "pipe"],
			},
		);
		const memoryWaiters: ((m: NodeJS.MemoryUsage) => void)[] = [];
		const problems: string[] = [];
		const warnings = new Map<string, number>();
		const warn = (key: string) => warnings.set(key, (warnings.get(key) ?? 0) + 1);
		const url = await new Promise<string>((resolve, reject) => {
			const t = setTimeout(() => reject(new Error(`gateway did not start in 60 s:\n${problems.join("\n")}`)), 60_000);
			child.once("exit", (code) => {
				clearTimeout(t);
				reject(new Error(`gateway exited (${code}) while starting:\n${problems.join("\n")}`));
			});
			createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
				let rec: {
					level?: number;
					msg?: string;
					url?: string;
					component?: string;
					benchMemory?: NodeJS.MemoryUsage;
				};
				try {
					rec = JSON.parse(line);
				} catch {
					rec = { level: 40, msg: line };
				}
				if (rec.benchMemory) {
					for (const w of memoryWaiters.splice(0)) w(rec.benchMemory);
					return;
				}
				if ((rec.level ?? 0) >= 40) {
					warn(`${rec.level === 40 ? "warn" : "error"} log${rec.component ? ` (${rec.component})` : ""}: ${rec.msg}`);
					problems.push(line);
					if (problems.length > 50) problems.shift();
					if (process.env.BENCH_VERBOSE) process.stderr.write(`[gateway] ${line}\n`);
				}
				if (rec.msg === "consentry gateway listening" && rec.url) {
					clearTimeout(t);
					resolve(rec.url);
				}
			});
			createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => {
				if (!line.startsWith("(Use `node --trace-warnings")) warn(`stderr: ${line.replace(/^\(node:\d+\) /, "")}`);
				problems.push(line);
				if (problems.length > 50) problems.shift();
				if (process.env.BENCH_VERBOSE) process.stderr.write(`[gateway] ${line}\n`);
			});
		}).catch((err: unknown) => {
			// Not started in time (a busy machine): stop it rather than leave it running on its own.
			child.kill("SIGTERM");
			rmSync(dir, { recursive: true, force: true });
			throw err;
		});
		const workers = childrenNamed(child.pid as number, "mediasoup-worker");
		if (workers.length !== 1) throw new Error(`expected one mediasoup-worker child, found ${workers.length}`);
		return new GatewayProcess(child, workers[0] as number, url, dir, secret, memoryWaiters, warnings);
	}

	/** Runs a full GC in the gateway (bench/bots/gc-probe.ts) and returns its process.memoryUsage() after it. */
	async gcAndMemory(): Promise<NodeJS.MemoryUsage> {
		const m = new Promise<NodeJS.MemoryUsage>((resolve, reject) => {
			const t = setTimeout(() => reject(new Error("gateway did not report memory")), 10_000);
			this.#memoryWaiters.push((u) => {
				clearTimeout(t);
				resolve(u);
			});
		});
		this.#child.kill("SIGUSR2");
		return m;
	}

	token(sub: string, role: "host" | "participant" | "admin"): string {
		return jwt.sign({ role, name: sub }, this.#secret, {
			algorithm: "HS256",
			issuer: this.#tenant,
			audience: AUDIENCE,
			subject: sub,
			expiresIn: 3600,
		});
	}

	async #api(method: string, urlPath: string, token: string, body?: unknown): Promise<Record<string, unknown>> {
		const res = await fetch(`${this.url}${urlPath}`, {
			method,
			headers: {
				authorization: `Bearer ${token}`,
				...(body !== undefined ? { "content-type": "application/json" } : {}),
			},
			...(body !== undefined ? { body: JSON.stringify(body) } : {}),
		});
		const json = (await res.json()) as Record<string, unknown>;
		if (!res.ok) throw new Error(`${method} ${urlPath}: ${res.status} ${JSON.stringify(json)}`);
		return json;
	}

	/** Saves the tenant's storage target (PUT /api/storage-target as its admin; needs CONSENTRY_MASTER_KEY). */
	async saveStorageTarget(target: Record<string, unknown>): Promise<void> {
		await this.#api("PUT", "/api/storage-target", this.token("bench-admin", "admin"), target);
	}

	/** Schedules a meeting (no lobby) for a fresh host identity: a host holds one live meeting at a time. */
	async newMeeting(maxParticipants: number): Promise<Meeting> {
		const host = `host${++this.#hosts}`;
		const hostToken = this.token(host, "host");
		const m = await this.#api("POST", "/api/meetings", hostToken, {
			title: `bench ${host}`,
			settings: { lobby: false, maxParticipants: Math.max(2, maxParticipants) },
		});
		const id = String(m.id);
		return {
			id,
			connect: (who) => gatewaySignal(this.url, who.role === "host" ? hostToken : this.token(who.sub, "participant")),
			end: async () => {
				await this.#api("POST", `/api/meetings/${id}/end`, hostToken);
			},
		};
	}

	async stop(): Promise<void> {
		this.#child.kill("SIGTERM");
		await exited(this.#child, 5000);
		rmSync(this.#dir, { recursive: true, force: true });
	}
}

/** Bare mediasoup (bench/bots/bare-sfu.ts) as a child process, its signaling multiplexed over IPC. */
export class BareProcess implements SfuUnderTest {
	readonly name = "bare";
	readonly pid: number;
	readonly workerPid: number;
	readonly #child: ChildProcess;
	readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
	readonly #listeners = new Map<number, (e: NewConsumer) => void>();
	#nextId = 0;
	#nextBot = 0;

	private constructor(child: ChildProcess, workerPid: number) {
		this.#child = child;
		this.pid = child.pid as number;
		this.workerPid = workerPid;
		child.on("message", (m: BareFromServer) => {
			if (m.t === "res") {
				const p = this.#pending.get(m.id);
				this.#pending.delete(m.id);
				if (m.ok) p?.resolve(m.data);
				else p?.reject(new Error(m.error));
			} else if (m.t === "ev") {
				this.#listeners.get(m.bot)?.(m.data as NewConsumer);
			}
		});
	}

	static async start(workerBin: string, o: { activeSpeaker?: boolean } = {}): Promise<BareProcess> {
		const child = fork(path.join(root, "bench/bots/bare-sfu.ts"), [], {
			cwd: root,
			execArgv: ["--import", "tsx"],
			env: {
				...process.env,
				MEDIASOUP_WORKER_BIN: workerBin,
				BARE_RTC_MIN_PORT: "41000",
				BARE_ACTIVE_SPEAKER: o.activeSpeaker ? "1" : "0",
				BARE_RTC_MAX_PORT: "41999",
			},
			stdio: ["ignore", "inherit", "inherit", "ipc"],
		});
		const workerPid = await new Promise<number>((resolve, reject) => {
			const t = setTimeout(() => reject(new Error("bare SFU did not start in 30 s")), 30_000);
			child.once("exit", (code) => reject(new Error(`bare SFU exited (${code}) while starting`)));
			child.on("message", (m: BareFromServer) => {
				if (m.t === "ready") {
					clearTimeout(t);
					resolve(m.workerPid);
				}
			});
		});
		return new BareProcess(child, workerPid);
	}

	#send(m: BareToServer): void {
		this.#child.send(m);
	}

	async newMeeting(): Promise<Meeting> {
		const id = randomUUID();
		return {
			id,
			connect: async () => this.#signal(),
			end: async () => undefined,
		};
	}

	#signal(): Signal {
		const bot = ++this.#nextBot;
		return {
			request: <N extends Parameters<Signal["request"]>[0]>(name: N, data: RequestData<N>) =>
				new Promise((resolve, reject) => {
					const id = ++this.#nextId;
					this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
					this.#send({ t: "req", id, bot, name, data: data as Record<string, unknown> });
				}),
			onNewConsumer: (fn) => {
				this.#listeners.set(bot, fn);
			},
			close: () => {
				this.#listeners.delete(bot);
				this.#send({ t: "close", bot });
			},
		};
	}

	async stop(): Promise<void> {
		this.#child.disconnect();
		await exited(this.#child, 5000);
	}
}

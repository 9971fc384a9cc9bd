import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { CROWD_ON_LOOPBACK } from "./gateway.js";
import { freePort } from "./ports.js";
import { startPostgres } from "./postgres.js";
import { AUDIENCE, type TestTenant, writeTenantsFile } from "./tenants.js";
import { waitFor } from "./wait.js";

/** One gateway node: a separate OS process (dist/server/main.js) with its own pool, LISTEN connection and workers. */
export interface GatewayNode {
	id: string;
	url: string;
	process: ChildProcess;
}

export interface TestCluster {
	/** The PostgreSQL database every node shares. */
	databaseUrl: string;
	nodes: GatewayNode[];
	stop(): Promise<void>;
}

/**
 * `count` gateway processes on one fresh PostgreSQL database (issue 12's multi-node tests): the run's throwaway
 * server under `npm run test:postgres` (CONSENTRY_TEST_POSTGRES), else one of its own. Each node has its own HTTP port,
 * `CONSENTRY_GATEWAY_ID` (`node-1`…) and RTC port range, as the compose example's replicas do. Needs dist/ (npm run
 * build; scripts/setup.sh builds it).
 */
export async function startCluster(opts: {
	count: number;
	tenants: TestTenant[];
	env?: Record<string, string>;
}): Promise<TestCluster> {
	let base = process.env.CONSENTRY_TEST_POSTGRES;
	let own: Awaited<ReturnType<typeof startPostgres>> | undefined;
	if (!base) {
		own = await startPostgres();
		base = `postgres://consentry@127.0.0.1:${own.port}`;
	}
	const name = `cluster_${process.pid}_${Date.now()}`;
	const admin = new pg.Client({ connectionString: `${base}/postgres` });
	await admin.connect();
	try {
		await admin.query(`CREATE DATABASE "${name}"`);
	} finally {
		await admin.end();
	}
	const databaseUrl = `${base}/${name}`;
	const tenantsFile = writeTenantsFile(opts.tenants);
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-cluster-"));
	const nodes: GatewayNode[] = [];
	const stop = async () => {
		await Promise.all(
			nodes.map(
				(n) =>
					new Promise<void>((resolve) => {
						if (n.process.exitCode !== null || n.process.signalCode !== null) return resolve();
						const t = setTimeout(() => n.process.kill("SIGKILL"), 10_000);
						n.process.once("exit", () => {
							clearTimeout(t);
							resolve();
						});
						n.process.kill("SIGTERM");
					}),
			),
		);
		await own?.stop();
	};
	try {
		// Started one after the other: the first migrates, the others find the schema current (a concurrent start is
		// tested at store level, server/store/Store.test.ts).
		for (let i = 1; i <= opts.count; i++) {
			const port = await freePort();
			const id = `node-${i}`;
			const child = spawn(process.execPath, ["dist/server/main.js"], {
				env: {
					...process.env,
					CONSENTRY_HTTP_HOST: "127.0.0.1",
					CONSENTRY_HTTP_PORT: String(port),
					CONSENTRY_WORKERS: "1",
					CONSENTRY_DB_FILE: path.join(dir, `${id}.sqlite`), // unused: the URL wins
					CONSENTRY_DATABASE_URL: databaseUrl,
					CONSENTRY_GATEWAY_ID: id,
					CONSENTRY_RTC_MIN_PORT: String(42000 + i * 1000),
					CONSENTRY_RTC_MAX_PORT: String(42000 + i * 1000 + 999),
					CONSENTRY_AUDIENCE: AUDIENCE,
					CONSENTRY_TENANTS_FILE: tenantsFile,
					CONSENTRY_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "warn",
					...CROWD_ON_LOOPBACK,
					...opts.env,
				},
				stdio: ["ignore", "ignore", "inherit"],
			});
			const node = { id, url: `http://127.0.0.1:${port}`, process: child };
			nodes.push(node);
			await waitFor(
				async () => {
					if (child.exitCode !== null) throw new Error(`${id} exited with ${child.exitCode}`);
					return (await fetch(`${node.url}/healthz`)).ok;
				},
				30_000,
				`${id} to answer`,
			);
		}
	} catch (err) {
		await stop();
		throw err;
	}
	return { databaseUrl, nodes, stop };
}

import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import pg from "pg";
import pino from "pino";
import { loadConfig } from "../../server/config.js";
import { Gateway } from "../../server/Gateway.js";
import { createLogger, type Logger } from "../../server/logger.js";
import { AUDIENCE, type TestTenant, writeTenantsFile } from "./tenants.js";

/**
 * Per-address (signaling and REST) and per-caller REST limits wide enough for a crowd on one address: every test
 * client and bot connects from loopback, standing for many people. Tests of the limits themselves set their own (`env` wins).
 */
export const CROWD_ON_LOOPBACK: Record<string, string> = {
	CONSENTRY_MAX_CONNECTIONS_PER_ADDRESS: "10000",
	CONSENTRY_CONNECTS_PER_ADDRESS_PER_SECOND: "10000",
	CONSENTRY_MAX_GUEST_CONNECTIONS_PER_ADDRESS: "10000",
	CONSENTRY_MAX_GUEST_CONNECTIONS: "10000",
	CONSENTRY_REQUESTS_PER_ADDRESS_PER_SECOND: "100000",
	CONSENTRY_SIGNALING_KIB_PER_ADDRESS_PER_SECOND: "100000",
	// The REST API's limits (server/http/RestLimiter.ts): a crowd of test clients, and test callers that create
	// meetings and make data-subject requests by the hundred.
	CONSENTRY_REST_REQUESTS_PER_ADDRESS: "10000000",
	CONSENTRY_REST_DSR_PER_CALLER: "10000000",
	CONSENTRY_REST_CHANGES_PER_CALLER: "10000000",
	CONSENTRY_REST_MEETINGS_PER_CALLER: "10000000",
};

/** The engine gateways started by these helpers use: `CONSENTRY_TEST_DATABASE=postgres`, or SQLite (the default). */
export const TEST_DATABASE: "sqlite" | "postgres" =
	process.env.CONSENTRY_TEST_DATABASE === "postgres" ? "postgres" : "sqlite";

const databases = new Map<string, Promise<string>>();

/**
 * On PostgreSQL: the database standing for this SQLite file (gateways given the same file share one database, as
 * processes sharing a file do), created on the run's throwaway server (test/helpers/postgresGlobal.ts).
 */
export function postgresFor(file: string): Promise<string> {
	const base = process.env.CONSENTRY_TEST_POSTGRES;
	if (!base) throw new Error("CONSENTRY_TEST_DATABASE=postgres needs the global setup's server (vitest.config.ts)");
	let url = databases.get(file);
	if (!url) {
		const name = `gw_${process.pid}_${createHash("sha256").update(file).digest("hex").slice(0, 16)}`;
		url = (async () => {
			const c = new pg.Client({ connectionString: `${base}/postgres` });
			await c.connect();
			try {
				await c.query(`CREATE DATABASE "${name}"`);
			} finally {
				await c.end();
			}
			return `${base}/${name}`;
		})();
		databases.set(file, url);
	}
	return url;
}

/**
 * The store variables for a gateway whose SQLite file would be `file`: that file, or (CONSENTRY_TEST_DATABASE=postgres)
 * its PostgreSQL database.
 */
export async function storeEnv(file: string): Promise<Record<string, string>> {
	if (TEST_DATABASE === "sqlite") return { CONSENTRY_DB_FILE: file };
	return { CONSENTRY_DB_FILE: file, CONSENTRY_DATABASE_URL: await postgresFor(file) };
}

/**
 * Starts a real gateway (real mediasoup worker, fresh store: a SQLite file, or a fresh PostgreSQL database with
 * CONSENTRY_TEST_DATABASE=postgres) on a free loopback port, serving the given tenants.
 */
export async function startGateway(
	options: {
		tenants?: TestTenant[];
		env?: Record<string, string>;
		log?: Logger;
		/** Issue 14: the gateway's log files and clock (Gateway.create's options). */
		gateway?: Parameters<typeof Gateway.create>[2];
	} = {},
): Promise<Gateway> {
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-gw-"));
	const file = options.env?.CONSENTRY_DB_FILE ?? path.join(dir, "store.sqlite");
	const config = loadConfig({
		...process.env,
		CONSENTRY_HTTP_HOST: "127.0.0.1",
		CONSENTRY_HTTP_PORT: "0",
		CONSENTRY_WORKERS: "1",
		...(await storeEnv(file)),
		CONSENTRY_AUDIENCE: AUDIENCE,
		CONSENTRY_GATEWAY_ID: "test",
		...CROWD_ON_LOOPBACK,
		...(options.tenants?.length ? { CONSENTRY_TENANTS_FILE: writeTenantsFile(options.tenants) } : {}),
		...options.env,
		...(TEST_DATABASE === "postgres" ? { CONSENTRY_DATABASE_URL: await postgresFor(file) } : {}),
	});
	return Gateway.create(config, options.log ?? createLogger(process.env.TEST_LOG_LEVEL ?? "silent"), options.gateway);
}

/** Calls the gateway's REST API as `token`; returns status and JSON body. */
export async function api(
	gateway: Pick<Gateway, "url">,
	method: string,
	urlPath: string,
	token?: string,
	body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
	const res = await fetch(`${gateway.url}${urlPath}`, {
		method,
		headers: {
			...(token ? { authorization: `Bearer ${token}` } : {}),
			...(body !== undefined ? { "content-type": "application/json" } : {}),
		},
		...(body !== undefined ? { body: JSON.stringify(body) } : {}),
	});
	return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/**
 * A logger whose JSON lines are kept in memory (`lines`), for tests that check what the gateway logged: security
 * events, or that a barrage of refused requests logged no error.
 */
export function capturedLog(level = "info"): { log: Logger; lines: Record<string, unknown>[] } {
	const lines: Record<string, unknown>[] = [];
	const sink = new Writable({
		write(chunk: Buffer, _enc, done) {
			for (const l of chunk.toString("utf8").split("\n")) if (l.trim()) lines.push(JSON.parse(l));
			done();
		},
	});
	return { log: pino({ level }, sink) as unknown as Logger, lines };
}

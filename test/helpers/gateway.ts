import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../../server/config.js";
import { Gateway } from "../../server/Gateway.js";
import { createLogger, type Logger } from "../../server/logger.js";
import { AUDIENCE, type TestTenant, writeTenantsFile } from "./tenants.js";

/**
 * Per-address limits wide enough for a crowd on one address: every test client and bot connects from loopback,
 * standing for many people. Tests of the limits themselves set their own (`env` wins).
 */
export const CROWD_ON_LOOPBACK: Record<string, string> = {
	CONSENTRY_MAX_CONNECTIONS_PER_ADDRESS: "10000",
	CONSENTRY_CONNECTS_PER_ADDRESS_PER_SECOND: "10000",
	CONSENTRY_MAX_GUEST_CONNECTIONS_PER_ADDRESS: "10000",
	CONSENTRY_MAX_GUEST_CONNECTIONS: "10000",
	CONSENTRY_REQUESTS_PER_ADDRESS_PER_SECOND: "100000",
	CONSENTRY_SIGNALING_KIB_PER_ADDRESS_PER_SECOND: "100000",
};

/**
 * Starts a real gateway (real mediasoup worker, fresh SQLite store) on a free
 * loopback port, serving the given tenants.
 */
export async function startGateway(
	options: { tenants?: TestTenant[]; env?: Record<string, string>; log?: Logger } = {},
): Promise<Gateway> {
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-gw-"));
	const config = loadConfig({
		...process.env,
		CONSENTRY_HTTP_HOST: "127.0.0.1",
		CONSENTRY_HTTP_PORT: "0",
		CONSENTRY_WORKERS: "1",
		CONSENTRY_DB_FILE: path.join(dir, "store.sqlite"),
		CONSENTRY_AUDIENCE: AUDIENCE,
		CONSENTRY_GATEWAY_ID: "test",
		...CROWD_ON_LOOPBACK,
		...(options.tenants?.length ? { CONSENTRY_TENANTS_FILE: writeTenantsFile(options.tenants) } : {}),
		...options.env,
	});
	return Gateway.create(config, options.log ?? createLogger(process.env.TEST_LOG_LEVEL ?? "silent"));
}

/** Calls the gateway's REST API as `token`; returns status and JSON body. */
export async function api(
	gateway: Gateway,
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

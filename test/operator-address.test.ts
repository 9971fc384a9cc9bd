import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { capturedLog, startGateway } from "./helpers/gateway.js";
import { testOperator } from "./helpers/operator.js";

/**
 * The operator's security events (docs/operator.md) name the client's address the way every limit does: behind a
 * trusted proxy (CONSENTRY_TRUST_PROXY) the last X-Forwarded-For hop, not the proxy's own address; without one, the peer.
 */
const operator = testOperator();
const { log, lines } = capturedLog();
let proxied: Gateway;
let direct: Gateway;

beforeAll(async () => {
	proxied = await startGateway({
		env: { CONSENTRY_OPERATOR_KEYS_FILE: operator.keysFile, CONSENTRY_TRUST_PROXY: "true" },
		log,
	});
	direct = await startGateway({ env: { CONSENTRY_OPERATOR_KEYS_FILE: operator.keysFile }, log });
});
afterAll(async () => {
	await proxied?.close();
	await direct?.close();
});

const refusals = () => lines.filter((l) => l.event === "operator.login_failed");

describe("operator security events: the client's address", () => {
	it("behind a trusted proxy: the last X-Forwarded-For hop", async () => {
		const r = await fetch(`${proxied.url}/api/operator/tenants`, {
			headers: { authorization: "Bearer not-a-token", "x-forwarded-for": "198.51.100.1, 203.0.113.7" },
		});
		expect(r.status).toBe(401);
		await expect.poll(() => refusals().length).toBe(1);
		expect(refusals()[0]?.address).toBe("203.0.113.7");
	});

	it("without a proxy: the peer, whatever X-Forwarded-For claims", async () => {
		const r = await fetch(`${direct.url}/api/operator/tenants`, {
			headers: { authorization: "Bearer not-a-token", "x-forwarded-for": "203.0.113.7" },
		});
		expect(r.status).toBe(401);
		await expect.poll(() => refusals().length).toBe(2);
		expect(refusals()[1]?.address).toBe("127.0.0.1");
	});
});

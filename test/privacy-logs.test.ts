import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * The gateway's own log lines keep a full client address only where it serves security (refused requests:
 * 401/403/429, the signaling byte-budget refusal); every other request line carries the address cut to /24
 * (IPv4) or /48 (IPv6). Fastify's own request lines (which carry the full address) are off.
 */
const acme = testTenant("acme");
const lines: Record<string, unknown>[] = [];
let gw: Gateway;

beforeAll(async () => {
	const sink = new Writable({
		write(chunk: Buffer, _enc, done) {
			for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
			done();
		},
	});
	gw = await startGateway({ tenants: [acme], log: pino({ level: "info", base: { service: "consentry" } }, sink) });
});

afterAll(async () => {
	await gw?.close();
});

describe("IP addresses in the gateway's logs", () => {
	it("request lines carry a truncated address; refused ones the full address; nothing else carries it", async () => {
		const ok = await api(gw, "POST", "/api/meetings", acme.token("host"), { title: "Logs" });
		expect(ok.status).toBe(201);
		const refused = await api(gw, "GET", "/api/meetings", "not-a-token");
		expect(refused.status).toBe(401);
		await new Promise((r) => setTimeout(r, 100));

		const requests = lines.filter((l) => l.msg === "request");
		expect(requests.length).toBeGreaterThan(0);
		for (const l of requests) {
			expect(l.client).toBe("127.0.0.0/24");
			expect(l).not.toHaveProperty("address");
		}
		const denied = lines.filter((l) => l.msg === "request refused");
		expect(denied).toEqual([expect.objectContaining({ status: 401, address: "127.0.0.1", client: "127.0.0.0/24" })]);
		// No other line anywhere holds the full address (Fastify's own request lines are off).
		const others = lines.filter((l) => l.msg !== "request refused" && !String(l.msg).startsWith("Server listening"));
		expect(others.filter((l) => JSON.stringify(l).includes("127.0.0.1"))).toEqual([]);
		expect(lines.some((l) => l.msg === "incoming request" || l.msg === "request completed")).toBe(false);
	});
});

import http from "node:http";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { TokenVerifier } from "../server/auth/TokenVerifier.js";
import type { Gateway } from "../server/Gateway.js";
import { storageEnv } from "./helpers/bucket.js";
import { startGateway } from "./helpers/gateway.js";
import { testOperator } from "./helpers/operator.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * The REST API's rate limits (server/http/RestLimiter.ts, docs/security.md "REST API") on a real gateway over real
 * HTTP. Requests come "from" different addresses through a trusted proxy's X-Forwarded-For. Per address: 20 requests
 * per 3 s window; per caller: 5 data-subject requests, 3 changes, 3 new meetings per window.
 */
describe("REST rate limits", () => {
	const acme = testTenant("acme");
	const operator = testOperator();
	let gw: Gateway;
	/** The gateway's log lines. */
	const lines: Record<string, unknown>[] = [];
	const WINDOW_S = 3;
	const PER_ADDRESS = 20;

	/** One request from `address`; status, body, Retry-After. */
	const call = async (address: string, method: string, path: string, token?: string, body?: unknown) => {
		const res = await fetch(`${gw.url}${path}`, {
			method,
			headers: {
				"x-forwarded-for": `203.0.113.9, ${address}`,
				...(token ? { authorization: `Bearer ${token}` } : {}),
				...(body !== undefined ? { "content-type": "application/json" } : {}),
			},
			...(body !== undefined ? { body: JSON.stringify(body) } : {}),
		});
		const text = await res.text();
		return {
			status: res.status,
			body: (text.startsWith("{") ? JSON.parse(text) : {}) as Record<string, unknown>,
			retryAfter: res.headers.get("retry-after"),
		};
	};
	const statuses = (rs: { status: number }[]) => {
		const n = new Map<number, number>();
		for (const r of rs) n.set(r.status, (n.get(r.status) ?? 0) + 1);
		return Object.fromEntries(n);
	};
	/** Every refusal is 429 `rate_limited` with a Retry-After of 1..window seconds that the body repeats. */
	const expectRefusals = (rs: Awaited<ReturnType<typeof call>>[]) => {
		for (const r of rs.filter((x) => x.status === 429)) {
			expect(r.body.code).toBe("rate_limited");
			const after = Number(r.retryAfter);
			expect(after).toBeGreaterThanOrEqual(1);
			expect(after).toBeLessThanOrEqual(WINDOW_S);
			expect(r.body.retryAfterSec).toBe(after);
		}
		expect(rs.some((r) => r.status >= 500 || r.body.code === "internal_error")).toBe(false);
	};

	beforeAll(async () => {
		const sink = new Writable({
			write(chunk, _enc, done) {
				for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
				done();
			},
		});
		gw = await startGateway({
			tenants: [acme],
			log: pino({ level: "info", base: { service: "consentry" } }, sink),
			env: {
				...storageEnv(),
				CONSENTRY_OPERATOR_KEYS_FILE: operator.keysFile,
				CONSENTRY_TRUST_PROXY: "true",
				CONSENTRY_REST_WINDOW_SECONDS: String(WINDOW_S),
				CONSENTRY_REST_REQUESTS_PER_ADDRESS: String(PER_ADDRESS),
				CONSENTRY_REST_DSR_PER_CALLER: "5",
				CONSENTRY_REST_CHANGES_PER_CALLER: "3",
				CONSENTRY_REST_MEETINGS_PER_CALLER: "3",
			},
		});
	});
	afterAll(async () => {
		await gw?.close();
	});

	it("a flood from one address gets 429 rate_limited with Retry-After; other addresses and /healthz go on; the window recovers", async () => {
		const host = acme.token("hana");
		const flood = await Promise.all(
			Array.from({ length: PER_ADDRESS * 2 }, () => call("198.51.100.1", "GET", "/api/meetings", host)),
		);
		expect(statuses(flood)).toEqual({ 200: PER_ADDRESS, 429: PER_ADDRESS });
		expectRefusals(flood);
		// Every route of the address is cut, an unknown path and the OpenAPI document too…
		for (const path of ["/api/meetings", "/no/such/page", "/api/openapi.json"]) {
			const r = await call("198.51.100.1", "GET", path, host);
			expect(r.status).toBe(429);
			expectRefusals([r]);
		}
		// …but not its health check, nor another address.
		expect((await call("198.51.100.1", "GET", "/healthz")).status).toBe(200);
		expect((await call("198.51.100.2", "GET", "/api/meetings", host)).status).toBe(200);
		// An IPv6 address counts by its /64: a neighbour in the same /64 is cut too, the next /64 is not.
		const v6 = await Promise.all(
			Array.from({ length: PER_ADDRESS }, (_, i) => call(`2001:db8:1:2::${i + 1}`, "GET", "/api/openapi.json")),
		);
		expect(statuses(v6)).toEqual({ 200: PER_ADDRESS });
		expect((await call("2001:db8:1:2:ffff::9", "GET", "/api/openapi.json")).status).toBe(429);
		expect((await call("2001:db8:1:3::1", "GET", "/api/openapi.json")).status).toBe(200);
		// After Retry-After seconds the address is served again.
		await new Promise((r) => setTimeout(r, 1000));
		const refused = await call("198.51.100.1", "GET", "/api/meetings", host);
		expect(refused.status).toBe(429);
		await new Promise((r) => setImmediate(r));
		// The 429s are logged at most once a second per address, not once each; each line counts those not logged
		// before it: PER_ADDRESS + 4 refusals so far, in a second or two.
		const logged = lines.filter((l) => l.status === 429 && l.address === "198.51.100.1");
		expect(logged.length).toBeGreaterThanOrEqual(2);
		expect(logged.length).toBeLessThanOrEqual(4);
		expect(logged.reduce((n, l) => n + 1 + Number(l.notLogged ?? 0), 0)).toBe(PER_ADDRESS + 4);
		await new Promise((r) => setTimeout(r, Number(refused.retryAfter) * 1000 + 100));
		expect((await call("198.51.100.1", "GET", "/api/meetings", host)).status).toBe(200);
	});

	it("a flood of bad tokens is refused before each token is verified", async () => {
		const verify = vi.spyOn(TokenVerifier.prototype, "verify"); // counts, calls the real verification
		try {
			const rs = [];
			for (let batch = 0; batch < 4; batch++) {
				rs.push(
					...(await Promise.all(
						Array.from({ length: 50 }, () => call("198.51.100.3", "GET", "/api/meetings", "not.a.token")),
					)),
				);
			}
			expect(statuses(rs)).toEqual({ 401: PER_ADDRESS, 429: 200 - PER_ADDRESS });
			expectRefusals(rs);
			// 200 bad tokens, PER_ADDRESS verifications: the rest were refused before any.
			expect(verify).toHaveBeenCalledTimes(PER_ADDRESS);
		} finally {
			verify.mockRestore();
		}
	});

	it("a flood of erasures from one admin token is cut per caller, from any address; only the allowed ones take effect", async () => {
		const admin = acme.token("it-admin", "admin");
		const before = (await gw.events.list({ tenantId: "acme", type: "dsr.erasure" })).length;
		// Each from its own address: the per-address budget is not what stops them.
		const rs = await Promise.all(
			Array.from({ length: 12 }, (_, i) =>
				call(`198.51.101.${i + 1}`, "POST", "/api/dsr/erasures", admin, { person: { subject: `ghost-${i}` } }),
			),
		);
		expect(statuses(rs)).toEqual({ 200: 5, 429: 7 });
		expectRefusals(rs);
		expect(rs.find((r) => r.status === 429)?.body.message).toMatch(/data-subject requests/);
		// The trail holds exactly the five that were allowed, each for a person who was answered 200.
		const erased = (await gw.events.list({ tenantId: "acme", type: "dsr.erasure" })).slice(before);
		expect(erased).toHaveLength(5);
		// Access and export share the caller's budget; another admin of the tenant has their own.
		const exp = await call("198.51.101.50", "POST", "/api/dsr/export", admin, { person: { subject: "ghost-0" } });
		expect(exp.status).toBe(429);
		const other = acme.token("other-admin", "admin");
		expect(
			(await call("198.51.101.51", "POST", "/api/dsr/access", other, { person: { subject: "ghost-0" } })).status,
		).toBe(200);
		// A bad request is refused as such (400), not counted as work done; after the window the admin goes on.
		await new Promise((r) => setTimeout(r, Number(rs.find((r) => r.status === 429)?.retryAfter) * 1000 + 100));
		const again = await call("198.51.101.52", "POST", "/api/dsr/erasures", admin, { person: { subject: "ghost-x" } });
		expect(again.status).toBe(200);
		expect((await gw.events.list({ tenantId: "acme", type: "dsr.erasure" })).slice(before)).toHaveLength(6);
	});

	it("the operator's data-subject requests have the operator's own budget", async () => {
		const op = operator.token("ops-limits");
		const rs = await Promise.all(
			Array.from({ length: 7 }, (_, i) =>
				call(`198.51.104.${i + 1}`, "POST", "/api/operator/tenants/acme/dsr/access", op, {
					person: { subject: `ghost-${i}` },
					reason: "ticket 42",
				}),
			),
		);
		expect(statuses(rs)).toEqual({ 200: 5, 429: 2 });
		expectRefusals(rs);
		// Only the allowed ones are in the tenant's chain (each an operator.action).
		const actions = (await gw.events.list({ tenantId: "acme", type: "operator.action" })).filter(
			(e) => e.data.operator === "ops-limits",
		);
		expect(actions).toHaveLength(5);
	});

	it("meeting creation and storage changes have their own per-caller budgets", async () => {
		const host = acme.token("mia");
		const created = await Promise.all(
			Array.from({ length: 5 }, (_, i) =>
				call(`198.51.102.${i + 1}`, "POST", "/api/meetings", host, { title: `m${i}`, settings: { lobby: false } }),
			),
		);
		expect(statuses(created)).toEqual({ 201: 3, 429: 2 });
		expectRefusals(created);
		expect((await call("198.51.102.9", "GET", "/api/meetings", host)).body.meetings).toHaveLength(3);
		// Storage-target removal (no target here: 404 after the budget is taken), then refused before any store work.
		const admin = acme.token("st-admin", "admin");
		const removed = [];
		for (let i = 0; i < 5; i++) removed.push(await call(`198.51.103.${i + 1}`, "DELETE", "/api/storage-target", admin));
		expect(removed.map((r) => r.status)).toEqual([404, 404, 404, 429, 429]);
		expectRefusals(removed);
	});
});

describe("a REST flood that goes on past twice the limit (no proxy in front)", () => {
	const acme = testTenant("acme");
	let gw: Gateway;

	/** One GET from `localAddress` over `agent`: status and Connection header, or the socket error's code. */
	const get = (agent: http.Agent, path: string) =>
		new Promise<{ status: number; connection?: string; error?: string }>((resolve) => {
			const req = http.get(`${gw.url}${path}`, { agent }, (res) => {
				res.resume();
				res.on("end", () =>
					resolve({
						status: res.statusCode ?? 0,
						...(res.headers.connection ? { connection: res.headers.connection } : {}),
					}),
				);
			});
			req.on("error", (err: NodeJS.ErrnoException) => resolve({ status: 0, error: err.code ?? err.message }));
		});

	beforeAll(async () => {
		gw = await startGateway({
			tenants: [acme],
			env: { CONSENTRY_REST_WINDOW_SECONDS: "3", CONSENTRY_REST_REQUESTS_PER_ADDRESS: "10" },
		});
	});
	afterAll(async () => {
		await gw?.close();
	});

	it("is cut at the connection: answered 429 and closed, then its new connections dropped until the window ends", async () => {
		const flooder = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: "127.0.0.3" });
		const other = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: "127.0.0.4" });
		try {
			const rs = [];
			for (let i = 0; i < 21; i++) rs.push(await get(flooder, "/api/openapi.json"));
			expect(rs.slice(0, 10).every((r) => r.status === 200)).toBe(true);
			// Over the limit: 429 on a connection kept open (a browser that heeds Retry-After never sees more)…
			expect(rs.slice(10, 20).every((r) => r.status === 429 && r.connection !== "close")).toBe(true);
			// …past twice the limit: the answer closes the connection, and new connections are dropped at once.
			expect(rs[20]).toMatchObject({ status: 429, connection: "close" });
			const dropped = await get(flooder, "/healthz");
			expect(dropped.status).toBe(0);
			expect(dropped.error).toMatch(/ECONNRESET|EPIPE|socket hang up/);
			// Another address is served meanwhile; after the window the flooder is too.
			expect((await get(other, "/api/openapi.json")).status).toBe(200);
			await new Promise((r) => setTimeout(r, 3_100));
			expect((await get(flooder, "/api/openapi.json")).status).toBe(200);
		} finally {
			flooder.destroy();
			other.destroy();
		}
	});
});

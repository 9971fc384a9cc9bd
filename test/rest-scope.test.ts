import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { api, startGateway } from "./helpers/gateway.js";
import { connect } from "./helpers/signaling.js";
import { AUDIENCE, testTenant } from "./helpers/tenants.js";

/**
 * A token's meeting scope holds on every REST route as it does on signaling: the matrix of routes × tokens
 * (unscoped host, host scoped to m1, the same host scoped to m2, scoped admin) against a real gateway.
 */
describe("REST honours the token's meeting scope", () => {
	const acme = testTenant("acme");
	let gw: Gateway;
	let m1: string;
	let m2: string;

	beforeAll(async () => {
		gw = await startGateway({ tenants: [acme] });
		const mk = async (title: string) =>
			(await api(gw, "POST", "/api/meetings", acme.token("hana"), { title })).body.id as string;
		m1 = await mk("one");
		m2 = await mk("two");
	});
	afterAll(async () => {
		await gw?.close();
	});

	const status = async (method: string, path: string, token: string) => {
		const r = await api(gw, method, path, token);
		return r.status < 300 ? r.status : `${r.status} ${String(r.body.code)}`;
	};

	it("lets a token scoped to m1 read, start, end and audit m1 only, and create nothing", async () => {
		const scoped1 = acme.token("hana", "host", { meeting: m1 });
		const scoped2 = acme.token("hana", "host", { meeting: m2 });
		const routes = (id: string): [string, string][] => [
			["GET", `/api/meetings/${id}`],
			["GET", `/api/meetings/${id}/events`],
			["POST", `/api/meetings/${id}/start`],
			["POST", `/api/meetings/${id}/end`],
		];
		const matrix: Record<string, (string | number)[]> = {};
		for (const [who, token] of [
			["scoped to m1", scoped1],
			["scoped to m2", scoped2],
		] as const) {
			for (const [name, id] of [
				["m1", m1],
				["m2", m2],
			]) {
				const row: (string | number)[] = [];
				for (const [method, path] of routes(id as string)) row.push(await status(method, path, token));
				matrix[`${who} on ${name}`] = row;
			}
		}
		const refused = "403 token_wrong_meeting";
		expect(matrix).toEqual({
			"scoped to m1 on m1": [200, 200, 200, 200],
			"scoped to m1 on m2": [refused, refused, refused, refused],
			"scoped to m2 on m1": [refused, refused, refused, refused],
			"scoped to m2 on m2": [200, 200, 200, 200],
		});
		// Creating is not about one meeting: refused; listing shows the scoped meeting only.
		const created = await api(gw, "POST", "/api/meetings", scoped1, { title: "sneaky" });
		expect([created.status, created.body.code]).toEqual([403, "token_wrong_meeting"]);
		const list = await api(gw, "GET", "/api/meetings", scoped1);
		expect((list.body.meetings as { id: string }[]).map((m) => m.id)).toEqual([m1]);
		// The unscoped token of the same host: everything.
		const all = await api(gw, "GET", "/api/meetings", acme.token("hana"));
		expect((all.body.meetings as { id: string }[]).map((m) => m.id).sort()).toEqual([m1, m2].sort());
		expect(await status("GET", `/api/meetings/${m2}/events`, acme.token("hana"))).toBe(200);
		expect((await api(gw, "POST", "/api/meetings", acme.token("hana"), { title: "fine" })).status).toBe(201);
	});

	it("refuses over-long and future-dated tokens on REST and on the socket handshake alike", async () => {
		const t = Math.floor(Date.now() / 1000);
		const sign = (claims: Record<string, unknown>) =>
			jwt.sign({ role: "host", ...claims }, acme.secret, {
				algorithm: "HS256",
				issuer: "acme",
				audience: AUDIENCE,
				subject: "hana",
				...("iat" in claims ? {} : { noTimestamp: true }),
			});
		for (const [token, want] of [
			[sign({ exp: t + 2 * 365 * 86400 }), "token_lifetime_too_long"], // no iat, exp years ahead
			[sign({ iat: t + 7200, exp: t + 7300 }), "token_issued_in_future"],
			[sign({ exp: t + 3600, nbf: t + 600 }), "token_not_yet_valid"],
		] as const) {
			const r = await api(gw, "GET", "/api/meetings", token);
			expect([r.status, r.body.code]).toEqual([401, want]);
			const refused = await connect(gw.url, token).then(
				(c) => {
					c.close();
					return "connected";
				},
				(err: Error & { data?: { code: string } }) => err.data?.code,
			);
			expect(refused).toBe(want);
		}
	});

	it("refuses a scoped admin token on the tenant-wide storage and webhook routes", async () => {
		const admin = acme.token("root", "admin", { meeting: m1 });
		for (const method of ["GET", "PUT", "DELETE"]) {
			expect(await status(method, "/api/storage-target", admin)).toBe(`403 token_wrong_meeting`);
			expect(await status(method, "/api/webhook", admin)).toBe(`403 token_wrong_meeting`);
		}
		expect(await status("POST", "/api/webhook/ping", admin)).toBe(`403 token_wrong_meeting`);
		expect(await status("GET", "/api/webhook/deliveries", admin)).toBe(`403 token_wrong_meeting`);
		// Unscoped, the same admin reaches the routes (this gateway has no master key: 503 says so).
		expect(await status("GET", "/api/storage-target", acme.token("root", "admin"))).toBe("503 storage_unconfigured");
		expect(await status("GET", "/api/webhook", acme.token("root", "admin"))).toBe("503 webhooks_unconfigured");
	});

	it("refuses a scoped token on another meeting's transcript links before anything else", async () => {
		// No link exists: unscoped and scoped both get not-found (links can't be probed), never a 500.
		const r = await api(
			gw,
			"GET",
			"/api/transcripts/aaaaaaaaaaaaaaaaaaaa",
			acme.token("hana", "host", { meeting: m1 }),
		);
		expect([r.status, r.body.code]).toEqual([404, "link_not_found"]);
	});
});

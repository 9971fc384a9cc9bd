import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import jwt from "jsonwebtoken";
import { io } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { ROUTES } from "../server/openapi/routes.js";
import type { JoinResult } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testOperator } from "./helpers/operator.js";
import { connect, type RawClient } from "./helpers/signaling.js";
import { AUDIENCE, testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * The operator's side (docs/operator.md) on two gateway instances sharing one store file (each with its own store
 * connection: what they share is the file, as two processes would): the operator's identity (the whole token
 * matrix), tenants as live data reaching the other instance within a second, the powers (end, disable, suspend,
 * revoke) applied where the people are, every action in the tenant's own chain, and restart hygiene.
 */
const operator = testOperator();
const acme = testTenant("acme");
const globex = testTenant("globex");
let a: Gateway;
let b: Gateway;
const open: RawClient[] = [];
const op = operator.token();

const client = async (gw: Gateway, token?: string) => {
	const c = await connect(gw.url, token);
	open.push(c);
	return c;
};
const schedule = async (gw: Gateway, host: string, body: Record<string, unknown> = {}) => {
	const r = await api(gw, "POST", "/api/meetings", acme.token(host), { title: "t", ...body });
	expect(r.status).toBe(201);
	return r.body as { id: string; joinCode: string };
};
/** The handshake's refusal code (or "ok"). */
const handshake = async (gw: Gateway, token: string) => {
	try {
		(await client(gw, token)).close();
		return "ok";
	} catch (err) {
		return (err as { data?: { code?: string } }).data?.code ?? "error";
	}
};

beforeAll(async () => {
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-op-"));
	const env = {
		CONSENTRY_DB_FILE: path.join(dir, "shared.sqlite"),
		CONSENTRY_OPERATOR_KEYS_FILE: operator.keysFile,
		CONSENTRY_OPERATOR_POLL_MS: "100",
	};
	a = await startGateway({ tenants: [acme, globex], env: { ...env, CONSENTRY_GATEWAY_ID: "gw-a" } });
	b = await startGateway({ tenants: [acme, globex], env: { ...env, CONSENTRY_GATEWAY_ID: "gw-b" } });
});

afterAll(async () => {
	for (const c of open) c.close();
	await b?.close();
	await a?.close();
});

/** Each operator route with its path parameters filled in. */
const operatorRoutes = ROUTES.filter((r) => r.auth === "operator").map((r) => ({
	method: r.method,
	url: r.url
		.replace(":tenantId", "acme")
		.replace(":subject", "someone")
		.replace(":messageId", "00000000-0000-4000-8000-000000000000")
		.replace(":linkId", "nolink")
		.replace(":id", "abcdefghjk"),
}));

describe("operator identity", () => {
	it("refuses every tenant token on every operator route (403), and no token (401)", async () => {
		expect(operatorRoutes.length).toBeGreaterThanOrEqual(18);
		for (const r of operatorRoutes) {
			for (const role of ["admin", "host", "participant"] as const) {
				const res = await api(
					a,
					r.method,
					r.url,
					acme.token("x", role),
					r.method === "GET" ? undefined : { reason: "r" },
				);
				expect([r.url, role, res.status, res.body.code]).toEqual([r.url, role, 403, "operator_only"]);
			}
			const none = await api(a, r.method, r.url, undefined, r.method === "GET" ? undefined : { reason: "r" });
			expect([r.url, none.status]).toEqual([r.url, 401]);
		}
	});

	it("refuses a forged operator token (tenant key, operator issuer) with 401, and the operator token on tenant routes", async () => {
		const forged = jwt.sign({ role: "operator" }, acme.secret, {
			algorithm: "HS256",
			issuer: "consentry:operator",
			audience: AUDIENCE,
			subject: "mallory",
			expiresIn: 600,
			keyid: "op-1",
		});
		expect((await api(a, "GET", "/api/operator/tenants", forged)).status).toBe(401);
		for (const [method, url] of [
			["GET", "/api/meetings"],
			["POST", "/api/meetings"],
			["GET", "/api/storage-target"],
			["GET", "/api/webhook"],
			["GET", "/api/operator-actions"],
		] as const) {
			const r = await api(a, method, url, op, method === "POST" ? { title: "x" } : undefined);
			expect([url, r.status, r.body.code]).toEqual([url, 403, "operator_token_refused"]);
		}
		expect(await handshake(a, op)).toBe("operator_token_refused");
		const ok = await api(a, "GET", "/api/operator/tenants", op);
		expect(ok.status).toBe(200);
		expect((ok.body.tenants as { id: string }[]).map((t) => t.id)).toEqual(["acme", "globex"]);
		expect(JSON.stringify(ok.body)).not.toContain(acme.secret);
	});
});

describe("tenants as live data", () => {
	const initech = { k1: "k".repeat(40), k2: "n".repeat(40) };
	const initechToken = (kid: string, secret: string) =>
		jwt.sign({ role: "host" }, secret, {
			algorithm: "HS256",
			keyid: kid,
			issuer: "initech",
			audience: AUDIENCE,
			subject: "h",
			expiresIn: 600,
		});

	it("creates a tenant on one instance; the other accepts its tokens within a second; keys rotate with an overlap", async () => {
		const t0 = performance.now();
		const created = await api(a, "POST", "/api/operator/tenants", op, {
			id: "initech",
			name: "Initech",
			keys: [{ kid: "k1", alg: "HS256", secret: initech.k1 }],
		});
		expect(created.status).toBe(201);
		const t1 = initechToken("k1", initech.k1);
		await waitFor(
			async () => (await api(b, "GET", "/api/meetings", t1)).status === 200,
			1500,
			"the change to reach the other instance",
		);
		const reachedMs = performance.now() - t0;
		expect(reachedMs).toBeLessThan(1000);
		expect(
			(
				await api(a, "POST", "/api/operator/tenants", op, {
					id: "initech",
					name: "x",
					keys: [{ alg: "HS256", secret: initech.k1 }],
				})
			).body.code,
		).toBe("tenant_exists");

		// Rotation: old and new key together, then the new one alone.
		const both = await api(a, "PUT", "/api/operator/tenants/initech", op, {
			keys: [
				{ kid: "k1", alg: "HS256", secret: initech.k1 },
				{ kid: "k2", alg: "HS256", secret: initech.k2 },
			],
			reason: "key rotation",
		});
		expect(both.status).toBe(200);
		const t2 = initechToken("k2", initech.k2);
		await waitFor(
			async () => (await api(b, "GET", "/api/meetings", t2)).status === 200,
			1500,
			"the change to reach the other instance",
		);
		expect((await api(b, "GET", "/api/meetings", t1)).status).toBe(200);
		await api(a, "PUT", "/api/operator/tenants/initech", op, {
			keys: [{ kid: "k2", alg: "HS256", secret: initech.k2 }],
			reason: "rotation done",
		});
		await waitFor(
			async () => (await api(b, "GET", "/api/meetings", t1)).status === 401,
			1500,
			"the change to reach the other instance",
		);
		expect((await api(b, "GET", "/api/meetings", t2)).status).toBe(200);
		const dup = await api(a, "PUT", "/api/operator/tenants/initech", op, {
			keys: [
				{ kid: "k2", alg: "HS256", secret: initech.k2 },
				{ kid: "k2", alg: "HS256", secret: initech.k1 },
			],
			reason: "x",
		});
		expect(dup.body.code).toBe("invalid_request");

		const del = await api(a, "DELETE", "/api/operator/tenants/initech", op, { reason: "contract ended" });
		expect(del.body).toEqual({ changed: true });
		await waitFor(
			async () => (await api(b, "GET", "/api/meetings", t2)).body.code === "unknown_tenant",
			1500,
			"the change to reach the other instance",
		);
		expect((await api(a, "GET", "/api/operator/tenants/initech", op)).body.code).toBe("tenant_not_found");
		console.log(`tenant created on one instance → its token accepted on the other after ${reachedMs.toFixed(0)} ms`);
	});

	it("validates input and names unknown IDs", async () => {
		expect((await api(a, "POST", "/api/operator/tenants/nope/suspend", op, { reason: "x" })).body.code).toBe(
			"tenant_not_found",
		);
		expect((await api(a, "POST", "/api/operator/tenants/acme/suspend", op, {})).body.code).toBe("invalid_request");
		expect((await api(a, "POST", "/api/operator/meetings/abcdefghjk/end", op, { reason: "x" })).body.code).toBe(
			"meeting_not_found",
		);
		expect((await api(a, "GET", "/api/operator/meetings/abcdefghjk", op)).status).toBe(404);
		expect((await api(a, "POST", "/api/operator/tenants", op, { id: "Bad ID", name: "x", keys: [] })).status).toBe(400);
	});
});

describe("powers", () => {
	const join = async (gw: Gateway, token: string, joinCode: string) => {
		const c = await client(gw, token);
		const r = (await c.call("join", { meetingId: joinCode, displayName: "x" })) as JoinResult;
		expect(r.status).toBe("joined");
		return c;
	};

	it("ends a meeting held by the other instance: everyone sees why; a second end changes nothing", async () => {
		const m = await schedule(b, "end-host", { settings: { lobby: false } });
		const host = await join(b, acme.token("end-host"), m.joinCode);
		const bob = await join(b, acme.token("bob", "participant"), m.joinCode);
		const live = await api(a, "GET", "/api/operator/meetings", op);
		const row = (live.body.meetings as { id: string; tenantId: string; host: string; title?: string }[]).find(
			(x) => x.id === m.id,
		);
		expect(row).toMatchObject({ tenantId: "acme", host: expect.stringMatching(/^psn_/) });
		expect(row).not.toHaveProperty("title");
		const seen = [host.next("ejected", 2000), bob.next("ejected", 2000)];
		const t0 = performance.now();
		const r = await api(a, "POST", `/api/operator/meetings/${m.id}/end`, op, { reason: "terms §3: abuse report 42" });
		expect(r.body).toEqual({ changed: true });
		for (const e of await Promise.all(seen)) {
			expect(e).toMatchObject({ reason: "operator", operatorReason: "terms §3: abuse report 42" });
		}
		expect(performance.now() - t0).toBeLessThan(1000);
		expect((await api(a, "POST", `/api/operator/meetings/${m.id}/end`, op, { reason: "again" })).body).toEqual({
			changed: false,
		});
		const actions = await api(a, "GET", "/api/operator-actions", acme.token("boss", "admin"));
		expect(actions.body.actions).toEqual(
			expect.arrayContaining([
				expect.objectContaining({
					operator: "ops-alice",
					action: "meeting.end",
					reason: "terms §3: abuse report 42",
					meetingId: m.id,
				}),
			]),
		);
	});

	it("disables a meeting ID (no start, no join) and re-enables it", async () => {
		const m = await schedule(a, "dis-host");
		expect((await api(a, "POST", `/api/operator/meetings/${m.id}/disable`, op, { reason: "spam" })).body).toMatchObject(
			{ changed: true },
		);
		expect((await api(a, "POST", `/api/operator/meetings/${m.id}/disable`, op, { reason: "spam" })).body).toMatchObject(
			{ changed: false },
		);
		expect((await api(b, "POST", `/api/meetings/${m.id}/start`, acme.token("dis-host"))).body.code).toBe(
			"meeting_disabled",
		);
		const c = await client(b, acme.token("dis-host"));
		expect((await c.req("join", { meetingId: m.joinCode, displayName: "h" })).ok).toBe(false);
		await api(a, "POST", `/api/operator/meetings/${m.id}/enable`, op, { reason: "cleared" });
		expect((await api(b, "POST", `/api/meetings/${m.id}/start`, acme.token("dis-host"))).status).toBe(200);
		await api(b, "POST", `/api/meetings/${m.id}/end`, acme.token("dis-host"));
	});

	it("suspends a tenant mid-meeting: everyone out within a second on the other instance, new tokens refused, reinstated → joins work", async () => {
		const m = await schedule(b, "sus-host", { settings: { lobby: false, allowGuests: true } });
		const host = await join(b, acme.token("sus-host"), m.joinCode);
		const bob = await join(b, acme.token("bob2", "participant"), m.joinCode);
		const idle = await client(b, acme.token("idle", "participant"));
		const other = await client(b, globex.token("g"));
		let otherEjected = false;
		other.socket.on("ejected", () => {
			otherEjected = true;
		});
		const t0 = performance.now();
		const out = [host, bob, idle].map((c) => c.next("ejected", 2000).then((e) => ({ e, ms: performance.now() - t0 })));
		const r = await api(a, "POST", "/api/operator/tenants/acme/suspend", op, { reason: "unpaid invoices" });
		expect(r.body).toMatchObject({ changed: true, tenant: { state: "suspended", reason: "unpaid invoices" } });
		const results = await Promise.all(out);
		for (const { ms } of results) expect(ms).toBeLessThan(1000);
		expect(results.map((x) => x.e.reason).sort()).toEqual(["account_suspended", "operator", "operator"]);
		console.log(
			`tenant suspended → last person out after ${Math.max(...results.map((x) => x.ms)).toFixed(0)} ms (other instance)`,
		);
		expect(await handshake(b, acme.token("sus-host"))).toBe("account_suspended");
		expect((await api(b, "GET", "/api/meetings", acme.token("sus-host"))).body.code).toBe("account_suspended");
		expect((await api(a, "POST", "/api/operator/tenants/acme/suspend", op, { reason: "again" })).body.changed).toBe(
			false,
		);
		expect(otherEjected).toBe(false);
		expect((await api(b, "GET", "/api/meetings", globex.token("g"))).status).toBe(200);

		await api(a, "POST", "/api/operator/tenants/acme/reinstate", op, { reason: "paid" });
		await waitFor(
			async () => (await handshake(b, acme.token("sus-host"))) === "ok",
			1500,
			"the change to reach the other instance",
		);
		await join(b, acme.token("sus-host"), m.joinCode);
		const actions = (await api(b, "GET", "/api/operator-actions", acme.token("boss", "admin"))).body.actions as {
			action: string;
		}[];
		expect(actions.map((x) => x.action)).toEqual(expect.arrayContaining(["tenant.suspend", "tenant.reinstate"]));
		await api(b, "POST", `/api/meetings/${m.id}/end`, acme.token("sus-host"));
	});

	it("suspends one person (their sessions out, their meeting ended, tokens refused), reinstates them", async () => {
		const m = await schedule(b, "p-host", { settings: { lobby: false } });
		const host = await join(b, acme.token("p-host"), m.joinCode);
		const carol = await join(b, acme.token("carol", "participant"), m.joinCode);
		const ev = [host.next("ejected", 2000), carol.next("ejected", 2000)];
		const r = await api(a, "POST", "/api/operator/tenants/acme/users/p-host/suspend", op, { reason: "harassment" });
		expect(r.body).toMatchObject({ changed: true, state: "suspended" });
		const [he, ce] = await Promise.all(ev);
		expect(he?.reason).toMatch(/operator|account_suspended/);
		expect(ce).toMatchObject({ reason: "operator", operatorReason: "harassment" });
		expect(await handshake(b, acme.token("p-host"))).toBe("account_suspended");
		expect(await handshake(b, acme.token("carol", "participant"))).toBe("ok");
		await api(a, "POST", "/api/operator/tenants/acme/users/p-host/reinstate", op, { reason: "appeal upheld" });
		await waitFor(
			async () => (await handshake(b, acme.token("p-host"))) === "ok",
			1500,
			"the change to reach the other instance",
		);
		expect(
			(await api(a, "POST", "/api/operator/tenants/acme/users/p-host/terminate", op, { reason: "repeat" })).body
				.changed,
		).toBe(true);
		expect(
			(await api(a, "POST", "/api/operator/tenants/acme/users/p-host/reinstate", op, { reason: "x" })).body.code,
		).toBe("account_terminated");
	});

	it("revokes one token by jti and a subject's older tokens, across instances", async () => {
		const leaked = acme.token("dave", "participant", { jti: "tok-1" });
		const c = await client(b, leaked);
		const ejected = c.next("ejected", 2000);
		expect(
			(await api(a, "POST", "/api/operator/tenants/acme/revocations", op, { jti: "tok-1", reason: "leaked" })).body
				.changed,
		).toBe(true);
		expect((await ejected).reason).toBe("token_revoked");
		expect(await handshake(b, leaked)).toBe("token_revoked");
		expect(await handshake(b, acme.token("dave", "participant", { jti: "tok-2" }))).toBe("ok");

		const old = acme.token("erin", "participant");
		expect(await handshake(b, old)).toBe("ok");
		const cutoff = Math.floor(Date.now() / 1000) + 1;
		await api(a, "POST", "/api/operator/tenants/acme/revocations", op, {
			subject: "erin",
			issuedBefore: cutoff,
			reason: "lost laptop",
		});
		await waitFor(
			async () => (await handshake(b, old)) === "token_revoked",
			1500,
			"the change to reach the other instance",
		);
		const fresh = jwt.sign({ role: "participant", iat: cutoff }, acme.secret, {
			algorithm: "HS256",
			issuer: "acme",
			audience: AUDIENCE,
			subject: "erin",
			expiresIn: 600,
		});
		expect(await handshake(b, fresh)).toBe("ok");
	});
});

describe("restart hygiene", () => {
	it("a stopped gateway's live meetings are ended when it starts again (audited); none stays live", async () => {
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-restart-"));
		const env = { CONSENTRY_DB_FILE: path.join(dir, "s.sqlite"), CONSENTRY_GATEWAY_ID: "solo" };
		const t = testTenant("acme");
		let gw = await startGateway({ tenants: [t], env });
		const m = (await api(gw, "POST", "/api/meetings", t.token("rh"), { title: "x" })).body as {
			id: string;
			joinCode: string;
		};
		const c = await connect(gw.url, t.token("rh"));
		expect(((await c.call("join", { meetingId: m.joinCode, displayName: "h" })) as JoinResult).status).toBe("joined");
		await gw.close(); // no end: as a crash leaves it
		c.close();
		gw = await startGateway({ tenants: [t], env });
		try {
			const after = await api(gw, "GET", `/api/meetings/${m.id}`, t.token("rh"));
			expect(after.body.state).toBe("ended");
			const events = (await api(gw, "GET", `/api/meetings/${m.id}/events`, t.token("rh"))).body.events as {
				type: string;
				data: { reason?: string };
			}[];
			expect(events.at(-1)).toMatchObject({ type: "meeting.ended", data: { reason: "gateway_restart" } });
		} finally {
			await gw.close();
		}
	});
});

describe("limits, applied live", () => {
	it("max live meetings, participants, guests and recording: refused on the next start or join, nobody dropped", async () => {
		const t = testTenant("limited");
		const create = await api(a, "POST", "/api/operator/tenants", op, {
			id: "limited",
			name: "Limited",
			keys: [{ alg: "HS256", secret: t.secret }],
		});
		expect(create.status).toBe(201);
		await waitFor(
			async () => (await api(b, "GET", "/api/meetings", t.token("h1"))).status === 200,
			1500,
			"the tenant on b",
		);
		const sched = async (host: string) =>
			(
				await api(b, "POST", "/api/meetings", t.token(host), {
					title: "x",
					settings: { lobby: false, allowGuests: true },
				})
			).body as { id: string; joinCode: string };
		const m1 = await sched("h1");
		const m2 = await sched("h2");
		const host1 = await client(b, t.token("h1"));
		await host1.call("join", { meetingId: m1.joinCode, displayName: "h1" });
		const p1 = await client(b, t.token("p1", "participant"));
		await p1.call("join", { meetingId: m1.joinCode, displayName: "p1" });

		const put = await api(a, "PUT", "/api/operator/tenants/limited", op, {
			limits: { maxLiveMeetings: 1, maxParticipants: 2, guests: false, recording: false },
			reason: "plan downgrade",
		});
		expect(put.status).toBe(200);
		// Reaches b (its copy of the tenant, within a poll): the second start is refused there, over REST and by a host joining.
		await waitFor(() => b.tenants.get("limited").limits?.maxLiveMeetings === 1, 1500, "the limit on b");
		expect((await api(b, "POST", `/api/meetings/${m2.id}/start`, t.token("h2"))).body.code).toBe(
			"tenant_limit_reached",
		);
		const host2 = await client(b, t.token("h2"));
		const r2 = await host2.req("join", { meetingId: m2.joinCode, displayName: "h2" });
		expect(r2.ok ? "ok" : r2.error.code).toBe("tenant_limit_reached");
		// Nobody in m1 was dropped; the next join beyond 2 people is refused, guests are, recording is.
		const p2 = await client(b, t.token("p2", "participant"));
		const j = await p2.req("join", { meetingId: m1.joinCode, displayName: "p2" });
		expect(j.ok ? "ok" : j.error.code).toBe("meeting_full");
		const guest = await client(b);
		const g = await guest.req("join", { meetingId: m1.joinCode, displayName: "g" });
		expect(g.ok ? "ok" : g.error.code).toBe("guests_not_allowed");
		const rec = await host1.req("startCapture", { kind: "recording" });
		expect(rec.ok ? "ok" : rec.error.code).toBe("recording_not_allowed");
		expect(p1.socket.connected).toBe(true);
		const actions = (await api(a, "GET", "/api/operator/tenants/limited/actions", op)).body.actions as {
			action: string;
			fields?: string[];
		}[];
		expect(actions.at(-1)).toMatchObject({ action: "tenant.updated", fields: ["limits"], reason: "plan downgrade" });

		// Lifted: the second meeting starts.
		await api(a, "PUT", "/api/operator/tenants/limited", op, { limits: {}, reason: "upgrade" });
		await waitFor(
			async () => (await api(b, "POST", `/api/meetings/${m2.id}/start`, t.token("h2"))).status === 200,
			1500,
			"lifted on b",
		);
	});
});

describe("warnings and content", () => {
	it("a warning is shown now (and at the next connection) until acknowledged; the acknowledgement is recorded", async () => {
		const now = await client(b, acme.token("w-user", "participant"));
		const shown = now.next("operatorWarning", 2000);
		const r = await api(a, "POST", "/api/operator/tenants/acme/warnings", op, {
			subject: "w-user",
			message: "Please stop posting adverts in meetings.",
			reason: "abuse report 7",
		});
		expect(r.status).toBe(201);
		const w = await shown;
		expect(w).toMatchObject({ id: r.body.id, message: "Please stop posting adverts in meetings." });
		// Not acknowledged: shown again at the next connection (on either instance), right after the handshake.
		const early = io(a.url, {
			transports: ["websocket"],
			reconnection: false,
			auth: { token: acme.token("w-user", "participant") },
		});
		const atConnect = await new Promise<{ id: string }>((resolve) => early.once("operatorWarning", resolve));
		early.close();
		expect(atConnect.id).toBe(w.id);
		const later = await client(a, acme.token("w-user", "participant"));
		expect(await later.call("acknowledgeWarning", { warningId: w.id })).toEqual({ acknowledged: true });
		expect(await now.call("acknowledgeWarning", { warningId: w.id })).toEqual({ acknowledged: false });
		const other = await client(b, acme.token("someone-else", "participant"));
		const r2 = await other.req("acknowledgeWarning", { warningId: w.id });
		expect(r2.ok ? "ok" : r2.error.code).toBe("warning_not_found");
		const again = await client(b, acme.token("w-user", "participant"));
		await expect(again.next("operatorWarning", 400)).rejects.toThrow(/no operatorWarning/);
		const actions = (await api(a, "GET", "/api/operator-actions", acme.token("boss", "admin"))).body.actions as {
			action: string;
			warningId?: string;
		}[];
		expect(actions.filter((x) => x.warningId === w.id).map((x) => x.action)).toEqual([
			"warning.issued",
			"warning.acknowledged",
		]);
	});

	it("removes a chat message from every screen and stops screen shares, on the instance holding the meeting", async () => {
		const m = await schedule(b, "c-host", { settings: { lobby: false } });
		const host = await client(b, acme.token("c-host"));
		await host.call("join", { meetingId: m.joinCode, displayName: "h" });
		const pat = await client(b, acme.token("pat", "participant"));
		await pat.call("join", { meetingId: m.joinCode, displayName: "p" });
		const got = host.next("chatMessage", 2000);
		const { id } = await pat.call("chat", { text: "buy cheap watches" });
		await got;
		const removed = [host.next("chatRemoved", 2000), pat.next("chatRemoved", 2000)];
		const r = await api(a, "POST", `/api/operator/meetings/${m.id}/chat/${id}/remove`, op, { reason: "spam" });
		expect(r.body).toEqual({ changed: true });
		expect(await Promise.all(removed)).toEqual([{ id }, { id }]);

		const t = await pat.call("createWebRtcTransport", { direction: "send" });
		await pat.call("produce", {
			transportId: t.id,
			kind: "video",
			source: "screen",
			rtpParameters: {
				codecs: [{ mimeType: "video/VP8", payloadType: 101, clockRate: 90000 }],
				encodings: [{ ssrc: 4242 }],
			},
		});
		const closed = pat.next("producerClosed", 2000);
		expect(
			(await api(a, "POST", `/api/operator/meetings/${m.id}/stop-share`, op, { reason: "offensive" })).body,
		).toEqual({ changed: true });
		expect(await closed).toMatchObject({ reason: "operator_stopped_share" });
		expect((await api(a, "POST", "/api/operator/transcript-links/nolink/revoke", op, { reason: "x" })).body.code).toBe(
			"link_not_found",
		);
		await api(b, "POST", `/api/meetings/${m.id}/end`, acme.token("c-host"));
	});
});

describe("removed content in what is written to the customer's bucket", () => {
	it("a removed chat message is marked removed in chat.jsonl; the operator's end closes the recording saying why", async () => {
		const bucket = await startBucket("op-recordings");
		const t = testTenant("acme");
		const gw = await startGateway({
			tenants: [t],
			env: { ...storageEnv(), CONSENTRY_OPERATOR_KEYS_FILE: operator.keysFile },
		});
		const people: RawClient[] = [];
		try {
			await saveStorageTarget(gw, t, bucket, "rec");
			const m = (await api(gw, "POST", "/api/meetings", t.token("r-host"), { title: "x", settings: { lobby: false } }))
				.body as { id: string; joinCode: string };
			const host = await connect(gw.url, t.token("r-host"));
			people.push(host);
			await host.call("join", { meetingId: m.joinCode, displayName: "h" });
			const noticeP = host.next("captureNotice", 5000);
			const started = await host.call("startCapture", { kind: "recording" });
			const notice = await noticeP;
			await host.call("noticeShown", { noticeId: notice.id });
			await host.call("acknowledgeNotice", { noticeId: notice.id });
			await host.call("chat", { text: "welcome" });
			const { id } = await host.call("chat", { text: "an insult" });
			expect(
				(await api(gw, "POST", `/api/operator/meetings/${m.id}/chat/${id}/remove`, op, { reason: "abusive" })).status,
			).toBe(200);
			const ejected = host.next("ejected", 5000);
			await api(gw, "POST", `/api/operator/meetings/${m.id}/end`, op, { reason: "terms §3" });
			expect(await ejected).toMatchObject({ reason: "operator", operatorReason: "terms §3" });
			const base = `rec/${m.id}/${started.sessionId}`;
			const manifest = (await waitFor(
				() => bucket.json(`${base}/manifest.json`).catch(() => undefined),
				15_000,
				"the manifest",
			)) as {
				endReason: string;
			};
			expect(manifest.endReason).toBe("operator_ended");
			const lines = (await bucket.bytes(`${base}/chat.jsonl`))
				.toString()
				.trim()
				.split("\n")
				.map((l) => JSON.parse(l) as { text: string; removed?: { by: string; reason: string } });
			expect(lines.map((l) => l.text)).toEqual(["welcome", ""]);
			expect(lines[1]?.removed).toMatchObject({ by: "operator", reason: "abusive" });
			expect(JSON.stringify(lines)).not.toContain("insult");
		} finally {
			for (const c of people) c.close();
			await gw.close();
			await bucket.stop();
		}
	});
});

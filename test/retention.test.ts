import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../server/config.js";
import type { Gateway } from "../server/Gateway.js";
import { createLogger } from "../server/logger.js";
import { LogFiles } from "../server/privacy/LogFiles.js";
import { GATEWAY_CHAIN } from "../server/privacy/SecurityHold.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testOperator } from "./helpers/operator.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * Issue 14 on a real gateway (SQLite, and PostgreSQL in `npm run test:postgres`), with a fake clock: the gateway's
 * own log files hold no full IP address after their window, the operator's security hold keeps the security file
 * (and only it) until the hold ends; the hold is operator-only and bounded; a tenant's retention purges its old
 * meetings and entries while its chain still verifies; a terminated tenant's wipe.
 */
const DAY = 86_400_000;
const operator = testOperator();
const acme = testTenant("acme");
const globex = testTenant("globex");
const clock = { t: Date.now() };
const now = () => clock.t;
let gw: Gateway;
let files: LogFiles;
const op = operator.token();

beforeAll(async () => {
	files = new LogFiles({
		dir: mkdtempSync(path.join(os.tmpdir(), "consentry-logs-")),
		retentionDays: 14,
		prefix: "consentry-test",
		now,
	});
	gw = await startGateway({
		tenants: [acme, globex],
		env: { CONSENTRY_OPERATOR_KEYS_FILE: operator.keysFile, CONSENTRY_RETENTION_INTERVAL_MINUTES: "0" },
		log: createLogger("info", files),
		gateway: { logFiles: files, now },
	});
});

afterAll(async () => {
	await gw?.close();
	files?.close();
});

const contents = () => files.files().map((f) => readFileSync(path.join(files.dir, f), "utf8"));
/** Lines holding the client's full address (the gateway's own "listening at" line names the server's address). */
const fullIp = (text: string) =>
	text.split("\n").filter((l) => l.includes("127.0.0.1") && !l.includes("Server listening"));

describe("the gateway's own log files (CONSENTRY_LOG_DIR)", () => {
	it("a request's line has no full IP after the window; the security hold keeps the security file until it ends", async () => {
		// A request and a refused one: the ordinary file gets the /24, the security file the full address.
		expect((await api(gw, "POST", "/api/meetings", acme.token("host"), { title: "Logs" })).status).toBe(201);
		expect((await api(gw, "GET", "/api/meetings", "not-a-token")).status).toBe(401);
		const day = new Date(clock.t).toISOString().slice(0, 10);
		expect(files.files()).toEqual([`consentry-test-${day}.log`, `consentry-test-security-${day}.log`]);
		const [general, security] = contents() as [string, string];
		expect(general).toContain('"client":"127.0.0.0/24"');
		expect(fullIp(general)).toEqual([]);
		expect(security).toContain('"address":"127.0.0.1"');

		// 13 days on: kept. 14 days after the day began: gone, both.
		clock.t = Date.parse(`${day}T00:00:00Z`) + 13 * DAY;
		expect(await gw.sweepLogs()).toEqual([]);
		clock.t = Date.parse(`${day}T00:00:00Z`) + 14 * DAY;
		expect((await gw.sweepLogs()).sort()).toEqual([`consentry-test-${day}.log`, `consentry-test-security-${day}.log`]);
		expect(fullIp(contents().join(""))).toEqual([]);

		// With a hold: a new day's refused request, then the window passes; only the security file stays.
		expect((await api(gw, "GET", "/api/meetings", "still-not-a-token")).status).toBe(401);
		const day2 = new Date(clock.t).toISOString().slice(0, 10);
		const until = new Date(clock.t + 30 * DAY).toISOString();
		// A tenant's admin can't set it; nor a hold over 90 days; nor one without a reason.
		expect(
			(await api(gw, "PUT", "/api/operator/security-hold", acme.token("boss", "admin"), { reason: "x", until })).status,
		).toBe(403);
		const tooLong = await api(gw, "PUT", "/api/operator/security-hold", op, {
			reason: "incident 42",
			until: new Date(clock.t + 91 * DAY).toISOString(),
		});
		expect(tooLong).toMatchObject({ status: 400, body: { code: "hold_too_long" } });
		expect((await api(gw, "PUT", "/api/operator/security-hold", op, { until })).status).toBe(400);
		const set = await api(gw, "PUT", "/api/operator/security-hold", op, { reason: "incident 42", until });
		expect(set).toMatchObject({ status: 200, body: { hold: { reason: "incident 42", until, active: true } } });
		expect((await api(gw, "GET", "/api/operator/security-hold", op)).body).toMatchObject({
			hold: { reason: "incident 42", setBy: "ops-alice" },
		});
		clock.t += 20 * DAY;
		expect(await gw.sweepLogs()).toEqual([`consentry-test-${day2}.log`]);
		expect(files.files()).toContain(`consentry-test-security-${day2}.log`);
		expect(contents().join("")).toContain('"address":"127.0.0.1"');

		// The hold lapses by itself at its end: the next sweep deletes the file.
		clock.t = Date.parse(until) + 1;
		expect((await api(gw, "GET", "/api/operator/security-hold", op)).body).toMatchObject({ hold: null });
		await gw.sweepLogs();
		expect(fullIp(contents().join(""))).toEqual([]);

		// Audited, gateway-wide: set, in the `_gateway` chain, which verifies.
		const actions = await gw.events.list({ tenantId: GATEWAY_CHAIN, type: "operator.action" });
		expect(actions.map((e) => e.data.action)).toEqual(["security_hold.set"]);
		expect((await gw.events.verify({ tenantId: GATEWAY_CHAIN }))[0]?.ok).toBe(true);
	});

	it("a hold lifted early: the security files past their window go at the next sweep", async () => {
		expect((await api(gw, "GET", "/api/meetings", "bad")).status).toBe(401);
		const until = new Date(clock.t + 60 * DAY).toISOString();
		expect((await api(gw, "PUT", "/api/operator/security-hold", op, { reason: "incident 43", until })).status).toBe(
			200,
		);
		clock.t += 15 * DAY;
		await gw.sweepLogs();
		expect(fullIp(contents().join("")).length).toBeGreaterThan(0);
		expect((await api(gw, "DELETE", "/api/operator/security-hold", op, { reason: "closed" })).body).toEqual({
			changed: true,
		});
		await gw.sweepLogs();
		expect(fullIp(contents().join(""))).toEqual([]);
	});
});

describe("retention in the store", () => {
	it("purges a tenant's meetings and entries past its retention; the chain still verifies", async () => {
		clock.t = Date.now() + 200 * DAY; // later than anything written so far
		const r = await api(gw, "PUT", "/api/operator/tenants/globex", op, { retention: { days: 7 }, reason: "contract" });
		expect(r.status).toBe(200);
		expect(r.body.retention).toEqual({ days: 7 });
		// Below the minimum: a clear error.
		const low = await api(gw, "PUT", "/api/operator/tenants/globex", op, { retention: { days: 3 }, reason: "x" });
		expect(low.status).toBe(400);
		expect(JSON.stringify(low.body)).toContain("retention.days must be at least 7");

		const old = await api(gw, "POST", "/api/meetings", globex.token("gh"), { title: "Old" });
		expect(old.status).toBe(201);
		const oldId = (old.body as { id: string }).id;
		clock.t += 8 * DAY;
		const recent = await api(gw, "POST", "/api/meetings", globex.token("gh2"), { title: "Recent" });
		expect(recent.status).toBe(201);
		const before = await gw.events.list({ tenantId: "globex" });

		const report = await gw.retention.runOnce();
		const g = report?.tenants.find((t) => t.id === "globex");
		expect(g?.entries).toBeGreaterThan(0);
		expect(g?.meetings).toBeGreaterThanOrEqual(1);
		expect((await api(gw, "GET", `/api/meetings/${oldId}`, globex.token("gh"))).status).toBe(404);
		const recentId = (recent.body as { id: string }).id;
		expect((await api(gw, "GET", `/api/meetings/${recentId}`, globex.token("gh2"))).status).toBe(200);
		const [v] = await gw.events.verify({ tenantId: "globex" });
		expect(v).toMatchObject({ ok: true, purged: { throughSeq: (before.at(-2) as { seq: number }).seq } });
		const after = await gw.events.list({ tenantId: "globex" });
		expect(after.some((e) => e.meetingId === oldId)).toBe(false);
		expect(after.some((e) => e.meetingId === recentId)).toBe(true);
	});

	it("a terminated tenant's wipe: nothing of theirs but the kept operator actions; only after termination", async () => {
		await api(gw, "POST", "/api/meetings", acme.token("host2"), { title: "Before wipe" });
		const early = await api(gw, "POST", "/api/operator/tenants/acme/wipe", op, { reason: "too early" });
		expect(early).toMatchObject({ status: 409, body: { code: "tenant_not_terminated" } });
		expect(
			(await api(gw, "POST", "/api/operator/tenants/acme/wipe", acme.token("boss", "admin"), { reason: "x" })).status,
		).toBe(403);
		expect(
			(await api(gw, "POST", "/api/operator/tenants/acme/terminate", op, { reason: "contract ended" })).status,
		).toBe(200);
		const wiped = await api(gw, "POST", "/api/operator/tenants/acme/wipe", op, { reason: "customer left" });
		expect(wiped).toMatchObject({ status: 200, body: { changed: true } });
		const rows = await gw.retention.repository.countTenantRows("acme");
		expect(rows).toMatchObject({ meetings: 0, audit_person_secrets: 0, events: 2 });
		// (what the change feed keeps: the one row announcing the wipe to the other processes)
		expect(rows.operator_changes).toBeLessThanOrEqual(1);
		const left = await gw.events.list({ tenantId: "acme" });
		expect(left.map((e) => e.type)).toEqual(["operator.action", "chain.checkpoint"]);
		expect(left[0]?.data.kept).toEqual([
			expect.objectContaining({ data: expect.objectContaining({ action: "tenant.terminate" }) }),
		]);
		expect((await gw.events.verify({ tenantId: "acme" }))[0]?.ok).toBe(true);
		expect((await api(gw, "GET", "/api/meetings", acme.token("host2"))).status).toBe(401);
	});
});

describe("configuration", () => {
	it("refuses log retention over 14 days and tenant retention under the minimum, clearly", () => {
		expect(() => loadConfig({ ...process.env, CONSENTRY_LOG_RETENTION_DAYS: "30" })).toThrow(
			/CONSENTRY_LOG_RETENTION_DAYS: at most 14 days/,
		);
		const file = path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-t-")), "tenants.json");
		writeFileSync(
			file,
			JSON.stringify({
				tenants: [{ id: "x", name: "x", keys: [{ alg: "HS256", secret: "s".repeat(32) }], retention: { days: 2 } }],
			}),
		);
		return expect(startGateway({ env: { CONSENTRY_TENANTS_FILE: file } })).rejects.toThrow(
			/retention.days must be at least 7/,
		);
	});
});

import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { io } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { ErrorBody, PasscodeLockout, RequestName, Response } from "../shared/protocol.js";
import { api, startGateway } from "./helpers/gateway.js";
import { codeOf, connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * Passcode guessing, against two real gateway processes' worth of gateways sharing one store: strength rules when
 * a host sets one, backoff per address, a lockout per meeting that holds on the other gateway too, that the host
 * sees and lifts, and every wrong attempt in the trail. Clients come "from" different addresses through a trusted
 * proxy's X-Forwarded-For.
 */
describe("passcode attempts are limited", () => {
	const acme = testTenant("acme");
	let gw1: Gateway;
	let gw2: Gateway;
	const open: { close(): void }[] = [];

	/** A tokenless socket from `address` (as the trusted proxy in front says). */
	const guestFrom = async (gw: Gateway, address: string) => {
		const socket = io(gw.url, {
			transports: ["websocket"],
			reconnection: false,
			extraHeaders: { "x-forwarded-for": address },
		});
		open.push(socket);
		await new Promise<void>((resolve, reject) => {
			socket.once("connect", () => resolve());
			socket.once("connect_error", reject);
		});
		return (name: RequestName, data: unknown) =>
			socket.timeout(5000).emitWithAck(name, data) as Promise<Response<RequestName>>;
	};

	beforeAll(async () => {
		const db = path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-passcode-")), "shared.sqlite");
		const env = {
			CONSENTRY_DB_FILE: db,
			CONSENTRY_TRUST_PROXY: "true",
			CONSENTRY_PASSCODE_FAILURES_PER_ADDRESS: "3",
			CONSENTRY_PASSCODE_LOCKOUT_AFTER: "6",
		};
		gw1 = await startGateway({ tenants: [acme], env: { ...env, CONSENTRY_GATEWAY_ID: "gw1" } });
		gw2 = await startGateway({ tenants: [acme], env: { ...env, CONSENTRY_GATEWAY_ID: "gw2" } });
	});
	afterAll(async () => {
		for (const c of open) c.close();
		await gw1?.close();
		await gw2?.close();
	});

	it("refuses weak passcodes when a host sets one", async () => {
		for (const weak of ["1234", "123456", "fedcba", "zzzzzzzz", "Password"]) {
			const r = await api(gw1, "POST", "/api/meetings", acme.token("hana"), { title: "t", passcode: weak });
			expect([r.status, r.body.code], weak).toEqual([400, "invalid_request"]);
			expect(JSON.stringify(r.body.issues), weak).toContain("weak passcode");
		}
		expect(
			(await api(gw1, "POST", "/api/meetings", acme.token("hana"), { title: "t", passcode: "7y-harbor" })).status,
		).toBe(201);
	});

	it("backs off per address, locks out per meeting across gateways, and lets the host see and lift it", async () => {
		const m = await api(gw1, "POST", "/api/meetings", acme.token("host-p"), {
			title: "guarded",
			passcode: "7y-harbor",
			settings: { allowGuests: true },
		});
		const id = m.body.id as string;
		const host: RawClient = await connect(gw1.url, acme.token("host-p"));
		open.push(host);
		const joined = (await host.call("join", { meetingId: id, displayName: "Hana" })) as {
			passcodeLockout?: PasscodeLockout;
		};
		expect(joined.passcodeLockout).toEqual({ locked: false, failures: 0 });

		// Address A, through the other gateway: three wrong passcodes, then it must wait (even with the right one).
		const a = await guestFrom(gw2, "203.0.113.10");
		const join = (req: typeof a, passcode: string) => req("join", { meetingId: id, displayName: "G", passcode });
		for (let i = 0; i < 3; i++) expect(codeOf(await join(a, `wrong-${i}x`))).toBe("wrong_passcode");
		const waiting = await join(a, "7y-harbor");
		expect(codeOf(waiting)).toBe("passcode_backoff");
		expect((waiting as { error: ErrorBody & { retryAfterSec?: number } }).error.retryAfterSec).toBeGreaterThan(0);

		// Address B, through the host's gateway: three more wrong ones (six in all) lock the meeting's passcode joins,
		// and the host is told.
		const lockout = host.next("passcodeLockout");
		const b = await guestFrom(gw1, "198.51.100.20");
		for (let i = 0; i < 3; i++) expect(codeOf(await join(b, `nope-${i}x`))).toBe("wrong_passcode");
		await expect(lockout).resolves.toMatchObject({ locked: true, failures: 6 });
		// The store holds the lockout: the other gateway refuses even the right passcode, from a fresh address.
		const c = await guestFrom(gw2, "192.0.2.30");
		expect(codeOf(await join(c, "7y-harbor"))).toBe("passcode_locked");
		const seen = await api(gw2, "GET", `/api/meetings/${id}/passcode-lockout`, acme.token("host-p"));
		expect(seen.body).toMatchObject({ locked: true, failures: 6 });

		// The host lifts it (from the meeting); the right passcode works again, from anywhere.
		expect(await host.call("liftPasscodeLockout", {})).toEqual({ locked: false, failures: 0 });
		const d = await guestFrom(gw2, "192.0.2.40");
		expect((await join(d, "7y-harbor")).ok).toBe(true);
		// Lifting over REST works too (nothing to lift now), and only for the meeting's host.
		const other = await api(gw1, "DELETE", `/api/meetings/${id}/passcode-lockout`, acme.token("someone"));
		expect(other.status).toBe(404);

		// The trail: every wrong attempt, the lockout, the lift.
		const events = await api(gw1, "GET", `/api/meetings/${id}/events`, acme.token("host-p"));
		const types = (events.body.events as { type: string }[])
			.map((e) => e.type)
			.filter((t) => t.startsWith("passcode."));
		expect(types).toEqual([...Array(6).fill("passcode.failed"), "passcode.locked", "passcode.unlocked"]);
	});
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { JoinResult } from "../shared/protocol.js";
import { api, startGateway } from "./helpers/gateway.js";
import { type PostgresServer, startPostgres } from "./helpers/postgres.js";
import { codeOf, connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * PostgreSQL down under a running gateway (docs/architecture.md, "The store"): new starts and joins answer
 * `store_unavailable` quickly, the meeting in progress goes on (its people still talk: chat, media), and once the
 * engine is back everything resumes.
 */
describe("the gateway when PostgreSQL stops answering", () => {
	const acme = testTenant("acme");
	let pg: PostgresServer;
	let gw: Gateway;
	const open: RawClient[] = [];

	beforeAll(async () => {
		pg = await startPostgres();
		gw = await startGateway({
			tenants: [acme],
			env: { CONSENTRY_DATABASE_URL: await pg.createDatabase("outage"), CONSENTRY_DATABASE_TIMEOUT_MS: "2000" },
		});
	});
	afterAll(async () => {
		for (const c of open) c.close();
		pg?.resume();
		await gw?.close();
		await pg?.stop();
	});

	it("refuses new joins and starts with store_unavailable within seconds, keeps the live meeting, then resumes", async () => {
		const m = (await api(gw, "POST", "/api/meetings", acme.token("hana"), { title: "t", settings: { lobby: false } }))
			.body as { id: string };
		const host = await connect(gw.url, acme.token("hana"));
		const pia = await connect(gw.url, acme.token("pia", "participant"));
		open.push(host, pia);
		expect(((await host.call("join", { meetingId: m.id, displayName: "Hana" })) as JoinResult).status).toBe("joined");
		expect(((await pia.call("join", { meetingId: m.id, displayName: "Pia" })) as JoinResult).status).toBe("joined");
		const other = (await api(gw, "POST", "/api/meetings", acme.token("olga"), { title: "o" })).body as { id: string };

		pg.pause();
		try {
			const t0 = Date.now();
			const kim = await connect(gw.url, acme.token("kim", "participant"));
			open.push(kim);
			expect(codeOf(await kim.req("join", { meetingId: m.id, displayName: "Kim" }))).toBe("store_unavailable");
			const start = await api(gw, "POST", `/api/meetings/${other.id}/start`, acme.token("olga"));
			expect([start.status, start.body.code]).toEqual([503, "store_unavailable"]);
			expect(Date.now() - t0).toBeLessThan(12_000); // each within the store's query timeout (2 s here)
			// The meeting in progress goes on: its people still reach each other.
			const said = pia.next("chatMessage");
			await host.call("chat", { text: "still here" });
			expect(((await said) as { text: string }).text).toBe("still here");
		} finally {
			pg.resume();
		}
		// Back up: joins work again.
		const lou = await connect(gw.url, acme.token("lou", "participant"));
		open.push(lou);
		expect(((await lou.call("join", { meetingId: m.id, displayName: "Lou" })) as JoinResult).status).toBe("joined");
	}, 60_000);
});

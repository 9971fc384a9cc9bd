import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { JoinResult } from "../shared/protocol.js";
import { api, startGateway } from "./helpers/gateway.js";
import { type PostgresServer, startPostgres } from "./helpers/postgres.js";
import { connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * Two gateway nodes on one PostgreSQL (each its own pool and its own LISTEN connection: server/store/ClusterBus.ts):
 * the host takes their seat over on the other node, and the old connection is ejected within 1 s.
 */
describe("host seat across two nodes on one PostgreSQL", () => {
	const acme = testTenant("acme");
	let pg: PostgresServer;
	const nodes: Gateway[] = [];
	const open: RawClient[] = [];

	beforeAll(async () => {
		pg = await startPostgres();
		const url = await pg.createDatabase("cluster");
		for (const id of ["node-a", "node-b"])
			nodes.push(
				await startGateway({ tenants: [acme], env: { CONSENTRY_DATABASE_URL: url, CONSENTRY_GATEWAY_ID: id } }),
			);
	});
	afterAll(async () => {
		for (const c of open) c.close();
		for (const n of nodes) await n.close();
		await pg?.stop();
	});

	it("ejects the old connection on the other node within 1 s", async () => {
		const [a, b] = nodes as [Gateway, Gateway];
		const m = (await api(a, "POST", "/api/meetings", acme.token("hana"), { title: "t", settings: { lobby: false } }))
			.body as { id: string };
		const first = await connect(a.url, acme.token("hana"));
		const second = await connect(b.url, acme.token("hana"));
		open.push(first, second);
		expect(((await first.call("join", { meetingId: m.id, displayName: "Hana" })) as JoinResult).status).toBe("joined");
		const ejected = first.next("ejected");
		const t0 = Date.now();
		const joined = (await second.call("join", {
			meetingId: m.id,
			displayName: "Hana",
			takeOverHostSeat: true,
		})) as JoinResult;
		expect(joined.status).toBe("joined");
		expect((await ejected).reason).toBe("host_seat_taken_over");
		expect(Date.now() - t0).toBeLessThan(1000);
	}, 60_000);
});

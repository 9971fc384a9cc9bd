import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventLog } from "../server/audit/EventLog.js";
import { Store } from "../server/store/Store.js";
import type { JoinResult } from "../shared/protocol.js";
import { type GatewayNode, startCluster, type TestCluster } from "./helpers/cluster.js";
import { testOperator } from "./helpers/operator.js";
import { connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * Issue 12's invariants across nodes: 3 gateway processes (each its own pool, LISTEN connection and media worker) on
 * one PostgreSQL. Runs in `npm run test:postgres` only (CLUSTER_SUITES in vitest.config.ts), on the run's throwaway
 * server: `npm run test:postgres -- test/cluster.test.ts` runs it alone.
 */
describe("3 gateway nodes on one PostgreSQL", () => {
	const acme = testTenant("acme");
	const beta = testTenant("beta");
	const op = testOperator();
	let cluster: TestCluster;
	const open: RawClient[] = [];

	const call = async (node: GatewayNode, method: string, p: string, token: string, body?: unknown) => {
		const res = await fetch(`${node.url}${p}`, {
			method,
			headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
			...(body ? { body: JSON.stringify(body) } : {}),
		});
		return { status: res.status, body: (await res.json()) as Record<string, unknown> };
	};

	beforeAll(async () => {
		cluster = await startCluster({
			count: 3,
			tenants: [acme, beta],
			// The change feed's poll slowed to 5 s: an operator's action reaching another node within 1 s came over
			// the cluster bus.
			env: { CONSENTRY_OPERATOR_KEYS_FILE: op.keysFile, CONSENTRY_OPERATOR_POLL_MS: "5000" },
		});
	}, 120_000);
	afterAll(async () => {
		for (const c of open) c.close();
		await cluster?.stop();
	}, 60_000);

	it("100 concurrent starts for one host over 3 nodes: exactly 1 live meeting; the chain has one order, no fork", async () => {
		const { nodes } = cluster;
		const node = (i: number) => nodes[i % nodes.length] as GatewayNode;
		// 300 meetings scheduled at once over the 3 nodes (each one an append to acme's chain): 100 for alice, the
		// rest for 20 other hosts.
		const scheduled = await Promise.all(
			Array.from({ length: 300 }, (_, i) =>
				call(node(i), "POST", "/api/meetings", acme.token(i % 3 === 0 ? "alice" : `host${i % 20}`), {
					title: `m${i}`,
					settings: { lobby: false },
				}),
			),
		);
		expect(scheduled.map((r) => r.status)).toEqual(Array(300).fill(201));
		const alices = scheduled.filter((_, i) => i % 3 === 0).map((r) => r.body.id as string);
		expect(alices).toHaveLength(100);

		// alice's 100 meetings started at once, spread over the nodes.
		const starts = await Promise.all(
			alices.map((id, i) => call(node(i), "POST", `/api/meetings/${id}/start`, acme.token("alice"))),
		);
		const ok = starts.filter((r) => r.status === 200);
		const refused = starts.filter((r) => r.status === 409);
		expect(ok).toHaveLength(1);
		expect(refused).toHaveLength(99);
		const live = ok[0]?.body.id as string;
		for (const r of refused) expect(r.body).toMatchObject({ code: "host_has_live_meeting", liveMeetingId: live });

		const store = await Store.open({ url: cluster.databaseUrl });
		try {
			const rows = await store.db
				.selectFrom("meetings")
				.select("id")
				.where("state", "=", "live")
				.where("host_subject", "=", "alice")
				.execute();
			expect(rows.map((r) => r.id)).toEqual([live]);

			// One total order: seq 1..n without a gap or a repeat, every link checked from genesis.
			const log = await EventLog.open(store);
			const [result] = await log.verify({ tenantId: "acme" });
			expect(result).toMatchObject({ ok: true, tenantId: "acme" });
			const events = await log.list({ tenantId: "acme", limit: 100_000 });
			expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
			expect(result?.entries).toBe(events.length);
			expect(events.filter((e) => e.type === "meeting.scheduled")).toHaveLength(300);
			expect(events.filter((e) => e.type === "meeting.started").map((e) => e.meetingId)).toEqual([live]);
			for (let i = 1; i < events.length; i++)
				expect(events[i]?.prevHash).toBe((events[i - 1] as { hash: string }).hash);
		} finally {
			await store.close();
		}
	}, 120_000);

	it("the host seat moves from node to node; the old connection is ejected within 1 s wherever it is", async () => {
		const { nodes } = cluster;
		const token = acme.token("hana");
		const m = (await call(nodes[0] as GatewayNode, "POST", "/api/meetings", token, { title: "seat" })).body as {
			id: string;
		};
		const first = await connect((nodes[0] as GatewayNode).url, token);
		open.push(first);
		const joined = (await first.call("join", { meetingId: m.id, displayName: "Hana" })) as JoinResult;
		expect(joined.status).toBe("joined");
		// 1 → 2 → 3 → 1: each hop ejects the connection on the node before.
		const delays: number[] = [];
		let holder = first;
		for (const to of [1, 2, 0]) {
			const next = await connect((nodes[to] as GatewayNode).url, token);
			open.push(next);
			const ejected = holder.next("ejected", 5000);
			const t0 = performance.now();
			const r = (await next.call("join", {
				meetingId: m.id,
				displayName: "Hana",
				takeOverHostSeat: true,
			})) as JoinResult;
			expect(r.status).toBe("joined");
			expect((await ejected).reason).toBe("host_seat_taken_over");
			delays.push(performance.now() - t0);
			holder = next;
		}
		console.log(`host seat take-over → old connection ejected (ms): ${delays.map((d) => d.toFixed(0)).join(", ")}`);
		for (const d of delays) expect(d).toBeLessThanOrEqual(1000);
	}, 60_000);

	it("a tenant suspended through one node: its people on the other nodes are out within 1 s (the cluster bus, not the poll)", async () => {
		const { nodes } = cluster;
		const [n1, n2, n3] = nodes as [GatewayNode, GatewayNode, GatewayNode];
		const people: RawClient[] = [];
		for (const [i, node] of [n2, n3].entries()) {
			const m = (
				await call(node, "POST", "/api/meetings", beta.token(`host${i}`), {
					title: "b",
					settings: { lobby: false },
				})
			).body as { id: string };
			for (const token of [beta.token(`host${i}`), beta.token(`guest${i}`, "participant")]) {
				const c = await connect(node.url, token);
				open.push(c);
				expect(((await c.call("join", { meetingId: m.id, displayName: "x" })) as JoinResult).status).toBe("joined");
				people.push(c);
			}
		}
		const t0 = performance.now();
		const out = people.map((c) => c.next("ejected", 3000).then(() => performance.now() - t0));
		const r = await call(n1, "POST", "/api/operator/tenants/beta/suspend", op.token(), { reason: "cluster test" });
		expect(r.body).toMatchObject({ changed: true });
		const times = await Promise.all(out);
		console.log(
			`suspended on node 1 → people on nodes 2 and 3 out after (ms): ${times.map((t) => t.toFixed(0)).join(", ")}`,
		);
		for (const t of times) expect(t).toBeLessThan(1000);
		expect((await call(n3, "GET", "/api/meetings", beta.token("host1"))).body.code).toBe("account_suspended");
	}, 60_000);
});

import { afterEach, describe, expect, it } from "vitest";
import { ENGINES, openTestStore } from "../../test/helpers/stores.js";
import { StoreUnavailableError } from "../errors.js";
import { createLogger } from "../logger.js";
import { PlacementRepository } from "../store/PlacementRepository.js";
import type { Store } from "../store/Store.js";
import { NodeRegistry } from "./NodeRegistry.js";
import { choose, Placement } from "./Placement.js";

const log = createLogger("silent");

/** Nodes on one store with a clock the test moves; heartbeats only when the test calls `beat()`. */
async function cluster(store: Store, ids: string[]) {
	const clock = { now: 1_000_000 };
	const now = () => clock.now;
	const nodes = [];
	for (const id of ids) {
		const repo = new PlacementRepository(store);
		const registry = await NodeRegistry.start({
			repo,
			nodeId: id,
			url: `http://${id}.example:8080`,
			heartbeatMs: 3_600_000, // the test beats by hand
			deadMs: 3000,
			load: () => ({ meetings: 0, peers: 0, cpu: 0 }),
			log,
			now,
		});
		const placement = new Placement({ repo, registry, log, now });
		const rehomed: string[] = [];
		placement.onRehomed((e) => {
			rehomed.push(`${e.meetingId}:${e.from}->${e.to}`);
		});
		nodes.push({ id, registry, placement, rehomed });
	}
	return { clock, nodes };
}

describe.each(ENGINES)("placement on %s", (engine) => {
	let store: Store | undefined;
	afterEach(async () => {
		await store?.close();
		store = undefined;
	});

	it("concurrent first joins on three nodes place a meeting once; every node reads the same home", async () => {
		store = await openTestStore(engine);
		const { nodes } = await cluster(store, ["n1", "n2", "n3"]);
		const homes = await Promise.all(
			Array.from({ length: 30 }, (_, i) => nodes[i % 3]?.placement.home("m1") ?? Promise.reject()),
		);
		expect(new Set(homes.map((h) => h.nodeId)).size).toBe(1);
		expect(homes.filter((h) => h.local)).toHaveLength(10); // the home node's own calls
		expect(new Set(homes.map((h) => h.epoch))).toEqual(new Set([1]));
	});

	it("a dead node's meeting is taken by exactly one live node (compare-and-set), with cause node_lost", async () => {
		store = await openTestStore(engine);
		const { clock, nodes } = await cluster(store, ["n1", "n2", "n3"]);
		const [n1, n2, n3] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
		// n1 is the least loaded by ID order: the meeting goes there.
		expect((await n1.placement.home("m1")).nodeId).toBe("n1");
		clock.now += 2000;
		await Promise.all([n2.registry.beat(), n3.registry.beat()]);
		expect((await n2.placement.peek("m1"))?.nodeId).toBe("n1"); // 2 s without a beat: still alive
		clock.now += 1500; // n1: 3.5 s without a heartbeat → dead
		await Promise.all([n2.registry.beat(), n3.registry.beat()]);
		await Promise.all([n2.placement.sweep(), n3.placement.sweep(), n2.placement.sweep(), n3.placement.sweep()]);
		const taken = [...n2.rehomed, ...n3.rehomed];
		expect(taken).toHaveLength(1);
		const winner = taken[0]?.endsWith("n2") ? n2 : n3;
		expect(taken[0]).toBe(`m1:n1->${winner.id}`);
		const repo = new PlacementRepository(store);
		expect(await repo.find("m1")).toMatchObject({ nodeId: winner.id, epoch: 2, cause: "node_lost" });
		// Everyone now reads the new home; n1, cut off (no heartbeat for 3.5 s), takes no new meeting.
		expect((await n3.placement.home("m1")).nodeId).toBe(winner.id);
		expect(n1.registry.healthy).toBe(false);
		await expect(n1.placement.home("m2")).rejects.toBeInstanceOf(StoreUnavailableError);
	});

	it("a join finding its meeting's node dead takes the meeting at once; an ended meeting's placement goes", async () => {
		store = await openTestStore(engine);
		const { clock, nodes } = await cluster(store, ["n1", "n2"]);
		const [n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
		expect((await n1.placement.home("m1")).nodeId).toBe("n1");
		clock.now += 5000;
		await n2.registry.beat();
		const h = await n2.placement.home("m1");
		expect(h).toMatchObject({ local: true, nodeId: "n2", epoch: 2 });
		expect(n2.rehomed).toEqual(["m1:n1->n2"]);
		await n2.placement.release("m1");
		expect(await n2.placement.peek("m1")).toBeUndefined();
		expect(await n2.placement.placed("m1")).toBe(false);
	});

	it("a clean stop leaves the registry: the node's meetings are orphaned at once", async () => {
		store = await openTestStore(engine);
		const { nodes } = await cluster(store, ["n1", "n2"]);
		const [n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
		await n1.placement.home("m1");
		await n1.registry.close();
		await n2.registry.beat();
		expect(n2.registry.nodes().map((n) => n.nodeId)).toEqual(["n2"]);
		await n2.placement.sweep();
		expect(n2.rehomed).toEqual(["m1:n1->n2"]);
	});
});

describe("choose", () => {
	const node = (nodeId: string, placed: number, peers: number, cpu = 0) => ({
		nodeId,
		url: `http://${nodeId}`,
		placed,
		load: { meetings: placed, peers, cpu },
	});
	it("picks the fewest meetings, then the fewest people, then the least CPU, then the ID", () => {
		expect(choose([node("a", 2, 0), node("b", 1, 50)], "a")).toBe("b");
		expect(choose([node("a", 1, 9), node("b", 1, 3)], "a")).toBe("b");
		expect(choose([node("a", 1, 3, 0.9), node("b", 1, 3, 0.2)], "a")).toBe("b");
		expect(choose([node("b", 0, 0), node("a", 0, 0)], "b")).toBe("a");
		expect(choose([], "self")).toBe("self");
	});
});

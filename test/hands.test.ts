import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { JoinResult } from "../shared/protocol.js";
import { api, startGateway } from "./helpers/gateway.js";
import { codeOf, connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

type Joined = Extract<JoinResult, { status: "joined" }>;

/**
 * The requests the meeting page added, at the socket level: raised hands (a member raises and
 * lowers their own; only the host lowers someone else's; the queue in order, to late joiners too;
 * gone when the person leaves) and `viewConsumer` (only one's own consumers).
 */
describe("raised hands and consumer views", () => {
	const tenant = testTenant();
	let gateway: Gateway;
	let meetingId: string;
	const clients: RawClient[] = [];

	const join = async (sub: string, role: "host" | "participant", name: string) => {
		const c = await connect(gateway.url, tenant.token(sub, role));
		clients.push(c);
		const joined = (await c.call("join", { meetingId, displayName: name })) as Joined;
		expect(joined.status).toBe("joined");
		return { c, joined };
	};

	beforeAll(async () => {
		gateway = await startGateway({ tenants: [tenant] });
		const m = await api(gateway, "POST", "/api/meetings", tenant.token("alice"), {
			title: "Hands",
			settings: { lobby: false },
		});
		meetingId = m.body.id as string;
	});

	afterAll(async () => {
		for (const c of clients) c.close();
		await gateway?.close();
	});

	it("queues hands in order, lets only the host lower someone else's, and drops a hand when its person leaves", async () => {
		const outsider = await connect(gateway.url, tenant.token("zed", "participant"));
		clients.push(outsider);
		expect(codeOf(await outsider.req("raiseHand", { raised: true }))).toBe("not_joined");
		expect(codeOf(await outsider.req("raiseHand", { raised: "yes" }))).toBe("invalid_request");

		const host = await join("alice", "host", "Alice");
		const bob = await join("bob", "participant", "Bob");
		const cat = await join("cat", "participant", "Cat");

		let next = host.c.next("handsChanged");
		await bob.c.call("raiseHand", { raised: true });
		expect((await next).hands.map((h) => h.peerId)).toEqual([bob.joined.peerId]);
		next = host.c.next("handsChanged");
		await cat.c.call("raiseHand", { raised: true });
		const queue = (await next).hands;
		expect(queue.map((h) => h.peerId)).toEqual([bob.joined.peerId, cat.joined.peerId]);
		expect(Number.isNaN(Date.parse(queue[0]?.since ?? ""))).toBe(false);

		// Raising twice changes nothing; a participant can't lower someone else's hand.
		expect(codeOf(await bob.c.req("raiseHand", { raised: true }))).toBe("ok");
		expect(codeOf(await bob.c.req("lowerHand", { peerId: cat.joined.peerId }))).toBe("host_only");

		// A late joiner gets the queue with the join.
		const dan = await join("dan", "participant", "Dan");
		expect(dan.joined.hands?.map((h) => h.peerId)).toEqual([bob.joined.peerId, cat.joined.peerId]);

		next = bob.c.next("handsChanged");
		await host.c.call("lowerHand", { peerId: bob.joined.peerId });
		expect((await next).hands.map((h) => h.peerId)).toEqual([cat.joined.peerId]);
		expect(codeOf(await host.c.req("lowerHand", { peerId: "no-such-peer" }))).not.toBe("ok");

		next = host.c.next("handsChanged");
		await cat.c.call("leave", {});
		expect((await next).hands).toEqual([]);
	});

	it("answers viewConsumer only for the caller's own consumers", async () => {
		const outsider = await connect(gateway.url, tenant.token("yan", "participant"));
		clients.push(outsider);
		expect(codeOf(await outsider.req("viewConsumer", { consumerId: "x", visible: false }))).toBe("not_joined");
		const eve = await join("eve", "participant", "Eve");
		expect(codeOf(await eve.c.req("viewConsumer", { consumerId: "x", visible: true, spatialLayer: 3 }))).toBe(
			"invalid_request",
		);
		expect(codeOf(await eve.c.req("viewConsumer", { consumerId: "not-mine", visible: false }))).toBe(
			"consumer_not_found",
		);
	});
});

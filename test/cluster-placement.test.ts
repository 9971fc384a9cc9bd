import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { ConnectRedirectSchema, type JoinAnswer, JoinRedirectSchema, type JoinResult } from "../shared/protocol.js";
import { api, startGateway, TEST_DATABASE } from "./helpers/gateway.js";
import { freePort } from "./helpers/ports.js";
import { connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

type Joined = Extract<JoinResult, { status: "joined" }>;

/** Starts a node of a cluster: its own port, its public URL, the shared store (`file`'s database on PostgreSQL). */
async function startNode(id: string, file: string, tenants: ReturnType<typeof testTenant>[]): Promise<Gateway> {
	const port = await freePort();
	return startGateway({
		tenants,
		env: {
			CONSENTRY_DB_FILE: file,
			CONSENTRY_HTTP_PORT: String(port),
			CONSENTRY_GATEWAY_ID: id,
			CONSENTRY_PUBLIC_URL: `http://127.0.0.1:${port}`,
		},
	});
}

/** Sends a join; follows redirects (at most 3), as the browser client does. Returns the answer and where it joined. */
async function joinFollowing(
	first: RawClient,
	token: string | undefined,
	body: Record<string, unknown>,
	open: RawClient[],
): Promise<{ client: RawClient; answer: JoinResult; hops: string[] }> {
	let client = first;
	const hops: string[] = [];
	for (let i = 0; i < 4; i++) {
		const r = await client.req("join", body);
		if (!r.ok) throw Object.assign(new Error(r.error.message), { body: r.error });
		const a = r.data as JoinAnswer;
		if (a.status !== "redirect") return { client, answer: a, hops };
		const redirect = JoinRedirectSchema.parse(a);
		hops.push(redirect.redirect.node);
		client.close();
		client = await connect(redirect.redirect.url, token);
		open.push(client);
	}
	throw new Error("too many redirects");
}

/**
 * Meetings placed on nodes (issue 12 placement): two gateway nodes on one PostgreSQL, each registered with its public
 * URL. The first join places a meeting on the least loaded node; a join reaching the other node is redirected there.
 * PostgreSQL only (the cluster needs it): on SQLite the suite checks that nothing changes.
 */
describe.skipIf(TEST_DATABASE !== "postgres")("meetings placed on nodes (two nodes, one PostgreSQL)", () => {
	const acme = testTenant("acme");
	const file = path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-cluster-")), "store.sqlite");
	let a: Gateway;
	let b: Gateway;
	const open: RawClient[] = [];

	beforeAll(async () => {
		a = await startNode("node-a", file, [acme]);
		b = await startNode("node-b", file, [acme]);
		await a.node?.beat(); // a sees b
	});
	afterAll(async () => {
		for (const c of open) c.close();
		await b?.close();
		await a?.close();
	});

	async function meeting(host: string): Promise<string> {
		const r = await api(a, "POST", "/api/meetings", acme.token(host), { title: host, settings: { lobby: false } });
		expect(r.status).toBe(201);
		return (r.body as { id: string }).id;
	}

	it("registers both nodes with their URL and load", async () => {
		const nodes = a.node?.nodes() ?? [];
		expect(nodes.map((n) => [n.nodeId, n.url])).toEqual([
			["node-a", a.url],
			["node-b", b.url],
		]);
		expect(a.node?.healthy).toBe(true);
	});

	it("host first on A, participant first on B: B redirects to the meeting's node and they meet", async () => {
		const id = await meeting("hana");
		const host = await connect(a.url, acme.token("hana"));
		open.push(host);
		const h = await joinFollowing(host, acme.token("hana"), { meetingId: id, displayName: "Hana" }, open);
		expect(h.answer.status).toBe("joined");
		const home = (h.answer as Joined).cluster?.node;
		expect(home).toMatch(/^node-[ab]$/);
		expect((h.answer as Joined).cluster?.nodes.sort()).toEqual([a.url, b.url].sort());

		// The participant reaches the node that is not the home first.
		const other = home === "node-a" ? b : a;
		const peerJoined = h.client.next("peerJoined");
		const p0 = await connect(other.url, acme.token("piet", "participant"));
		open.push(p0);
		const first = await p0.req("join", { meetingId: id, displayName: "Piet" });
		expect(first.ok && first.data.status).toBe("redirect");
		const p = await joinFollowing(p0, acme.token("piet", "participant"), { meetingId: id, displayName: "Piet" }, open);
		expect(p.hops).toEqual([home]);
		const pj = p.answer as Joined;
		expect(pj.status).toBe("joined");
		expect(pj.peers.map((x) => x.displayName)).toEqual(["Hana"]);
		expect((await peerJoined).displayName).toBe("Piet");
		// Nothing of the meeting lives on the other node.
		expect(other.rooms.get(id)).toBeUndefined();
		expect((home === "node-a" ? a : b).rooms.get(id)?.peers.size).toBe(2);
	});

	it("a handshake naming the meeting: the other node refuses the connection with the redirect, the home connects", async () => {
		const id = await meeting("hugo");
		const host = await connect(a.url, acme.token("hugo"));
		open.push(host);
		const h = await joinFollowing(host, acme.token("hugo"), { meetingId: id, displayName: "Hugo" }, open);
		const home = (h.answer as Joined).cluster?.node;
		const [homeNode, other] = home === "node-a" ? [a, b] : [b, a];
		const token = acme.token("pia", "participant");
		// Refused at the handshake (no join round trip), with what the client needs to go on, zod-valid.
		const refused = await connect(other.url, token, { meetingId: id }).then(
			() => undefined,
			(err: { data?: unknown }) => err.data,
		);
		const r = ConnectRedirectSchema.parse(refused);
		expect(r.redirect).toEqual({ url: homeNode.url, node: home });
		expect(r.meetingId).toBe(id);
		const p = await connect(r.redirect.url, token, { meetingId: id });
		open.push(p);
		expect((await p.call("join", { meetingId: id, displayName: "Pia" })).status).toBe("joined");
		// A meeting the node can't redirect for connects as before (the join answers).
		const unknown = await connect(other.url, token, { meetingId: "zzz-zzzz-zzz" });
		open.push(unknown);
		// Bad input in the handshake is a clear 4xx refusal.
		const bad = await connect(other.url, token, { meetingId: 42 }).then(
			() => undefined,
			(err: { data?: { code: string } }) => err.data?.code,
		);
		expect(bad).toBe("invalid_request");
	});

	it("places by load: each new meeting goes to a node with the fewest meetings", async () => {
		const placed = async () => {
			const nodes = (await a.node?.liveNodes()) ?? [];
			return Object.fromEntries(nodes.map((n) => [n.nodeId, n.placed])) as Record<string, number>;
		};
		for (const host of ["ines", "jon", "kim", "liv"]) {
			const before = await placed();
			const fewest = Math.min(...Object.values(before));
			const id = await meeting(host);
			const c = await connect(a.url, acme.token(host));
			open.push(c);
			const j = await joinFollowing(c, acme.token(host), { meetingId: id, displayName: host }, open);
			const node = (j.answer as Joined).cluster?.node as string;
			expect(before[node]).toBe(fewest);
			expect((await a.placement?.peek(id))?.nodeId).toBe(node);
		}
		const after = Object.values(await placed());
		expect(Math.max(...after) - Math.min(...after)).toBeLessThanOrEqual(1);
	});

	it("concurrent first joins on both nodes place the meeting once", async () => {
		const id = await meeting("kai");
		const viaA = await connect(a.url, acme.token("kai"));
		const viaB = await connect(b.url, acme.token("lea", "participant"));
		open.push(viaA, viaB);
		const [ra, rb] = await Promise.all([
			viaA.req("join", { meetingId: id, displayName: "Kai" }),
			// The participant may come before the host started it: retry until it is live.
			waitFor(
				async () => {
					const r = await viaB.req("join", { meetingId: id, displayName: "Lea" });
					return r.ok ? r : undefined;
				},
				10_000,
				"the meeting to be live",
			),
		]);
		const where = (r: typeof ra) =>
			r.ok ? (r.data.status === "redirect" ? r.data.redirect.node : (r.data as Joined).cluster?.node) : undefined;
		expect(where(ra)).toBeDefined();
		expect(where(ra)).toBe(where(rb));
	});

	it("an ended meeting's placement goes", async () => {
		const id = await meeting("max");
		const c = await connect(b.url, acme.token("max"));
		open.push(c);
		const j = await joinFollowing(c, acme.token("max"), { meetingId: id, displayName: "Max" }, open);
		expect(await a.placement?.peek(id)).toBeDefined();
		await j.client.call("endMeeting", {});
		await waitFor(async () => (await a.placement?.peek(id)) === undefined, 5000, "the placement to go");
	});

	it("no redirect for a token scoped to another meeting: refused where it lands", async () => {
		const id = await meeting("nia");
		const c = await connect(a.url, acme.token("nia"));
		open.push(c);
		const j = await joinFollowing(c, acme.token("nia"), { meetingId: id, displayName: "Nia" }, open);
		const home = (j.answer as Joined).cluster?.node;
		const token = acme.token("eve", "participant", { meeting: "some-other-meeting" });
		const stranger = await connect(home === "node-a" ? b.url : a.url, token);
		open.push(stranger);
		const r = await stranger.req("join", { meetingId: id, displayName: "Eve" });
		expect(r.ok).toBe(false);
		if (!r.ok) expect(r.error.code).toBe("token_wrong_meeting");
		// Nor at the handshake: it connects, and the join refuses.
		const named = await connect(home === "node-a" ? b.url : a.url, token, { meetingId: id });
		open.push(named);
		const r2 = await named.req("join", { meetingId: id, displayName: "Eve" });
		expect(!r2.ok && r2.error.code).toBe("token_wrong_meeting");
	});
});

describe.skipIf(TEST_DATABASE === "postgres")("one node on SQLite: placement is off", () => {
	it("a public URL without PostgreSQL changes nothing (no registry, no redirect)", async () => {
		const acme = testTenant("acme");
		const gw = await startGateway({ tenants: [acme], env: { CONSENTRY_PUBLIC_URL: "http://127.0.0.1:1" } });
		try {
			expect(gw.node).toBeUndefined();
			const m = (await api(gw, "POST", "/api/meetings", acme.token("hana"), { title: "t", settings: { lobby: false } }))
				.body as { id: string };
			const c = await connect(gw.url, acme.token("hana"), { meetingId: m.id });
			const j = await c.call("join", { meetingId: m.id, displayName: "Hana" });
			expect(j.status).toBe("joined");
			expect("cluster" in j).toBe(false);
			c.close();
		} finally {
			await gw.close();
		}
	});
});

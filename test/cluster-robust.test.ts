import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { launchChromium } from "./helpers/chromium.js";
import { joinVia, type NodeProcess, rejoin, startNodeProcess, stopNodeProcess } from "./helpers/clusterNodes.js";
import { postgresFor, TEST_DATABASE } from "./helpers/gateway.js";
import type { RawClient } from "./helpers/signaling.js";
import { startTcpProxy, type TcpProxy, viaProxy } from "./helpers/tcpProxy.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

const DEAD_MS = 3000;

/**
 * Fencing (issue 12): two node processes, each reaching PostgreSQL through its own TCP proxy. The proxy of the
 * meeting's node is cut mid-meeting (a partition: that node lives on, the store is out of its reach). Within the dead
 * time (+ a margin) the cut-off node closes its room: its people are ejected with `node_fenced`. The other node takes
 * the meeting (`node_lost`), the people rejoin through the nodes they know and land there, and the recording goes on
 * in a new session while the cut-off node's session is finished from the bucket. One meeting never has two rooms.
 */
describe.skipIf(TEST_DATABASE !== "postgres")("a meeting's node cut off from PostgreSQL (two node processes)", () => {
	const acme = testTenant("acme");
	const file = path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-fence-")), "store.sqlite");
	const nodes: NodeProcess[] = [];
	const proxies = new Map<string, TcpProxy>();
	const open: RawClient[] = [];
	let db: pg.Client;
	let bucket: TestBucket;

	beforeAll(async () => {
		const databaseUrl = await postgresFor(file);
		const u = new URL(databaseUrl);
		bucket = await startBucket("acme-fence");
		const env = { ...storageEnv(), CONSENTRY_NODE_DEAD_MS: String(DEAD_MS) };
		for (const id of ["node-a", "node-b"]) {
			const proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port) });
			proxies.set(id, proxy);
			nodes.push(await startNodeProcess({ id, databaseUrl: viaProxy(databaseUrl, proxy), tenants: [acme], env }));
		}
		await saveStorageTarget(nodes[0] as NodeProcess, acme, bucket, "rec");
		db = new pg.Client({ connectionString: databaseUrl });
		await db.connect();
		await new Promise((r) => setTimeout(r, 1500)); // each node has read the other at a heartbeat
	}, 120_000);
	afterAll(async () => {
		for (const c of open) c.close();
		await db?.end();
		for (const p of proxies.values()) p.restore();
		await Promise.all(nodes.map((n) => stopNodeProcess(n)));
		for (const p of proxies.values()) await p.close();
		await bucket?.stop();
	});

	const events = async (url: string, id: string, token: string) => {
		const r = await fetch(`${url}/api/meetings/${id}/events`, { headers: { authorization: `Bearer ${token}` } });
		return ((await r.json()) as { events: { type: string; data: Record<string, unknown> }[] }).events;
	};

	it("a host's REST call on a node that is not the meeting's home reaches the home (end, passcode lockout)", async () => {
		const hostToken = acme.token("rita");
		const partToken = acme.token("paul", "participant");
		const created = await fetch(`${nodes[0]?.url}/api/meetings`, {
			method: "POST",
			headers: { authorization: `Bearer ${hostToken}`, "content-type": "application/json" },
			body: JSON.stringify({ title: "ended elsewhere", settings: { passcode: "4711", lobby: false } }),
		});
		const { id } = (await created.json()) as { id: string };
		const host = await joinVia(nodes[0]?.url as string, hostToken, { meetingId: id, displayName: "Rita" });
		open.push(host.client);
		const place = await db.query<{ node_id: string }>("SELECT node_id FROM meeting_placements WHERE meeting_id = $1", [
			id,
		]);
		const home = nodes.find((n) => n.id === place.rows[0]?.node_id) as NodeProcess;
		const other = nodes.find((n) => n !== home) as NodeProcess;
		const part = await joinVia(other.url, partToken, { meetingId: id, displayName: "Paul", passcode: "4711" });
		open.push(part.client);
		expect(part.answer.status).toBe("joined");
		const on = await host.client.call("startCapture", { kind: "recording" });
		expect(on.state).toBe("on");

		// The meeting's passcode joins are locked out (as after guests' wrong guesses: test/passcode.test.ts); the host
		// lifts the lockout over REST on the node that is not the home, and sees it lifted in the meeting there.
		await db.query(
			"INSERT INTO passcode_attempts (meeting_id, scope, failures, last_at, locked_at) VALUES ($1, 'meeting', 20, $2, $3)",
			[id, Date.now(), new Date().toISOString()],
		);
		const locked = await fetch(`${other.url}/api/meetings/${id}/passcode-lockout`, {
			headers: { authorization: `Bearer ${hostToken}` },
		});
		expect(((await locked.json()) as { locked: boolean }).locked).toBe(true);
		const seen = host.client.next("passcodeLockout", 3000);
		const lifted = await fetch(`${other.url}/api/meetings/${id}/passcode-lockout`, {
			method: "DELETE",
			headers: { authorization: `Bearer ${hostToken}` },
		});
		expect(lifted.status).toBe(200);
		expect((await seen).locked).toBe(false);

		// The host ends the meeting over REST on the node that is not its home: its people are ejected there.
		const hostOut = host.client.next("ejected", 3000);
		const partOut = part.client.next("ejected", 3000);
		const at = Date.now();
		const r = await fetch(`${other.url}/api/meetings/${id}/end`, {
			method: "POST",
			headers: { authorization: `Bearer ${hostToken}` },
		});
		expect(r.status).toBe(200);
		const [he, pe] = await Promise.all([hostOut, partOut]);
		console.log(`ended over REST on ${other.id}: people on ${home.id} ejected in ${Date.now() - at} ms`);
		expect(he.reason).toBe("meeting_ended");
		expect(pe.reason).toBe("meeting_ended");
		// The home ended the recording (its session.off); the meeting ended once.
		const trail = await waitFor(
			async () => {
				const t = await events(other.url, id, hostToken);
				return t.some((e) => e.type === "session.off" && e.data.sessionId === on.sessionId) ? t : undefined;
			},
			5000,
			"the recording's end in the trail",
		);
		expect(trail.filter((e) => e.type === "meeting.ended")).toHaveLength(1);
		expect(trail.find((e) => e.type === "session.off" && e.data.sessionId === on.sessionId)?.data.reason).toBe(
			"meeting_ended",
		);
		expect((await db.query("SELECT 1 FROM meeting_placements WHERE meeting_id = $1", [id])).rowCount).toBe(0);
	});

	it("closes its room within the dead time; the other node continues the meeting, its recording and its transcription", async () => {
		const [a, b] = nodes as [NodeProcess, NodeProcess];
		const hostToken = acme.token("hana");
		const partToken = acme.token("piet", "participant");
		const created = await fetch(`${a.url}/api/meetings`, {
			method: "POST",
			headers: { authorization: `Bearer ${hostToken}`, "content-type": "application/json" },
			body: JSON.stringify({ title: "fenced", settings: { lobby: true } }),
		});
		const { id } = (await created.json()) as { id: string };
		const host = await joinVia(a.url, hostToken, { meetingId: id, displayName: "Hana" });
		open.push(host.client);
		const place = await db.query<{ node_id: string }>("SELECT node_id FROM meeting_placements WHERE meeting_id = $1", [
			id,
		]);
		const home = nodes.find((n) => n.id === place.rows[0]?.node_id) as NodeProcess;
		const survivor = home === a ? b : a;
		const lobby = host.client.next("lobbyChanged");
		const part = await joinVia(survivor.url, partToken, { meetingId: id, displayName: "Piet" });
		open.push(part.client);
		const { waiting } = await lobby;
		const admitted = part.client.next("admitted");
		await host.client.call("admit", { peerId: waiting[0]?.peerId });
		await admitted;
		expect((await part.client.call("join", { meetingId: id, displayName: "Piet" })).status).toBe("joined");
		const on = await host.client.call("startCapture", { kind: "recording" });
		expect(on.state).toBe("on");
		const oldSession = on.sessionId as string;
		const onT = await host.client.call("startCapture", { kind: "transcription" });
		expect(onT.state).toBe("on");
		const oldTranscript = onT.sessionId as string;

		// The partition: the home node's connections to PostgreSQL are cut; the node itself goes on running.
		const hostOut = host.client.next("ejected", 10_000);
		const partOut = part.client.next("ejected", 10_000);
		const cutAt = Date.now();
		proxies.get(home.id)?.cut();
		const [he, pe] = await Promise.all([hostOut, partOut]).catch((err: unknown) => {
			throw new Error(`${String(err)}; the node's log: ${home.log().slice(-4000)}`);
		});
		const fencedIn = Date.now() - cutAt;
		console.log(`fenced: both people ejected ${fencedIn} ms after the cut (dead time ${DEAD_MS} ms)`);
		expect(he.reason).toBe("node_fenced");
		expect(pe.reason).toBe("node_fenced");
		expect(fencedIn).toBeLessThanOrEqual(DEAD_MS + 1500);
		// Cut off, it takes no join: store_unavailable (the client goes on to another node).
		await expect(joinVia(home.url, hostToken, { meetingId: id, displayName: "Hana" })).rejects.toMatchObject({
			body: { code: "store_unavailable" },
		});

		// They reconnect as the browser does after `node_fenced`: the other nodes first, the fenced one last.
		const urls = [survivor.url, home.url];
		const [h2, p2] = await Promise.all([
			rejoin(urls, hostToken, { meetingId: id, displayName: "Hana" }),
			rejoin(urls, partToken, { meetingId: id, displayName: "Piet" }),
		]);
		open.push(h2.client, p2.client);
		console.log(`both back on ${survivor.id} ${Math.max(h2.at, p2.at) - cutAt} ms after the cut`);
		expect(h2.answer).toMatchObject({ status: "joined", role: "host", cluster: { node: survivor.id } });
		expect(p2.answer.status).toBe("joined"); // no lobby: they were in when the node was lost
		const moved = await db.query("SELECT node_id, epoch, cause FROM meeting_placements WHERE meeting_id = $1", [id]);
		expect(moved.rows[0]).toMatchObject({ node_id: survivor.id, epoch: 2, cause: "node_lost" });

		// The recording goes on in a new session on the new home; the fenced node's session is finished from the bucket.
		const continued = await waitFor(
			async () =>
				(await events(survivor.url, id, hostToken)).find(
					(e) => e.type === "session.on" && e.data.continues === oldSession,
				),
			10_000,
			"the recording continued on the new home",
		);
		expect(continued.data).toMatchObject({ kind: "recording", cause: "node_lost", lostNode: home.id });
		// So does the transcription: a new session naming the lost one, the gap's cause in the trail.
		const transcribing = await waitFor(
			async () =>
				(await events(survivor.url, id, hostToken)).find(
					(e) => e.type === "session.on" && e.data.continues === oldTranscript,
				),
			10_000,
			"the transcription continued on the new home",
		);
		expect(transcribing.data).toMatchObject({ kind: "transcription", cause: "node_lost", lostNode: home.id });
		expect(transcribing.data.sessionId).not.toBe(oldTranscript);
		const manifest = await waitFor(
			async () => bucket.json<{ endReason: string }>(`rec/${id}/${oldSession}/manifest.json`).catch(() => undefined),
			30_000, // the new home waits out the lost recorder's grace (11.5 s) before finishing the session
			"the fenced session's manifest",
		);
		expect(manifest.endReason).toBe("node_lost");
		// Its transcript went to the bucket at the fence, as a checkpoint (the node can't write the trail); the new home
		// finished it from there right after the recording: ended by node_lost, the gap from that checkpoint on.
		const transcript = await waitFor(
			async () =>
				bucket
					.json<{ endedAt: string; endReason?: string; holes?: { from: string; cause: string }[] }>(
						`rec/${id}/${oldTranscript}/transcript.json`,
					)
					.then((t) => (t.endReason ? t : undefined))
					.catch(() => undefined),
			10_000,
			"the fenced transcription's transcript",
		);
		expect(transcript).toMatchObject({
			endReason: "node_lost",
			holes: [{ from: transcript.endedAt, cause: "node_lost" }],
		});
		expect(Date.parse(transcript.endedAt)).toBeGreaterThanOrEqual(cutAt); // written by the fenced node, at its fence
		// The fenced node wrote nothing after the cut: no one "left", the meeting did not end, no session.off.
		const trail = await events(survivor.url, id, hostToken);
		expect(trail.some((e) => e.type === "meeting.ended")).toBe(false);
		expect(trail.some((e) => e.type === "session.off" && e.data.sessionId === oldSession)).toBe(false);

		// Back in reach of the store, the fenced node does not take the meeting back: it redirects there.
		proxies.get(home.id)?.restore();
		const back = await waitFor(
			async () => {
				try {
					const j = await joinVia(home.url, acme.token("zoe", "participant"), { meetingId: id, displayName: "Zoe" });
					j.client.close();
					return j;
				} catch {
					return undefined;
				}
			},
			15_000,
			"the fenced node to answer again",
		);
		expect(back.hops).toEqual([survivor.id]);
	}, 90_000);
	it("a browser told node_fenced reconnects on its own and lands on the meeting's new home (Chromium)", async () => {
		// The previous test's fenced node is back: wait until both nodes count each other alive.
		await waitFor(
			async () =>
				(
					await db
						.query("SELECT 1 FROM cluster_nodes WHERE heartbeat_at >= $1", [Date.now() - 1500])
						.catch(() => ({ rowCount: 0 }))
				).rowCount === 2,
			15_000,
			"both nodes alive",
		);
		const hostToken = acme.token("bea");
		const created = await fetch(`${nodes[0]?.url}/api/meetings`, {
			method: "POST",
			headers: { authorization: `Bearer ${hostToken}`, "content-type": "application/json" },
			body: JSON.stringify({ title: "browser fenced", settings: { lobby: false } }),
		});
		const m = (await created.json()) as { id: string; joinCode: string };
		const chrome = await launchChromium();
		try {
			const page = await chrome.browser.newPage();
			await page.goto(`${nodes[0]?.url}/?${new URLSearchParams({ m: m.joinCode, name: "Bea" })}#token=${hostToken}`);
			await page.getByRole("button", { name: "Join", exact: true }).click();
			const connected = () =>
				page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 30_000 });
			await connected();
			const place = async () =>
				(await db.query<{ node_id: string }>("SELECT node_id FROM meeting_placements WHERE meeting_id = $1", [m.id]))
					.rows[0]?.node_id;
			const homeId = await place();
			const survivor = nodes.find((n) => n.id !== homeId) as NodeProcess;
			const cutAt = Date.now();
			proxies.get(homeId as string)?.cut();
			// No error screen: the page reconnects by itself and is in the meeting again, on the other node.
			await page.locator("#reconnect-screen").waitFor({ state: "visible", timeout: 10_000 });
			await connected();
			console.log(`browser back in the meeting ${Date.now() - cutAt} ms after its node was cut off`);
			expect(await place()).toBe(survivor.id);
			expect(await page.locator("#error-screen").isVisible()).toBe(false);
		} finally {
			proxies.get("node-a")?.restore();
			proxies.get("node-b")?.restore();
			await chrome.close();
		}
	});
});

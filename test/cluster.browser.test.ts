import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import pg from "pg";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { type NodeProcess, startNodeProcess, stopNodeProcess } from "./helpers/clusterNodes.js";
import { postgresFor, TEST_DATABASE } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * Two gateway node processes on one PostgreSQL (issue 12 placement), in headless Chromium: the host's browser first
 * reaches node A, the participant's first reaches node B (each page served by its node). The meeting lives on one of
 * them; the other's browser is sent there (refused at the handshake, which names the meeting, with the redirect; or,
 * for the first join that places the meeting elsewhere, a redirect in the join answer) and they meet: each sees the
 * other's video.
 * Then the recording gate still holds across the cluster: the host starts recording, both acknowledge the notice, and
 * objects land in the tenant's bucket. Last, the meeting's node is killed with -9: both browsers reconnect through the
 * nodes they know, land on the new home and see each other's video again.
 */
describe.skipIf(TEST_DATABASE !== "postgres")("host and participant first reach different nodes (Chromium)", () => {
	const acme = testTenant("acme");
	const file = path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-cluster-browser-")), "store.sqlite");
	let bucket: TestBucket;
	let chrome: LaunchedBrowser;
	let db: pg.Client;
	const nodes: NodeProcess[] = [];
	const pages: Page[] = [];
	const pageErrors: string[] = [];

	beforeAll(async () => {
		bucket = await startBucket("acme-cluster");
		const databaseUrl = await postgresFor(file);
		const env = storageEnv(); // one master key for the whole cluster: either node opens the sealed target
		nodes.push(await startNodeProcess({ id: "node-a", databaseUrl, tenants: [acme], env }));
		nodes.push(await startNodeProcess({ id: "node-b", databaseUrl, tenants: [acme], env }));
		const [a] = nodes as [NodeProcess];
		await saveStorageTarget(a, acme, bucket, "cluster");
		db = new pg.Client({ connectionString: databaseUrl });
		await db.connect();
		chrome = await launchChromium();
		await new Promise((r) => setTimeout(r, 1200)); // one heartbeat: each node knows the other
	}, 120_000);

	afterAll(async () => {
		await Promise.all(pages.map((p) => p.close().catch(() => undefined)));
		await chrome?.close();
		await db?.end();
		await Promise.all(nodes.map((n) => stopNodeProcess(n)));
		await bucket?.stop();
	});

	const redirects: string[] = [];
	async function open(node: NodeProcess, joinCode: string, name: string, token: string): Promise<Page> {
		const page = await chrome.browser.newPage();
		pages.push(page);
		page.on("pageerror", (err) => pageErrors.push(`${name}: ${err.message}`));
		// Which redirect the page was sent by: a refused handshake (socket.io CONNECT_ERROR, `44…`) or a join answer.
		page.on("websocket", (ws) =>
			ws.on("framereceived", ({ payload }) => {
				const text = String(payload);
				if (text.startsWith("44") && text.includes('"code":"redirect"')) redirects.push(`${name}: handshake`);
				else if (text.includes('"status":"redirect"')) redirects.push(`${name}: join`);
			}),
		);
		await page.goto(`${node.url}/?${new URLSearchParams({ m: joinCode, name })}#token=${token}`);
		return page;
	}

	const connected = (page: Page) =>
		page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 30_000 });

	/** Waits until the page renders the video of someone else (a remote camera tile with frames). */
	const seesVideo = (page: Page, what: string) =>
		waitFor(
			() =>
				page.evaluate(() =>
					Array.from(document.querySelectorAll<HTMLVideoElement>('[data-source="camera"] video')).some(
						(v) => !v.muted && v.videoWidth > 0,
					),
				),
			30_000,
			what,
		);

	it("they meet on the meeting's node, the notice and recording gate work there, and they come back when it dies", async () => {
		const [a, b] = nodes as [NodeProcess, NodeProcess];
		const hostToken = acme.token("hana");
		const created = await fetch(`${a.url}/api/meetings`, {
			method: "POST",
			headers: { authorization: `Bearer ${hostToken}`, "content-type": "application/json" },
			body: JSON.stringify({ title: "Across nodes", settings: { lobby: false } }),
		});
		const m = (await created.json()) as { id: string; joinCode: string };

		// The participant's page (from B) loads before the meeting is live: its lookup names no node yet, so its
		// join goes to B and whichever node is not the meeting's sends it on (at the handshake, or in the join answer).
		const bob = await open(b, m.joinCode, "Bob", acme.token("bob", "participant"));
		const host = await open(a, m.joinCode, "Hana", hostToken);
		await host.getByRole("button", { name: "Join", exact: true }).click();
		await connected(host);
		const home = (
			await db.query<{ node_id: string }>("SELECT node_id FROM meeting_placements WHERE meeting_id = $1", [m.id])
		).rows[0]?.node_id;
		expect(["node-a", "node-b"]).toContain(home);
		await bob.getByRole("button", { name: "Join", exact: true }).click();
		await connected(bob);
		// Both browsers' signaling went to the meeting's node (one of them after a redirect). The host's join started
		// the meeting: placed on A, Bob's handshake naming it is refused with the redirect; placed on B, the host's join
		// on A answered with the redirect (at its handshake the meeting was not live yet).
		expect(redirects).toEqual(home === "node-a" ? ["Bob: handshake"] : ["Hana: join"]);
		await seesVideo(host, "the host to see Bob's video");
		await seesVideo(bob, "Bob to see the host's video");

		// The recording gate across the cluster: start, both acknowledge, objects in the customer's bucket.
		await host.locator('[data-testid="capture-start"][data-kind="recording"]').click();
		for (const page of [host, bob]) {
			await page.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
			await page.getByTestId("notice-ack").click();
			await page.getByTestId("capture-notice").waitFor({ state: "hidden" });
		}
		const homeNode = nodes.find((n) => n.id === home) as NodeProcess;
		const trail = await waitFor(
			async () => {
				const r = await fetch(`${homeNode.url}/api/meetings/${m.id}/events`, {
					headers: { authorization: `Bearer ${hostToken}` },
				});
				const events = (
					(await r.json()) as { events: { type: string; actor: string; data: Record<string, unknown> }[] }
				).events;
				return events.filter((e) => e.type === "notice.acknowledged").length >= 2 ? events : undefined;
			},
			15_000,
			"both acknowledgements in the trail",
		);
		expect(trail.some((e) => e.type === "session.on" && e.data.kind === "recording")).toBe(true);
		expect(trail.filter((e) => e.type === "gate.opened").length).toBeGreaterThanOrEqual(2);
		// A few seconds recorded, then stop: the recording's objects and manifest land in the bucket.
		await new Promise((r) => setTimeout(r, 3000));
		await host.locator('[data-testid="capture-stop"][data-kind="recording"]').click();
		let ks: string[] = [];
		const keys = await waitFor(
			async () => {
				const listed = await bucket.s3.send(new ListObjectsV2Command({ Bucket: bucket.name, Prefix: "cluster/" }));
				ks = (listed.Contents ?? []).map((o) => o.Key as string);
				return ks.some((k) => k.endsWith("manifest.json")) && ks.some((k) => k.endsWith(".webm")) ? ks : undefined;
			},
			60_000,
			"the recording in the bucket",
		).catch((err: Error) => {
			throw new Error(`${err.message}; in the bucket: ${JSON.stringify(ks)}; home node log: ${homeNode.log()}`);
		});
		expect(keys.length).toBeGreaterThan(2);
		expect(pageErrors).toEqual([]);

		// The meeting's node killed with -9: both browsers show "Reconnecting…", retry through the nodes they know,
		// are sent to the new home and see each other's video again.
		const survivor = nodes.find((n) => n.id !== home) as NodeProcess;
		const killedAt = Date.now();
		homeNode.kill("SIGKILL");
		for (const page of [host, bob])
			await page.locator("#reconnect-screen").waitFor({ state: "visible", timeout: 10_000 });
		await Promise.all([connected(host), connected(bob)]);
		await Promise.all([seesVideo(host, "the host to see Bob again"), seesVideo(bob, "Bob to see the host again")]);
		const backIn = Date.now() - killedAt;
		console.log(`browsers back in the meeting, with video, ${backIn} ms after the kill`);
		expect(
			(await db.query<{ node_id: string }>("SELECT node_id FROM meeting_placements WHERE meeting_id = $1", [m.id]))
				.rows[0]?.node_id,
		).toBe(survivor.id);
		expect(pageErrors).toEqual([]);
	}, 180_000);
});

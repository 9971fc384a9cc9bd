import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * Real Chromium peers through the real mediasoup worker: DTLS completes on the
 * WebRtcTransport, RTP arrives at the server and is forwarded to the other
 * person, whose page plays it.
 */
describe("WebRTC through the built mediasoup worker", () => {
	const tenant = testTenant();
	let gateway: Gateway;
	let chrome: LaunchedBrowser;

	beforeAll(async () => {
		gateway = await startGateway({ tenants: [tenant] });
		chrome = await launchChromium();
	});

	afterAll(async () => {
		await chrome?.close();
		await gateway?.close();
	});

	/** Opens the meeting link (token in the fragment), presses Join and waits until the meeting screen is connected. */
	async function join(page: Page, joinCode: string, name: string, token: string): Promise<void> {
		await page.goto(`${gateway.url}/?m=${joinCode}&name=${name}#token=${token}`);
		await page.getByRole("button", { name: "Join", exact: true }).click();
		await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
	}

	it("a Chromium peer sends audio and video; a second one receives and plays them", async () => {
		const created = await api(gateway, "POST", "/api/meetings", tenant.token("ada"), {
			title: "WebRTC e2e",
			settings: { lobby: false },
		});
		expect(created.status).toBe(201);
		const meetingId = created.body.id as string;
		const joinCode = created.body.joinCode as string;
		const ada = await chrome.browser.newPage();
		await join(ada, joinCode, "Ada", tenant.token("ada"));

		const room = await waitFor(() => gateway.rooms.get(meetingId), 5000, "room");
		const adaPeer = await waitFor(() => [...room.peers.values()].find((p) => p.displayName === "Ada"), 5000, "peer");
		await waitFor(() => adaPeer.producers.size === 2, 10_000, "two producers");

		// DTLS done and inbound RTP counted on the send transport.
		const sendTransport = [...adaPeer.transports.values()].find((t) => t.appData.direction === "send");
		expect(sendTransport).toBeDefined();
		await waitFor(() => sendTransport?.dtlsState === "connected", 10_000, "DTLS connected");
		for (const producer of adaPeer.producers.values()) {
			const stats = await waitFor(
				async () => {
					const s = await producer.getStats();
					return s.some((x) => x.packetCount > 20) ? s : undefined;
				},
				10_000,
				`RTP on ${producer.kind} producer`,
			);
			expect(stats[0]?.type).toBe("inbound-rtp");
		}
		const tStats = await sendTransport?.getStats();
		expect(tStats?.[0]?.dtlsState).toBe("connected");
		expect(tStats?.[0]?.bytesReceived).toBeGreaterThan(10_000);

		// A second person receives both tracks and the video element renders frames.
		const bob = await chrome.browser.newPage();
		await join(bob, joinCode, "Bob", tenant.token("bob", "participant"));
		const adaTile = bob.locator(`[data-peer="${adaPeer.id}"][data-source="camera"] video`);
		await waitFor(
			() => adaTile.evaluate((v: HTMLVideoElement) => v.videoWidth > 0 && v.currentTime > 0.5),
			20_000,
			"Bob plays Ada's video",
		);
		const tracks = await adaTile.evaluate((v: HTMLVideoElement) =>
			(v.srcObject as MediaStream)
				.getTracks()
				.map((t) => t.kind)
				.sort(),
		);
		expect(tracks).toEqual(["audio", "video"]);
		const bobPeer = [...room.peers.values()].find((p) => p.displayName === "Bob");
		const consumers = [...(bobPeer?.consumers.values() ?? [])];
		expect(consumers.map((c) => c.kind).sort()).toEqual(["audio", "video"]);
		for (const c of consumers) {
			const s = await waitFor(
				async () => (await c.getStats()).find((x) => x.type === "outbound-rtp" && x.packetCount > 10),
				10_000,
				`${c.kind} forwarded`,
			);
			expect(s.byteCount).toBeGreaterThan(0);
		}

		// Leaving (the Leave button) cleans up every mediasoup object of that person, and the
		// consumers of their media on the other side.
		expect(adaPeer.consumers.size).toBe(2);
		await bob.getByRole("button", { name: "Leave", exact: true }).click();
		await bob.getByTestId("left-screen").waitFor();
		await waitFor(() => ![...room.peers.values()].some((p) => p.displayName === "Bob"), 15_000, "Bob removed");
		expect(bobPeer?.closed).toBe(true);
		expect(bobPeer?.transports.size).toBe(0);
		expect(consumers.every((c) => c.closed)).toBe(true);
		await waitFor(() => adaPeer.consumers.size === 0, 5000, "Ada's consumers of Bob closed");
		await ada.locator(`[data-peer="${bobPeer?.id}"]`).first().waitFor({ state: "detached" });
		await bob.close();
		// Closing the tab (a disconnect) cleans up the same way; the last one out closes the room.
		await ada.close();
		await waitFor(() => gateway.rooms.get(meetingId) === undefined, 15_000, "room closed");
		expect(room.router.closed).toBe(true);
	});
});

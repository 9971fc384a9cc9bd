import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { RecorderProcess } from "../server/recording/RecorderProcess.js";
import type { Manifest } from "../server/recording/RecordingTypes.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";
import { probeMedia } from "./helpers/webm.js";

/**
 * Capture time, not arrival time (issue 11). The recorder drops every packet captured (RTP time mapped to the
 * sender's clock through its RTCP sender reports) before the person's click, however late the answer arrives.
 * Bob answers ~5 s after the recording started, and his answer is held back 400 ms on its way to the gateway (a
 * slow relay on his signaling WebSocket); the host answers at once. The close side too: Bob clicks "Leave" and
 * that message is held back the same way (his camera and microphone keep sending meanwhile); the host then clicks
 * "Stop". Everything is checked from the bucket alone: the manifest's clicks, closes and capture times (nothing
 * recorded before the click nor after the close), and the objects (each decodes, and lasts as long as the
 * manifest's first-to-last capture times say).
 */
const acme = testTenant("acme");
const ANSWER_DELAY_MS = 400;
let bucket: TestBucket;
let gw: Gateway;
let chrome: LaunchedBrowser;
const pages: Page[] = [];

beforeAll(async () => {
	bucket = await startBucket("acme-capture-time");
	gw = await startGateway({ tenants: [acme], env: storageEnv() });
	await saveStorageTarget(gw, acme, bucket, "rec", { encryption: { type: "SSE-S3" } });
	chrome = await launchChromium();
});

afterAll(async () => {
	await Promise.all(pages.map((p) => p.close().catch(() => undefined)));
	await chrome?.close();
	await gw?.close();
	await bucket?.stop();
});

async function join(joinCode: string, name: string, token: string, answerDelayMs = 0): Promise<Page> {
	const page = await chrome.browser.newPage();
	pages.push(page);
	if (answerDelayMs > 0) {
		// A slow relay for the answers: the signaling WebSocket holds each acknowledgement back before the gateway.
		await page.routeWebSocket(/socket\.io/, (ws) => {
			const server = ws.connectToServer();
			ws.onMessage((m) => {
				if (typeof m === "string" && (m.includes('"acknowledgeNotice"') || m.includes('["leave"')))
					setTimeout(() => server.send(m), answerDelayMs);
				else server.send(m);
			});
			server.onMessage((m) => ws.send(m));
		});
	}
	await page.goto(`${gw.url}/?${new URLSearchParams({ m: joinCode, name })}#token=${token}`);
	await page.getByRole("button", { name: "Join", exact: true }).click();
	await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
	return page;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

describe("the gate per packet, on capture time", () => {
	it("records nothing captured before a late, delayed click, and puts every track on one clock", async () => {
		const hostToken = acme.token("ct-host");
		const m = await api(gw, "POST", "/api/meetings", hostToken, { title: "Capture time", settings: { lobby: false } });
		const { id: meetingId, joinCode } = m.body as { id: string; joinCode: string };
		const host = await join(joinCode, "Hana", hostToken);
		const bob = await join(joinCode, "Bob", acme.token("ct-bob", "participant"), ANSWER_DELAY_MS);
		const room = gw.rooms.get(meetingId);
		await waitFor(
			() => [...(room?.peers.values() ?? [])].every((p) => p.producers.size === 2) && room?.peers.size === 2,
			20_000,
			"everyone sending mic and camera",
		);
		await host.locator('[data-testid="capture-start"][data-kind="recording"]').click();
		await host.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
		await host.getByTestId("notice-ack").click();
		await bob.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
		await new Promise((r) => setTimeout(r, 5_000)); // Bob reads for 5 s
		await bob.getByTestId("notice-ack").click();
		await waitFor(() => gw.recorder?.openTracks.length === 4, 15_000, "4 tracks recording");
		await new Promise((r) => setTimeout(r, 8_000));
		const session = gw.capture.session(meetingId, "recording");
		// Bob leaves; his "leave" reaches the gateway 400 ms after his click, while his media still flows.
		await bob.locator("#leave-button").click();
		await waitFor(() => room?.peers.size === 1, 15_000, "Bob gone");
		await new Promise((r) => setTimeout(r, 1_000));
		await host.locator('[data-testid="capture-stop"][data-kind="recording"]').click();

		const base = `rec/${meetingId}/${session?.id}`;
		const manifest = await waitFor(
			async () => JSON.parse((await bucket.bytes(`${base}/manifest.json`)).toString()) as Manifest,
			60_000,
			"manifest.json in the bucket",
		);
		expect(manifest.tracks).toHaveLength(4);
		const margins: number[] = [];
		const closeMargins: number[] = [];
		const afterClose: number[] = [];
		const lineUp: { track: string; lastFrameAt: number; arrivedAt: number }[] = [];
		for (const track of manifest.tracks) {
			const c = track.capture;
			expect(c, `${track.kind}: capture account`).toBeDefined();
			if (!c) continue;
			expect(c.senderReports).toBeGreaterThan(0);
			expect(c.clickAt).not.toBeNull();
			expect(c.firstCaptureAt).not.toBeNull();
			expect(c.clockOffsetMs).not.toBeNull();
			// The rule, per packet: nothing recorded was captured before the click, nor after the close.
			const margin = (c.firstCaptureAt as number) - (c.clickAt as number);
			expect(margin).toBeGreaterThanOrEqual(0);
			margins.push(margin);
			expect(c.closeAt, `${track.kind}: close`).not.toBeNull();
			expect(c.lastCaptureAt as number).toBeLessThanOrEqual(c.closeAt as number);
			closeMargins.push((c.closeAt as number) - (c.lastCaptureAt as number));
			if (track.closeReason !== "stopped") {
				// Bob's tracks: what his camera and microphone sent while his "leave" was held back was dropped.
				expect(c.packetsAfterClose, `${track.kind}: dropped after the leave click`).toBeGreaterThan(0);
				afterClose.push(c.packetsAfterClose);
			}
			// Same machine: the sender's clock is the gateway's, up to the report's transit.
			expect(Math.abs(c.clockOffsetMs as number)).toBeLessThan(200);
			expect(track.objects.length).toBeGreaterThanOrEqual(1);
			// The objects hold what the manifest says: each decodes, starts at or after the click, and all of them
			// together last no longer than the first-to-last capture times (+ one frame and rounding).
			const captured = ((c.lastCaptureAt as number) - (c.firstCaptureAt as number)) / 1000;
			expect(captured).toBeGreaterThan(5);
			let seconds = 0;
			for (const o of track.objects) {
				expect(o.firstCaptureAt).toBeGreaterThanOrEqual(c.clickAt as number);
				expect(o.firstFrameAt).toBeDefined();
				const probe = await probeMedia(await bucket.bytes(o.key));
				expect(probe.decodeErrors).toBe("");
				seconds += probe.seconds;
			}
			expect(seconds).toBeLessThan(captured + 0.2);
			const obj = track.objects.at(-1) as Manifest["tracks"][number]["objects"][number];
			lineUp.push({
				track: `${track.person}-${track.kind}`,
				lastFrameAt: (c.lastCaptureAt as number) - (c.clockOffsetMs as number),
				arrivedAt: Date.parse(obj.endedAt),
			});
		}
		// One clock: every track's packets mapped to the gateway's clock with the manifest's offset, against their
		// arrival at the recorder. Tracks line up when the least delay of any packet (the mapping's error plus the
		// shortest path) is the same for all; its spread across the four tracks is the alignment error. The last
		// object's end (its last frame's arrival) against lastCaptureAt is printed too (load adds jitter to it).
		const transits = manifest.tracks.map((t) => t.capture?.minTransitMs as number);
		for (const x of transits) expect(x).not.toBeNull();
		const spread = Math.max(...transits) - Math.min(...transits);
		const lags = lineUp.map((l) => l.arrivedAt - l.lastFrameAt);
		console.log(
			`capture-time: margins first capture − click (ms) p50 ${median(margins).toFixed(1)} min ${Math.min(...margins).toFixed(1)} ` +
				`[${margins.map((x) => x.toFixed(1)).join(", ")}]; min transit (ms) ${transits.map((x) => x.toFixed(1)).join(", ")}; ` +
				`spread ${spread.toFixed(1)} ms; last frame lag (ms) ${lags.map((x) => x.toFixed(1)).join(", ")}; ` +
				`close − last capture (ms) [${closeMargins.map((x) => x.toFixed(1)).join(", ")}]; ` +
				`packets dropped after Bob's leave click [${afterClose.join(", ")}]`,
		);
		expect(afterClose).toHaveLength(2);
		expect(spread).toBeLessThanOrEqual(40);
	});

	it("never records a track no sender report dates, and tells the host why", async () => {
		// A sender whose reports never come: the gateway forwards none of them (as for a client that sends none).
		const recorder = gw.recorder as RecorderProcess;
		const forward = recorder.senderReport;
		recorder.senderReport = () => undefined;
		try {
			const hostToken = acme.token("ct-host2");
			const m = await api(gw, "POST", "/api/meetings", hostToken, { title: "No reports", settings: { lobby: false } });
			const { id: meetingId, joinCode } = m.body as { id: string; joinCode: string };
			const host = await join(joinCode, "Hana", hostToken);
			const room = gw.rooms.get(meetingId);
			await waitFor(() => [...(room?.peers.values() ?? [])].every((p) => p.producers.size === 2), 20_000, "sending");
			await host.locator('[data-testid="capture-start"][data-kind="recording"]').click();
			await host.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
			await host.getByTestId("notice-ack").click();
			const session = gw.capture.session(meetingId, "recording");
			// After 10 s of packets no report dates, the host's capture box says why that track isn't recorded.
			const box = host.locator('#capture-message[data-code="capture_undatable"]');
			await box.waitFor({ state: "visible", timeout: 25_000 });
			expect(await box.textContent()).toMatch(/Hana's (audio|camera) is not being recorded/);
			await host.locator('[data-testid="capture-stop"][data-kind="recording"]').click();
			const manifest = await waitFor(
				async () =>
					JSON.parse((await bucket.bytes(`rec/${meetingId}/${session?.id}/manifest.json`)).toString()) as Manifest,
				60_000,
				"manifest.json in the bucket",
			);
			expect(manifest.tracks).toHaveLength(2);
			for (const t of manifest.tracks) {
				expect(t.objects).toEqual([]);
				expect(t.capture).toMatchObject({ senderReports: 0, firstCaptureAt: null });
				expect(t.capture?.packetsUndated).toBeGreaterThan(0);
			}
		} finally {
			recorder.senderReport = forward;
		}
	});
});

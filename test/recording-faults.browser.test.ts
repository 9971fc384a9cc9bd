import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { Manifest } from "../server/recording/RecordingTypes.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";
import { probeMedia } from "./helpers/webm.js";

/**
 * Recording when things break, through the whole gateway: the recorder
 * process is killed (-9) mid-recording — the gateway restarts it, and
 * recording of the people still covered goes on into new objects; the
 * customer's bucket goes down for longer than the recorder's buffer — the
 * recording stops cleanly and everyone in the meeting is told why.
 */
const acme = testTenant("acme");
let bucket: TestBucket;
let gw: Gateway;
let chrome: LaunchedBrowser;
const pages: Page[] = [];

beforeAll(async () => {
	bucket = await startBucket("acme-recordings");
	gw = await startGateway({
		tenants: [acme],
		env: {
			...storageEnv(),
			// Small objects (3 s) so a crash loses little; a small buffer so an outage outlasts it quickly.
			CONSENTRY_RECORDING_SEGMENT_MINUTES: "0.05",
			CONSENTRY_RECORDER_BUFFER_MIB: "6",
			// Fake camera media is slow to fill even 6 MiB: a bucket silent for 20 s stops the recording too.
			CONSENTRY_RECORDER_MAX_OUTAGE_SECONDS: "20",
		},
	});
	await saveStorageTarget(gw, acme, bucket, "rec");
	chrome = await launchChromium();
});

afterAll(async () => {
	bucket?.server.resume();
	await Promise.all(pages.map((p) => p.close().catch(() => undefined)));
	await chrome?.close();
	await gw?.close();
	await bucket?.stop();
});

async function recordingHost(name: string): Promise<{ page: Page; meetingId: string }> {
	const hostToken = acme.token(name);
	const m = await api(gw, "POST", "/api/meetings", hostToken, { title: name, settings: { lobby: false } });
	const { id: meetingId, joinCode } = m.body as { id: string; joinCode: string };
	const page = await chrome.browser.newPage();
	pages.push(page);
	await page.goto(`${gw.url}/?${new URLSearchParams({ m: joinCode, name })}#token=${hostToken}`);
	await page.getByRole("button", { name: "Join", exact: true }).click();
	await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
	await waitFor(() => gw.rooms.get(meetingId)?.peers.values().next().value?.producers.size === 2, 20_000, "sending");
	await page.locator('[data-testid="capture-start"][data-kind="recording"]').click();
	await page.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
	await page.getByTestId("notice-ack").click();
	await waitFor(() => gw.recorder?.openTracks.length === 2, 15_000, "2 tracks recording");
	return { page, meetingId };
}

async function manifestOf(meetingId: string, sessionId: string): Promise<Manifest> {
	return waitFor(() => bucket.json<Manifest>(`rec/${meetingId}/${sessionId}/manifest.json`), 60_000, "manifest.json");
}

describe("recording faults", () => {
	it("a recorder killed with -9 is restarted and recording goes on into new objects", async () => {
		const { page, meetingId } = await recordingHost("crash-host");
		const session = gw.capture.session(meetingId, "recording");
		await new Promise((r) => setTimeout(r, 7000)); // two 3 s objects per track stored
		const oldPid = gw.recorder?.pid as number;
		process.kill(oldPid, "SIGKILL");
		await waitFor(
			() => gw.recorder?.alive && gw.recorder.pid !== oldPid && gw.recorder.openTracks.length === 2,
			20_000,
		);
		// The host is told, live, what the crash cost.
		const warning = page.getByTestId("capture-message");
		await warning.waitFor({ state: "visible", timeout: 20_000 });
		expect(await warning.getAttribute("data-code")).toBe("recording_loss");
		expect(await warning.textContent()).toMatch(/crash-host's (audio|camera) will be missing \(recorder crash\)/);
		await new Promise((r) => setTimeout(r, 7000));
		await page.locator('[data-testid="capture-stop"][data-kind="recording"]').click();

		const manifest = await manifestOf(meetingId, session?.id as string);
		const crashed = manifest.tracks.filter((t) => t.closeReason === "recorder_crashed");
		const after = manifest.tracks.filter((t) => t.closeReason !== "recorder_crashed");
		expect(crashed.map((t) => t.kind).sort()).toEqual(["audio", "camera"]);
		expect(after.map((t) => t.kind).sort()).toEqual(["audio", "camera"]);
		for (const t of [...crashed, ...after]) expect(t.objects.length).toBeGreaterThanOrEqual(1);
		// What the crash cost each track is in the manifest: at most 5 s before the crash, then until the reopen.
		for (const t of crashed) {
			const hole = t.holes.find((h) => h.cause === "recorder_crash");
			expect(hole).toBeDefined();
			expect((Date.parse(hole?.to as string) - Date.parse(hole?.from as string)) / 1000).toBeLessThanOrEqual(5.5);
			for (const o of t.objects) {
				const p = await probeMedia(await bucket.bytes(o.key));
				expect(p.decodeErrors).toBe("");
			}
		}
		for (const t of after) expect(t.holes.map((h) => h.cause)).toContain("recorder_crash");
		for (const t of after) expect(t.framesWritten).toBe(t.framesReceived);
		// The tracks after the restart start a new block of sequence numbers: no key is ever written twice.
		const keys = manifest.tracks.flatMap((t) => t.objects.map((o) => o.key));
		expect(new Set(keys).size).toBe(keys.length);
		for (const t of after) expect(t.objects[0]?.seq).toBe(1001);
		const last = after.find((t) => t.kind === "camera")?.objects.at(-1);
		const probe = await probeMedia(await bucket.bytes(last?.key as string));
		expect(probe.codecs).toEqual(["vp8"]);
		expect(probe.decodeErrors).toBe("");
	});

	it("the bucket down past the recorder's buffer stops recording cleanly, and everyone is told why", async () => {
		const { page, meetingId } = await recordingHost("outage-host");
		const session = gw.capture.session(meetingId, "recording");
		await new Promise((r) => setTimeout(r, 4000));
		bucket.server.pause();
		// (A warning that part of a track will be missing may come first: the stop message replaces it.)
		const message = page.getByTestId("capture-message").getByText(/storage bucket could not be reached/);
		await message.waitFor({ state: "visible", timeout: 90_000 });
		await page
			.locator('[data-testid="capture-indicator"][data-kind="recording"]')
			.waitFor({ state: "hidden", timeout: 5000 });
		expect(gw.capture.session(meetingId, "recording")).toBeUndefined();
		const off = (await gw.events.list({ tenantId: "acme", meetingId, type: "session.off" })).find(
			(e) => e.data.sessionId === session?.id,
		);
		expect(off?.data.reason).toBe("storage_unavailable");
		bucket.server.resume();
		// What was recorded before the outage is in the bucket, and the manifest says why it ended.
		const manifest = await manifestOf(meetingId, session?.id as string);
		expect(manifest.endReason).toBe("storage_unavailable");
		expect(manifest.tracks.flatMap((t) => t.objects).length).toBeGreaterThanOrEqual(2);
	});
});

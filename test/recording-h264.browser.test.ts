import { createHash } from "node:crypto";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT, verifyCommand } from "../cli/verify/command.js";
import type { Gateway } from "../server/Gateway.js";
import type { Manifest } from "../server/recording/RecordingTypes.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { probe } from "./helpers/rtp-sender.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";
import { probeMedia } from "./helpers/webm.js";

/**
 * A Chromium camera recorded as H.264: the gateway prefers H.264 (CONSENTRY_VIDEO_CODEC=h264), Debian's Chromium
 * encodes it (OpenH264, constrained baseline, packetization-mode 1: STAP-A with SPS/PPS before each IDR, FU-A), the
 * recorder writes a Matroska object that decodes with ffmpeg, plays in Chromium itself, and `consentry verify`
 * accepts with the rest of the session.
 */
const acme = testTenant("acme");
let bucket: TestBucket;
let gw: Gateway;
let chrome: LaunchedBrowser;
const pages: Page[] = [];

beforeAll(async () => {
	bucket = await startBucket("acme-h264");
	gw = await startGateway({ tenants: [acme], env: { ...storageEnv(), CONSENTRY_VIDEO_CODEC: "h264" } });
	await saveStorageTarget(gw, acme, bucket, "rec", { encryption: { type: "none" } });
	chrome = await launchChromium();
});

afterAll(async () => {
	await Promise.all(pages.map((p) => p.close().catch(() => undefined)));
	await chrome?.close();
	await gw?.close();
	await bucket?.stop();
});

describe("recording an H.264 camera", () => {
	it("Chromium sends H.264; the camera is a .mkv that decodes, plays in Chromium, and verifies", async () => {
		const hostToken = acme.token("h264-host");
		const m = await api(gw, "POST", "/api/meetings", hostToken, { title: "H.264", settings: { lobby: false } });
		const { id: meetingId, joinCode } = m.body as { id: string; joinCode: string };
		const page = await chrome.browser.newPage();
		pages.push(page);
		await page.goto(`${gw.url}/?${new URLSearchParams({ m: joinCode, name: "Hana" })}#token=${hostToken}`);
		await page.getByRole("button", { name: "Join", exact: true }).click();
		await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
		const room = gw.rooms.get(meetingId);
		await waitFor(
			() => [...(room?.peers.values() ?? [])].every((p) => p.producers.size === 2) && room?.peers.size === 1,
			20_000,
			"mic and camera",
		);
		const camera = [...(room?.peers.values() ?? [])][0]?.producers;
		const video = [...(camera?.values() ?? [])].find((p) => p.kind === "video");
		expect(video?.rtpParameters.codecs[0]?.mimeType).toBe("video/H264");

		await page.locator('[data-testid="capture-start"][data-kind="recording"]').click();
		await page.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
		await page.getByTestId("notice-ack").click();
		const session = gw.capture.session(meetingId, "recording");
		expect(session).toBeDefined();
		await waitFor(() => gw.recorder?.openTracks.length === 2, 15_000, "2 tracks recording");
		await new Promise((r) => setTimeout(r, 6000));
		await page.locator('[data-testid="capture-stop"][data-kind="recording"]').click();

		const base = `rec/${meetingId}/${session?.id}`;
		const manifest = await waitFor(
			async () => JSON.parse((await bucket.bytes(`${base}/manifest.json`)).toString()) as Manifest,
			60_000,
			"manifest.json in the bucket",
		);
		const cam = manifest.tracks.find((t) => t.kind === "camera");
		expect(cam?.objects).toHaveLength(1);
		const obj = cam?.objects[0] as Manifest["tracks"][number]["objects"][number];
		expect(obj.key).toMatch(/-camera-1\.mkv$/);
		const bytes = await bucket.bytes(obj.key);
		expect(createHash("sha256").update(bytes).digest("hex")).toBe(obj.sha256);
		const full = await probeMedia(bytes);
		expect(full.codecs).toEqual(["h264"]);
		expect(full.decodeErrors).toBe("");
		const p = probe(bytes);
		expect(p.packets).toBe(obj.frames);
		expect(p.width).toBeGreaterThan(0);
		const covered = (Date.parse(cam?.closedAt as string) - Date.parse(cam?.openedAt as string)) / 1000;
		expect(Math.abs(full.seconds - covered)).toBeLessThan(1.5);

		// It plays in the browser as stored (no repair): Chromium opens the .mkv and decodes its pictures.
		const url = await getSignedUrl(bucket.s3, new GetObjectCommand({ Bucket: bucket.name, Key: obj.key }), {
			expiresIn: 300,
		});
		const player = await chrome.browser.newPage();
		pages.push(player);
		const played = await player.evaluate(async (src) => {
			const v = document.createElement("video");
			v.muted = true;
			v.src = src;
			document.body.append(v);
			try {
				await v.play();
			} catch (err) {
				return { error: String(err), code: v.error?.code, message: v.error?.message };
			}
			await new Promise((r) => setTimeout(r, 1500));
			const q = v.getVideoPlaybackQuality();
			return { width: v.videoWidth, time: v.currentTime, frames: q.totalVideoFrames, code: v.error?.code };
		}, url);
		expect(played).toMatchObject({ width: p.width });
		expect((played as { frames: number }).frames).toBeGreaterThan(10);

		// consentry verify accepts the session with its .mkv object.
		process.env.AWS_ACCESS_KEY_ID ??= "AKIATEST";
		process.env.AWS_SECRET_ACCESS_KEY ??= "secret-value";
		let out = "";
		const code = await verifyCommand([`s3://${bucket.name}/${base}`, "--endpoint", bucket.server.endpoint, "--json"], {
			out: (t) => (out += t),
			err: () => undefined,
		});
		const report = JSON.parse(out) as { sessions: { problems: { severity: string; message: string }[] }[] };
		expect(report.sessions[0]?.problems.filter((x) => x.severity === "fail")).toEqual([]);
		expect(code).toBe(EXIT.verified);
	});
});

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { axeViolations } from "./helpers/axe.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { type Browser, launchBrowser } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { connect, type RawClient } from "./helpers/signaling.js";
import { SENTENCES, speak } from "./helpers/speech.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * The playback page in Chromium on a real recording in the local S3 API: Hana (Chromium: fake camera, a microphone
 * that keeps saying a sentence) records and transcribes ~12 s; Pat was in the meeting and never answered. Pat opens
 * `/r/{sessionId}`: Hana's camera and microphone play from the bucket under one control, a seek moves both, they
 * stay within 100 ms of each other while playing, a transcript line seeks there and is highlighted, and the
 * evidence names who answered, who was recorded and who never was.
 */
const acme = testTenant("acme");
let dir: string;
let bucket: TestBucket;
let gw: Gateway;
let chrome: { browser: Browser; close(): Promise<void> };
let pat: RawClient | undefined;
const pages: Page[] = [];

/** 3 s of silence then a sentence, looped by Chromium's fake microphone. */
function speechFile(): string {
	const silence = (ms: number) => Buffer.alloc((ms / 1000) * 16000 * 2);
	const pcm = Buffer.concat([silence(3000), speak(SENTENCES.report).pcm, silence(1000)]);
	const file = path.join(dir, "speech.wav");
	const r = spawnSync(
		"ffmpeg",
		["-v", "error", "-f", "s16le", "-ar", "16000", "-ac", "1", "-i", "pipe:0", "-ar", "48000", "-y", file],
		{ input: pcm },
	);
	if (r.status !== 0) throw new Error(r.stderr.toString());
	return file;
}

beforeAll(async () => {
	dir = mkdtempSync(path.join(os.tmpdir(), "consentry-playback-"));
	bucket = await startBucket("acme-playback");
	gw = await startGateway({ tenants: [acme], env: storageEnv() });
	await saveStorageTarget(gw, acme, bucket, "rec");
	chrome = await launchBrowser([`--use-file-for-fake-audio-capture=${speechFile()}`]);
});

afterAll(async () => {
	pat?.close();
	await Promise.all(pages.map((p) => p.close().catch(() => undefined)));
	await chrome?.close();
	await gw?.close();
	await bucket?.stop();
	rmSync(dir, { recursive: true, force: true });
});

/** Each media element's place on the page's timeline (ms), sampled in one go. */
function positions(page: Page): Promise<{ kind: string; at: number; paused: boolean }[]> {
	return page.evaluate(() =>
		Array.from(document.querySelectorAll<HTMLMediaElement>("[data-testid=playback-track] :is(audio, video)")).map(
			(el) => ({
				kind: el.dataset.kind ?? "",
				at: el.currentTime * 1000 + Number(el.dataset.segmentStart ?? Number.NaN),
				paused: el.paused,
			}),
		),
	);
}
const spread = (ps: { at: number }[]) => Math.max(...ps.map((p) => p.at)) - Math.min(...ps.map((p) => p.at));

describe("playback page", () => {
	it("plays every track together from the bucket, seeks them all, with the transcript and the evidence", async () => {
		const hostToken = acme.token("pb-host");
		const m = await api(gw, "POST", "/api/meetings", hostToken, { title: "Played back", settings: { lobby: false } });
		const { id: meetingId, joinCode } = m.body as { id: string; joinCode: string };
		const context = await chrome.browser.newContext({ permissions: ["camera", "microphone"] });
		const host = await context.newPage();
		pages.push(host);
		await host.goto(`${gw.url}/?${new URLSearchParams({ m: joinCode, name: "Hana" })}#token=${hostToken}`);
		await host.getByRole("button", { name: "Join", exact: true }).click();
		await host.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
		pat = await connect(gw.url, acme.token("pat", "participant"));
		await pat.call("join", { meetingId, displayName: "Pat" });
		const room = gw.rooms.get(meetingId);
		await waitFor(() => [...(room?.peers.values() ?? [])].some((p) => p.producers.size === 2), 20_000, "Hana sending");

		for (const kind of ["recording", "transcription"]) {
			await host.locator(`[data-testid="capture-start"][data-kind="${kind}"]`).click();
			await host.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
			await host.getByTestId("notice-ack").click();
			await host.getByTestId("capture-notice").waitFor({ state: "hidden", timeout: 15_000 });
		}
		const sessionId = gw.capture.session(meetingId, "recording")?.id as string;
		await waitFor(() => gw.recorder?.openTracks.length === 2, 15_000, "2 tracks recording");
		// Hana's camera goes off for 4 s (the recorder ends that object after 2 s without frames) and on again: her
		// camera track is two objects with nothing between them.
		await new Promise((r) => setTimeout(r, 5000));
		await host.locator("#camera-button").click();
		await new Promise((r) => setTimeout(r, 4000));
		await host.locator("#camera-button").click();
		await new Promise((r) => setTimeout(r, 6000));
		for (const kind of ["recording", "transcription"]) {
			await host.locator(`[data-testid="capture-stop"][data-kind="${kind}"]`).click();
		}
		const written = () => gw.events.list({ tenantId: "acme", meetingId, type: "storage.object_written" });
		await waitFor(async () => (await written()).some((e) => e.data.manifest === true), 30_000, "the manifest");
		await waitFor(
			async () => (await written()).some((e) => String(e.data.key).endsWith("transcript.json")),
			30_000,
			"transcript",
		);

		const manifestKey = (await written()).find((e) => e.data.manifest === true)?.data.key as string;
		const manifest = await bucket.json<{
			tracks: { kind: string; objects: { startedAt: string; endedAt: string; firstFrameAt?: number }[] }[];
		}>(manifestKey);
		const start = (o: { startedAt: string; firstFrameAt?: number }) => o.firstFrameAt ?? Date.parse(o.startedAt);
		const t0 = Math.min(...manifest.tracks.flatMap((tr) => tr.objects.map(start)));
		const camera = manifest.tracks.find((tr) => tr.kind === "camera")?.objects ?? [];
		expect(camera).toHaveLength(2);
		const gapFrom = Date.parse(camera[0]?.endedAt as string) - t0;
		const gapTo = start(camera[1] as { startedAt: string }) - t0;
		expect(gapTo - gapFrom).toBeGreaterThan(2000);
		const secondEnd = Date.parse(camera[1]?.endedAt as string) - t0;

		// Pat, who was there, opens the page with their own sign-in.
		const page = await context.newPage();
		pages.push(page);
		const opened = Date.now();
		await page.goto(`${gw.url}/r/${sessionId}#token=${acme.token("pat", "participant")}`);
		await page.locator('[data-testid="playback-screen"][data-code="ok"]').waitFor({ timeout: 15_000 });
		expect(await page.getByTestId("playback-track").count()).toBe(2);

		// The evidence: Hana acknowledged and was recorded (camera and sound); Pat never answered, never recorded.
		const rows = page.getByTestId("evidence-person");
		expect(await rows.count()).toBe(2);
		const you = rows.filter({ hasText: "(you)" });
		expect(await you.getByTestId("evidence-answer").textContent()).toBe("Never answered");
		expect(await you.getByTestId("evidence-recorded").textContent()).toBe("Never recorded");
		const hana = rows.filter({ hasNotText: "(you)" });
		expect(await hana.getByTestId("evidence-answer").textContent()).toMatch(/^Acknowledged at /);
		expect(await hana.getByTestId("evidence-recorded").locator("li").count()).toBe(3); // sound, camera ×2
		expect(await page.getByTestId("evidence-holes").textContent()).toMatch(/No holes/);

		// Play: both tracks start, and stay within 100 ms of each other.
		await page.getByTestId("playback-play").click();
		await page.waitForFunction(
			() => {
				const els = Array.from(
					document.querySelectorAll<HTMLMediaElement>("[data-testid=playback-track] :is(audio, video)"),
				);
				return els.length === 2 && els.every((el) => !el.paused && el.readyState >= 3 && el.currentTime > 0.3);
			},
			undefined,
			{ timeout: 15_000 },
		);
		console.info(`playback: page opened → both tracks playing in ${Date.now() - opened} ms`);
		const spreads: number[] = [];
		for (let i = 0; i < 10; i++) {
			const ps = await positions(page);
			expect(ps.every((p) => !p.paused && Number.isFinite(p.at))).toBe(true);
			spreads.push(spread(ps));
			await new Promise((r) => setTimeout(r, 150));
		}
		console.info(`playback: inter-track offset while playing, ms: ${spreads.map((s) => s.toFixed(0)).join(" ")}`);
		expect(Math.max(...spreads)).toBeLessThan(100);

		// A seek moves every track (and they play on together from there).
		const before = await positions(page);
		const target = (gapTo + secondEnd) / 2; // where every track has media
		await page.getByTestId("playback-seek").evaluate((el: HTMLInputElement, v) => {
			el.value = String(v);
			el.dispatchEvent(new Event("input", { bubbles: true }));
		}, target);
		await page.waitForFunction(
			(v) =>
				Array.from(document.querySelectorAll<HTMLMediaElement>("[data-testid=playback-track] :is(audio, video)")).every(
					(el) =>
						!el.paused &&
						el.readyState >= 3 &&
						Math.abs(el.currentTime * 1000 + Number(el.dataset.segmentStart) - v) < 1500,
				),
			target,
			{ timeout: 10_000 },
		);
		await new Promise((r) => setTimeout(r, 500));
		const after = await positions(page);
		for (const [i, p] of after.entries()) {
			expect(p.at - (before[i]?.at ?? 0)).toBeGreaterThan(3000);
			expect(Math.abs(p.at - target)).toBeLessThan(2000);
		}
		expect(spread(after)).toBeLessThan(100);

		// The transcript beside it: a line seeks there and is highlighted.
		const lines = page.locator(".pb-line");
		expect(await lines.count()).toBeGreaterThan(0);
		const line = lines.first();
		const lineAt = Number(await line.getAttribute("data-at"));
		await line.click();
		// (Every track that has media there: the line may fall in the camera's gap, below.)
		await page.waitForFunction(
			(v) => {
				const els = Array.from(
					document.querySelectorAll<HTMLMediaElement>(
						'[data-testid=playback-track][data-state="media"] :is(audio, video)',
					),
				);
				return (
					els.some((el) => el.dataset.kind === "audio") &&
					els.every((el) => Math.abs(el.currentTime * 1000 + Number(el.dataset.segmentStart) - v) < 1500)
				);
			},
			lineAt,
			{ timeout: 10_000 },
		);
		await page.locator('.pb-line[aria-current="true"]').first().waitFor({ timeout: 5000 });
		if (process.env.PLAYBACK_SCREENSHOT)
			await page.screenshot({ path: process.env.PLAYBACK_SCREENSHOT, fullPage: true });
		// An automated WCAG 2.1 AA audit finds nothing.
		expect(await axeViolations(page)).toEqual([]);

		// The keyboard: Tab reaches the play button, Space pauses; the seek slider moves with the arrow keys.
		await page.getByTestId("playback-play").focus();
		await page.keyboard.press("Space");
		await page.locator('[data-testid="playback-play"][aria-pressed="false"]').waitFor();
		const seekBefore = Number(await page.getByTestId("playback-seek").inputValue());
		await page.getByTestId("playback-seek").focus();
		await page.keyboard.press("ArrowRight");
		await page.keyboard.press("ArrowRight");
		expect(Number(await page.getByTestId("playback-seek").inputValue())).toBeGreaterThan(seekBefore);
		expect(await page.getByTestId("playback-seek").getAttribute("aria-valuetext")).toMatch(/^\d+:\d\d of \d+:\d\d$/);
		await page.getByTestId("playback-play").focus();
		await page.keyboard.press("Enter");
		await page.locator('[data-testid="playback-play"][aria-pressed="true"]').waitFor();

		// The camera's two objects: in the gap between them its tile says so while the sound plays on; playing across
		// the gap, the camera stops at its end and starts again at the second object, in step with the sound.
		const seekTo = (v: number) =>
			page.getByTestId("playback-seek").evaluate((el: HTMLInputElement, x) => {
				el.value = String(x);
				el.dispatchEvent(new Event("input", { bubbles: true }));
			}, v);
		const cameraTile = page.locator('[data-testid="playback-track"]:has(video)');
		await seekTo(gapFrom - 1200);
		await page.locator('[data-testid="playback-track"][data-state="gap"]:has(video)').waitFor({ timeout: 10_000 });
		expect(await page.locator("audio").evaluate((el: HTMLMediaElement) => el.paused)).toBe(false);
		await page.locator('[data-testid="playback-track"][data-state="media"]:has(video)').waitFor({ timeout: 15_000 });
		await page.waitForFunction(
			(v) => {
				const video = document.querySelector<HTMLVideoElement>("[data-testid=playback-track] video");
				return video && !video.paused && video.readyState >= 3 && Number(video.dataset.segmentStart) >= v - 50;
			},
			gapTo,
			{ timeout: 10_000 },
		);
		await new Promise((r) => setTimeout(r, 1000));
		const across = await positions(page);
		console.info(`playback: across the gap, offset ${spread(across).toFixed(0)} ms`);
		expect(spread(across)).toBeLessThan(100);
		expect(await cameraTile.getAttribute("data-state")).toBe("media");

		// The page switches to French while it plays, without reloading a track.
		const srcs = await page.evaluate(() =>
			Array.from(document.querySelectorAll("audio, video")).map((el) => (el as HTMLMediaElement).src),
		);
		await page.locator(".lang-toggle").first().click();
		await page.getByRole("heading", { name: "Enregistrement — Played back" }).waitFor();
		expect(
			await page
				.getByTestId("evidence-person")
				.filter({ hasText: "(vous)" })
				.getByTestId("evidence-answer")
				.textContent(),
		).toBe("N’a jamais répondu");
		expect(
			await page.evaluate(() =>
				Array.from(document.querySelectorAll("audio, video")).map((el) => (el as HTMLMediaElement).src),
			),
		).toEqual(srcs);
		expect(spread(await positions(page))).toBeLessThan(100);

		// Pause stops every track.
		await page.getByTestId("playback-play").click();
		await page.waitForFunction(() =>
			Array.from(document.querySelectorAll<HTMLMediaElement>("[data-testid=playback-track] :is(audio, video)")).every(
				(el) => el.paused,
			),
		);
		// Every opening is in the tenant's chain.
		expect(await gw.events.list({ tenantId: "acme", meetingId, type: "recording.playback_opened" })).toHaveLength(1);
	});
});

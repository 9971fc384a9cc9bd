/**
 * The playback page (/r/{sessionId}) on a real recording: two people (Chromium, fake camera and microphone) record
 * `--seconds` into the local S3 API (moto), four tracks. Then, `--rounds` times, a fresh page opens the recording:
 * the time from opening the page to every track playing, the inter-track offset while they play (the spread of the
 * four tracks' positions on the page's timeline, sampled every 100 ms for 2 s), and the same after a seek.
 * Baseline in the same run: one of the objects opened alone (Chromium's own media page on its presigned URL), time
 * to playing. Prints a markdown section for docs/benchmarks.md.
 *
 *   node --import tsx bench/playback.ts [--rounds 3] [--seconds 20]
 */
import os from "node:os";
import { parseArgs } from "node:util";
import type { Page } from "playwright-core";
import { saveStorageTarget, startBucket, storageEnv } from "../test/helpers/bucket.js";
import { launchBrowser } from "../test/helpers/chromium.js";
import { api, startGateway } from "../test/helpers/gateway.js";
import { testTenant } from "../test/helpers/tenants.js";
import { waitFor } from "../test/helpers/wait.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: { rounds: { type: "string", default: "3" }, seconds: { type: "string", default: "20" } },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const log = (m: string) => process.stderr.write(`${m}\n`);
const TRACKS = "[data-testid=playback-track] :is(audio, video)";

const acme = testTenant("acme");
const bucket = await startBucket("bench-playback");
const gw = await startGateway({ tenants: [acme], env: storageEnv() });
const chrome = await launchBrowser();
try {
	await saveStorageTarget(gw, acme, bucket, "rec");
	const hostToken = acme.token("bench-host");
	const m = await api(gw, "POST", "/api/meetings", hostToken, { title: "Bench", settings: { lobby: false } });
	const { id: meetingId, joinCode } = m.body as { id: string; joinCode: string };
	const context = await chrome.browser.newContext({ permissions: ["camera", "microphone"] });
	const people: Page[] = [];
	for (const [name, token] of [
		["Hana", hostToken],
		["Pia", acme.token("pia", "participant")],
	] as const) {
		const p = await context.newPage();
		await p.goto(`${gw.url}/?${new URLSearchParams({ m: joinCode, name })}#token=${token}`);
		await p.getByRole("button", { name: "Join", exact: true }).click();
		await p.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 30_000 });
		people.push(p);
	}
	const room = gw.rooms.get(meetingId);
	await waitFor(
		() => [...(room?.peers.values() ?? [])].filter((p) => p.producers.size === 2).length === 2,
		30_000,
		"both sending",
	);
	await people[0]?.locator('[data-testid="capture-start"][data-kind="recording"]').click();
	for (const p of people) {
		await p.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
		await p.getByTestId("notice-ack").click();
	}
	const sessionId = gw.capture.session(meetingId, "recording")?.id as string;
	await waitFor(() => gw.recorder?.openTracks.length === 4, 20_000, "4 tracks recording");
	log(`recording ${seconds} s…`);
	await new Promise((r) => setTimeout(r, seconds * 1000));
	await people[0]?.locator('[data-testid="capture-stop"][data-kind="recording"]').click();
	await waitFor(
		async () =>
			(await gw.events.list({ tenantId: "acme", meetingId, type: "storage.object_written" })).some(
				(e) => e.data.manifest === true,
			),
		60_000,
		"the manifest",
	);
	for (const p of people) await p.close();

	const positions = (page: Page) =>
		page.evaluate(
			(sel) =>
				Array.from(document.querySelectorAll<HTMLMediaElement>(sel)).map(
					(el) => el.currentTime * 1000 + Number(el.dataset.segmentStart),
				),
			TRACKS,
		);
	const spreadOver2s = async (page: Page) => {
		const spreads: number[] = [];
		for (let i = 0; i < 20; i++) {
			const ps = await positions(page);
			spreads.push(Math.max(...ps) - Math.min(...ps));
			await new Promise((r) => setTimeout(r, 100));
		}
		return spreads;
	};
	const allPlaying = (page: Page, near?: number) =>
		page.waitForFunction(
			([sel, v]) => {
				const els = Array.from(document.querySelectorAll<HTMLMediaElement>(sel as string));
				return (
					els.length === 4 &&
					els.every(
						(el) =>
							!el.paused &&
							el.readyState >= 3 &&
							el.currentTime > 0.05 &&
							(v === null || Math.abs(el.currentTime * 1000 + Number(el.dataset.segmentStart) - Number(v)) < 1500),
					)
				);
			},
			[TRACKS, near ?? null] as const,
			{ timeout: 30_000, polling: 20 },
		);

	const results: { open: number; play: number; offset: number; offsetMax: number; seek: number; seekOffset: number }[] =
		[];
	const baseline: number[] = [];
	for (let r = 0; r < rounds; r++) {
		const page = await context.newPage();
		const t0 = Date.now();
		await page.goto(`${gw.url}/r/${sessionId}#token=${acme.token("pia", "participant")}`);
		await page.locator('[data-testid="playback-screen"][data-code="ok"]').waitFor({ timeout: 30_000 });
		const open = Date.now() - t0;
		await page.getByTestId("playback-play").click();
		await allPlaying(page);
		const play = Date.now() - t0;
		const spreads = await spreadOver2s(page);
		const target = Number(await page.getByTestId("playback-seek").getAttribute("max")) * 0.6;
		const s0 = Date.now();
		await page.getByTestId("playback-seek").evaluate((el: HTMLInputElement, v) => {
			el.value = String(v);
			el.dispatchEvent(new Event("input", { bubbles: true }));
		}, target);
		await allPlaying(page, target);
		const seek = Date.now() - s0;
		const after = await spreadOver2s(page);
		results.push({
			open,
			play,
			offset: median(spreads),
			offsetMax: Math.max(...spreads),
			seek,
			seekOffset: median(after),
		});
		log(`round ${r + 1}: ${JSON.stringify(results.at(-1))}`);

		// Baseline: one object alone, opened on its presigned URL (Chromium's media page).
		const opened = await api(gw, "GET", `/api/recordings/${sessionId}`, acme.token("pia", "participant"));
		const urls = Object.values(opened.body.urls as Record<string, string>);
		const camera = Object.entries(opened.body.urls as Record<string, string>).find(([k]) => k.includes("-camera-"));
		const b0 = Date.now();
		await page.goto(camera?.[1] ?? (urls[0] as string));
		await page.waitForFunction(
			() => {
				const v = document.querySelector("video");
				return v && !v.paused && v.readyState >= 3 && v.currentTime > 0.05;
			},
			undefined,
			{ timeout: 30_000, polling: 20 },
		);
		baseline.push(Date.now() - b0);
		await page.close();
	}
	const med = (k: keyof (typeof results)[number]) => median(results.map((x) => x[k])).toFixed(0);
	console.log(`
### Playback page (\`npm run bench:playback\`)

${machine()}; load average at the end ${os
		.loadavg()
		.map((l) => l.toFixed(1))
		.join(", ")}; ${new Date().toISOString().slice(0, 10)}.
A ${seconds} s recording of two people (camera + microphone each: 4 tracks, one object each) in the local S3 API;
${rounds} fresh page openings, medians:

| measure | median | runs |
| --- | --- | --- |
| page opened → API answered, page drawn | ${med("open")} ms | ${results.map((x) => x.open).join(", ")} |
| page opened → all 4 tracks playing (play pressed as soon as drawn) | ${med("play")} ms | ${results.map((x) => x.play).join(", ")} |
| baseline: one object alone on its presigned URL → playing | ${median(baseline).toFixed(0)} ms | ${baseline.join(", ")} |
| inter-track offset while playing (spread of the 4 positions, 20 samples over 2 s) | ${med("offset")} ms (max ${Math.max(...results.map((x) => x.offsetMax)).toFixed(0)}) | ${results.map((x) => x.offset.toFixed(0)).join(", ")} |
| seek → all 4 tracks playing at the new position | ${med("seek")} ms | ${results.map((x) => x.seek).join(", ")} |
| inter-track offset after the seek | ${med("seekOffset")} ms | ${results.map((x) => x.seekOffset.toFixed(0)).join(", ")} |
`);
} finally {
	await chrome.close();
	await gw.close();
	await bucket.stop();
}

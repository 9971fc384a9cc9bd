/**
 * Live captions, end to end: the time from the end of a spoken sentence to its
 * final caption on another participant's screen. Chromium's fake microphone
 * plays flite speech with known offsets (silence, sentence, silence, sentence,
 * …); an init script in the speaker's page records when getUserMedia opened the
 * microphone (the file starts playing then), one in the listener's page when
 * each final caption appears. Latency = caption shown − (microphone opened +
 * end of the sentence in the file). The fake device's start is pinned to the
 * getUserMedia promise only within some tens of ms; quote the median.
 *
 * Real gateway (in this process), real moto S3, real recorder + pocketsphinx,
 * Debian Chromium. Prints a markdown section for docs/benchmarks.md; stops by
 * itself in about 2 minutes.
 *
 *   node --import tsx bench/caption-latency.ts [--runs 3]
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { saveStorageTarget, startBucket, storageEnv } from "../test/helpers/bucket.js";
import { launchChromium } from "../test/helpers/chromium.js";
import { api, startGateway } from "../test/helpers/gateway.js";
import { SENTENCES, speak } from "../test/helpers/speech.js";
import { testTenant } from "../test/helpers/tenants.js";
import { machine, median, percentile } from "./stats.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const runs = Number(values.runs);
const log = (m: string) => process.stderr.write(`${m}\n`);

const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-captions-"));
const SILENCE_MS = 12_000;
const GAP_MS = 3000;
const sentences = [SENTENCES.report, SENTENCES.weather, SENTENCES.report];
const silence = (ms: number) => Buffer.alloc((ms / 1000) * 16000 * 2);
const parts: Buffer[] = [silence(SILENCE_MS)];
/** Where each sentence's speech ends in the file (ms). */
const ends: number[] = [];
let at = SILENCE_MS;
for (const text of sentences) {
	const s = speak(text);
	parts.push(s.pcm, silence(GAP_MS));
	ends.push(at + s.speechEndMs);
	at += s.durationMs + GAP_MS;
}
const wav = path.join(dir, "speech.wav");
const enc = spawnSync(
	"ffmpeg",
	["-v", "error", "-f", "s16le", "-ar", "16000", "-ac", "1", "-i", "pipe:0", "-ar", "48000", "-y", wav],
	{ input: Buffer.concat(parts) },
);
if (enc.status !== 0) throw new Error(enc.stderr.toString());
const fileMs = at;

const tenant = testTenant("bench");
const bucket = await startBucket("captions");
const gw = await startGateway({ tenants: [tenant], env: storageEnv() });
await saveStorageTarget(gw, tenant, bucket, "b");
const chrome = await launchChromium({ fakeAudioFile: wav });
// Wall-clock marks in every page: when the microphone opened, and when each final caption appeared.
await chrome.browser.addInitScript(() => {
	const w = window as unknown as { __mic?: number; __finals?: { t: number; text: string }[] };
	w.__finals = [];
	const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
	navigator.mediaDevices.getUserMedia = async (c) => {
		const stream = await gum(c);
		if (c && (c as MediaStreamConstraints).audio && w.__mic === undefined) w.__mic = Date.now();
		return stream;
	};
	new MutationObserver(() => {
		for (const li of Array.from(document.querySelectorAll<HTMLElement>('[data-testid="caption"][data-final="true"]'))) {
			if (li.dataset.seen) continue;
			li.dataset.seen = "1";
			w.__finals?.push({ t: Date.now(), text: li.textContent ?? "" });
		}
	}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-final"] });
});

const latencies: number[] = [];
try {
	for (let r = 0; r < runs; r++) {
		const hostToken = tenant.token(`host-${r}`);
		const m = await api(gw, "POST", "/api/meetings", hostToken, { title: `captions ${r}`, settings: { lobby: false } });
		const joinCode = m.body.joinCode as string;
		const join = async (name: string, token: string, audio: boolean) => {
			const page = await chrome.browser.newPage();
			await page.goto(`${gw.url}/?${new URLSearchParams({ m: joinCode, name })}#token=${token}`);
			if (!audio) {
				// The listener sends no microphone: only the speaker is transcribed.
				await page
					.getByRole("checkbox", { name: /microphone/i })
					.uncheck()
					.catch(() => undefined);
			}
			await page.getByRole("button", { name: "Join", exact: true }).click();
			await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
			return page;
		};
		const speaker = await join("Sky", hostToken, true);
		const listener = await join("Lee", tenant.token(`lee-${r}`, "participant"), false);
		await listener.locator('[data-testid="capture-start"][data-kind="transcription"]').click();
		for (const p of [speaker, listener]) {
			await p.getByTestId("capture-notice").waitFor({ timeout: 15_000 });
			await p.getByTestId("notice-ack").click();
		}
		const mic = (await speaker.evaluate(() => (window as unknown as { __mic?: number }).__mic)) as number;
		const wait = mic + fileMs + 2000 - Date.now();
		if (wait > 0) await new Promise((res) => setTimeout(res, wait));
		const finals = (await listener.evaluate(
			() => (window as unknown as { __finals: { t: number; text: string }[] }).__finals,
		)) as { t: number; text: string }[];
		const fromSky = finals.filter((f) => f.text.startsWith("Sky:"));
		// Match each sentence to the first final shown after its end.
		for (const end of ends) {
			const spokenEnd = mic + end;
			const shown = fromSky.find((f) => f.t >= spokenEnd);
			if (shown && shown.t - spokenEnd < GAP_MS + 2000) latencies.push(shown.t - spokenEnd);
		}
		log(
			`run ${r + 1}: ${fromSky.length} final captions from the speaker; latencies so far ${latencies.map((l) => l.toFixed(0)).join(", ")} ms`,
		);
		await listener.locator('[data-testid="capture-stop"][data-kind="transcription"]').click();
		await Promise.all([speaker.close(), listener.close()]);
	}
} finally {
	await chrome.close();
	await gw.close();
	await bucket.stop();
	rmSync(dir, { recursive: true, force: true });
}

const f = (x: number) => x.toFixed(0);
process.stdout.write(
	[
		`### Live captions on screen (${new Date().toISOString().slice(0, 10)})`,
		"",
		`Machine: ${machine()}. \`npm run bench:captions\` (bench/caption-latency.ts): Chromium's fake microphone plays`,
		`flite sentences; a listener's page records when each final caption appears; ${runs} meetings × ${sentences.length} sentences.`,
		"",
		"| samples | end of speech → final caption on screen, p50 | p90 | min | max |",
		"|---:|---:|---:|---:|---:|",
		latencies.length
			? `| ${latencies.length} | ${f(median(latencies))} ms | ${f(percentile(latencies, 90))} ms | ${f(Math.min(...latencies))} ms | ${f(Math.max(...latencies))} ms |`
			: "| 0 | – | – | – | – |",
		"",
	].join("\n"),
);
process.exit(0);

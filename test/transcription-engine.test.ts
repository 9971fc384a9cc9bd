import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PocketsphinxEngine } from "../recorder/transcription/PocketsphinxEngine.js";
import type { TranscriptionStream, TranscriptSegment } from "../recorder/transcription/TranscriptionEngineTypes.js";
import { wordErrorRate } from "../recorder/transcription/wer.js";
import { childrenOf, isRunning, writableRegularFiles } from "./helpers/proc-fds.js";
import { SENTENCES, type Speech, speak } from "./helpers/speech.js";
import { waitFor } from "./helpers/wait.js";

const log = pino({ level: "silent" });
const MiB = 1024 * 1024;

/**
 * The pocketsphinx engine behind the TranscriptionEngine interface, fed PCM directly (faster than real time):
 * a real Python child with pocketsphinx 5.1.1 and flite speech.
 */
describe("pocketsphinx engine", () => {
	let report: Speech;
	let weather: Speech;
	const engine = new PocketsphinxEngine({ memoryLimitBytes: 512 * MiB, maxRestarts: 2, restartWindowMs: 60_000 });
	const open: TranscriptionStream[] = [];

	beforeAll(() => {
		report = speak(SENTENCES.report, "slt");
		weather = speak(SENTENCES.weather, "awb");
	});

	afterAll(() => {
		for (const s of open) s.destroy();
	});

	async function stream(): Promise<{ s: TranscriptionStream; segments: TranscriptSegment[] }> {
		const s = await engine.open({ log });
		open.push(s);
		const segments: TranscriptSegment[] = [];
		s.on("segment", (seg) => segments.push(seg));
		return { s, segments };
	}

	const silence = (ms: number) => Buffer.alloc(ms * 32);
	const finalText = (segments: TranscriptSegment[]) =>
		segments
			.filter((x) => x.final)
			.map((x) => x.text)
			.join(" ");

	it("turns speech into partials, then a final with word times; WER within the measured bound", async () => {
		const { s, segments } = await stream();
		s.write(Buffer.concat([silence(500), report.pcm, silence(1000)]));
		await s.end();
		const finals = segments.filter((x) => x.final);
		expect(finals.length).toBeGreaterThanOrEqual(1);
		const firstFinal = segments.findIndex((x) => x.final);
		expect(segments.slice(0, firstFinal).some((x) => !x.final && x.text.length > 0)).toBe(true);
		const { wer } = wordErrorRate(report.text, finalText(segments));
		console.log(`engine WER (slt, report): ${wer.toFixed(3)} — "${finalText(segments)}"`);
		expect(wer).toBeLessThanOrEqual(0.3); // measured 0.071 (one word: "to the finance" → "to finance")
		const words = finals.flatMap((f) => f.words ?? []);
		expect(words.length).toBeGreaterThan(8);
		// Times are on the stream's clock: the speech starts after the 500 ms of silence and ends before the tail.
		expect(words[0]?.startMs).toBeGreaterThanOrEqual(400);
		expect(words[0]?.startMs).toBeLessThan(1200);
		expect(words.at(-1)?.endMs).toBeLessThanOrEqual(500 + report.durationMs + 100);
		for (let i = 1; i < words.length; i++) {
			expect(words[i]?.startMs).toBeGreaterThanOrEqual(words[i - 1]?.startMs ?? 0);
		}
		expect(s.audioMs).toBe(500 + report.durationMs + 1000);
	});

	it("flushes the last utterance when the audio ends mid-sentence", async () => {
		const { s, segments } = await stream();
		// Cut after ~60 % of the speech: no silence follows, so only the end of the stream can close the utterance.
		const cut = report.pcm.subarray(0, Math.floor((report.pcm.length * 0.6) / 2) * 2);
		s.write(Buffer.concat([silence(300), cut]));
		await new Promise((r) => setTimeout(r, 1500));
		expect(segments.filter((x) => x.final)).toEqual([]);
		await s.end();
		const finals = segments.filter((x) => x.final);
		expect(finals).toHaveLength(1);
		expect(finals[0]?.text).toMatch(/quarterly report/);
	});

	it("replaces a pocketsphinx process that dies; the stream goes on, on the same clock; nothing on disk", async () => {
		const { s, segments } = await stream();
		const [pid] = s.pids;
		expect(pid).toBeGreaterThan(0);
		expect(writableRegularFiles(pid as number)).toEqual([]);
		s.write(Buffer.concat([silence(300), report.pcm, silence(800)]));
		await waitFor(() => segments.some((x) => x.final), 20_000, "the first sentence's final");
		process.kill(pid as number, "SIGKILL");
		await waitFor(() => s.pids.length === 1 && s.pids[0] !== pid, 20_000, "a new pocketsphinx");
		expect(isRunning(pid as number)).toBe(false);
		const offset = s.audioMs;
		s.write(Buffer.concat([silence(300), weather.pcm, silence(800)]));
		await s.end();
		const finals = segments.filter((x) => x.final);
		const second = finals.filter((f) => f.startMs >= offset);
		expect(second.length).toBeGreaterThanOrEqual(1);
		const { wer } = wordErrorRate(weather.text, second.map((f) => f.text).join(" "));
		expect(wer).toBeLessThanOrEqual(0.5);
	});

	it("fails clearly: no Python → engine_unavailable; a memory limit too small to load the model → engine_unavailable", async () => {
		await expect(
			new PocketsphinxEngine({
				pythonPath: "/nonexistent/python3",
				memoryLimitBytes: 0,
				maxRestarts: 0,
				restartWindowMs: 1000,
			}).open({ log }),
		).rejects.toMatchObject({ code: "engine_unavailable" });
		const tiny = new PocketsphinxEngine({ memoryLimitBytes: 40 * MiB, maxRestarts: 0, restartWindowMs: 1000 });
		await expect(tiny.open({ log })).rejects.toMatchObject({
			code: "engine_unavailable",
			message: expect.stringMatching(/exited while loading/),
		});
		// Nothing left behind.
		expect(childrenOf(process.pid).filter((c) => /python/.test(c.comm) && isRunning(c.pid))).toHaveLength(
			open.filter((s) => s.pids.length > 0).length,
		);
	});
});

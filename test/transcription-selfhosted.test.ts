import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TranscriptionFailed, TranscriptSegmentMessage } from "../contracts/RecorderProtocol.js";
import { OpenAiTranscriptionEngine } from "../recorder/transcription/OpenAiTranscriptionEngine.js";
import type { TranscriptionFailure, TranscriptSegment } from "../recorder/transcription/TranscriptionEngineTypes.js";
import { VoskEngine } from "../recorder/transcription/VoskEngine.js";
import { RecorderProcess } from "../server/recording/RecorderProcess.js";
import { SENTENCES, type Speech, sendSpeech, speak } from "./helpers/speech.js";
import { type FakeVoskServer, type FakeWhisperServer, startFakeVosk, startFakeWhisper } from "./helpers/stt-servers.js";

const AUDIO = { kind: "audio", mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 } as const;
const LOCAL = { allowHttp: true, allowPrivate: true };
const log = pino({ level: "silent" });

/**
 * The self-hosted engines a customer runs for languages the embedded engine lacks: a Vosk server (WebSocket) and
 * an OpenAI-compatible /v1/audio/transcriptions (whisper servers). Each runs through the real recorder (RTP →
 * ffmpeg → engine) against a local server speaking its protocol (test/helpers/stt-servers.ts); faults go straight
 * to the engine.
 */
describe("self-hosted transcription engines (against local protocol servers)", () => {
	let report: Speech;
	let weather: Speech;
	let vosk: FakeVoskServer;
	let whisper: FakeWhisperServer;
	let recorder: RecorderProcess;
	const segments: TranscriptSegmentMessage[] = [];
	const failures: TranscriptionFailed[] = [];

	beforeAll(async () => {
		report = speak(SENTENCES.report, "slt");
		weather = speak(SENTENCES.weather, "slt");
		vosk = await startFakeVosk(SENTENCES.report);
		whisper = await startFakeWhisper([SENTENCES.report, SENTENCES.weather], { apiKey: "sk-local-test" });
		recorder = await RecorderProcess.create({ config: { logLevel: "warn" }, stderr: "ignore" });
		recorder.on("transcriptSegment", (s) => segments.push(s));
		recorder.on("transcriptionFailed", (f) => failures.push(f));
	});

	afterAll(async () => {
		await recorder?.close();
		await vosk?.close();
		await whisper?.close();
	});

	it("Vosk: config first, PCM in binary messages, partials then a final with word times, eof at the end", async () => {
		const ports = await recorder.openTranscription({
			trackId: "vosk-one",
			codec: AUDIO,
			ssrc: 1111,
			engine: { type: "vosk", endpoint: vosk.endpoint, languageCode: "fr-FR" },
			options: LOCAL,
		});
		await sendSpeech(report, { ...ports, payloadType: 100, ssrc: 1111, leadSeconds: 0.5, tailSeconds: 1 }).done;
		await recorder.closeTranscription("vosk-one");

		const mine = segments.filter((s) => s.trackId === "vosk-one");
		expect(mine.every((s) => s.engine === "vosk")).toBe(true);
		const finals = mine.filter((s) => s.final);
		expect(finals).toHaveLength(1);
		expect(mine.findIndex((s) => s.final)).toBeGreaterThan(0); // partials first
		const final = finals[0] as TranscriptSegmentMessage;
		expect(final.text).toBe(SENTENCES.report);
		expect(final.words?.map((w) => w.word).join(" ")).toBe(SENTENCES.report);
		expect(final.startMs).toBeGreaterThanOrEqual(500);
		expect(final.startMs).toBeLessThan(1300);
		expect(final.endMs - final.startMs).toBeGreaterThan(report.speechEndMs - 1000);

		const c = vosk.connections.at(-1);
		expect(c?.textMessages[0]).toBe(JSON.stringify({ config: { sample_rate: 16000, words: 1 } }));
		expect(c?.eof).toBe(true);
		expect(c?.textMessages.at(-1)).toBe('{"eof" : 1}');
		const audioMs = (c?.binaryBytes ?? 0) / 32;
		expect(Math.abs(audioMs - (500 + report.durationMs + 1000 + 600))).toBeLessThan(300);
		expect(failures).toEqual([]);
	});

	it("OpenAI-compatible: each utterance as a WAV with model, language and key; each answer one final at its offset", async () => {
		const ports = await recorder.openTranscription({
			trackId: "whisper-one",
			codec: AUDIO,
			ssrc: 2222,
			engine: {
				type: "openai",
				endpoint: whisper.endpoint,
				model: "Systran/faster-whisper-small",
				apiKey: "sk-local-test",
				languageCode: "es-ES",
			},
			options: LOCAL,
		});
		// Two sentences with a 1.5 s pause: two utterances, two requests.
		const both: Speech = {
			...report,
			pcm: Buffer.concat([report.pcm, Buffer.alloc(48_000), weather.pcm]),
			durationMs: report.durationMs + 1500 + weather.durationMs,
		};
		await sendSpeech(both, { ...ports, payloadType: 100, ssrc: 2222, leadSeconds: 0.5, tailSeconds: 1 }).done;
		await recorder.closeTranscription("whisper-one");

		const finals = segments.filter((s) => s.trackId === "whisper-one");
		expect(finals.map((s) => [s.final, s.text, s.engine])).toEqual([
			[true, SENTENCES.report, "openai"],
			[true, SENTENCES.weather, "openai"],
		]);
		const [first, second] = finals as [TranscriptSegmentMessage, TranscriptSegmentMessage];
		expect(first.startMs).toBeGreaterThanOrEqual(400);
		expect(first.startMs).toBeLessThan(1300);
		// The second utterance sits after the first one and the pause, on the track's clock.
		expect(second.startMs).toBeGreaterThan(first.endMs + 1000);
		expect(second.startMs - (500 + report.durationMs + 1500)).toBeLessThan(1000);
		expect(second.words?.[0]?.startMs).toBe(second.startMs);

		expect(whisper.requests).toHaveLength(2);
		for (const r of whisper.requests) {
			expect(r.authorization).toBe("Bearer sk-local-test");
			expect(r.fields).toMatchObject({
				model: ["Systran/faster-whisper-small"],
				language: ["es"],
				response_format: ["verbose_json"],
			});
			expect(r.wav).toMatchObject({ sampleRate: 16000, channels: 1, bits: 16 });
		}
		expect(failures).toEqual([]);
	});

	it("OpenAI-compatible: a wrong key fails the stream as engine_rejected; a busy server is retried", async () => {
		const open = (apiKey: string) =>
			new OpenAiTranscriptionEngine({
				endpoint: whisper.endpoint,
				model: "whisper-1",
				apiKey,
				languageCode: "fr",
				...LOCAL,
			}).open({ log });
		const bad = await open("sk-wrong");
		const failed: TranscriptionFailure[] = [];
		bad.on("failed", (f) => failed.push(f));
		bad.write(Buffer.concat([report.pcm, Buffer.alloc(32_000)]));
		await bad.end();
		expect(failed[0]).toMatchObject({ code: "engine_rejected", message: expect.stringMatching(/HTTP 401/) });

		whisper.failNext(1, 503);
		const busy = await open("sk-local-test");
		const got: TranscriptSegment[] = [];
		busy.on("segment", (s) => got.push(s));
		busy.write(Buffer.concat([report.pcm, Buffer.alloc(32_000)]));
		await busy.end();
		expect(got).toHaveLength(1);
	});

	it("refuses endpoints the guard forbids, and a Vosk server that is not there (engine_unavailable)", async () => {
		await expect(
			new VoskEngine({ endpoint: "ws://169.254.169.254:2700", languageCode: "fr", ...LOCAL }).open({ log }),
		).rejects.toMatchObject({ code: "endpoint_forbidden" });
		await expect(
			new VoskEngine({ endpoint: vosk.endpoint, languageCode: "fr" }).open({ log }), // no private addresses
		).rejects.toMatchObject({ code: "endpoint_forbidden" });
		await expect(
			new OpenAiTranscriptionEngine({ endpoint: whisper.endpoint, model: "m", languageCode: "fr" }).open({ log }),
		).rejects.toMatchObject({ code: "endpoint_forbidden" });
		await expect(
			new VoskEngine({ endpoint: "ws://127.0.0.1:9", languageCode: "fr", ...LOCAL }).open({ log }),
		).rejects.toMatchObject({ code: "engine_unavailable" });
	});
});

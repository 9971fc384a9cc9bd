import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TranscriptionFailed, TranscriptSegmentMessage } from "../contracts/RecorderProtocol.js";
import { AwsTranscribeEngine } from "../recorder/transcription/AwsTranscribeEngine.js";
import type { TranscriptionFailure } from "../recorder/transcription/TranscriptionEngineTypes.js";
import { RecorderProcess } from "../server/recording/RecorderProcess.js";
import { type FakeTranscribeServer, startFakeTranscribe } from "./helpers/aws-transcribe-server.js";
import { SENTENCES, type Speech, sendSpeech, speak } from "./helpers/speech.js";
import { waitFor } from "./helpers/wait.js";

const AUDIO = { kind: "audio", mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 } as const;
const CREDENTIALS = { accessKeyId: "AKIDCONSENTRYTEST", secretAccessKey: "test-secret" };

/**
 * The AWS Transcribe Streaming engine. AWS can't be reached from here: these run the real
 * @aws-sdk/client-transcribe-streaming (HTTP/2, event-stream framing, SigV4-signed events) against a local
 * server speaking that protocol (test/helpers/aws-transcribe-server.ts), which answers with a scripted text timed
 * on the speech it detects in the PCM it receives.
 */
describe("AWS Transcribe Streaming engine (against a local protocol server)", () => {
	let report: Speech;
	let server: FakeTranscribeServer;
	let recorder: RecorderProcess;
	const segments: TranscriptSegmentMessage[] = [];
	const failures: TranscriptionFailed[] = [];

	beforeAll(async () => {
		report = speak(SENTENCES.report, "slt");
		server = await startFakeTranscribe({ script: SENTENCES.report });
		recorder = await RecorderProcess.create({ config: { logLevel: "warn" }, stderr: "ignore" });
		recorder.on("transcriptSegment", (s) => segments.push(s));
		recorder.on("transcriptionFailed", (f) => failures.push(f));
	});

	afterAll(async () => {
		await recorder?.close();
		await server?.close();
	});

	const awsEngine = (endpoint: string) => ({
		type: "aws" as const,
		region: "eu-west-1",
		credentials: CREDENTIALS,
		languageCode: "en-US",
		endpoint,
	});

	it("streams a track's audio to the engine and turns its TranscriptEvents into segments", async () => {
		const ports = await recorder.openTranscription({
			trackId: "aws-one",
			codec: AUDIO,
			ssrc: 1111,
			engine: awsEngine(server.endpoint),
			options: { allowHttp: true, allowPrivate: true },
		});
		await sendSpeech(report, { ...ports, payloadType: 100, ssrc: 1111, leadSeconds: 0.5, tailSeconds: 1 }).done;
		await recorder.closeTranscription("aws-one");

		const mine = segments.filter((s) => s.trackId === "aws-one");
		const finals = mine.filter((s) => s.final);
		expect(finals).toHaveLength(1);
		expect(mine.findIndex((s) => s.final)).toBeGreaterThan(0); // partials first
		expect(mine.every((s) => s.engine === "aws")).toBe(true);
		const final = finals[0] as TranscriptSegmentMessage;
		expect(final.text).toBe(`${SENTENCES.report}.`);
		expect(final.words?.map((w) => w.word).join(" ")).toBe(SENTENCES.report); // punctuation items dropped
		expect(final.words?.[0]?.confidence).toBe(0.9);
		// The server timed it on the speech it heard: ~0.5 s + flite's lead-in after the first packet.
		expect(final.startMs).toBeGreaterThanOrEqual(500);
		expect(final.startMs).toBeLessThan(1300);
		expect(final.endMs - final.startMs).toBeGreaterThan(report.speechEndMs - 1000);

		const wire = server.streams.at(-1);
		expect(wire?.path).toBe("/stream-transcription");
		expect(wire?.headers).toMatchObject({
			"x-amzn-transcribe-language-code": "en-US",
			"x-amzn-transcribe-sample-rate": "16000",
			"x-amzn-transcribe-media-encoding": "pcm",
			"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-EVENTS",
		});
		expect(wire?.headers.authorization).toMatch(
			/^AWS4-HMAC-SHA256 Credential=AKIDCONSENTRYTEST\/\d{8}\/eu-west-1\/transcribe\/aws4_request/,
		);
		expect(wire?.allSigned).toBe(true);
		expect(new Set(wire?.eventTypes)).toEqual(new Set(["AudioEvent"]));
		expect(wire?.endFrame).toBe(true);
		// All the audio, as 16 kHz 16-bit PCM: lead + speech + tail + the padding after the run.
		const audioMs = (wire?.audio.length ?? 0) / 32;
		expect(Math.abs(audioMs - (500 + report.durationMs + 1000 + 600))).toBeLessThan(300);
		expect(failures).toEqual([]);
	});

	it("refuses to open when AWS rejects the credentials (engine_rejected), or the endpoint is not allowed", async () => {
		const rejecting = await startFakeTranscribe({
			script: "",
			reject: { status: 403, type: "UnrecognizedClientException", message: "The security token is invalid." },
		});
		try {
			await expect(
				recorder.openTranscription({
					trackId: "aws-rejected",
					codec: AUDIO,
					ssrc: 2222,
					engine: awsEngine(rejecting.endpoint),
					options: { allowHttp: true, allowPrivate: true },
				}),
			).rejects.toMatchObject({ code: "engine_rejected", message: expect.stringMatching(/UnrecognizedClient/) });
		} finally {
			await rejecting.close();
		}
		await expect(
			recorder.openTranscription({ trackId: "aws-http", codec: AUDIO, ssrc: 3333, engine: awsEngine(server.endpoint) }),
		).rejects.toMatchObject({ code: "endpoint_forbidden" });
		expect(recorder.openTranscriptions).toEqual([]);
	});

	it("fails the stream (engine_failed) when AWS ends it with an exception", async () => {
		const failing = await startFakeTranscribe({
			script: SENTENCES.report,
			failAfterMs: { type: "LimitExceededException", message: "too many streams", afterAudioMs: 1000 },
		});
		try {
			const stream = await new AwsTranscribeEngine({
				region: "eu-west-1",
				credentials: CREDENTIALS,
				languageCode: "en-US",
				endpoint: failing.endpoint,
				allowHttp: true,
				allowPrivate: true,
			}).open({ log: pino({ level: "silent" }) });
			const failed: TranscriptionFailure[] = [];
			stream.on("failed", (f) => failed.push(f));
			stream.write(report.pcm);
			await waitFor(() => failed.length > 0, 10_000, "the stream to fail");
			expect(failed[0]).toMatchObject({ code: "engine_failed", message: expect.stringMatching(/LimitExceeded/) });
			await stream.end(); // a failed stream ends at once
		} finally {
			await failing.close();
		}
	});
});

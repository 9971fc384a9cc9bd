import { describe, expect, it } from "vitest";
import { parseChildMessage, parseParentMessage } from "../../contracts/RecorderProtocol.js";
import { toSegment } from "./AwsTranscribeEngine.js";

const AUDIO = { kind: "audio", mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 } as const;

describe("transcription messages", () => {
	it("accepts openTranscription for pocketsphinx and for AWS with the tenant's settings", () => {
		expect(
			parseParentMessage({
				type: "openTranscription",
				trackId: "t-1",
				codec: AUDIO,
				ssrc: 42,
				engine: { type: "pocketsphinx", options: { vadMode: 2, partialIntervalMs: 500 } },
				options: { partials: false },
			}).ok,
		).toBe(true);
		expect(
			parseParentMessage({
				type: "openTranscription",
				trackId: "t-1",
				codec: AUDIO,
				ssrc: 42,
				engine: {
					type: "aws",
					region: "eu-central-1",
					credentials: { accessKeyId: "AKID", secretAccessKey: "s3cr3t", sessionToken: "tok" },
					languageCode: "fr-FR",
					endpoint: "https://transcribestreaming.eu-central-1.amazonaws.com",
				},
			}).ok,
		).toBe(true);
	});

	it("refuses video, unknown engines, bad regions and languages, naming the fields and not the secrets", () => {
		const bad = parseParentMessage({
			type: "openTranscription",
			requestId: "r1",
			trackId: "t-1",
			codec: { kind: "video", mimeType: "video/VP8", payloadType: 101, clockRate: 90000 },
			ssrc: 42,
			engine: {
				type: "aws",
				region: "Europe",
				credentials: { accessKeyId: "AKID", secretAccessKey: "s3cr3t" },
				languageCode: "english",
				endpoint: "ftp://x",
			},
		});
		expect(bad.ok).toBe(false);
		if (bad.ok) return;
		expect(bad.requestId).toBe("r1");
		for (const field of ["codec.mimeType", "engine.region", "engine.languageCode", "engine.endpoint"]) {
			expect(bad.error).toContain(field);
		}
		expect(bad.error).not.toContain("s3cr3t");
		expect(
			parseParentMessage({ type: "openTranscription", trackId: "t", codec: AUDIO, ssrc: 1, engine: { type: "x" } }).ok,
		).toBe(false);
	});

	it("validates the child's transcriptSegment and transcriptionFailed", () => {
		const seg = {
			type: "transcriptSegment",
			trackId: "t-1",
			final: true,
			text: "hello world",
			startMs: 100,
			endMs: 900,
			words: [
				{ word: "hello", startMs: 100, endMs: 400 },
				{ word: "world", startMs: 400, endMs: 900, confidence: 0.8 },
			],
			streamStartedAt: new Date().toISOString(),
			engine: "pocketsphinx",
		};
		expect(parseChildMessage(seg).ok).toBe(true);
		expect(parseChildMessage({ ...seg, startMs: -1 }).ok).toBe(false);
		expect(
			parseChildMessage({ type: "transcriptionFailed", trackId: "t-1", code: "engine_failed", message: "x" }).ok,
		).toBe(true);
		expect(parseChildMessage({ type: "transcriptionFailed", trackId: "t-1", code: "oops", message: "x" }).ok).toBe(
			false,
		);
	});

	it("maps AWS results: partials, finals with pronunciation items as words, empty ones dropped", () => {
		expect(
			toSegment({ IsPartial: true, StartTime: 0.5, EndTime: 1.25, Alternatives: [{ Transcript: "hel" }] }),
		).toEqual({
			final: false,
			text: "hel",
			startMs: 500,
			endMs: 1250,
		});
		expect(
			toSegment({
				IsPartial: false,
				StartTime: 0.5,
				EndTime: 1.5,
				Alternatives: [
					{
						Transcript: "Hello, world.",
						Items: [
							{ Type: "pronunciation", Content: "Hello", StartTime: 0.5, EndTime: 0.9, Confidence: 0.97 },
							{ Type: "punctuation", Content: "," },
							{ Type: "pronunciation", Content: "world", StartTime: 1.0, EndTime: 1.5, Confidence: 0.91 },
							{ Type: "punctuation", Content: "." },
						],
					},
				],
			}),
		).toEqual({
			final: true,
			text: "Hello, world.",
			startMs: 500,
			endMs: 1500,
			words: [
				{ word: "Hello", startMs: 500, endMs: 900, confidence: 0.97 },
				{ word: "world", startMs: 1000, endMs: 1500, confidence: 0.91 },
			],
		});
		expect(toSegment({ IsPartial: true, Alternatives: [{ Transcript: "  " }] })).toBeUndefined();
	});
});

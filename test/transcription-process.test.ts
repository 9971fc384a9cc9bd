import dgram from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
	ErrorReply,
	TranscriptionClosed,
	TranscriptionFailed,
	TranscriptSegmentMessage,
} from "../contracts/RecorderProtocol.js";
import { wordErrorRate } from "../recorder/transcription/wer.js";
import { RecorderProcess } from "../server/recording/RecorderProcess.js";
import { childrenOf, describeFds, writableRegularFiles } from "./helpers/proc-fds.js";
import { SENTENCES, type Speech, sendSpeech, speak } from "./helpers/speech.js";
import { waitFor } from "./helpers/wait.js";

const AUDIO = { kind: "audio", mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 } as const;
/** Measured through Opus RTP: 0.07 (slt, report) and 0.13 (awb, weather); the bound leaves room. */
const WER_BOUND = 0.3;

/**
 * Transcription tracks end to end, with real parts: a forked recorder, a real ffmpeg sending flite speech as
 * Opus RTP in real time, the recorder's ffmpeg decoding it to 16 kHz PCM, and pocketsphinx in a Python child.
 */
describe("transcription through the recorder process (pocketsphinx)", () => {
	let recorder: RecorderProcess;
	let report: Speech;
	let weather: Speech;
	const segments: TranscriptSegmentMessage[] = [];
	const failures: TranscriptionFailed[] = [];
	const closed: TranscriptionClosed[] = [];
	let stderr = "";

	beforeAll(async () => {
		report = speak(SENTENCES.report, "slt");
		weather = speak(SENTENCES.weather, "awb");
		recorder = await RecorderProcess.create({ config: { logLevel: "warn" }, stderr: "pipe" });
		recorder.stderr?.on("data", (d: Buffer) => {
			stderr = (stderr + d.toString()).slice(-20_000);
		});
		recorder.on("transcriptSegment", (s) => segments.push(s));
		recorder.on("transcriptionFailed", (f) => failures.push(f));
		recorder.on("transcriptionClosed", (c) => closed.push(c));
	});

	afterAll(async () => {
		await recorder?.close();
		if (failures.length) console.error("recorder stderr:", stderr);
	});

	const of = (trackId: string) => segments.filter((s) => s.trackId === trackId);
	const finalText = (trackId: string) =>
		of(trackId)
			.filter((s) => s.final)
			.map((s) => s.text)
			.join(" ");
	const open = (trackId: string, ssrc: number) =>
		recorder.openTranscription({ trackId, codec: AUDIO, ssrc, engine: { type: "pocketsphinx" } });

	it("transcribes a track: partials first, then a final close to the sentence, with nothing on disk", async () => {
		const ports = await open("tr-one", 1111);
		const sender = sendSpeech(report, { ...ports, payloadType: 100, ssrc: 1111, leadSeconds: 0.5, tailSeconds: 1 });

		// While it transcribes: no writable regular file in the recorder, its ffmpeg or its pocketsphinx.
		await waitFor(() => of("tr-one").length > 0, 10_000, "a first segment");
		const pid = recorder.pid as number;
		const kids = childrenOf(pid).filter((k) => k.comm === "ffmpeg" || k.comm.startsWith("python"));
		expect(kids.map((k) => k.comm).sort()).toEqual(["ffmpeg", expect.stringMatching(/^python/)]);
		for (const p of [pid, ...kids.map((k) => k.pid)]) {
			expect(writableRegularFiles(p), `pid ${p}: ${describeFds(p).join(", ")}`).toEqual([]);
		}

		await sender.done;
		const result = await recorder.closeTranscription("tr-one");
		const segs = of("tr-one");
		const firstFinal = segs.findIndex((s) => s.final);
		expect(firstFinal).toBeGreaterThan(0);
		expect(segs.slice(0, firstFinal).every((s) => !s.final && s.engine === "pocketsphinx")).toBe(true);
		const { wer } = wordErrorRate(report.text, finalText("tr-one"));
		console.log(`WER through Opus RTP (slt, report): ${wer.toFixed(3)} — "${finalText("tr-one")}"`);
		expect(wer).toBeLessThanOrEqual(WER_BOUND);
		// On the track's clock: the speech starts ~0.5 s (plus flite's own lead-in) after the first packet.
		const words = segs.filter((s) => s.final).flatMap((s) => s.words ?? []);
		expect(words[0]?.startMs).toBeGreaterThanOrEqual(400);
		expect(words[0]?.startMs).toBeLessThan(1500);
		expect(words.at(-1)?.endMs).toBeLessThan(500 + report.durationMs + 600);
		expect(new Date(segs[0]?.streamStartedAt as string).getTime()).toBeGreaterThan(Date.now() - 60_000);
		// Everything sent reached the engine (plus the silence that ends a run).
		expect(Math.abs(result.audioMs - (500 + report.durationMs + 1000 + 600))).toBeLessThan(300);
		expect(closed).toContainEqual(result);
		expect(failures).toEqual([]);
	});

	it("transcribes two tracks at once separately, each segment attributed to its own track", async () => {
		const a = await open("tr-alice", 2222);
		const b = await open("tr-bob", 3333);
		await Promise.all([
			sendSpeech(report, { ...a, payloadType: 100, ssrc: 2222, leadSeconds: 0.3, tailSeconds: 1 }).done,
			sendSpeech(weather, { ...b, payloadType: 100, ssrc: 3333, leadSeconds: 0.8, tailSeconds: 0.5 }).done,
		]);
		await Promise.all([recorder.closeTranscription("tr-alice"), recorder.closeTranscription("tr-bob")]);
		const alice = finalText("tr-alice");
		const bob = finalText("tr-bob");
		console.log(`two tracks: alice "${alice}" / bob "${bob}"`);
		expect(wordErrorRate(report.text, alice).wer).toBeLessThanOrEqual(WER_BOUND);
		expect(wordErrorRate(weather.text, bob).wer).toBeLessThanOrEqual(WER_BOUND);
		// Not mixed up: each is far from the other's sentence.
		expect(wordErrorRate(weather.text, alice).wer).toBeGreaterThan(0.7);
		expect(wordErrorRate(report.text, bob).wer).toBeGreaterThan(0.7);
		expect(failures).toEqual([]);
	});

	it("yields no text for a track that gets only silence, nor for one that gets no RTP at all", async () => {
		const quiet = await open("tr-silence", 4444);
		await open("tr-nothing", 5555);
		await sendSpeech(undefined, { ...quiet, payloadType: 100, ssrc: 4444, silenceSeconds: 3 }).done;
		const q = await recorder.closeTranscription("tr-silence");
		const n = await recorder.closeTranscription("tr-nothing");
		expect(q.audioMs).toBeGreaterThan(2500);
		expect(n.audioMs).toBe(0);
		expect(of("tr-silence")).toEqual([]);
		expect(of("tr-nothing")).toEqual([]);
	});

	it("closing flushes the last utterance: its final arrives before closeTranscription resolves", async () => {
		// The audio stops right where the speech ends: no silence for the VAD to end the utterance on.
		const cut = { ...report, pcm: report.pcm.subarray(0, Math.floor(report.speechEndMs * 16) * 2) };
		const ports = await open("tr-flush", 6666);
		await sendSpeech(cut, { ...ports, payloadType: 100, ssrc: 6666, leadSeconds: 0.3, tailSeconds: 0 }).done;
		const finalsAtClose = of("tr-flush").filter((s) => s.final).length;
		await recorder.closeTranscription("tr-flush");
		expect(finalsAtClose).toBe(0);
		expect(of("tr-flush").filter((s) => s.final).length).toBeGreaterThanOrEqual(1);
		expect(wordErrorRate(report.text, finalText("tr-flush")).wer).toBeLessThanOrEqual(WER_BOUND);
	});

	it("is gated per packet and dated (issue 11): audio captured before the click or after the close never reaches the engine; segments carry capture times", async () => {
		// The "gateway": a relay between the speech sender and the recorder that reports, like a sender report, the
		// first packet's RTP time at a capture time 500 ms before the click, on a sender clock 60 s ahead of ours.
		const SKEW = 60_000;
		const openAt = Date.now() + SKEW + 5_000;
		const x0 = openAt - 500; // the first packet's capture time (sender's clock)
		const ports = await recorder.openTranscription({
			trackId: "tr-gated",
			codec: AUDIO,
			ssrc: 7777,
			engine: { type: "pocketsphinx" },
			openAt,
		});
		const relay = dgram.createSocket("udp4");
		const rtcp = dgram.createSocket("udp4");
		await Promise.all([relay, rtcp].map((sock) => new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()))));
		let first: { at: number; ts: number } | undefined;
		let lastTs = 0;
		relay.on("message", (m) => {
			lastTs = m.readUInt32BE(4);
			if (!first) {
				first = { at: Date.now(), ts: m.readUInt32BE(4) };
				relay.send(m, ports.rtpPort, "127.0.0.1");
				recorder.senderReport("tr-gated", {
					ssrc: 7777,
					ntpMs: x0,
					rtpTs: first.ts,
					receivedAt: first.at,
				});
				return;
			}
			relay.send(m, ports.rtpPort, "127.0.0.1");
		});
		const sender = sendSpeech(report, {
			rtpPort: relay.address().port,
			rtcpPort: rtcp.address().port,
			payloadType: 100,
			ssrc: 7777,
			leadSeconds: 1,
			tailSeconds: 1,
		});
		try {
			// Mid-sentence, the person clicks "leave"; the close reaches the recorder 300 ms (of audio) later.
			await waitFor(() => first !== undefined, 10_000, "the first packet");
			const f = first as { at: number; ts: number };
			await new Promise((r) => setTimeout(r, Math.max(0, f.at + 1000 + report.speechEndMs * 0.6 - Date.now())));
			const closeAt = x0 + (lastTs - f.ts) / 48 - 300;
			const result = await recorder.closeTranscription("tr-gated", { at: closeAt, clock: "sender" });
			const c = result.capture;
			expect(c).toBeDefined();
			expect(c?.packetsBeforeOpen).toBeGreaterThanOrEqual(20); // the first 500 ms: 25 packets of 20 ms
			expect(c?.packetsAfterClose).toBeGreaterThanOrEqual(10); // the last 300 ms at least
			expect(c?.firstCaptureAt as number).toBeGreaterThanOrEqual(openAt);
			expect(c?.lastCaptureAt as number).toBeLessThanOrEqual(closeAt);
			expect(c?.clockOffsetMs as number).toBeCloseTo(x0 - f.at, 6);
			// What the engine got: from the click to the close, and the silence that ends a run.
			const heardMs = closeAt - openAt + 600;
			console.log(`gated transcription: engine got ${result.audioMs} ms, click → close + padding ${heardMs} ms`);
			expect(Math.abs(result.audioMs - heardMs)).toBeLessThan(250);
			// Capture times: the speech starts 1 s after the first packet (plus flite's lead-in), 500 ms after the click.
			const segs = of("tr-gated").filter((s) => s.final);
			expect(segs.length).toBeGreaterThanOrEqual(1);
			for (const s of segs) {
				expect(s.captureStartAt as number).toBeGreaterThanOrEqual(openAt);
				expect(s.captureEndAt as number).toBeGreaterThanOrEqual(s.captureStartAt as number);
				expect(s.clockOffsetMs).toBeCloseTo(x0 - f.at, 6);
			}
			const start = (segs[0]?.captureStartAt as number) - x0;
			console.log(`gated transcription: first final at capture +${start.toFixed(0)} ms (speech at +1000 + lead-in)`);
			expect(start).toBeGreaterThanOrEqual(900);
			expect(start).toBeLessThan(2000);
			expect(wordErrorRate(report.text, finalText("tr-gated")).wer).toBeGreaterThan(0.2); // cut by the close
		} finally {
			sender.stop();
			relay.close();
			rtcp.close();
		}
	});

	it("validates the messages: a bad engine or codec is an error naming it; unknown and duplicate ids are refused", async () => {
		const errors: ErrorReply[] = [];
		recorder.on("protocolError", (e) => errors.push(e));
		recorder.sendUnchecked({
			type: "openTranscription",
			requestId: "bad-1",
			trackId: "tr-bad",
			codec: { ...AUDIO, kind: "video", mimeType: "video/VP8", clockRate: 90000 },
			ssrc: 1,
			engine: { type: "whisper" },
		});
		recorder.sendUnchecked({
			type: "openTranscription",
			requestId: "bad-2",
			trackId: "tr-bad",
			codec: AUDIO,
			ssrc: 1,
			engine: { type: "aws", region: "eu-west-1", credentials: { accessKeyId: "AKID" }, languageCode: "en-US" },
		});
		await waitFor(() => errors.length >= 2, 5000, "two error replies");
		expect(errors[0]).toMatchObject({ code: "invalid_message", requestId: "bad-1" });
		expect(errors[0]?.message).toMatch(/engine/);
		expect(errors[0]?.message).toMatch(/codec/);
		expect(errors[1]?.message).toMatch(/engine\.credentials\.secretAccessKey/);
		expect(errors[1]?.message).not.toMatch(/AKID/);
		await expect(recorder.closeTranscription("tr-never")).rejects.toMatchObject({ code: "unknown_transcription" });
		await open("tr-dup", 7777);
		await expect(open("tr-dup", 7777)).rejects.toMatchObject({ code: "transcription_exists" });
		await recorder.closeTranscription("tr-dup");
		expect(recorder.alive).toBe(true);
		expect(recorder.openTranscriptions).toEqual([]);
	});
});

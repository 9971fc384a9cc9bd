import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** Test sentences: clear, ~12–14 words, in pocketsphinx's vocabulary. */
export const SENTENCES = {
	report: "please send the quarterly report to the finance team before the meeting on friday",
	weather: "the weather today is cold and windy so bring a warm coat with you",
} as const;

/** Synthesized speech kept in memory: 16 kHz mono s16le PCM (and the WAV flite wrote). */
export interface Speech {
	text: string;
	voice: string;
	wav: Buffer;
	pcm: Buffer;
	/** Its length in ms. */
	durationMs: number;
	/** Where the speech ends (last sample louder than the silence flite pads with), in ms. */
	speechEndMs: number;
}

/**
 * Speaks `text` with flite (a 16 kHz voice: `slt` or `awb`; flite's default `kal` is 8 kHz, which the 16 kHz
 * acoustic model hears much worse) into a WAV in a temporary directory, reads it into memory and deletes it.
 */
export function speak(text: string, voice = "slt"): Speech {
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-speech-"));
	try {
		const file = path.join(dir, "speech.wav");
		const res = spawnSync("flite", ["-voice", voice, "-t", text, "-o", file]);
		if (res.status !== 0) throw new Error(`flite failed (${res.status}): ${res.stderr?.toString()}`);
		const dec = spawnSync("ffmpeg", ["-v", "error", "-i", file, "-ac", "1", "-ar", "16000", "-f", "s16le", "pipe:1"], {
			maxBuffer: 64 << 20,
		});
		if (dec.status !== 0) throw new Error(`ffmpeg failed: ${dec.stderr.toString()}`);
		const wav = spawnSync("cat", [file], { maxBuffer: 64 << 20 }).stdout;
		const pcm = dec.stdout;
		return { text, voice, wav, pcm, durationMs: pcm.length / 32, speechEndMs: speechEnd(pcm) };
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
}

/** The end of the last 10 ms window whose peak is above ~1 % of full scale. */
export function speechEnd(pcm: Buffer): number {
	const window = 160;
	let last = 0;
	for (let i = 0; i + window * 2 <= pcm.length; i += window * 2) {
		let peak = 0;
		for (let j = 0; j < window; j++) peak = Math.max(peak, Math.abs(pcm.readInt16LE(i + j * 2)));
		if (peak > 330) last = (i + window * 2) / 32;
	}
	return last;
}

export interface SpeechSenderOptions {
	rtpPort: number;
	rtcpPort: number;
	payloadType: number;
	ssrc: number;
	/** Silence before and after the speech, in seconds. */
	leadSeconds?: number;
	tailSeconds?: number;
}

export interface SpeechSender {
	child: ChildProcess;
	done: Promise<number | null>;
	stop(): void;
}

/**
 * A second ffmpeg that sends `speech` (or, without it, `silenceSeconds` of silence) as Opus RTP in real time,
 * like a browser's microphone through the gateway: 48 kHz stereo Opus, 64 kbit/s, 20 ms frames.
 */
export function sendSpeech(
	speech: Speech | undefined,
	o: SpeechSenderOptions & { silenceSeconds?: number },
): SpeechSender {
	// Silence around the speech is part of the input, so -re paces it like the speech.
	const silence = (seconds: number) => Buffer.alloc(Math.round(seconds * 16_000) * 2);
	const pcm = speech
		? Buffer.concat([silence(o.leadSeconds ?? 0.5), speech.pcm, silence(o.tailSeconds ?? 1)])
		: silence(o.silenceSeconds ?? 3);
	const input = ["-f", "s16le", "-ar", "16000", "-ac", "1", "-i", "pipe:0"];
	const child = spawn(
		"ffmpeg",
		[
			"-hide_banner",
			"-loglevel",
			"error",
			"-re",
			...input,
			"-c:a",
			"libopus",
			"-ac",
			"2",
			"-ar",
			"48000",
			"-b:a",
			"64k",
			"-payload_type",
			String(o.payloadType),
			"-ssrc",
			String(o.ssrc),
			"-f",
			"rtp",
			`rtp://127.0.0.1:${o.rtpPort}?rtcpport=${o.rtcpPort}&pkt_size=1200`,
		],
		{ stdio: ["pipe", "ignore", "pipe"] },
	);
	child.stdin?.on("error", () => undefined);
	child.stdin?.end(pcm);
	let stderr = "";
	child.stderr?.on("data", (d: Buffer) => {
		stderr = (stderr + d.toString()).slice(-2000);
	});
	const done = new Promise<number | null>((resolve) =>
		child.once("exit", (code) => {
			if (code) console.error(`speech sender exited ${code}: ${stderr}`);
			resolve(code);
		}),
	);
	return { child, done, stop: () => child.kill("SIGKILL") };
}

import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import http from "node:http";
import https from "node:https";
import { assertEndpointAllowed, type EndpointPolicy, guardedLookup } from "../../contracts/endpointGuard.js";
import type { Logger } from "../../contracts/logger.js";
import {
	PCM_BYTES_PER_MS,
	PCM_SAMPLE_RATE,
	type TranscriptionEngine,
	type TranscriptionFailure,
	type TranscriptionStream,
	type TranscriptionStreamEvents,
	type TranscriptionStreamOptions,
	type TranscriptSegment,
} from "./TranscriptionEngineTypes.js";

export interface OpenAiTranscriptionOptions {
	/** Base URL; requests go to `{endpoint}/v1/audio/transcriptions`. */
	endpoint: string;
	model: string;
	apiKey?: string | undefined;
	/** BCP-47; its primary subtag is sent (`fr-FR` → `fr`). */
	languageCode: string;
	maxUtteranceMs?: number | undefined;
	allowHttp?: boolean;
	allowPrivate?: boolean;
	/** One request may take this long (ms). Default 60 s. */
	requestTimeoutMs?: number;
	/** Attempts per utterance on a network error or a 5xx/429 answer. Default 3. */
	attempts?: number;
}

/** 30 ms frames for the pause detector. */
const FRAME_MS = 30;
const FRAME_BYTES = FRAME_MS * PCM_BYTES_PER_MS;
/** A pause this long ends an utterance. */
const PAUSE_MS = 600;
/** Audio kept before the first loud frame (the start of a word is quiet). */
const PREROLL_MS = 300;
/** Utterances shorter than this (loud frames) are noise: not sent. */
const MIN_SPEECH_MS = 150;

interface Utterance {
	startMs: number;
	pcm: Buffer;
}

interface VerboseJson {
	text?: string;
	segments?: { start?: number; end?: number; text?: string }[];
	words?: { word?: string; start?: number; end?: number }[];
}

/**
 * An OpenAI-compatible transcription server (`POST /v1/audio/transcriptions`: whisper servers such as
 * faster-whisper-server (speaches), LocalAI, vLLM, whisper.cpp's server in OpenAI mode). The API is not streaming:
 * the stream is cut at pauses (an energy detector, 600 ms of quiet) into utterances of at most `maxUtteranceMs`,
 * each sent as a 16 kHz mono WAV with `response_format=verbose_json` and word timestamps; each answer becomes one
 * final segment, its times from the answer's segments/words placed at the utterance's offset. Requests go one
 * at a time, in order. Partials: none (captions appear per utterance).
 */
export class OpenAiTranscriptionEngine implements TranscriptionEngine {
	readonly name = "openai";
	readonly #o: OpenAiTranscriptionOptions;

	constructor(options: OpenAiTranscriptionOptions) {
		this.#o = options;
	}

	async open(options: TranscriptionStreamOptions): Promise<TranscriptionStream> {
		const policy = { allowHttp: this.#o.allowHttp === true, allowPrivate: this.#o.allowPrivate === true };
		await assertEndpointAllowed(this.#o.endpoint, policy);
		return new OpenAiStream(this.#o, policy, options.log.child({ engine: "openai" }));
	}
}

class OpenAiStream extends EventEmitter<TranscriptionStreamEvents> implements TranscriptionStream {
	readonly engine = "openai";
	readonly pids: number[] = [];
	readonly #o: OpenAiTranscriptionOptions;
	readonly #policy: EndpointPolicy;
	readonly #log: Logger;
	readonly #abort = new AbortController();
	#bytes = 0;
	#carry = Buffer.alloc(0);
	/** Recent frames before speech (preroll). */
	#before: Buffer[] = [];
	#current: { startMs: number; frames: Buffer[]; loudMs: number; quietMs: number } | undefined;
	#noise = 200;
	#chain: Promise<void> = Promise.resolve();
	#queued = 0;
	#state: "open" | "ending" | "done" | "failed" = "open";
	#ending: Promise<void> | undefined;

	constructor(o: OpenAiTranscriptionOptions, policy: EndpointPolicy, log: Logger) {
		super();
		this.#o = o;
		this.#policy = policy;
		this.#log = log;
	}

	get audioMs(): number {
		return Math.floor(this.#bytes / PCM_BYTES_PER_MS);
	}

	write(pcm: Buffer): boolean {
		if (this.#state !== "open" || pcm.length === 0) return true;
		let data = this.#carry.length ? Buffer.concat([this.#carry, pcm]) : pcm;
		while (data.length >= FRAME_BYTES) {
			const frameStartMs = this.#bytes / PCM_BYTES_PER_MS;
			this.#frame(Buffer.from(data.subarray(0, FRAME_BYTES)), frameStartMs);
			this.#bytes += FRAME_BYTES;
			data = data.subarray(FRAME_BYTES);
		}
		this.#carry = Buffer.from(data);
		return this.#queued < 4;
	}

	end(): Promise<void> {
		this.#ending ??= (async () => {
			if (this.#state !== "open") return;
			this.#state = "ending";
			if (this.#carry.length) {
				this.#bytes += this.#carry.length;
				if (this.#current) this.#current.frames.push(this.#carry);
			}
			this.#cut();
			await this.#chain;
			if (this.#state === "ending") this.#state = "done";
		})();
		return this.#ending;
	}

	destroy(): void {
		if (this.#state === "open" || this.#state === "ending") this.#state = "done";
		this.#abort.abort();
	}

	#frame(frame: Buffer, startMs: number): void {
		let sum = 0;
		for (let i = 0; i < frame.length; i += 2) {
			const v = frame.readInt16LE(i);
			sum += v * v;
		}
		const rms = Math.sqrt(sum / (frame.length / 2));
		const loud = rms > Math.max(300, this.#noise * 3);
		if (!loud) this.#noise = this.#noise * 0.95 + rms * 0.05;
		const u = this.#current;
		if (!u) {
			this.#before.push(frame);
			if (this.#before.length > PREROLL_MS / FRAME_MS) this.#before.shift();
			if (loud) {
				const frames = this.#before;
				this.#before = [];
				this.#current = {
					startMs: startMs + FRAME_MS - frames.length * FRAME_MS,
					frames,
					loudMs: FRAME_MS,
					quietMs: 0,
				};
			}
			return;
		}
		u.frames.push(frame);
		if (loud) {
			u.loudMs += FRAME_MS;
			u.quietMs = 0;
		} else u.quietMs += FRAME_MS;
		if (u.quietMs >= PAUSE_MS || u.frames.length * FRAME_MS >= (this.#o.maxUtteranceMs ?? 15_000)) this.#cut();
	}

	/** Ends the current utterance and queues its request. */
	#cut(): void {
		const u = this.#current;
		this.#current = undefined;
		if (!u || u.loudMs < MIN_SPEECH_MS) return;
		const utterance: Utterance = { startMs: Math.max(0, Math.round(u.startMs)), pcm: Buffer.concat(u.frames) };
		this.#queued++;
		this.#chain = this.#chain.then(async () => {
			try {
				if (this.#state === "done" || this.#state === "failed") return;
				const segment = await this.#transcribe(utterance);
				if (segment && this.#live) this.emit("segment", segment);
			} catch (err) {
				const f = err as Partial<TranscriptionFailure>;
				this.#fail(
					typeof f.code === "string" && typeof f.message === "string"
						? (f as TranscriptionFailure)
						: { code: "internal_error", message: String((err as Error)?.message ?? err) },
				);
			} finally {
				this.#queued--;
				if (this.#queued < 2) this.emit("drain");
			}
		});
	}

	async #transcribe(u: Utterance): Promise<TranscriptSegment | undefined> {
		const language = this.#o.languageCode.split("-")[0] as string;
		const boundary = `----consentry${randomBytes(12).toString("hex")}`;
		const field = (name: string, value: string) =>
			Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`);
		const body = Buffer.concat([
			Buffer.from(
				`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="utterance.wav"\r\nContent-Type: audio/wav\r\n\r\n`,
			),
			wav(u.pcm),
			Buffer.from("\r\n"),
			field("model", this.#o.model),
			field("language", language),
			field("response_format", "verbose_json"),
			field("timestamp_granularities[]", "word"),
			field("timestamp_granularities[]", "segment"),
			Buffer.from(`--${boundary}--\r\n`),
		]);
		const attempts = this.#o.attempts ?? 3;
		for (let attempt = 1; ; attempt++) {
			let answer: { status: number; text: string };
			try {
				answer = await this.#post(body, boundary);
			} catch (err) {
				if (this.#abort.signal.aborted) return undefined;
				if (attempt < attempts) {
					await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
					continue;
				}
				throw {
					code: "engine_failed",
					message: `transcription server ${this.#o.endpoint}: ${(err as Error).message}`,
				} satisfies TranscriptionFailure;
			}
			if (answer.status >= 200 && answer.status < 300) return toSegment(answer.text, u);
			const detail = `transcription server ${this.#o.endpoint} answered HTTP ${answer.status}: ${answer.text.slice(0, 200)}`;
			if (answer.status === 429 || answer.status >= 500) {
				if (attempt < attempts) {
					await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
					continue;
				}
				throw { code: "engine_failed", message: detail } satisfies TranscriptionFailure;
			}
			throw { code: "engine_rejected", message: detail } satisfies TranscriptionFailure;
		}
	}

	#post(body: Buffer, boundary: string): Promise<{ status: number; text: string }> {
		const url = new URL(`${this.#o.endpoint.replace(/\/+$/, "")}/v1/audio/transcriptions`);
		const mod = url.protocol === "https:" ? https : http;
		const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#o.requestTimeoutMs ?? 60_000)]);
		return new Promise((resolve, reject) => {
			const req = mod.request(
				url,
				{
					method: "POST",
					agent: false,
					signal,
					lookup: guardedLookup(this.#policy) as unknown as http.RequestOptions["lookup"],
					headers: {
						"content-type": `multipart/form-data; boundary=${boundary}`,
						"content-length": body.length,
						...(this.#o.apiKey ? { authorization: `Bearer ${this.#o.apiKey}` } : {}),
					},
				},
				(res) => {
					const chunks: Buffer[] = [];
					let size = 0;
					res.on("data", (c: Buffer) => {
						size += c.length;
						if (size > 4 << 20) res.destroy(new Error("answer larger than 4 MiB"));
						else chunks.push(c);
					});
					res.on("error", reject);
					res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
				},
			);
			req.on("error", reject);
			req.end(body);
		});
	}

	/** Still emitting (a destroy or a failure stops it while a request runs). */
	get #live(): boolean {
		return this.#state === "open" || this.#state === "ending";
	}

	#fail(failure: TranscriptionFailure): void {
		if (this.#state === "done" || this.#state === "failed") return;
		this.#state = "failed";
		this.#abort.abort();
		this.#log.error(failure, "transcription engine failed");
		this.emit("failed", failure);
	}
}

/** 16 kHz mono s16le PCM as a WAV file. */
export function wav(pcm: Buffer): Buffer {
	const h = Buffer.alloc(44);
	h.write("RIFF", 0);
	h.writeUInt32LE(36 + pcm.length, 4);
	h.write("WAVE", 8);
	h.write("fmt ", 12);
	h.writeUInt32LE(16, 16);
	h.writeUInt16LE(1, 20); // PCM
	h.writeUInt16LE(1, 22); // mono
	h.writeUInt32LE(PCM_SAMPLE_RATE, 24);
	h.writeUInt32LE(PCM_SAMPLE_RATE * 2, 28);
	h.writeUInt16LE(2, 32);
	h.writeUInt16LE(16, 34);
	h.write("data", 36);
	h.writeUInt32LE(pcm.length, 40);
	return Buffer.concat([h, pcm]);
}

/** An answer (verbose_json, or plain json with only `text`) as one final at the utterance's offset. */
function toSegment(body: string, u: Utterance): TranscriptSegment | undefined {
	let a: VerboseJson;
	try {
		a = JSON.parse(body) as VerboseJson;
	} catch {
		throw {
			code: "engine_failed",
			message: `the transcription server answered something else than JSON: ${body.slice(0, 100)}`,
		} satisfies TranscriptionFailure;
	}
	const text = (typeof a.text === "string" ? a.text : (a.segments ?? []).map((s) => s.text ?? "").join(" ")).trim();
	if (!text) return undefined;
	const at = (s: number | undefined) => u.startMs + Math.max(0, Math.round((s ?? 0) * 1000));
	const uttMs = u.pcm.length / PCM_BYTES_PER_MS;
	const words = (a.words ?? [])
		.filter((w) => typeof w.word === "string" && w.word.trim() && Number.isFinite(w.start) && Number.isFinite(w.end))
		.map((w) => ({ word: (w.word as string).trim(), startMs: at(w.start), endMs: at(w.end) }));
	const segs = (a.segments ?? []).filter((s) => Number.isFinite(s.start) && Number.isFinite(s.end));
	const startMs = words[0]?.startMs ?? (segs[0] ? at(segs[0].start) : u.startMs);
	const endMs = words.at(-1)?.endMs ?? (segs.at(-1) ? at(segs.at(-1)?.end) : u.startMs + Math.round(uttMs));
	return { final: true, text, startMs, endMs: Math.max(startMs, endMs), ...(words.length ? { words } : {}) };
}

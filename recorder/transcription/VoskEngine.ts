import { EventEmitter } from "node:events";
import WebSocket from "ws";
import { assertEndpointAllowed, guardedLookup } from "../../contracts/endpointGuard.js";
import type { Logger } from "../../contracts/logger.js";
import { RecorderError } from "../errors.js";
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

export interface VoskEngineOptions {
	/** ws:// or wss:// URL of the Vosk server. */
	endpoint: string;
	languageCode: string;
	allowHttp?: boolean;
	allowPrivate?: boolean;
	/** How long the server may take to accept the connection (ms). Default 10 s. */
	connectTimeoutMs?: number;
	/** How long one answer may take before the stream fails (ms). Default 30 s. */
	answerTimeoutMs?: number;
	/** Audio held while the server is behind before write() asks to wait (ms). Default 5000. */
	highWaterMs?: number;
}

/** Audio per message: 200 ms (vosk-server's own clients send 0.1–0.5 s). */
const CHUNK_BYTES = 200 * PCM_BYTES_PER_MS;
/** The end-of-stream message, byte for byte as vosk-server compares it. */
const EOF_MESSAGE = '{"eof" : 1}';

interface VoskWord {
	word: string;
	start: number;
	end: number;
	conf?: number;
}
interface VoskAnswer {
	partial?: string;
	text?: string;
	result?: VoskWord[];
}

/**
 * A Vosk server the customer runs (alphacep/vosk-server, `asr_server.py`): one WebSocket per stream; first a
 * `{"config": {"sample_rate": 16000, "words": 1}}` message, then PCM in binary messages, each answered by one JSON
 * message (`{"partial": …}` while an utterance goes on, `{"text": …, "result": [words]}` when it ends), and
 * `{"eof" : 1}` at the end, answered by the last result. Messages go one at a time (the server answers each
 * before it reads the next). Times come from the words (seconds from the stream's start).
 */
export class VoskEngine implements TranscriptionEngine {
	readonly name = "vosk";
	readonly #o: VoskEngineOptions;

	constructor(options: VoskEngineOptions) {
		this.#o = options;
	}

	async open(options: TranscriptionStreamOptions): Promise<TranscriptionStream> {
		const policy = { allowHttp: this.#o.allowHttp === true, allowPrivate: this.#o.allowPrivate === true };
		// ws:// is plain like http://, wss:// like https://: the same rule as storage endpoints.
		await assertEndpointAllowed(this.#o.endpoint.replace(/^ws/, "http"), policy);
		const stream = new VoskStream(this.#o, options.log.child({ engine: "vosk" }));
		await stream.connect(policy);
		return stream;
	}
}

class VoskStream extends EventEmitter<TranscriptionStreamEvents> implements TranscriptionStream {
	readonly engine = "vosk";
	readonly pids: number[] = [];
	readonly #o: VoskEngineOptions;
	readonly #log: Logger;
	#ws: WebSocket | undefined;
	#bytes = 0;
	#pending: Buffer[] = [];
	#pendingBytes = 0;
	/** Messages waiting to be sent; one is in flight at a time. */
	readonly #queue: (Buffer | string)[] = [];
	#queuedBytes = 0;
	#inFlight = false;
	#answerTimer: NodeJS.Timeout | undefined;
	#needDrain = false;
	#state: "open" | "ending" | "done" | "failed" = "open";
	#ended: (() => void) | undefined;
	#ending: Promise<void> | undefined;
	/** Where the current utterance started (ms): the last final's end. */
	#utteranceStartMs = 0;
	/** Audio the server has been sent (ms): partials end there. */
	#sentMs = 0;
	#lastPartial = "";

	constructor(o: VoskEngineOptions, log: Logger) {
		super();
		this.#o = o;
		this.#log = log;
	}

	get audioMs(): number {
		return Math.floor(this.#bytes / PCM_BYTES_PER_MS);
	}

	async connect(policy: { allowHttp: boolean; allowPrivate: boolean }): Promise<void> {
		const ws = new WebSocket(this.#o.endpoint, {
			handshakeTimeout: this.#o.connectTimeoutMs ?? 10_000,
			followRedirects: false,
			perMessageDeflate: false,
			maxPayload: 4 << 20,
			lookup: guardedLookup(policy) as never,
		});
		this.#ws = ws;
		try {
			await new Promise<void>((resolve, reject) => {
				ws.once("open", () => resolve());
				ws.once("error", reject);
				ws.once("unexpected-response", (_req, res) =>
					reject(Object.assign(new Error(`the server answered HTTP ${res.statusCode}`), { status: res.statusCode })),
				);
			});
		} catch (err) {
			ws.terminate();
			const status = (err as { status?: number }).status;
			throw new RecorderError(
				status && status >= 400 && status < 500 ? "engine_rejected" : "engine_unavailable",
				`Vosk server ${this.#o.endpoint} can't be reached: ${(err as Error).message}`,
				{ cause: err },
			);
		}
		ws.on("message", (data, isBinary) => this.#answer(data as Buffer, isBinary));
		ws.on("error", (err) => this.#fail({ code: "engine_failed", message: `Vosk server: ${err.message}` }));
		ws.on("close", (code) => {
			if (this.#state === "ending" && !this.#inFlight && this.#queue.length === 0) return this.#finish();
			if (this.#state === "open" || this.#state === "ending")
				this.#fail({ code: "engine_failed", message: `the Vosk server closed the connection (${code})` });
		});
		this.#enqueue(JSON.stringify({ config: { sample_rate: PCM_SAMPLE_RATE, words: 1 } }));
	}

	write(pcm: Buffer): boolean {
		if (this.#state !== "open" || pcm.length === 0) return true;
		this.#bytes += pcm.length;
		this.#pending.push(pcm);
		this.#pendingBytes += pcm.length;
		while (this.#pendingBytes >= CHUNK_BYTES) this.#enqueue(this.#take(CHUNK_BYTES));
		if (this.#queuedBytes > (this.#o.highWaterMs ?? 5000) * PCM_BYTES_PER_MS) this.#needDrain = true;
		return !this.#needDrain;
	}

	end(): Promise<void> {
		this.#ending ??= new Promise<void>((resolve) => {
			if (this.#state !== "open") return resolve();
			this.#state = "ending";
			this.#ended = resolve;
			if (this.#pendingBytes > 0) this.#enqueue(this.#take(this.#pendingBytes));
			this.#enqueue(EOF_MESSAGE);
		});
		return this.#ending;
	}

	destroy(): void {
		if (this.#state === "open" || this.#state === "ending") this.#state = "done";
		clearTimeout(this.#answerTimer);
		this.#ws?.terminate();
		this.#ended?.();
	}

	#take(n: number): Buffer {
		const all = Buffer.concat(this.#pending);
		this.#pending = n < all.length ? [all.subarray(n)] : [];
		this.#pendingBytes = all.length - Math.min(n, all.length);
		return all.subarray(0, n);
	}

	#enqueue(message: Buffer | string): void {
		this.#queue.push(message);
		if (typeof message !== "string") this.#queuedBytes += message.length;
		this.#pump();
	}

	#pump(): void {
		const ws = this.#ws;
		if (this.#inFlight || !ws || ws.readyState !== WebSocket.OPEN) return;
		const next = this.#queue.shift();
		if (next === undefined) return;
		if (typeof next !== "string") {
			this.#queuedBytes -= next.length;
			this.#sentMs += next.length / PCM_BYTES_PER_MS;
		}
		if (next.length && typeof next === "string" && next.startsWith('{"config"')) {
			// The config message gets no answer: send the next message right away.
			ws.send(next);
			this.#pump();
			return;
		}
		this.#inFlight = true;
		ws.send(next, { binary: typeof next !== "string" });
		this.#answerTimer = setTimeout(
			() => this.#fail({ code: "engine_failed", message: "the Vosk server stopped answering" }),
			this.#o.answerTimeoutMs ?? 30_000,
		);
		if (this.#needDrain && this.#queuedBytes < ((this.#o.highWaterMs ?? 5000) * PCM_BYTES_PER_MS) / 2) {
			this.#needDrain = false;
			this.emit("drain");
		}
	}

	#answer(data: Buffer, isBinary: boolean): void {
		if (this.#state === "done" || this.#state === "failed") return;
		clearTimeout(this.#answerTimer);
		this.#inFlight = false;
		let a: VoskAnswer;
		try {
			if (isBinary) throw new Error("binary answer");
			a = JSON.parse(data.toString("utf8")) as VoskAnswer;
			if (typeof a !== "object" || a === null) throw new Error("not an object");
		} catch (err) {
			this.#fail({ code: "engine_failed", message: `the Vosk server broke its protocol: ${(err as Error).message}` });
			return;
		}
		const segment = this.#segment(a);
		if (segment) this.emit("segment", segment);
		if (this.#state === "ending" && this.#queue.length === 0) {
			this.#finish();
			return;
		}
		this.#pump();
	}

	#segment(a: VoskAnswer): TranscriptSegment | undefined {
		if (typeof a.partial === "string") {
			const text = a.partial.trim();
			if (!text || text === this.#lastPartial) return undefined;
			this.#lastPartial = text;
			return { final: false, text, startMs: Math.round(this.#utteranceStartMs), endMs: Math.round(this.#sentMs) };
		}
		if (typeof a.text !== "string") return undefined;
		const text = a.text.trim();
		this.#lastPartial = "";
		const words = Array.isArray(a.result)
			? a.result
					.filter((w) => typeof w?.word === "string" && Number.isFinite(w.start) && Number.isFinite(w.end))
					.map((w) => ({
						word: w.word,
						startMs: Math.max(0, Math.round(w.start * 1000)),
						endMs: Math.max(0, Math.round(w.end * 1000)),
						...(typeof w.conf === "number" ? { confidence: Math.min(1, Math.max(0, w.conf)) } : {}),
					}))
			: [];
		const startMs = words[0]?.startMs ?? Math.round(this.#utteranceStartMs);
		const endMs = words.at(-1)?.endMs ?? Math.round(this.#sentMs);
		this.#utteranceStartMs = Math.max(this.#utteranceStartMs, endMs);
		if (!text) return undefined;
		return { final: true, text, startMs, endMs: Math.max(startMs, endMs), ...(words.length ? { words } : {}) };
	}

	#finish(): void {
		if (this.#state === "ending") this.#state = "done";
		clearTimeout(this.#answerTimer);
		this.#ws?.close();
		this.#ended?.();
	}

	#fail(failure: TranscriptionFailure): void {
		if (this.#state === "done" || this.#state === "failed") return;
		this.#state = "failed";
		clearTimeout(this.#answerTimer);
		this.#ws?.terminate();
		this.#log.error(failure, "transcription engine failed");
		this.emit("failed", failure);
		this.#ended?.();
	}
}

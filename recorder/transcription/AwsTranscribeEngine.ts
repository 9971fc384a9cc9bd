import { EventEmitter } from "node:events";
import {
	type AudioStream,
	type LanguageCode,
	type Result,
	StartStreamTranscriptionCommand,
	TranscribeStreamingClient,
	type TranscriptResultStream,
} from "@aws-sdk/client-transcribe-streaming";
import { assertEndpointAllowed } from "../../contracts/endpointGuard.js";
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

export interface AwsTranscribeEngineOptions {
	region: string;
	credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined };
	languageCode: string;
	/** Another endpoint than AWS's regional one (VPC endpoint, FIPS, a test server). */
	endpoint?: string | undefined;
	vocabularyName?: string | undefined;
	/** Endpoint checks, as for storage endpoints. */
	allowHttp?: boolean;
	allowPrivate?: boolean;
	/** How long AWS may take to accept the stream. */
	connectTimeoutMs?: number;
	/** After end(), how long the last results may take. */
	finishTimeoutMs?: number;
	/** Audio held while AWS is slow before write() asks to wait. */
	highWaterMs?: number;
}

/** AWS takes audio in events of 50–200 ms; 100 ms here. */
const CHUNK_BYTES = 100 * PCM_BYTES_PER_MS;

/**
 * AWS Transcribe Streaming (`StartStreamTranscription`, HTTP/2 with AWS event-stream framing, SigV4-signed
 * events) with the tenant's own credentials, region and language. Results with `IsPartial` become partials, the
 * others finals; pronunciation items become words. A stream that AWS ends with an exception fails
 * (`engine_rejected` for what retrying won't fix, else `engine_failed`); it is not reconnected.
 */
export class AwsTranscribeEngine implements TranscriptionEngine {
	readonly name = "aws";
	readonly #opts: AwsTranscribeEngineOptions;

	constructor(options: AwsTranscribeEngineOptions) {
		this.#opts = options;
	}

	async open(options: TranscriptionStreamOptions): Promise<TranscriptionStream> {
		if (this.#opts.endpoint) {
			await assertEndpointAllowed(this.#opts.endpoint, {
				allowHttp: this.#opts.allowHttp === true,
				allowPrivate: this.#opts.allowPrivate === true,
			});
		}
		const stream = new AwsStream(this.#opts, options.log);
		await stream.start();
		return stream;
	}
}

/** Audio waiting for the SDK to pull it. */
class ChunkQueue {
	readonly #chunks: Buffer[] = [];
	#bytes = 0;
	#closed = false;
	#wake: (() => void) | undefined;

	get bytes(): number {
		return this.#bytes;
	}

	push(chunk: Buffer): void {
		if (this.#closed) return;
		this.#chunks.push(chunk);
		this.#bytes += chunk.length;
		this.#wake?.();
	}

	close(): void {
		this.#closed = true;
		this.#wake?.();
	}

	async *drain(onTaken: () => void): AsyncGenerator<Buffer> {
		for (;;) {
			const chunk = this.#chunks.shift();
			if (chunk) {
				this.#bytes -= chunk.length;
				onTaken();
				yield chunk;
				continue;
			}
			if (this.#closed) return;
			await new Promise<void>((resolve) => {
				this.#wake = resolve;
			});
			this.#wake = undefined;
		}
	}
}

class AwsStream extends EventEmitter<TranscriptionStreamEvents> implements TranscriptionStream {
	readonly engine = "aws";
	readonly pids: number[] = [];
	readonly #opts: AwsTranscribeEngineOptions;
	readonly #log: Logger;
	readonly #client: TranscribeStreamingClient;
	readonly #abort = new AbortController();
	readonly #queue = new ChunkQueue();
	#pending: Buffer[] = [];
	#pendingBytes = 0;
	#bytes = 0;
	#state: "open" | "ending" | "done" | "failed" = "open";
	#needDrain = false;
	#results: Promise<void> = Promise.resolve();
	#ending: Promise<void> | undefined;

	constructor(opts: AwsTranscribeEngineOptions, log: Logger) {
		super();
		this.#opts = opts;
		this.#log = log.child({ engine: "aws", region: opts.region });
		this.#client = new TranscribeStreamingClient({
			region: opts.region,
			credentials: {
				accessKeyId: opts.credentials.accessKeyId,
				secretAccessKey: opts.credentials.secretAccessKey,
				...(opts.credentials.sessionToken ? { sessionToken: opts.credentials.sessionToken } : {}),
			},
			...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
			maxAttempts: 1,
		});
	}

	get audioMs(): number {
		return Math.floor(this.#bytes / PCM_BYTES_PER_MS);
	}

	/**
	 * Starts the request; resolves once AWS accepted the stream (its response headers). Not once send()
	 * resolves: the SDK resolves it only with the first event of the response, which AWS sends when it has
	 * something to say, i.e. after the audio began.
	 */
	async start(): Promise<void> {
		const queue = this.#queue;
		const highWater = (this.#opts.highWaterMs ?? 5000) * PCM_BYTES_PER_MS;
		const onTaken = () => {
			if (this.#needDrain && queue.bytes < highWater / 2) {
				this.#needDrain = false;
				this.emit("drain");
			}
		};
		async function* audio(): AsyncGenerator<AudioStream> {
			for await (const chunk of queue.drain(onTaken)) yield { AudioEvent: { AudioChunk: chunk } };
		}
		let onAccepted: (status: number) => void = () => undefined;
		const accepted = new Promise<number>((resolve) => {
			onAccepted = resolve;
		});
		this.#client.middlewareStack.add(
			(next) => async (args) => {
				const out = await next(args);
				onAccepted((out.response as { statusCode?: number } | undefined)?.statusCode ?? 0);
				return out;
			},
			{ step: "deserialize", name: "consentryStreamAccepted", priority: "low" },
		);
		const sent = this.#client.send(
			new StartStreamTranscriptionCommand({
				LanguageCode: this.#opts.languageCode as LanguageCode,
				MediaEncoding: "pcm",
				MediaSampleRateHertz: PCM_SAMPLE_RATE,
				AudioStream: audio(),
				...(this.#opts.vocabularyName ? { VocabularyName: this.#opts.vocabularyName } : {}),
			}),
			{ abortSignal: this.#abort.signal },
		);
		sent.catch(() => undefined);
		const timeoutMs = this.#opts.connectTimeoutMs ?? 15_000;
		let timer: NodeJS.Timeout | undefined;
		const timedOut = new Promise<"timeout">((resolve) => {
			timer = setTimeout(() => resolve("timeout"), timeoutMs);
		});
		try {
			const first = await Promise.race([accepted, sent.then(() => 200), timedOut]);
			if (first === "timeout") {
				this.#abort.abort();
				throw Object.assign(new Error(`no answer within ${timeoutMs} ms`), { name: "TimeoutError" });
			}
			if (first >= 300 || first === 0) await sent; // throws the service's error
		} catch (err) {
			this.#queue.close();
			this.#abort.abort();
			this.#client.destroy();
			const f = classify(err);
			throw new RecorderError(f.code === "engine_rejected" ? "engine_rejected" : "engine_unavailable", f.message, {
				cause: err,
			});
		} finally {
			clearTimeout(timer);
		}
		this.#results = sent.then(
			(response) => {
				this.#log.debug({ sessionId: response.SessionId, requestId: response.RequestId }, "AWS transcription started");
				return this.#readResults(response.TranscriptResultStream);
			},
			(err: unknown) => {
				if (this.#state !== "done") this.#fail(classify(err));
			},
		);
	}

	write(pcm: Buffer): boolean {
		if (this.#state !== "open" || pcm.length === 0) return true;
		this.#bytes += pcm.length;
		this.#pending.push(pcm);
		this.#pendingBytes += pcm.length;
		while (this.#pendingBytes >= CHUNK_BYTES) this.#queue.push(this.#take(CHUNK_BYTES));
		const highWater = (this.#opts.highWaterMs ?? 5000) * PCM_BYTES_PER_MS;
		if (this.#queue.bytes > highWater) this.#needDrain = true;
		return !this.#needDrain;
	}

	end(): Promise<void> {
		this.#ending ??= (async () => {
			if (this.#state !== "open") return;
			this.#state = "ending";
			if (this.#pendingBytes > 0) this.#queue.push(this.#take(this.#pendingBytes));
			this.#queue.close(); // the SDK sends the end of the audio stream; AWS sends the last results and ends
			const timer = setTimeout(() => {
				this.#log.warn("AWS did not end the stream in time; aborting it");
				this.#abort.abort();
			}, this.#opts.finishTimeoutMs ?? 30_000);
			await this.#results;
			clearTimeout(timer);
			if (this.#state === "ending") this.#state = "done";
			this.#client.destroy();
		})();
		return this.#ending;
	}

	destroy(): void {
		if (this.#state === "open" || this.#state === "ending") this.#state = "done";
		this.#queue.close();
		this.#abort.abort();
		this.#client.destroy();
	}

	#take(n: number): Buffer {
		const all = Buffer.concat(this.#pending);
		this.#pending = n < all.length ? [all.subarray(n)] : [];
		this.#pendingBytes = all.length - Math.min(n, all.length);
		return all.subarray(0, n);
	}

	async #readResults(events: AsyncIterable<TranscriptResultStream> | undefined) {
		if (!events) {
			this.#fail({ code: "engine_failed", message: "AWS sent no result stream" });
			return;
		}
		try {
			for await (const event of events) {
				if (this.#state === "done" || this.#state === "failed") break;
				if (event.TranscriptEvent) {
					for (const result of event.TranscriptEvent.Transcript?.Results ?? []) {
						const segment = toSegment(result);
						if (segment) this.emit("segment", segment);
					}
					continue;
				}
				const exception = Object.entries(event).find(([k, v]) => k.endsWith("Exception") && v);
				if (exception) {
					const [name, value] = exception as [string, { Message?: string }];
					const err = Object.assign(new Error(value.Message ?? name), { name });
					this.#fail(classify(err));
					return;
				}
			}
		} catch (err) {
			if (this.#state === "done") return;
			this.#fail(classify(err));
		}
	}

	#fail(failure: TranscriptionFailure): void {
		if (this.#state === "done" || this.#state === "failed") return;
		this.#state = "failed";
		this.#queue.close();
		this.#abort.abort();
		this.#client.destroy();
		this.#log.error(failure, "transcription engine failed");
		this.emit("failed", failure);
	}
}

/** One AWS result (partial or final) as a segment; undefined when it has no text. */
export function toSegment(result: Result): TranscriptSegment | undefined {
	const alt = result.Alternatives?.[0];
	const text = alt?.Transcript?.trim() ?? "";
	if (!text) return undefined;
	const ms = (s: number | undefined) => Math.max(0, Math.round((s ?? 0) * 1000));
	const segment: TranscriptSegment = {
		final: result.IsPartial !== true,
		text,
		startMs: ms(result.StartTime),
		endMs: ms(result.EndTime),
	};
	if (segment.final && alt?.Items?.length) {
		segment.words = alt.Items.filter((i) => i.Type !== "punctuation" && i.Content).map((i) => ({
			word: i.Content as string,
			startMs: ms(i.StartTime),
			endMs: ms(i.EndTime),
			...(typeof i.Confidence === "number" ? { confidence: i.Confidence } : {}),
		}));
	}
	return segment;
}

const REJECTED = new Set([
	"BadRequestException",
	"UnrecognizedClientException",
	"InvalidSignatureException",
	"AccessDeniedException",
	"IncompleteSignatureException",
	"ExpiredTokenException",
	"MissingAuthenticationTokenException",
	"ValidationException",
	"ConflictException",
]);

/** What an AWS error means for the stream; the message names the AWS error, never the credentials. */
function classify(err: unknown): TranscriptionFailure {
	const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
	const status = e?.$metadata?.httpStatusCode;
	const name = e?.name ?? "Error";
	const message = `AWS Transcribe: ${name}: ${e?.message ?? String(err)}`.slice(0, 500);
	if (REJECTED.has(name) || status === 400 || status === 401 || status === 403) {
		return { code: "engine_rejected", message };
	}
	return { code: "engine_failed", message };
}

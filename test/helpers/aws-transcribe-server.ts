import { randomUUID } from "node:crypto";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { EventStreamCodec, type Message, type MessageHeaders } from "@smithy/eventstream-codec";

const codec = new EventStreamCodec(
	(bytes: Uint8Array) => Buffer.from(bytes).toString("utf8"),
	(text: string) => new Uint8Array(Buffer.from(text, "utf8")),
);

/** What one StartStreamTranscription request looked like on the wire. */
export interface ReceivedStream {
	path: string;
	headers: Record<string, string>;
	/** Signed outer frames (each with :date and a 32-byte :chunk-signature). */
	frames: number;
	/** Every outer frame carried a :date and a 32-byte :chunk-signature. */
	allSigned: boolean;
	/** The inner events' types (AudioEvent…), in order. */
	eventTypes: string[];
	/** The PCM of every AudioEvent, concatenated. */
	audio: Buffer;
	/** The client sent the empty frame that ends the audio stream. */
	endFrame: boolean;
}

export interface FakeTranscribeOptions {
	/** The words the "recognizer" answers with, spread over each stretch of speech it hears. */
	script: string;
	/** Instead of transcribing: reject the request (HTTP status + AWS error type), or fail mid-stream. */
	reject?: { status: number; type: string; message: string };
	failAfterMs?: { type: string; message: string; afterAudioMs: number };
}

export interface FakeTranscribeServer {
	endpoint: string;
	streams: ReceivedStream[];
	close(): Promise<void>;
}

/**
 * A local server speaking AWS Transcribe Streaming's documented protocol: HTTP/2 (cleartext here) POST
 * /stream-transcription with the x-amzn-transcribe-* headers and a SigV4 `authorization`; the body is a stream of
 * AWS event-stream messages, each a signed envelope (`:date`, `:chunk-signature`) around an `AudioEvent` with raw
 * PCM; an empty envelope ends it. The answer is a 200 with an event stream of `TranscriptEvent` messages
 * (`Transcript.Results[]` with `IsPartial`, `StartTime`/`EndTime` in seconds, `Alternatives[0].Items`).
 *
 * It can't recognize speech: it finds the stretches of speech in the PCM it gets by their energy (so the audio
 * must really arrive, decoded, at 16 kHz, in time), sends partials with a growing prefix of `script` while one
 * lasts and a final with every word (times spread over the stretch) when 600 ms of silence or the end of the
 * stream closes it. Signatures are checked for presence and shape, not verified.
 */
export async function startFakeTranscribe(options: FakeTranscribeOptions): Promise<FakeTranscribeServer> {
	const streams: ReceivedStream[] = [];
	const sessions = new Set<http2.ServerHttp2Session>();
	const server = http2.createServer();
	server.on("session", (s) => {
		sessions.add(s);
		s.on("close", () => sessions.delete(s));
	});
	server.on("stream", (stream, headers) => {
		const received: ReceivedStream = {
			path: String(headers[":path"]),
			headers: Object.fromEntries(
				Object.entries(headers)
					.filter(([k]) => !k.startsWith(":"))
					.map(([k, v]) => [k, String(v)]),
			),
			frames: 0,
			allSigned: true,
			eventTypes: [],
			audio: Buffer.alloc(0),
			endFrame: false,
		};
		streams.push(received);
		if (options.reject) {
			stream.respond({
				":status": options.reject.status,
				"content-type": "application/x-amz-json-1.1",
				"x-amzn-errortype": `${options.reject.type}:`,
				"x-amzn-requestid": randomUUID(),
			});
			stream.end(JSON.stringify({ message: options.reject.message }));
			return;
		}
		stream.respond({
			":status": 200,
			"content-type": "application/vnd.amazon.eventstream",
			"x-amzn-request-id": randomUUID(),
			"x-amzn-transcribe-session-id": randomUUID(),
			"x-amzn-transcribe-language-code": String(headers["x-amzn-transcribe-language-code"] ?? ""),
			"x-amzn-transcribe-sample-rate": String(headers["x-amzn-transcribe-sample-rate"] ?? ""),
			"x-amzn-transcribe-media-encoding": String(headers["x-amzn-transcribe-media-encoding"] ?? ""),
		});
		const recognizer = new ScriptedRecognizer(options.script, (message) => {
			if (!stream.closed) stream.write(codec.encode(message));
		});
		let pending = Buffer.alloc(0);
		let failed = false;
		stream.on("data", (chunk: Buffer) => {
			pending = Buffer.concat([pending, chunk]);
			while (pending.length >= 4) {
				const length = pending.readUInt32BE(0);
				if (pending.length < length) break;
				const outer = codec.decode(pending.subarray(0, length));
				pending = pending.subarray(length);
				received.frames++;
				const sig = outer.headers[":chunk-signature"];
				if (!outer.headers[":date"] || sig?.type !== "binary" || sig.value.length !== 32) received.allSigned = false;
				if (outer.body.length === 0) {
					received.endFrame = true;
					continue;
				}
				const inner = codec.decode(outer.body);
				const type = stringHeader(inner.headers, ":event-type");
				received.eventTypes.push(type);
				if (type !== "AudioEvent") continue;
				received.audio = Buffer.concat([received.audio, Buffer.from(inner.body)]);
				if (failed) continue;
				recognizer.push(Buffer.from(inner.body));
				const fail = options.failAfterMs;
				if (fail && received.audio.length >= fail.afterAudioMs * 32) {
					failed = true;
					stream.end(
						codec.encode({
							headers: {
								":message-type": { type: "string", value: "exception" },
								":exception-type": { type: "string", value: fail.type },
								":content-type": { type: "string", value: "application/json" },
							},
							body: new Uint8Array(Buffer.from(JSON.stringify({ Message: fail.message }))),
						}),
					);
				}
			}
		});
		stream.on("end", () => {
			if (failed || stream.closed) return;
			recognizer.finish();
			stream.end();
		});
		stream.on("error", () => undefined);
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	const { port } = server.address() as AddressInfo;
	return {
		endpoint: `http://127.0.0.1:${port}`,
		streams,
		close: async () => {
			for (const s of sessions) s.destroy();
			await new Promise<void>((resolve) => server.close(() => resolve()));
		},
	};
}

function stringHeader(headers: MessageHeaders, name: string): string {
	const h = headers[name];
	return h?.type === "string" ? h.value : "";
}

/** Energy-based "recognition" of a scripted text (see startFakeTranscribe). */
class ScriptedRecognizer {
	readonly #words: string[];
	readonly #send: (message: Message) => void;
	#ms = 0;
	#speechStart: number | undefined;
	#lastSpeech = 0;
	#lastPartialAt = 0;
	#results = 0;
	#carry = Buffer.alloc(0);

	constructor(script: string, send: (message: Message) => void) {
		this.#words = script.split(/\s+/).filter(Boolean);
		this.#send = send;
	}

	push(pcm: Buffer): void {
		let data = Buffer.concat([this.#carry, pcm]);
		const window = 20 * 32; // 20 ms
		while (data.length >= window) {
			let peak = 0;
			for (let i = 0; i < window; i += 2) peak = Math.max(peak, Math.abs(data.readInt16LE(i)));
			data = data.subarray(window);
			this.#ms += 20;
			if (peak > 330) {
				this.#speechStart ??= this.#ms - 20;
				this.#lastSpeech = this.#ms;
			}
			if (this.#speechStart === undefined) continue;
			if (this.#ms - this.#lastSpeech >= 600) this.#final();
			else if (this.#ms - this.#lastPartialAt >= 500) {
				this.#lastPartialAt = this.#ms;
				const elapsed = this.#ms - this.#speechStart;
				const n = Math.max(1, Math.min(this.#words.length, Math.round(elapsed / 350)));
				this.#result(true, this.#words.slice(0, n), this.#speechStart, this.#ms);
			}
		}
		this.#carry = data;
	}

	finish(): void {
		if (this.#speechStart !== undefined) this.#final();
	}

	#final(): void {
		const start = this.#speechStart as number;
		this.#result(false, this.#words, start, this.#lastSpeech);
		this.#speechStart = undefined;
		this.#results++;
	}

	#result(partial: boolean, words: string[], startMs: number, endMs: number): void {
		const per = (endMs - startMs) / Math.max(1, words.length);
		const items = words.map((w, i) => ({
			StartTime: (startMs + i * per) / 1000,
			EndTime: (startMs + (i + 1) * per) / 1000,
			Type: "pronunciation",
			Content: w,
			VocabularyFilterMatch: false,
			...(partial ? {} : { Confidence: 0.9 }),
		}));
		const transcript = {
			Transcript: {
				Results: [
					{
						ResultId: `result-${this.#results}`,
						StartTime: startMs / 1000,
						EndTime: endMs / 1000,
						IsPartial: partial,
						ChannelId: "ch_0",
						Alternatives: [
							{ Transcript: `${words.join(" ")}.`, Items: [...items, { Type: "punctuation", Content: "." }] },
						],
					},
				],
			},
		};
		this.#send({
			headers: {
				":message-type": { type: "string", value: "event" },
				":event-type": { type: "string", value: "TranscriptEvent" },
				":content-type": { type: "string", value: "application/json" },
			},
			body: new Uint8Array(Buffer.from(JSON.stringify(transcript))),
		});
	}
}

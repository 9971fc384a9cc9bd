import http from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";

/**
 * Local servers speaking the protocols of self-hosted speech-to-text engines, for the engines' tests (as
 * aws-transcribe-server.ts does for AWS): a Vosk server (vosk-server's WebSocket protocol) and an OpenAI-compatible
 * `/v1/audio/transcriptions` (whisper servers). Neither recognizes speech: they find the stretches of speech in
 * the 16 kHz PCM they get by energy, and answer with a scripted text timed on them — so what is checked is the
 * protocol, the audio that reached the server and the timing, not a model.
 */

/** Stretches of speech in 16 kHz s16le PCM (20 ms windows above ~1 % of full scale; 600 ms of quiet ends one). */
export function speechStretches(pcm: Buffer): { startMs: number; endMs: number }[] {
	const out: { startMs: number; endMs: number }[] = [];
	let start: number | undefined;
	let last = 0;
	const window = 20 * 32;
	for (let i = 0, ms = 0; i + window <= pcm.length; i += window, ms += 20) {
		let peak = 0;
		for (let j = 0; j < window; j += 2) peak = Math.max(peak, Math.abs(pcm.readInt16LE(i + j)));
		if (peak > 330) {
			start ??= ms;
			last = ms + 20;
		} else if (start !== undefined && ms - last >= 600) {
			out.push({ startMs: start, endMs: last });
			start = undefined;
		}
	}
	if (start !== undefined) out.push({ startMs: start, endMs: last });
	return out;
}

function spread(words: string[], startMs: number, endMs: number) {
	const per = (endMs - startMs) / Math.max(1, words.length);
	return words.map((w, i) => ({ word: w, start: (startMs + i * per) / 1000, end: (startMs + (i + 1) * per) / 1000 }));
}

export interface FakeVoskServer {
	/** ws://127.0.0.1:port */
	endpoint: string;
	connections: {
		config: unknown;
		binaryBytes: number;
		chunks: number;
		eof: boolean;
		textMessages: string[];
		/** When each final result with text was sent (Date.now()). */
		finals: number[];
	}[];
	close(): Promise<void>;
}

/** A Vosk server: `{"config": …}`, binary PCM answered by `{"partial"}` / `{"text","result"}`, `{"eof" : 1}`. */
export async function startFakeVosk(
	script: string,
	o: {
		/** Also end a stretch of speech after this much of it (a continuous tone then gives a final every so often). */
		finalEveryMs?: number;
	} = {},
): Promise<FakeVoskServer> {
	const words = script.split(/\s+/).filter(Boolean);
	const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
	await new Promise<void>((r) => wss.once("listening", () => r()));
	const connections: FakeVoskServer["connections"] = [];
	wss.on("connection", (ws) => {
		const c = {
			config: undefined as unknown,
			binaryBytes: 0,
			chunks: 0,
			eof: false,
			textMessages: [] as string[],
			finals: [] as number[],
		};
		connections.push(c);
		let ms = 0;
		let speechStart: number | undefined;
		let lastSpeech = 0;
		const final = () => {
			const start = speechStart as number;
			speechStart = undefined;
			c.finals.push(Date.now());
			return JSON.stringify({ result: spread(words, start, lastSpeech).map((w) => ({ ...w, conf: 1 })), text: script });
		};
		ws.on("message", (data, isBinary) => {
			if (!isBinary) {
				const text = data.toString();
				c.textMessages.push(text);
				if (text === '{"eof" : 1}') {
					c.eof = true;
					ws.send(speechStart !== undefined ? final() : JSON.stringify({ text: "" }));
					ws.close();
					return;
				}
				c.config = JSON.parse(text).config; // no answer, as vosk-server
				return;
			}
			const pcm = data as Buffer;
			c.binaryBytes += pcm.length;
			c.chunks++;
			let ended = false;
			for (let i = 0; i + 640 <= pcm.length; i += 640) {
				let peak = 0;
				for (let j = 0; j < 640; j += 2) peak = Math.max(peak, Math.abs(pcm.readInt16LE(i + j)));
				ms += 20;
				if (peak > 330) {
					speechStart ??= ms - 20;
					lastSpeech = ms;
				} else if (speechStart !== undefined && ms - lastSpeech >= 600) ended = true;
				if (o.finalEveryMs && speechStart !== undefined && ms - speechStart >= o.finalEveryMs) {
					ws.send(final());
				}
			}
			if (ended) ws.send(final());
			else if (speechStart !== undefined) {
				const n = Math.max(1, Math.min(words.length, Math.round((ms - speechStart) / 350)));
				ws.send(JSON.stringify({ partial: words.slice(0, n).join(" ") }));
			} else ws.send(JSON.stringify({ partial: "" }));
		});
	});
	const port = (wss.address() as AddressInfo).port;
	return {
		endpoint: `ws://127.0.0.1:${port}`,
		connections,
		close: async () => {
			for (const ws of wss.clients) ws.terminate();
			await new Promise((r) => wss.close(r));
		},
	};
}

export interface WhisperRequest {
	authorization: string | undefined;
	fields: Record<string, string[]>;
	/** The WAV's format and its PCM. */
	wav: { sampleRate: number; channels: number; bits: number; pcm: Buffer };
}

export interface FakeWhisperServer {
	endpoint: string;
	requests: WhisperRequest[];
	/** Answers the next `n` requests with `status` (e.g. 500, then normal again). */
	failNext(n: number, status: number): void;
	close(): Promise<void>;
}

/**
 * An OpenAI-compatible `/v1/audio/transcriptions`: multipart (file, model, language, response_format, …), answered
 * with verbose_json: the next sentence of `sentences` (cycling), its words spread over the speech in the file.
 * With `apiKey`, other keys get 401 like OpenAI's API.
 */
export async function startFakeWhisper(
	sentences: string[],
	options: { apiKey?: string } = {},
): Promise<FakeWhisperServer> {
	const requests: WhisperRequest[] = [];
	let failures: { n: number; status: number } = { n: 0, status: 500 };
	let next = 0;
	const server = http.createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on("data", (c: Buffer) => chunks.push(c));
		req.on("end", () => {
			const json = (status: number, body: unknown) =>
				res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
			if (req.method !== "POST" || req.url !== "/v1/audio/transcriptions")
				return json(404, { error: { message: "not found" } });
			if (options.apiKey && req.headers.authorization !== `Bearer ${options.apiKey}`)
				return json(401, { error: { message: "Incorrect API key provided", type: "invalid_request_error" } });
			const boundary = /boundary=([^;]+)/.exec(req.headers["content-type"] ?? "")?.[1];
			if (!boundary) return json(400, { error: { message: "not multipart" } });
			const body = Buffer.concat(chunks);
			const fields: Record<string, string[]> = {};
			let file: Buffer | undefined;
			for (const part of split(body, Buffer.from(`--${boundary}`))) {
				const headEnd = part.indexOf("\r\n\r\n");
				if (headEnd < 0) continue;
				const head = part.subarray(0, headEnd).toString();
				const content = part.subarray(headEnd + 4, part.length - 2); // CRLF before the next boundary
				const name = /name="([^"]+)"/.exec(head)?.[1] ?? "";
				if (/filename=/.test(head)) file = content;
				else {
					fields[name] ??= [];
					fields[name].push(content.toString());
				}
			}
			if (file?.subarray(0, 4).toString() !== "RIFF" || file.subarray(8, 12).toString() !== "WAVE")
				return json(400, { error: { message: "file is not a WAV" } });
			const wav = {
				channels: file.readUInt16LE(22),
				sampleRate: file.readUInt32LE(24),
				bits: file.readUInt16LE(34),
				pcm: file.subarray(44, 44 + file.readUInt32LE(40)),
			};
			requests.push({ authorization: req.headers.authorization, fields, wav });
			if (failures.n > 0) {
				failures.n--;
				return json(failures.status, { error: { message: "server busy" } });
			}
			const text = sentences[next++ % sentences.length] as string;
			const stretches = speechStretches(wav.pcm);
			const start = stretches[0]?.startMs ?? 0;
			const end = stretches.at(-1)?.endMs ?? wav.pcm.length / 32;
			const words = spread(text.split(/\s+/), start, end);
			json(200, {
				task: "transcribe",
				language: fields.language?.[0] ?? "en",
				duration: wav.pcm.length / 32000,
				text,
				segments: [{ id: 0, start: start / 1000, end: end / 1000, text }],
				words,
			});
		});
	});
	await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
	return {
		endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
		requests,
		failNext: (n, status) => {
			failures = { n, status };
		},
		close: async () => {
			server.closeAllConnections();
			await new Promise((r) => server.close(r));
		},
	};
}

function split(buf: Buffer, sep: Buffer): Buffer[] {
	const out: Buffer[] = [];
	let i = buf.indexOf(sep);
	while (i >= 0) {
		const j = buf.indexOf(sep, i + sep.length);
		if (j < 0) break;
		out.push(buf.subarray(i + sep.length + 2, j)); // skip the CRLF after the boundary
		i = j;
	}
	return out;
}

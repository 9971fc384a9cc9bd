import { type ChildProcess, fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import path from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import { RECORDER_CONFIG_ENV, type RecorderConfig, RecorderConfigSchema } from "../../contracts/RecorderConfig.js";
import { RecorderError, type RecorderErrorCode } from "../../contracts/RecorderError.js";
import {
	type CaptureSummaryWire,
	type ChildMessage,
	type CloseTime,
	ParentMessageSchema,
	parseChildMessage,
	type Recovered,
	type TrackStats,
	type TranscriptionClosed,
} from "../../contracts/RecorderProtocol.js";
import type { Logger } from "../logger.js";
import type {
	OpenTrackRequest,
	OpenTranscriptionRequest,
	RecorderProcessEvents,
	RecorderProcessOptions,
	RecoverRequest,
} from "./RecorderProcessTypes.js";

interface Pending {
	resolve: (msg: ChildMessage) => void;
	reject: (err: Error) => void;
	timer: NodeJS.Timeout;
	expect: ChildMessage["type"];
}

/**
 * The gateway's handle on the recorder child process: forks recorder/main
 * (main.ts through tsx when this file runs as TypeScript, main.js in
 * dist/recorder/), sends validated requests and resolves them from the replies, and
 * re-emits the child's reports as typed events. When the child dies without
 * being asked to, every pending request is rejected (`recorder_crashed`) and
 * `crashed` is emitted; restart() starts a new child.
 */
export class RecorderProcess extends EventEmitter<RecorderProcessEvents> {
	readonly config: RecorderConfig;
	readonly #opts: RecorderProcessOptions;
	readonly #log: Logger | undefined;
	#child: ChildProcess | undefined;
	#pending = new Map<string, Pending>();
	#openTracks = new Set<string>();
	#openTranscriptions = new Set<string>();
	#closing = false;
	#exited: Promise<void> = Promise.resolve();

	private constructor(options: RecorderProcessOptions, config: RecorderConfig) {
		super();
		this.#opts = options;
		this.config = config;
		this.#log = options.log?.child({ component: "RecorderProcess" });
	}

	/** Validates the config, forks the child and waits for its `ready`. */
	static async create(options: RecorderProcessOptions = {}): Promise<RecorderProcess> {
		const parsed = RecorderConfigSchema.safeParse(options.config ?? {});
		if (!parsed.success) {
			throw new RecorderError(
				"invalid_config",
				`invalid recorder config: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
			);
		}
		const recorder = new RecorderProcess(options, parsed.data);
		await recorder.#spawn();
		return recorder;
	}

	/** True while the child runs and accepts requests. */
	get alive(): boolean {
		return (
			this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null && !this.#closing
		);
	}

	get pid(): number | undefined {
		return this.#child?.pid;
	}

	/** The child's stderr when created with `stderr: "pipe"`. */
	get stderr(): Readable | null {
		return this.#child?.stderr ?? null;
	}

	/** Tracks opened and not yet closed or failed. */
	get openTracks(): string[] {
		return [...this.#openTracks];
	}

	/** Opens a track; connect the PlainTransport (rtcpMux: false) to 127.0.0.1:rtpPort / rtcpPort. */
	async openTrack(request: OpenTrackRequest): Promise<{ rtpPort: number; rtcpPort: number }> {
		const reply = await this.#request(
			{ type: "openTrack", ...request },
			"trackOpened",
			this.#opts.openTimeoutMs ?? 30_000,
		);
		if (reply.type !== "trackOpened") throw new Error("unreachable");
		this.#openTracks.add(request.trackId);
		return { rtpPort: reply.rtpPort, rtcpPort: reply.rtcpPort };
	}

	/** Closes a track gracefully; resolves after its last objectWritten, with every frame of it accounted for. */
	async closeTrack(trackId: string): Promise<TrackStats | undefined> {
		return (await this.closeTrackWithCapture(trackId)).stats;
	}

	/** closeTrack, with what the per-packet capture gate did (issue 11). */
	async closeTrackWithCapture(
		trackId: string,
		closeAt?: CloseTime,
	): Promise<{ stats?: TrackStats; capture?: CaptureSummaryWire }> {
		const { stopGraceMs, finishDeadlineMs, closeDrainMs } = this.config;
		try {
			const reply = await this.#request(
				{ type: "closeTrack", trackId, ...(closeAt ? { closeAt } : {}) },
				"trackClosed",
				stopGraceMs + closeDrainMs + 2 * finishDeadlineMs + 10_000,
			);
			if (reply.type !== "trackClosed") return {};
			return { ...(reply.stats ? { stats: reply.stats } : {}), ...(reply.capture ? { capture: reply.capture } : {}) };
		} finally {
			this.#openTracks.delete(trackId);
		}
	}

	/** Transcriptions opened and not yet closed or failed. */
	get openTranscriptions(): string[] {
		return [...this.#openTranscriptions];
	}

	/**
	 * Transcribes an audio track with the engine asked for; connect the PlainTransport (rtcpMux: false) to
	 * 127.0.0.1:rtpPort / rtcpPort. Segments come as `transcriptSegment` events. Resolves once the engine is
	 * ready (pocketsphinx: its model loaded, ~1–2 s; AWS: the stream accepted).
	 */
	async openTranscription(request: OpenTranscriptionRequest): Promise<{ rtpPort: number; rtcpPort: number }> {
		const reply = await this.#request(
			{ type: "openTranscription", ...request },
			"transcriptionOpened",
			this.#opts.openTimeoutMs ?? 30_000,
		);
		if (reply.type !== "transcriptionOpened") throw new Error("unreachable");
		this.#openTranscriptions.add(request.trackId);
		return { rtpPort: reply.rtpPort, rtcpPort: reply.rtcpPort };
	}

	/** Ends a transcription: resolves after the engine's last final segment (and its `transcriptionClosed`). */
	async closeTranscription(trackId: string, closeAt?: CloseTime): Promise<TranscriptionClosed> {
		try {
			const reply = await this.#request(
				{ type: "closeTranscription", trackId, ...(closeAt ? { closeAt } : {}) },
				"transcriptionClosed",
				this.config.idleTimeoutMs + this.config.stopGraceMs + 45_000,
			);
			if (reply.type !== "transcriptionClosed") throw new Error("unreachable");
			return {
				trackId: reply.trackId,
				audioMs: reply.audioMs,
				...(reply.capture ? { capture: reply.capture } : {}),
			};
		} finally {
			this.#openTranscriptions.delete(trackId);
		}
	}

	/** Completes (or aborts) the unfinished uploads of owned sessions; objectWritten events come first. */
	async recover(request: RecoverRequest, timeoutMs = 600_000): Promise<Recovered> {
		const reply = await this.#request({ type: "recover", ...request }, "recovered", timeoutMs);
		if (reply.type !== "recovered") throw new Error("unreachable");
		const { type: _type, requestId: _id, ...result } = reply;
		return result;
	}

	/** Forwards one RTCP sender report of a track's producer (dates its packets; issue 11). Dropped if not running. */
	senderReport(trackId: string, sr: { ssrc?: number; ntpMs: number; rtpTs: number; receivedAt: number }): void {
		const child = this.#child;
		if (child?.connected) child.send({ type: "senderReport", trackId, ...sr });
	}

	/** Sends a message as is, unvalidated (diagnostics and tests of the child's validation). */
	sendUnchecked(message: unknown): void {
		this.#child?.send(message as object);
	}

	/** Graceful stop: the child closes every track (objects completed) and exits; SIGKILL after `timeoutMs`. */
	async close(timeoutMs?: number): Promise<void> {
		const child = this.#child;
		if (!child || child.exitCode !== null || child.signalCode !== null) return;
		this.#closing = true;
		const { stopGraceMs, finishDeadlineMs } = this.config;
		const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs ?? stopGraceMs + 2 * finishDeadlineMs + 10_000);
		try {
			if (child.connected) child.send({ type: "shutdown" });
			else child.kill("SIGTERM");
		} catch {
			child.kill("SIGTERM");
		}
		await this.#exited;
		clearTimeout(timer);
	}

	/** Starts a new child after a crash (or a close). Tracks of the old one are gone. */
	async restart(): Promise<void> {
		if (this.alive) throw new RecorderError("internal_error", "the recorder is still running");
		await this.#exited;
		this.#closing = false;
		this.#openTracks.clear();
		this.#openTranscriptions.clear();
		await this.#spawn();
	}

	// ---- internals ----

	async #spawn(): Promise<void> {
		const { entry, execArgv, env } = forkTarget();
		const stderr = this.#opts.stderr ?? "inherit";
		const child = fork(entry, [], {
			execArgv,
			env: { ...process.env, ...env, [RECORDER_CONFIG_ENV]: JSON.stringify(this.config) },
			stdio: ["ignore", "ignore", stderr, "ipc"],
			serialization: "json",
			// Its own process group: a Ctrl-C in the gateway's terminal reaches the gateway, which closes it.
			detached: true,
		});
		this.#child = child;
		let onExit: () => void = () => undefined;
		this.#exited = new Promise<void>((resolve) => {
			onExit = resolve;
		});
		child.on("message", (raw: unknown) => this.#onMessage(raw));
		child.on("error", (err) => this.#log?.error({ err }, "recorder process error"));
		const ready = new Promise<number>((resolve, reject) => {
			const timer = setTimeout(() => {
				child.kill("SIGKILL");
				reject(new RecorderError("timeout", "the recorder did not start in time"));
			}, this.#opts.readyTimeoutMs ?? 20_000);
			this.once("ready", ({ pid }) => {
				clearTimeout(timer);
				resolve(pid);
			});
			child.once("exit", (code, signal) => {
				clearTimeout(timer);
				reject(
					new RecorderError("recorder_crashed", `the recorder exited while starting (${signal ?? `code ${code}`})`),
				);
			});
		});
		child.once("exit", (code, signal) => {
			const expected = this.#closing;
			const openTracks = [...this.#openTracks];
			const openTranscriptions = [...this.#openTranscriptions];
			this.#openTracks.clear();
			this.#openTranscriptions.clear();
			const err = new RecorderError(
				expected ? "recorder_closed" : "recorder_crashed",
				`the recorder ${expected ? "was closed" : `died (${signal ?? `code ${code}`})`}`,
			);
			for (const [id, p] of this.#pending) {
				clearTimeout(p.timer);
				p.reject(err);
				this.#pending.delete(id);
			}
			if (!expected) this.#log?.error({ code, signal, openTracks, openTranscriptions }, "recorder process died");
			onExit();
			this.emit("exit", { code, signal, expected });
			if (!expected) this.emit("crashed", { code, signal, openTracks, openTranscriptions });
		});
		const pid = await ready;
		this.#log?.info({ pid }, "recorder process ready");
	}

	#request(message: Record<string, unknown>, expect: ChildMessage["type"], timeoutMs: number): Promise<ChildMessage> {
		const requestId = randomUUID();
		const full = { ...message, requestId };
		const valid = ParentMessageSchema.safeParse(full);
		if (!valid.success) {
			return Promise.reject(
				new RecorderError(
					"invalid_message",
					`invalid ${String(message.type)} request: ${valid.error.issues
						.map((i) => `${i.path.join(".")}: ${i.message}`)
						.join("; ")}`,
				),
			);
		}
		const child = this.#child;
		if (!child || !this.alive || !child.connected) {
			return Promise.reject(new RecorderError("recorder_crashed", "the recorder is not running"));
		}
		return new Promise<ChildMessage>((resolve, reject) => {
			const timer = setTimeout(() => {
				this.#pending.delete(requestId);
				reject(new RecorderError("timeout", `the recorder did not answer ${String(message.type)} in ${timeoutMs} ms`));
			}, timeoutMs);
			this.#pending.set(requestId, { resolve, reject, timer, expect });
			child.send(valid.data, (err) => {
				if (!err) return;
				clearTimeout(timer);
				this.#pending.delete(requestId);
				reject(new RecorderError("recorder_crashed", `could not reach the recorder: ${err.message}`));
			});
		});
	}

	#onMessage(raw: unknown): void {
		const parsed = parseChildMessage(raw);
		if (!parsed.ok) {
			this.#log?.error({ error: parsed.error }, "invalid message from the recorder");
			this.emit("protocolError", { code: "invalid_message", message: parsed.error });
			return;
		}
		const msg = parsed.message;
		const requestId = "requestId" in msg ? msg.requestId : undefined;
		const pending = requestId ? this.#pending.get(requestId) : undefined;
		if (pending && requestId && (msg.type === pending.expect || msg.type === "error")) {
			this.#pending.delete(requestId);
			clearTimeout(pending.timer);
			if (msg.type === "error") pending.reject(new RecorderError(msg.code as RecorderErrorCode, msg.message));
			else pending.resolve(msg);
		}
		switch (msg.type) {
			case "ready":
				this.emit("ready", { pid: msg.pid });
				return;
			case "objectWritten": {
				const { type: _t, ...o } = msg;
				this.emit("objectWritten", o);
				return;
			}
			case "partUploaded": {
				const { type: _t, ...p } = msg;
				this.emit("partUploaded", p);
				return;
			}
			case "keyframeNeeded":
				this.emit("keyframeNeeded", { trackId: msg.trackId });
				return;
			case "trackStarted":
				this.emit("trackStarted", { trackId: msg.trackId, at: msg.at, stages: msg.stages });
				return;
			case "trackHole":
				this.emit("trackHole", { trackId: msg.trackId, hole: msg.hole });
				return;
			case "trackStopping": {
				const { type: _t, ...f } = msg;
				this.emit("trackStopping", f);
				return;
			}
			case "trackFailed": {
				this.#openTracks.delete(msg.trackId);
				const { type: _t, ...f } = msg;
				this.emit("trackFailed", f);
				return;
			}
			case "trackClosed":
				this.#openTracks.delete(msg.trackId);
				this.emit("trackClosed", { trackId: msg.trackId, ...(msg.stats ? { stats: msg.stats } : {}) });
				return;
			case "error":
				if (!pending) {
					const { type: _t, ...e } = msg;
					this.emit("protocolError", e);
				}
				return;
			case "uploadStats":
				this.emit("uploadStats", { tracks: msg.tracks, checkpointRetries: msg.checkpointRetries });
				return;
			case "trackUndatable": {
				const { type: _t, ...u } = msg;
				this.emit("trackUndatable", u);
				return;
			}
			case "transcriptSegment": {
				const { type: _t, ...seg } = msg;
				this.emit("transcriptSegment", seg);
				return;
			}
			case "transcriptionFailed": {
				this.#openTranscriptions.delete(msg.trackId);
				const { type: _t, ...f } = msg;
				this.emit("transcriptionFailed", f);
				return;
			}
			case "transcriptionClosed":
				this.#openTranscriptions.delete(msg.trackId);
				this.emit("transcriptionClosed", {
					trackId: msg.trackId,
					audioMs: msg.audioMs,
					...(msg.capture ? { capture: msg.capture } : {}),
				});
				return;
			case "trackOpened":
			case "transcriptionOpened":
			case "recovered":
				return;
		}
	}
}

/**
 * recorder/main.ts through tsx when running from TypeScript (dev, tests; tsx's on-disk
 * compile cache off, so the child writes nothing), dist/recorder/main.js when built. The recorder is
 * reached only through this fork and the messages of contracts/RecorderProtocol.ts, never imported.
 */
export function forkTarget(): { entry: string; execArgv: string[]; env: Record<string, string> } {
	const here = fileURLToPath(import.meta.url);
	const dir = path.join(path.dirname(here), "..", "..", "recorder");
	if (here.endsWith(".ts")) {
		const tsx = createRequire(import.meta.url).resolve("tsx");
		return {
			entry: path.join(dir, "main.ts"),
			execArgv: ["--import", pathToFileURL(tsx).href],
			env: { TSX_DISABLE_CACHE: "1" },
		};
	}
	return { entry: path.join(dir, "main.js"), execArgv: [], env: {} };
}

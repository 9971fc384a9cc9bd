import { type ChildProcessByStdio, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import type { Logger } from "../../contracts/logger.js";
import { RecorderError } from "../errors.js";
import { findExecutable, guardPrefix } from "../executables.js";
import {
	PCM_BYTES_PER_MS,
	type TranscriptionEngine,
	type TranscriptionFailure,
	type TranscriptionStream,
	type TranscriptionStreamEvents,
	type TranscriptionStreamOptions,
	type TranscriptSegment,
	type TranscriptWord,
} from "./TranscriptionEngineTypes.js";

/** pocketsphinx_stream.py's options (its OPTIONS; unset = its defaults). */
export interface PocketsphinxOptions {
	vadMode?: number;
	partialIntervalMs?: number;
	maxUtteranceMs?: number;
	prerollMs?: number;
}

export interface PocketsphinxEngineOptions {
	/** The Python with pocketsphinx installed (default: resolvePython()). */
	pythonPath?: string;
	/** pocketsphinx_stream.py (default: resolveScript()). */
	scriptPath?: string;
	/** Address-space limit of each Python process (prlimit --as); 0 = none. */
	memoryLimitBytes: number;
	/** How long a process may take to load the model and say `ready`. */
	readyTimeoutMs?: number;
	/** A process that dies is replaced (the stream goes on) up to this many times within restartWindowMs. */
	maxRestarts: number;
	restartWindowMs: number;
	/** After end(), how long the last utterance may take before the process is killed. */
	finishTimeoutMs?: number;
	options?: PocketsphinxOptions;
}

const SCRIPT = "pocketsphinx_stream.py";
const HERE = path.dirname(fileURLToPath(import.meta.url));

/**
 * The Python to run pocketsphinx with: $CONSENTRY_STT_PYTHON, else the project's `.venv-stt` (what
 * scripts/setup.sh installs it into, next to recorder/ whether this runs from the sources or from dist/), else
 * `python3` on PATH.
 */
export function resolvePython(): string {
	const env = process.env.CONSENTRY_STT_PYTHON;
	if (env) return env;
	for (const root of [path.resolve(HERE, "../.."), path.resolve(HERE, "../../..")]) {
		const venv = path.join(root, ".venv-stt", "bin", "python3");
		if (existsSync(venv)) return venv;
	}
	return "python3";
}

/** pocketsphinx_stream.py: beside this module, or in the sources when this runs from dist/ (tsc copies no .py). */
export function resolveScript(): string {
	const candidates = [path.join(HERE, SCRIPT), path.resolve(HERE, "../../../recorder/transcription", SCRIPT)];
	return candidates.find((c) => existsSync(c)) ?? (candidates[0] as string);
}

/**
 * The embedded engine: pocketsphinx 5.1.1 (bundled US English model) in a Python child process per stream,
 * PCM on its stdin, JSON lines on its stdout (recorder/transcription/pocketsphinx_stream.py). Utterances are cut
 * by pocketsphinx's Endpointer (VAD); partials come while someone speaks, a final per utterance.
 */
export class PocketsphinxEngine implements TranscriptionEngine {
	readonly name = "pocketsphinx";
	readonly #opts: PocketsphinxEngineOptions;

	constructor(options: PocketsphinxEngineOptions) {
		this.#opts = options;
	}

	async open(options: TranscriptionStreamOptions): Promise<TranscriptionStream> {
		const python = findExecutable(this.#opts.pythonPath ?? resolvePython());
		if (!python) {
			throw new RecorderError(
				"engine_unavailable",
				`pocketsphinx: no Python at ${this.#opts.pythonPath ?? resolvePython()} (run scripts/setup.sh)`,
			);
		}
		const script = this.#opts.scriptPath ?? resolveScript();
		if (!existsSync(script)) throw new RecorderError("engine_unavailable", `pocketsphinx: ${script} is missing`);
		const stream = new PocketsphinxStream({ ...this.#opts, pythonPath: python, scriptPath: script }, options.log);
		await stream.start();
		return stream;
	}
}

interface Incoming {
	type: "ready" | "partial" | "final" | "end" | "error";
	text?: string;
	startMs?: number;
	endMs?: number;
	words?: TranscriptWord[];
	message?: string;
}

interface Proc {
	child: ChildProcessByStdio<Writable, Readable, Readable>;
	/** Stream time (ms) at which this process's audio starts: earlier processes' audio. */
	offsetMs: number;
	ready: Promise<void>;
	exited: Promise<void>;
	exit?: { code: number | null; signal: NodeJS.Signals | null };
	ended: boolean;
	stderr: string;
}

class PocketsphinxStream extends EventEmitter<TranscriptionStreamEvents> implements TranscriptionStream {
	readonly engine = "pocketsphinx";
	readonly #opts: PocketsphinxEngineOptions & { pythonPath: string; scriptPath: string };
	readonly #log: Logger;
	#proc: Proc | undefined;
	#bytes = 0;
	#state: "open" | "ending" | "done" | "failed" = "open";
	#restarts: number[] = [];
	#ending: Promise<void> | undefined;
	/** An odd byte left over from a write (PCM samples are 2 bytes). */
	#carry: Buffer | undefined;
	/** The first process said `ready` (a process dying before that fails open(), it is not replaced). */
	#started = false;

	constructor(opts: PocketsphinxEngineOptions & { pythonPath: string; scriptPath: string }, log: Logger) {
		super();
		this.#opts = opts;
		this.#log = log.child({ engine: "pocketsphinx" });
	}

	get audioMs(): number {
		return Math.floor(this.#bytes / PCM_BYTES_PER_MS);
	}

	get pids(): number[] {
		const p = this.#proc;
		return p?.child.pid && !p.exit ? [p.child.pid] : [];
	}

	/** Starts the first process and waits until its model is loaded. */
	async start(): Promise<void> {
		const proc = this.#spawn(0);
		try {
			await proc.ready;
			this.#started = true;
		} catch (err) {
			proc.child.kill("SIGKILL");
			throw err;
		}
	}

	write(pcm: Buffer): boolean {
		if (this.#state !== "open" || pcm.length === 0) return true;
		let data = this.#carry ? Buffer.concat([this.#carry, pcm]) : pcm;
		this.#carry = undefined;
		if (data.length % 2) {
			this.#carry = data.subarray(data.length - 1);
			data = data.subarray(0, data.length - 1);
		}
		this.#bytes += data.length;
		const proc = this.#proc;
		if (!proc || proc.exit || proc.child.stdin.destroyed) return true; // being replaced: this audio is lost
		return proc.child.stdin.write(data);
	}

	end(): Promise<void> {
		this.#ending ??= (async () => {
			if (this.#state !== "open") return;
			this.#state = "ending";
			const proc = this.#proc;
			if (!proc) return;
			proc.child.stdin.end();
			const timer = setTimeout(() => {
				this.#log.warn("pocketsphinx did not finish in time; killing it");
				proc.child.kill("SIGKILL");
			}, this.#opts.finishTimeoutMs ?? 30_000);
			await proc.exited;
			clearTimeout(timer);
			if (this.#state === "ending") this.#state = "done";
		})();
		return this.#ending;
	}

	destroy(): void {
		if (this.#state === "open" || this.#state === "ending") this.#state = "done";
		this.#proc?.child.kill("SIGKILL");
	}

	#spawn(offsetMs: number): Proc {
		const argv = [
			...guardPrefix(this.#opts.memoryLimitBytes),
			this.#opts.pythonPath,
			// -B: no .pyc written; -I: isolated from PYTHON* variables and the user's site-packages.
			"-B",
			"-I",
			this.#opts.scriptPath,
			JSON.stringify(this.#opts.options ?? {}),
		];
		const child = spawn(argv[0] as string, argv.slice(1), {
			stdio: ["pipe", "pipe", "pipe"],
			detached: true,
			env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8" },
		});
		let markReady: () => void = () => undefined;
		let failReady: (err: Error) => void = () => undefined;
		const ready = new Promise<void>((resolve, reject) => {
			markReady = resolve;
			failReady = reject;
		});
		ready.catch(() => undefined);
		const proc: Proc = { child, offsetMs, ready, exited: Promise.resolve(), ended: false, stderr: "" };
		const readyTimer = setTimeout(() => {
			failReady(
				new RecorderError(
					"engine_unavailable",
					`pocketsphinx did not load within ${this.#opts.readyTimeoutMs ?? 30_000} ms`,
				),
			);
			child.kill("SIGKILL");
		}, this.#opts.readyTimeoutMs ?? 30_000);
		child.stdin.on("error", () => undefined); // it died: its exit says why
		child.stdin.on("drain", () => this.emit("drain"));
		child.stderr.setEncoding("utf8");
		child.stderr.on("data", (d: string) => {
			proc.stderr = (proc.stderr + d).slice(-4000);
		});
		createInterface({ input: child.stdout }).on("line", (line) => {
			let msg: Incoming;
			try {
				msg = JSON.parse(line) as Incoming;
			} catch {
				this.#log.warn({ line: line.slice(0, 200) }, "pocketsphinx wrote a line that is not JSON");
				return;
			}
			this.#onMessage(proc, msg, markReady);
		});
		proc.exited = new Promise<void>((resolve) => {
			child.once("error", (err) => {
				clearTimeout(readyTimer);
				failReady(new RecorderError("engine_unavailable", `could not start pocketsphinx: ${err.message}`));
				proc.exit = { code: null, signal: null };
				resolve();
			});
			child.once("close", (code, signal) => {
				clearTimeout(readyTimer);
				proc.exit = { code, signal };
				const why = `${signal ?? `code ${code}`}${proc.stderr ? `: ${proc.stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 400)}` : ""}`;
				failReady(new RecorderError("engine_unavailable", `pocketsphinx exited while loading (${why})`));
				resolve();
				this.#onExit(proc, why);
			});
		});
		this.#proc = proc;
		this.#log.debug({ pid: child.pid, offsetMs }, "pocketsphinx started");
		return proc;
	}

	#onMessage(proc: Proc, msg: Incoming, markReady: () => void): void {
		switch (msg.type) {
			case "ready":
				markReady();
				return;
			case "partial":
			case "final": {
				if (this.#state === "done" || this.#state === "failed" || typeof msg.text !== "string") return;
				const at = (ms: number | undefined) => Math.max(0, Math.round((ms ?? 0) + proc.offsetMs));
				const segment: TranscriptSegment = {
					final: msg.type === "final",
					text: msg.text,
					startMs: at(msg.startMs),
					endMs: at(msg.endMs),
				};
				if (msg.type === "final" && Array.isArray(msg.words)) {
					segment.words = msg.words.map((w) => ({ word: w.word, startMs: at(w.startMs), endMs: at(w.endMs) }));
					const first = segment.words[0];
					if (first && first.startMs < segment.startMs) segment.startMs = first.startMs;
				}
				this.emit("segment", segment);
				return;
			}
			case "end":
				proc.ended = true;
				return;
			case "error":
				this.#log.error({ message: msg.message }, "pocketsphinx reported an error");
				proc.stderr = `${proc.stderr}\n${msg.message ?? ""}`.slice(-4000);
				return;
		}
	}

	#onExit(proc: Proc, why: string): void {
		if (proc !== this.#proc || !this.#started) return;
		if (this.#state === "done" || this.#state === "failed") return;
		if (this.#state === "ending" && proc.ended && proc.exit?.code === 0) return;
		this.#log.warn({ pid: proc.child.pid, why }, "pocketsphinx died");
		if (this.#state === "ending") {
			this.#fail({ code: "engine_failed", message: `pocketsphinx died while finishing (${why})` });
			return;
		}
		const now = Date.now();
		this.#restarts = this.#restarts.filter((t) => now - t < this.#opts.restartWindowMs);
		this.#restarts.push(now);
		if (this.#restarts.length > this.#opts.maxRestarts) {
			this.#fail({
				code: "engine_failed",
				message: `pocketsphinx died ${this.#restarts.length} times within ${Math.round(this.#opts.restartWindowMs / 1000)} s; last: ${why}`,
			});
			return;
		}
		// The stream goes on in a new process; its times continue from the audio written so far.
		const next = this.#spawn(this.audioMs);
		next.ready.catch((err: unknown) => this.#fail({ code: "engine_failed", message: (err as Error).message }));
	}

	#fail(failure: TranscriptionFailure): void {
		if (this.#state === "done" || this.#state === "failed") return;
		this.#state = "failed";
		this.#proc?.child.kill("SIGKILL");
		this.#log.error(failure, "transcription engine failed");
		this.emit("failed", failure);
	}
}

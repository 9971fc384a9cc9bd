import { type ChildProcessByStdio, spawn } from "node:child_process";
import dgram from "node:dgram";
import { EventEmitter } from "node:events";
import { readFile } from "node:fs/promises";
import type { Readable, Writable } from "node:stream";
import type { Logger } from "../contracts/logger.js";
import type { Codec } from "../contracts/RecorderProtocol.js";
import { FfmpegError } from "./errors.js";
import { childGuards, findExecutable, guardPrefix } from "./executables.js";
import type { FfmpegExit, FfmpegProcessEvents, FfmpegProcessOptions } from "./FfmpegProcessTypes.js";

/**
 * One ffmpeg that turns one RTP stream into WebM on its stdout, without
 * transcoding and without touching the disk: the SDP comes in on stdin, RTP on
 * a UDP port pair (ffmpeg 5.1 binds the SDP's port and port+1 on every
 * address; the SDP's source filter makes it drop packets from anywhere but
 * 127.0.0.1), WebM goes out on stdout. Its input ends when no RTP came for
 * idleTimeoutMs (`-listen_timeout`): that is how a segment ends cleanly.
 *
 * Guards: spawned through `setpriv --pdeathsig KILL` (it dies with the
 * recorder, even on SIGKILL) and `prlimit --as=<bytes>` (a bounded address
 * space) when those util-linux tools exist.
 */
export class FfmpegProcess extends EventEmitter<FfmpegProcessEvents> {
	readonly rtpPort: number;
	readonly rtcpPort: number;
	readonly #child: ChildProcessByStdio<Writable, Readable, Readable>;
	readonly #log: Logger;
	#stderr = "";
	#requested = false;
	readonly #idleTimeoutMs: number;
	#exit: FfmpegExit | undefined;
	readonly #exited: Promise<FfmpegExit>;

	private constructor(
		child: ChildProcessByStdio<Writable, Readable, Readable>,
		ports: UdpPair,
		idleTimeoutMs: number,
		log: Logger,
	) {
		super();
		this.#child = child;
		this.#idleTimeoutMs = idleTimeoutMs;
		this.rtpPort = ports.rtpPort;
		this.rtcpPort = ports.rtcpPort;
		this.#log = log;
		child.stderr.setEncoding("utf8");
		child.stderr.on("data", (d: string) => {
			this.#stderr = (this.#stderr + d).slice(-4000);
		});
		this.#exited = new Promise((resolve) => {
			child.once("close", (code, signal) => {
				this.#exit = { code, signal, stderr: this.#stderr.trim(), requested: this.#requested };
				if (code !== 0 && !this.#requested) {
					this.#log.debug({ pid: child.pid, code, signal, stderr: this.#exit.stderr }, "ffmpeg exited");
				}
				resolve(this.#exit);
				this.emit("exit", this.#exit);
			});
		});
	}

	/**
	 * Starts an ffmpeg reading the SDP for a free port pair, and resolves once it listens. Starts go through a
	 * small queue: spawning and waiting for the port bind is the costly part, and dozens of tracks starting at
	 * once (a meeting's recording turned on) would otherwise starve the relay of the tracks already recording.
	 */
	static async start(options: FfmpegProcessOptions): Promise<FfmpegProcess> {
		return startQueue.run(() => FfmpegProcess.#start(options));
	}

	static async #start(options: FfmpegProcessOptions): Promise<FfmpegProcess> {
		const ffmpeg = findExecutable(options.ffmpegPath);
		if (!ffmpeg) throw new FfmpegError("ffmpeg_unavailable", `ffmpeg not found (${options.ffmpegPath})`);
		const ports = await freeUdpPair();
		const argv = [
			...guardPrefix(options.memoryLimitBytes),
			ffmpeg,
			...ffmpegArgs(options.idleTimeoutMs, options.outputArgs),
		];
		// Its own process group: a Ctrl-C in the gateway's terminal must not cut a recording mid-cluster.
		const child = spawn(argv[0] as string, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], detached: true });
		try {
			await new Promise<void>((resolve, reject) => {
				child.once("spawn", resolve);
				child.once("error", reject);
			});
		} catch (err) {
			throw new FfmpegError("ffmpeg_unavailable", `could not start ffmpeg: ${(err as Error).message}`, { cause: err });
		}
		const proc = new FfmpegProcess(child, ports, options.idleTimeoutMs, options.log.child({ ffmpegPid: child.pid }));
		child.stdin.on("error", () => undefined); // ffmpeg died before reading the SDP: its exit says why
		child.stdin.end(buildSdp(options.codec, options.ssrc, ports));
		// RTP sent before ffmpeg has bound its port would be lost: wait until it has.
		const deadline = Date.now() + BIND_DEADLINE_MS;
		let wait = 5;
		while (!proc.exited && !(await udpPortBound(ports.rtpPort))) {
			if (Date.now() > deadline) {
				proc.kill();
				throw new FfmpegError("ffmpeg_failed", `ffmpeg did not open its RTP port within ${BIND_DEADLINE_MS / 1000} s`);
			}
			await new Promise((r) => setTimeout(r, wait));
			wait = Math.min(50, wait * 2); // ffmpeg binds in ~20–60 ms idle; don't re-read /proc/net/udp every 10 ms
		}
		return proc;
	}

	get pid(): number | undefined {
		return this.#child.pid;
	}

	get stdout(): Readable {
		return this.#child.stdout;
	}

	get exited(): boolean {
		return this.#exit !== undefined;
	}

	/** Resolves when ffmpeg has exited and its output is closed. */
	waitExit(): Promise<FfmpegExit> {
		return this.#exited;
	}

	/**
	 * Graceful end: once no RTP reaches it for idleTimeoutMs, ffmpeg takes that
	 * as the end of its input, writes the last cluster and exits 0. This waits
	 * for that (the caller stopped relaying) and kills it after `graceMs` more.
	 *
	 * Not SIGINT: with RTP input ffmpeg 5.1 acts on SIGINT only after it reads
	 * another packet, and a second SIGINT also interrupts its output writes, so
	 * the last cluster is lost (measured: 1 s of 4).
	 */
	async finish(graceMs: number): Promise<FfmpegExit> {
		if (this.#exit) return this.#exit;
		this.#requested = true;
		const timer = setTimeout(() => {
			this.#log.warn({ graceMs }, "ffmpeg did not end after its input stopped; killing it");
			this.#child.kill("SIGKILL");
		}, this.#idleTimeoutMs + graceMs);
		try {
			return await this.#exited;
		} finally {
			clearTimeout(timer);
		}
	}

	kill(): void {
		if (this.#exit) return;
		this.#requested = true;
		this.#child.kill("SIGKILL");
	}
}

export interface UdpPair {
	rtpPort: number;
	rtcpPort: number;
}

/** A port P with P and P+1 free for UDP on every address a moment ago (ffmpeg binds both there). */
export async function freeUdpPair(): Promise<UdpPair> {
	for (let attempt = 0; attempt < 50; attempt++) {
		const a = dgram.createSocket("udp4");
		const b = dgram.createSocket("udp4");
		try {
			const port = await bind(a, 0);
			if (port >= 65535) continue;
			await bind(b, port + 1);
			return { rtpPort: port, rtcpPort: port + 1 };
		} catch {
			// taken: try another
		} finally {
			a.close();
			try {
				b.close();
			} catch {
				// not bound
			}
		}
	}
	throw new FfmpegError("ffmpeg_failed", "no free UDP port pair for ffmpeg");
}

/** How long a starting ffmpeg may take to bind its RTP port (a loaded machine can take seconds). */
const BIND_DEADLINE_MS = 15_000;

/** Runs at most `limit` tasks at once, the others in arrival order. */
class StartQueue {
	readonly #limit: number;
	#running = 0;
	readonly #waiting: (() => void)[] = [];

	constructor(limit: number) {
		this.#limit = limit;
	}

	async run<T>(task: () => Promise<T>): Promise<T> {
		if (this.#running >= this.#limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
		this.#running++;
		try {
			return await task();
		} finally {
			this.#running--;
			this.#waiting.shift()?.();
		}
	}
}

const startQueue = new StartQueue(4);

/** True when something has UDP port `port` bound (any address), per /proc/net/udp. */
async function udpPortBound(port: number): Promise<boolean> {
	const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")} `;
	try {
		const table = await readFile("/proc/net/udp", "utf8");
		return table.split("\n").some((line) => line.trim().split(/\s+/)[1]?.endsWith(hex.trim()));
	} catch {
		await new Promise((r) => setTimeout(r, 200)); // no procfs: give it a moment
		return true;
	}
}

function bind(socket: dgram.Socket, port: number): Promise<number> {
	return new Promise((resolve, reject) => {
		socket.once("error", reject);
		socket.bind(port, "0.0.0.0", () => {
			socket.off("error", reject);
			resolve(socket.address().port);
		});
	});
}

/** Which guards are in force here (for the log at start). */
export function ffmpegGuards(memoryLimitBytes: number): { pdeathsig: boolean; memoryLimit: boolean } {
	return childGuards(memoryLimitBytes);
}

/** What a recording ffmpeg writes: the RTP remuxed (no transcoding) into WebM on stdout. */
export const WEBM_OUTPUT_ARGS: readonly string[] = [
	"-map",
	"0",
	"-c",
	"copy",
	"-f",
	"webm",
	// A cluster (and so output) at least every second: the watchdog sees progress, less sits in ffmpeg.
	"-cluster_time_limit",
	"1000",
	"pipe:1",
];

export function ffmpegArgs(idleTimeoutMs: number, outputArgs: readonly string[] = WEBM_OUTPUT_ARGS): string[] {
	return [
		"-hide_banner",
		"-nostats",
		"-loglevel",
		"error",
		// No RTP for this long = end of input: ffmpeg finishes the WebM and exits 0.
		"-listen_timeout",
		(idleTimeoutMs / 1000).toFixed(3),
		"-protocol_whitelist",
		"pipe,udp,rtp",
		"-f",
		"sdp",
		"-i",
		"pipe:0",
		...outputArgs,
	];
}

/** The SDP ffmpeg reads: one media section, RTP on rtpPort, RTCP on rtcpPort, only from 127.0.0.1. */
export function buildSdp(codec: Codec, ssrc: number, ports: UdpPair): string {
	const pt = codec.payloadType;
	const rtpmap =
		codec.mimeType === "audio/opus" ? `opus/48000/${codec.channels ?? 2}` : `VP8/${codec.clockRate || 90000}`;
	return [
		"v=0",
		"o=- 0 0 IN IP4 127.0.0.1",
		"s=consentry-recorder",
		"c=IN IP4 127.0.0.1",
		"t=0 0",
		`m=${codec.kind} ${ports.rtpPort} RTP/AVP ${pt}`,
		`a=rtpmap:${pt} ${rtpmap}`,
		`a=rtcp:${ports.rtcpPort}`,
		"a=source-filter: incl IN IP4 127.0.0.1 127.0.0.1",
		`a=ssrc:${ssrc} cname:consentry`,
		"a=recvonly",
		"",
	].join("\r\n");
}

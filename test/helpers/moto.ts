import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "./ports.js";

/** moto_server from PATH, or the venv scripts/setup.sh makes when PATH has none. */
export function motoServerCommand(): string {
	if (spawnSync("sh", ["-c", "command -v moto_server"]).status === 0) return "moto_server";
	const cache =
		process.env.CONSENTRY_CACHE_DIR ??
		path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "consentry");
	const venv = path.join(cache, "venv", "bin", "moto_server");
	if (existsSync(venv)) return venv;
	throw new Error("moto_server not found: run scripts/setup.sh");
}

export interface S3Server {
	endpoint: string;
	port: number;
	/** moto_server's process id (benchmarks read its CPU time). */
	pid: number;
	stop(): Promise<void>;
	/** Stops answering (SIGSTOP) to simulate an outage; `resume()` brings it back. */
	pause(): void;
	resume(): void;
}

/**
 * Starts a local S3 API server (moto_server) on a free loopback port and waits
 * until it answers. Its state lives in memory and dies with it.
 */
export async function startS3(): Promise<S3Server> {
	const port = await freePort();
	// moto logs a line per request on stderr. It goes to a file, not a pipe: a pipe fills while this process is
	// blocked (a test's spawnSync of the verifier against this very server), and then moto stops answering.
	const logDir = mkdtempSync(path.join(os.tmpdir(), "consentry-moto-"));
	const logFile = path.join(logDir, "stderr.log");
	const logFd = openSync(logFile, "a");
	const child: ChildProcess = spawn(motoServerCommand(), ["-H", "127.0.0.1", "-p", String(port)], {
		stdio: ["ignore", "ignore", logFd],
	});
	closeSync(logFd);
	const stderrTail = () => {
		try {
			return readFileSync(logFile, "utf8").slice(-4000);
		} catch {
			return "";
		}
	};
	child.once("exit", () => setTimeout(() => rmSync(logDir, { recursive: true, force: true }), 1000).unref());
	const exited = new Promise<never>((_, reject) =>
		child.once("exit", (code) => reject(new Error(`moto_server exited (${code}): ${stderrTail()}`))),
	);
	exited.catch(() => undefined);
	const endpoint = `http://127.0.0.1:${port}`;
	const deadline = Date.now() + 20_000;
	for (;;) {
		try {
			const res = await Promise.race([fetch(`${endpoint}/moto-api/`), exited]);
			if (res.ok || res.status < 500) break;
		} catch (err) {
			if (child.exitCode !== null) throw err;
			if (Date.now() > deadline) {
				child.kill("SIGKILL");
				throw new Error(`moto_server did not start on ${endpoint}: ${stderrTail()}`);
			}
			await new Promise((r) => setTimeout(r, 100));
		}
	}
	return {
		endpoint,
		pid: child.pid as number,
		port,
		pause: () => child.kill("SIGSTOP"),
		resume: () => child.kill("SIGCONT"),
		stop: async () => {
			if (child.exitCode !== null) return;
			child.kill("SIGCONT");
			child.kill("SIGTERM");
			await new Promise((r) => child.once("exit", r));
		},
	};
}

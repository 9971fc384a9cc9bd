import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort } from "./ports.js";

/** Where Debian's `postgresql` package puts the server binaries (newest version installed). */
export function postgresBinDir(): string | undefined {
	const root = "/usr/lib/postgresql";
	if (!existsSync(root)) return undefined;
	const versions = readdirSync(root)
		.filter((v) => existsSync(path.join(root, v, "bin", "initdb")))
		.sort((a, b) => Number(b) - Number(a));
	return versions[0] ? path.join(root, versions[0], "bin") : undefined;
}

export interface PostgresServer {
	/** `postgres://…` of a fresh database on it. */
	url: string;
	port: number;
	/** The server's process (its backends, one per connection, are its children). */
	pid: number;
	/** A new empty database (for a test that wants its own). */
	createDatabase(name: string): Promise<string>;
	/** Stops answering (SIGSTOP, server and backends) to simulate an outage; `resume()` brings it back. */
	pause(): void;
	resume(): void;
	stop(): Promise<void>;
}

/**
 * Starts a throwaway PostgreSQL (Debian's package, scripts/setup.sh installs it): `initdb` in a temporary
 * folder, loopback only, a free port, no fsync unless `durable` (its data dies with it). As root the server runs as the
 * unprivileged `postgres` user (it refuses to run as root).
 */
/** The `postgres` system user (Debian's package creates it), else `nobody`: PostgreSQL refuses to run as root. */
function unprivileged(): { uid: number; gid: number } {
	for (const name of ["postgres", "nobody"]) {
		const uid = spawnSync("id", ["-u", name], { encoding: "utf8" });
		const gid = spawnSync("id", ["-g", name], { encoding: "utf8" });
		if (uid.status === 0 && gid.status === 0) return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
	}
	throw new Error("no unprivileged user to run PostgreSQL as");
}

export async function startPostgres(opts: { durable?: boolean } = {}): Promise<PostgresServer> {
	const bin = postgresBinDir();
	if (!bin) throw new Error("PostgreSQL not found under /usr/lib/postgresql: run scripts/setup.sh");
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-pg-"));
	chmodSync(dir, 0o777);
	const data = path.join(dir, "data");
	const asRoot = process.getuid?.() === 0;
	const user = asRoot ? unprivileged() : {};
	const init = spawnSync(
		path.join(bin, "initdb"),
		["-D", data, "-U", "consentry", "-A", "trust", "-E", "UTF8", "--no-sync"],
		{ encoding: "utf8", ...user },
	);
	if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
	const port = await freePort();
	const child: ChildProcess = spawn(
		path.join(bin, "postgres"),
		[
			["-D", data, "-p", String(port), "-h", "127.0.0.1", "-k", dir],
			// Tests: no fsync (the data dies with it). Benchmarks ask for a durable one, as a real deployment runs.
			opts.durable
				? ["-c", "max_connections=300"]
				: [
						"-c",
						"fsync=off",
						"-c",
						"synchronous_commit=off",
						"-c",
						"full_page_writes=off",
						"-c",
						"max_connections=300",
					],
		].flat(),
		{ stdio: ["ignore", "ignore", "pipe"], ...user },
	);
	let stderr = "";
	child.stderr?.on("data", (d: Buffer) => {
		stderr = (stderr + d.toString()).slice(-4000);
	});
	const base = `postgres://consentry@127.0.0.1:${port}`;
	const deadline = Date.now() + 20_000;
	for (;;) {
		const c = new pg.Client({ connectionString: `${base}/postgres` });
		try {
			await c.connect();
			await c.end();
			break;
		} catch {
			await c.end().catch(() => undefined);
			if (child.exitCode !== null || Date.now() > deadline) {
				child.kill("SIGKILL");
				rmSync(dir, { recursive: true, force: true });
				throw new Error(`PostgreSQL did not start on port ${port}: ${stderr}`);
			}
			await new Promise((r) => setTimeout(r, 100));
		}
	}
	let n = 0;
	const createDatabase = async (name: string) => {
		const c = new pg.Client({ connectionString: `${base}/postgres` });
		await c.connect();
		try {
			await c.query(`CREATE DATABASE "${name.replace(/"/g, "")}"`);
		} finally {
			await c.end();
		}
		return `${base}/${name}`;
	};
	const url = await createDatabase(`t${n++}`);
	return {
		url,
		port,
		pid: child.pid as number,
		createDatabase,
		// The server and its backends (one process per connection), found by parent PID: the whole engine hangs.
		pause: () => {
			child.kill("SIGSTOP");
			spawnSync("pkill", ["-STOP", "-P", String(child.pid)]);
		},
		resume: () => {
			spawnSync("pkill", ["-CONT", "-P", String(child.pid)]);
			child.kill("SIGCONT");
		},
		async stop() {
			if (child.exitCode === null) {
				child.kill("SIGCONT");
				const gone = new Promise((r) => child.once("exit", r));
				child.kill("SIGINT"); // fast shutdown
				await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
				if (child.exitCode === null) child.kill("SIGKILL");
			}
			rmSync(dir, { recursive: true, force: true });
		},
	};
}

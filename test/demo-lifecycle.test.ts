import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";

/**
 * `npm run demo` started, stopped and started again the way a person does it in a terminal (no browser: the demo
 * with a recording is test/demo.browser.test.ts). A terminal's Ctrl-C is a SIGINT to every process of its foreground
 * group: the demo must be the only one of its processes there, stop the gateway itself (which finishes what it
 * records, then closes its media workers) and leave nothing running. A demo killed outright leaves its gateway and
 * S3 server behind: the next start in the same folder stops them instead of talking to them. A port held by another
 * program is named before anything starts.
 */
const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-demo-life-"));
const started: ChildProcess[] = [];
const leftovers: number[] = [];

interface Demo {
	child: ChildProcess;
	out: () => string;
	exited: Promise<number | null>;
}

function startDemo(httpPort: number, s3Port: number, command = [process.execPath, "scripts/demo.mjs"]): Demo {
	// Its own process group, as a command started in a terminal is: the group a Ctrl-C goes to.
	const child = spawn(command[0] as string, command.slice(1), {
		env: {
			...process.env,
			CONSENTRY_DEMO_DIR: dir,
			CONSENTRY_HTTP_PORT: String(httpPort),
			CONSENTRY_DEMO_S3_PORT: String(s3Port),
			CONSENTRY_WORKERS: "1",
		},
		stdio: ["ignore", "pipe", "pipe"],
		detached: true,
	});
	started.push(child);
	let out = "";
	child.stdout?.on("data", (d: Buffer) => {
		out += d.toString();
	});
	child.stderr?.on("data", (d: Buffer) => {
		out += d.toString();
	});
	const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
	return { child, out: () => out, exited };
}

async function ready(demo: Demo): Promise<{ demo: number; gateway: number; s3: number }> {
	await waitFor(
		() => {
			if (demo.child.exitCode !== null) throw new Error(`the demo exited (${demo.child.exitCode}): ${demo.out()}`);
			return demo.out().includes("Ctrl-C stops everything");
		},
		120_000,
		"the demo's links",
	);
	const pids = JSON.parse(readFileSync(path.join(dir, "demo.pids"), "utf8"));
	leftovers.push(pids.demo, pids.gateway, pids.s3); // whatever a failing step leaves, afterAll ends
	return pids;
}

/** Whether the process still runs: an exited one waiting to be reaped by its new parent (a zombie) does not. */
const alive = (pid: number) => {
	try {
		process.kill(pid, 0);
	} catch {
		return false;
	}
	try {
		// /proc/PID/stat: "pid (comm) state …"; the state follows the last ")".
		const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
		return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
	} catch {
		return false;
	}
};
const ofThisFolder = (pid: number) => {
	try {
		return readlinkSync(`/proc/${pid}/cwd`) === process.cwd();
	} catch {
		return false;
	}
};
/** A process's group (the 5th field of /proc/PID/stat, after the command's closing parenthesis). */
const groupOf = (pid: number) =>
	Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[2] ?? Number.NaN);
const childrenOf = (pid: number) =>
	readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
const portFree = (port: number) =>
	new Promise<boolean>((resolve) => {
		const srv = net.createServer();
		srv.once("error", () => resolve(false));
		srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
	});

afterAll(async () => {
	for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
	// Only a process still of this folder: never one that got a recorded id after ours ended.
	for (const pid of leftovers) if (alive(pid) && ofThisFolder(pid)) process.kill(pid, "SIGKILL");
	rmSync(dir, { recursive: true, force: true });
});

describe("the demo in a terminal", () => {
	it("Ctrl-C or SIGTERM stops it all; a killed demo's leftovers are stopped by the next start; a busy port is named", {
		timeout: 240_000,
	}, async () => {
		const [httpPort, s3Port] = [await freePort(), await freePort()];

		// 1. Ctrl-C: only the demo is in the terminal's group; the gateway and its workers and the S3 server stop.
		const first = startDemo(httpPort, s3Port);
		const pids = await ready(first);
		expect(pids.demo).toBe(first.child.pid);
		// The README's curl example with the demo host's token: another meeting of the same host (no guests).
		const meetingOf = (out: string) => /meeting "(.*)" \(([a-z0-9-]+)\)/.exec(out)?.slice(1, 3);
		const hostToken = /host \(.*\):\n\s+\S+#token=(\S+)/.exec(first.out())?.[1];
		const weekly = await fetch(`http://127.0.0.1:${httpPort}/api/meetings`, {
			method: "POST",
			headers: { authorization: `Bearer ${hostToken}`, "content-type": "application/json" },
			body: JSON.stringify({ title: "Weekly", settings: { lobby: true } }),
		});
		expect(weekly.status).toBe(201);
		const demoMeeting = meetingOf(first.out());
		expect(demoMeeting?.[0]).toBe("Demo meeting");
		const group = groupOf(pids.demo);
		const workers = childrenOf(pids.gateway);
		expect(workers.length).toBeGreaterThanOrEqual(2); // a media worker and the recorder
		for (const pid of [pids.gateway, pids.s3, ...workers]) expect(groupOf(pid), `pid ${pid}`).not.toBe(group);
		process.kill(-group, "SIGINT");
		expect(await first.exited, first.out()).toBe(0);
		await waitFor(() => ![pids.gateway, pids.s3, ...workers].some(alive), 15_000, "every process of the demo gone");
		expect(first.out()).not.toMatch(/worker died/);
		// Nothing alarming a newcomer cannot act on (the AWS SDK's Node 22 notice, once per process).
		expect(first.out()).not.toContain("NodeVersionSupportWarning");
		expect(await portFree(httpPort)).toBe(true);
		expect(await portFree(s3Port)).toBe(true);
		expect(existsSync(path.join(dir, "demo.pids"))).toBe(false);

		// 2. A demo killed outright (kill -9) leaves its gateway and S3 server running, holding the ports.
		const second = startDemo(httpPort, s3Port);
		const left = await ready(second);
		// It offers the same demo meeting again, never the host's other one.
		expect(meetingOf(second.out())).toEqual(demoMeeting);
		second.child.kill("SIGKILL");
		await second.exited;
		expect(alive(left.gateway) && alive(left.s3)).toBe(true);

		// The next start in the same folder stops them first (the gateway, then the S3 server), then comes up.
		const third = startDemo(httpPort, s3Port);
		const now = await ready(third);
		expect(third.out()).toContain(`stopping the gateway an earlier demo left running (pid ${left.gateway})`);
		expect(third.out()).toContain(`stopping the demo S3 server an earlier demo left running (pid ${left.s3})`);
		expect(alive(left.gateway) || alive(left.s3)).toBe(false);
		expect(now.gateway).not.toBe(left.gateway);
		expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).ok).toBe(true);

		// A second demo in the same folder while one runs is refused, and leaves the running one alone.
		const twice = startDemo(await freePort(), await freePort());
		expect(await twice.exited).toBe(1);
		expect(twice.out()).toContain(`a demo is already running in this folder (pid ${now.demo})`);
		expect(alive(now.gateway) && alive(now.s3)).toBe(true);

		third.child.kill("SIGTERM");
		expect(await third.exited, third.out()).toBe(0);
		await waitFor(() => !alive(now.gateway) && !alive(now.s3), 15_000, "the third demo's processes gone");

		// 3. `npm run demo` stopped with SIGTERM to npm (a script runner, a service manager): npm passes it to the shell
		// that runs the script, which must be the demo by then (`exec`), or the demo and its servers go on without it.
		const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { scripts: Record<string, string> };
		const script = pkg.scripts.demo as string;
		expect(script).toContain("scripts/setup.sh && ");
		const viaShell = startDemo(httpPort, s3Port, ["sh", "-c", script.replace("scripts/setup.sh", "true")]);
		const shelled = await ready(viaShell);
		expect(shelled.demo).toBe(viaShell.child.pid);
		viaShell.child.kill("SIGTERM");
		expect(await viaShell.exited, viaShell.out()).toBe(0);
		await waitFor(
			() => !alive(shelled.gateway) && !alive(shelled.s3),
			15_000,
			"the shell-started demo's processes gone",
		);

		// 4. A port another program holds is named before anything starts.
		const holder = net.createServer();
		await new Promise<void>((resolve) => holder.listen(httpPort, "127.0.0.1", resolve));
		try {
			const blocked = startDemo(httpPort, s3Port);
			expect(await blocked.exited).toBe(1);
			expect(blocked.out()).toContain(`port ${httpPort} on 127.0.0.1 is in use by another program`);
			expect(blocked.out()).toContain("CONSENTRY_HTTP_PORT");
			expect(await portFree(s3Port)).toBe(true); // no S3 server was started
		} finally {
			await new Promise((r) => holder.close(r));
		}
	});
});

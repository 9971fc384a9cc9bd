import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CROWD_ON_LOOPBACK } from "./helpers/gateway.js";
import { freePort } from "./helpers/ports.js";
import { connect, type RawClient } from "./helpers/signaling.js";
import { AUDIENCE, testTenant, writeTenantsFile } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * A gateway process stopped as an operator stops it — Ctrl-C (SIGINT) in its terminal, or SIGTERM from the demo,
 * systemd or `docker stop` — shuts down in its own order (Gateway.close: what is being recorded first, the media
 * workers last). mediasoup's workers close themselves on either signal unless the gateway takes that away: every
 * room then logged "media worker died" and told its people to reconnect before the gateway had begun its shutdown.
 */
const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-shutdown-"));
const open: RawClient[] = [];
const tenantFiles: string[] = [];
let child: ChildProcess | undefined;

afterAll(() => {
	for (const c of open) c.close();
	if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
	rmSync(dir, { recursive: true, force: true });
	for (const f of tenantFiles) rmSync(path.dirname(f), { recursive: true, force: true });
});

describe("stopping a gateway process", () => {
	for (const signal of ["SIGINT", "SIGTERM"] as const) {
		it(`${signal}: the rooms close in the gateway's order, not as a media worker's death`, {
			timeout: 60_000,
		}, async () => {
			const acme = testTenant("acme");
			const port = await freePort();
			const tenantsFile = writeTenantsFile([acme]);
			tenantFiles.push(tenantsFile);
			const url = `http://127.0.0.1:${port}`;
			const proc = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
				env: {
					...process.env,
					CONSENTRY_HTTP_HOST: "127.0.0.1",
					CONSENTRY_HTTP_PORT: String(port),
					CONSENTRY_WORKERS: "1",
					CONSENTRY_DB_FILE: path.join(dir, `${signal}.sqlite`),
					CONSENTRY_AUDIENCE: AUDIENCE,
					CONSENTRY_TENANTS_FILE: tenantsFile,
					CONSENTRY_RECORDER: "false",
					CONSENTRY_LOG_LEVEL: "info",
					...CROWD_ON_LOOPBACK,
				},
				stdio: ["ignore", "pipe", "pipe"],
			});
			child = proc;
			let log = "";
			proc.stdout?.on("data", (d: Buffer) => {
				log += d.toString();
			});
			proc.stderr?.on("data", (d: Buffer) => {
				log += d.toString();
			});
			const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
			await waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok, 45_000, "the gateway");

			// A host in a live meeting: a room on a media worker.
			const created = await fetch(`${url}/api/meetings`, {
				method: "POST",
				headers: { authorization: `Bearer ${acme.token("host")}`, "content-type": "application/json" },
				body: JSON.stringify({ title: "Stop", settings: { lobby: false } }),
			});
			const meetingId = ((await created.json()) as { id: string }).id;
			const host = await connect(url, acme.token("host"));
			open.push(host);
			await host.call("join", { meetingId, displayName: "Host" });
			const told: unknown[] = [];
			host.socket.on("reconnect", (payload: unknown) => told.push(payload));

			proc.kill(signal);
			expect(await exited, log.slice(-3000)).toBe(0);
			expect(log).toContain(`"signal":"${signal}","msg":"shutting down"`);
			expect(log).not.toContain("media worker died");
			expect(told).toEqual([]);
		});
	}
});

#!/usr/bin/env node
// Demo mode: a local S3 API server standing in for the customer's bucket, a demo
// tenant, and the gateway on http://127.0.0.1:8080 with a meeting ready to join.
// Ctrl-C stops everything. State lives in data/demo/ (delete it to start afresh).
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import jwt from "jsonwebtoken";

const httpPort = process.env.CONSENTRY_HTTP_PORT ?? "8080";
const s3Port = process.env.CONSENTRY_DEMO_S3_PORT ?? "4566";
const base = `http://127.0.0.1:${httpPort}`;
const dir = path.resolve("data/demo");
const cache =
	process.env.CONSENTRY_CACHE_DIR ??
	path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "consentry");
const moto =
	spawnSync("sh", ["-c", "command -v moto_server"]).status === 0
		? "moto_server"
		: path.join(cache, "venv/bin/moto_server");
if (!existsSync("dist/server/main.js")) {
	console.error("dist/server/main.js is missing: run scripts/setup.sh first");
	process.exit(1);
}

// A demo tenant with its own HS256 secret, kept across runs.
mkdirSync(dir, { recursive: true });
const tenantsFile = path.join(dir, "tenants.json");
if (!existsSync(tenantsFile)) {
	const secret = randomBytes(32).toString("base64url");
	writeFileSync(
		tenantsFile,
		JSON.stringify({ tenants: [{ id: "demo", name: "Demo customer", keys: [{ alg: "HS256", secret }] }] }),
		{
			mode: 0o600,
		},
	);
}
const secret = JSON.parse(readFileSync(tenantsFile, "utf8")).tenants[0].keys[0].secret;
const token = (sub, role, name) =>
	jwt.sign({ role, name }, secret, {
		algorithm: "HS256",
		issuer: "demo",
		audience: "consentry",
		subject: sub,
		expiresIn: "12h",
	});

const children = [];
const stopAll = (code) => {
	for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
	process.exitCode = code;
};
process.on("SIGINT", () => stopAll(0));
process.on("SIGTERM", () => stopAll(0));

const s3 = spawn(moto, ["-H", "127.0.0.1", "-p", s3Port], { stdio: ["ignore", "ignore", "ignore"] });
children.push(s3);
s3.on("exit", (code) => {
	if (code) console.error(`demo S3 server exited with ${code} (is port ${s3Port} free? set CONSENTRY_DEMO_S3_PORT)`);
	stopAll(code ?? 0);
});

const gateway = spawn(process.execPath, ["dist/server/main.js"], {
	stdio: "inherit",
	env: {
		...process.env,
		CONSENTRY_HTTP_HOST: "127.0.0.1",
		CONSENTRY_HTTP_PORT: httpPort,
		CONSENTRY_TENANTS_FILE: tenantsFile,
		CONSENTRY_DB_FILE: path.join(dir, "consentry.sqlite"),
		CONSENTRY_AUDIENCE: "consentry",
		CONSENTRY_LOG_LEVEL: process.env.CONSENTRY_LOG_LEVEL ?? "warn",
	},
});
children.push(gateway);
gateway.on("exit", (code) => stopAll(code ?? 0));

// Wait for the gateway, then make sure a demo meeting exists.
const hostToken = token("demo-host", "host", "Demo Host");
for (let i = 0; ; i++) {
	try {
		if ((await fetch(`${base}/healthz`)).ok) break;
	} catch {}
	if (i > 100 || gateway.exitCode !== null) {
		console.error("the gateway did not come up");
		stopAll(1);
		process.exit(1);
	}
	await new Promise((r) => setTimeout(r, 200));
}
const auth = { authorization: `Bearer ${hostToken}`, "content-type": "application/json" };
const existing = (await (await fetch(`${base}/api/meetings`, { headers: auth })).json()).meetings ?? [];
const meeting =
	existing[0] ??
	(await (
		await fetch(`${base}/api/meetings`, {
			method: "POST",
			headers: auth,
			body: JSON.stringify({ title: "Demo meeting", settings: { lobby: true, allowGuests: true } }),
		})
	).json());

console.log(`
  consentry demo — meeting "${meeting.title}" (${meeting.joinCode})

  host (starts the meeting, admits people from the lobby):
    ${base}/?m=${meeting.joinCode}#token=${hostToken}
  participant with a token:
    ${base}/?m=${meeting.joinCode}#token=${token("demo-participant", "participant", "Pat")}
  guest (no token, waits in the lobby):
    ${base}/?m=${meeting.joinCode}

  demo S3 API (stands in for the customer's bucket): http://127.0.0.1:${s3Port}
  Ctrl-C stops everything.
`);

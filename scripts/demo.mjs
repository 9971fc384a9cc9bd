#!/usr/bin/env node
// Demo mode: a local S3 API server standing in for the customer's bucket, a demo
// tenant whose bucket is registered (so Start recording and Start transcription
// work at once), and the gateway on http://127.0.0.1:8080 with a meeting ready to join.
// Ctrl-C stops everything (the gateway first, so what is being recorded lands).
// State lives in data/demo/ (CONSENTRY_DEMO_DIR; delete it to start afresh): the
// tenant's token key, the gateway's master key, its SQLite store and the demo meeting's id. The demo S3
// server keeps objects in memory: they are gone once the demo stops.
// A demo that was killed (kill -9, a crash) or whose terminal was closed leaves its gateway or S3 server
// running: the next start in the same folder stops them first (their ids are in data/demo/demo.pids).
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import jwt from "jsonwebtoken";

// The AWS SDK warns on Node 20 (nine lines, once in this process, the gateway and the recorder) that its versions
// published after January 2027 will need Node 22: the lockfile pins the SDK, so nothing a demo user can act on (as
// in `consentry verify`, cli/quietWarnings.ts). Its own switch, read when a client is made; the children inherit it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
const httpPort = process.env.CONSENTRY_HTTP_PORT ?? "8080";
const s3Port = process.env.CONSENTRY_DEMO_S3_PORT ?? "4566";
const base = `http://127.0.0.1:${httpPort}`;
const s3Endpoint = `http://127.0.0.1:${s3Port}`;
const bucket = "consentry-demo";
const prefix = "recordings";
const dir = path.resolve(process.env.CONSENTRY_DEMO_DIR ?? "data/demo");
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

/** A file in the demo folder holding a secret made once (mode 0600), kept across runs. */
const keptSecret = (name, make) => {
	const file = path.join(dir, name);
	if (!existsSync(file)) writeFileSync(file, make(), { mode: 0o600 });
	return readFileSync(file, "utf8");
};
mkdirSync(dir, { recursive: true });

// ---- What an earlier demo in this folder left running, and the ports --------------------------------------------
const pidFile = path.join(dir, "demo.pids");
/** `pid` is a live process of this folder whose command line holds `marker` (never a pid the system gave another). */
const ours = (pid, marker) => {
	try {
		return (
			readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker) &&
			readlinkSync(`/proc/${pid}/cwd`) === process.cwd()
		);
	} catch {
		return false;
	}
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let earlier = {};
try {
	earlier = JSON.parse(readFileSync(pidFile, "utf8"));
} catch {}
if (earlier.demo && earlier.demo !== process.pid && ours(earlier.demo, "demo.mjs")) {
	console.error(
		`a demo is already running in this folder (pid ${earlier.demo}): stop it first (Ctrl-C in its terminal)`,
	);
	process.exit(1);
}
// The gateway first (it completes what it was recording into the bucket), then the S3 server.
for (const [what, pid, marker] of [
	["gateway", earlier.gateway, "dist/server/main.js"],
	["demo S3 server", earlier.s3, "moto_server"],
]) {
	if (!pid || !ours(pid, marker)) continue;
	console.error(`stopping the ${what} an earlier demo left running (pid ${pid})`);
	process.kill(pid, "SIGTERM");
	for (let i = 0; i < 300 && ours(pid, marker); i++) await sleep(100);
	if (ours(pid, marker)) process.kill(pid, "SIGKILL");
	for (let i = 0; i < 50 && ours(pid, marker); i++) await sleep(100);
}
rmSync(pidFile, { force: true });
/** Whether nothing listens on 127.0.0.1:`port` (the gateway and the S3 server bind there). */
const free = (port) =>
	new Promise((resolve) => {
		const srv = net.createServer();
		srv.once("error", () => resolve(false));
		srv.listen(Number(port), "127.0.0.1", () => srv.close(() => resolve(true)));
	});
for (const [port, variable] of [
	[httpPort, "CONSENTRY_HTTP_PORT"],
	[s3Port, "CONSENTRY_DEMO_S3_PORT"],
]) {
	if (!(await free(port))) {
		console.error(`port ${port} on 127.0.0.1 is in use by another program: stop it, or set ${variable} to a free port`);
		process.exit(1);
	}
}

// A demo tenant with its own HS256 secret.
const tenantsFile = path.join(dir, "tenants.json");
keptSecret("tenants.json", () =>
	JSON.stringify({
		tenants: [
			{ id: "demo", name: "Demo customer", keys: [{ alg: "HS256", secret: randomBytes(32).toString("base64url") }] },
		],
	}),
);
// The gateway's master key: it seals the demo tenant's storage credentials in the store.
const masterKey = keptSecret("master.key", () => `${randomBytes(32).toString("base64")}\n`).trim();
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
let stopping = false;
const stopAll = (code) => {
	if (stopping) return;
	stopping = true;
	process.exitCode = code;
	// The gateway first: it completes what is being recorded into the bucket, then the S3 server goes.
	if (gateway.exitCode === null && gateway.signalCode === null) gateway.kill("SIGTERM");
	else s3.kill("SIGTERM");
};
process.on("SIGINT", () => stopAll(0));
process.on("SIGTERM", () => stopAll(0));
process.on("SIGHUP", () => stopAll(0)); // the terminal was closed
// Whatever ends this process (an error included), no child outlives it; the pid file goes once both are gone.
process.on("exit", () => {
	const alive = children.filter((c) => c.exitCode === null && c.signalCode === null);
	for (const c of alive) c.kill("SIGTERM");
	if (alive.length === 0) rmSync(pidFile, { force: true });
});

// Its own process group, so a Ctrl-C in the terminal does not stop it before the gateway has finished.
const s3 = spawn(moto, ["-H", "127.0.0.1", "-p", s3Port], { stdio: ["ignore", "ignore", "ignore"], detached: true });
children.push(s3);
s3.on("exit", (code) => {
	if (!stopping) {
		console.error(`demo S3 server exited with ${code} (is port ${s3Port} free? set CONSENTRY_DEMO_S3_PORT)`);
		stopAll(code || 1);
	}
});

// Its own process group too: a Ctrl-C in the terminal reaches every process of the terminal's group, and the
// gateway's mediasoup workers (its children) would close at once, before the gateway has finished what it records.
// This process stops it instead (SIGTERM: it completes the recordings, then closes its workers).
const gateway = spawn(process.execPath, ["dist/server/main.js"], {
	stdio: "inherit",
	detached: true,
	env: {
		...process.env,
		CONSENTRY_HTTP_HOST: "127.0.0.1",
		CONSENTRY_HTTP_PORT: httpPort,
		CONSENTRY_TENANTS_FILE: tenantsFile,
		CONSENTRY_DB_FILE: path.join(dir, "consentry.sqlite"),
		CONSENTRY_AUDIENCE: "consentry",
		CONSENTRY_MASTER_KEY: masterKey,
		// The demo bucket is on this machine, over plain http: allowed here, refused by default.
		CONSENTRY_STORAGE_ALLOW_PRIVATE: "true",
		CONSENTRY_STORAGE_ALLOW_HTTP: "true",
		CONSENTRY_LOG_LEVEL: process.env.CONSENTRY_LOG_LEVEL ?? "warn",
	},
});
children.push(gateway);
writeFileSync(pidFile, JSON.stringify({ demo: process.pid, gateway: gateway.pid, s3: s3.pid }));
gateway.on("exit", (code) => {
	if (!stopping) stopAll(code ?? 1);
	if (s3.exitCode === null && s3.signalCode === null) s3.kill("SIGTERM");
});

const fail = (message) => {
	console.error(message);
	stopAll(1);
	return new Promise(() => undefined); // the exit handlers end the process
};
// Generous: moto (Python) and the gateway take a while to start on a small or busy machine.
const waitUntil = async (what, ok) => {
	const deadline = Date.now() + 90_000;
	for (;;) {
		try {
			if (await ok()) return;
		} catch {}
		if (stopping) await new Promise(() => undefined); // a child exited and said why; the exit handlers end this
		if (Date.now() > deadline) await fail(`${what} did not come up within 90 s`);
		await new Promise((r) => setTimeout(r, 200));
	}
};
await waitUntil("the demo S3 server", async () => (await fetch(`${s3Endpoint}/moto-api/`)).status < 500);
await waitUntil("the gateway", async () => (await fetch(`${base}/healthz`)).ok);

// The customer's bucket, and its registration by the customer's administrator through the real API
// (the gateway checks the endpoint, writes, reads back and deletes a probe object, then seals the credentials).
const credentials = { accessKeyId: "demo", secretAccessKey: "demo-secret" };
const s3client = new S3Client({ endpoint: s3Endpoint, region: "us-east-1", forcePathStyle: true, credentials });
try {
	await s3client.send(new CreateBucketCommand({ Bucket: bucket }));
} catch (err) {
	if (err?.name !== "BucketAlreadyOwnedByYou" && err?.name !== "BucketAlreadyExists")
		await fail(`could not create the demo bucket: ${err?.message ?? err}`);
} finally {
	s3client.destroy();
}
const saved = await fetch(`${base}/api/storage-target`, {
	method: "PUT",
	headers: {
		authorization: `Bearer ${token("demo-admin", "admin", "Demo Admin")}`,
		"content-type": "application/json",
	},
	body: JSON.stringify({
		endpoint: s3Endpoint,
		region: "us-east-1",
		bucket,
		prefix,
		forcePathStyle: true,
		credentials,
	}),
});
if (!saved.ok) await fail(`the gateway refused the demo bucket: ${saved.status} ${await saved.text()}`);

// The demo meeting: the one an earlier start made (its id kept in the demo folder) while it has not ended — never
// another meeting of the demo host's, such as one made with the README's curl examples (other settings: no guests).
const hostToken = token("demo-host", "host", "Demo Host");
const auth = { authorization: `Bearer ${hostToken}`, "content-type": "application/json" };
const meetingFile = path.join(dir, "meeting.id");
const kept = existsSync(meetingFile) ? readFileSync(meetingFile, "utf8").trim() : "";
const earlierMeeting = kept
	? await fetch(`${base}/api/meetings/${encodeURIComponent(kept)}`, { headers: auth })
	: undefined;
let meeting = earlierMeeting?.ok ? await earlierMeeting.json() : undefined;
if (!meeting || meeting.state === "ended") {
	const made = await fetch(`${base}/api/meetings`, {
		method: "POST",
		headers: auth,
		body: JSON.stringify({ title: "Demo meeting", settings: { lobby: true, allowGuests: true } }),
	});
	if (!made.ok) await fail(`the gateway refused the demo meeting: ${made.status} ${await made.text()}`);
	meeting = await made.json();
	writeFileSync(meetingFile, `${meeting.id}\n`);
}

console.log(`
  consentry demo — meeting "${meeting.title}" (${meeting.joinCode})

  host (starts the meeting, admits people from the lobby, starts recording and transcription):
    ${base}/?m=${meeting.joinCode}#token=${hostToken}
  participant with a token:
    ${base}/?m=${meeting.joinCode}#token=${token("demo-participant", "participant", "Pat")}
  guest (no token, waits in the lobby):
    ${base}/?m=${meeting.joinCode}

  recordings and transcripts land in the demo bucket (the customer's, standing in):
    s3://${bucket}/${prefix}/${meeting.id}/<session>/   on ${s3Endpoint}
    list them:  curl -s '${s3Endpoint}/${bucket}?list-type=2&prefix=${prefix}/'
    browse:     ${s3Endpoint}/moto-api/
    verify them offline, as the customer's auditor:
      AWS_ACCESS_KEY_ID=${credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${credentials.secretAccessKey} npx consentry verify s3://${bucket}/${prefix}/${meeting.id} --endpoint ${s3Endpoint}
  the transcript page opens from the link shown in the meeting (/t/…).
  the meeting's recordings page (each recording plays back on /r/<session>, with its transcript and evidence),
  for the host and the people who were in the meeting, signed in:
    ${base}/recordings/${meeting.id}#token=${hostToken}
    one recording: ${base}/r/<session>#token=${hostToken}   (<session>: a folder above)
  The demo S3 server keeps objects in memory; Ctrl-C stops everything.
`);

#!/usr/bin/env node
// Demo mode: a local S3 API server standing in for the customer's bucket, and the
// gateway on http://127.0.0.1:8080 serving the meeting page. Ctrl-C stops both.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const httpPort = process.env.CONSENTRY_HTTP_PORT ?? "8080";
const s3Port = process.env.CONSENTRY_DEMO_S3_PORT ?? "4566";
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

const children = [];
const stopAll = (code) => {
	for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
	process.exitCode = code;
};
process.on("SIGINT", () => stopAll(0));
process.on("SIGTERM", () => stopAll(0));

const s3 = spawn(moto, ["-H", "127.0.0.1", "-p", s3Port], { stdio: ["ignore", "ignore", "inherit"] });
children.push(s3);
s3.on("exit", (code) => {
	if (code) console.error(`demo S3 server exited with ${code} (is port ${s3Port} free? set CONSENTRY_DEMO_S3_PORT)`);
	stopAll(code ?? 0);
});

const gateway = spawn(process.execPath, ["dist/server/main.js"], {
	stdio: "inherit",
	env: { ...process.env, CONSENTRY_HTTP_HOST: "127.0.0.1", CONSENTRY_HTTP_PORT: httpPort },
});
children.push(gateway);
gateway.on("exit", (code) => stopAll(code ?? 0));

console.log(`
  consentry demo
  meeting page:  http://127.0.0.1:${httpPort}/?m=demo   (open it in two tabs)
  demo S3 API:   http://127.0.0.1:${s3Port}  (stands in for the customer's bucket)
  Ctrl-C stops both.
`);

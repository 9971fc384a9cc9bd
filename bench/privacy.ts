import { mkdtempSync, openSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Fastify, { type FastifyInstance, LogController } from "fastify";
import { pino } from "pino";
import { registerAccessLog } from "../server/http/accessLog.js";
import { AddressKey, truncateAddress } from "../server/privacy/addresses.js";
import { machine, median } from "./stats.js";

/**
 * What the privacy duties cost per request: the gateway's own access line (address truncated, or in full on a
 * refusal) against a server without it, and the rotating keyed hash of an address (passcode attempts).
 * Alternating rounds, medians. Usage: npm run bench:privacy
 */
const ROUNDS = 6;
const REQUESTS = 1500;

async function server(withAccessLog: boolean): Promise<{ app: FastifyInstance; url: string }> {
	const log = pino({ level: "info" }, pino.destination({ fd: openSync("/dev/null", "w") }));
	const app = Fastify({
		loggerInstance: log,
		logController: new LogController({ disableRequestLogging: true }),
	}) as unknown as FastifyInstance;
	if (withAccessLog) registerAccessLog(app, log);
	app.get("/ping", async () => ({ ok: true }));
	const url = await app.listen({ host: "127.0.0.1", port: 0 });
	return { app, url };
}

async function round(url: string): Promise<number> {
	const t0 = performance.now();
	for (let i = 0; i < REQUESTS; i++) await (await fetch(`${url}/ping`)).arrayBuffer();
	return (performance.now() - t0) / REQUESTS;
}

const plain = await server(false);
const logged = await server(true);
const a: number[] = [];
const b: number[] = [];
await round(plain.url);
await round(logged.url);
for (let r = 0; r < ROUNDS; r++) {
	// Alternate which goes first (order effects on a loaded machine).
	if (r % 2) {
		b.push(await round(logged.url));
		a.push(await round(plain.url));
	} else {
		a.push(await round(plain.url));
		b.push(await round(logged.url));
	}
}
await plain.app.close();
await logged.app.close();

const key = new AddressKey({ file: path.join(mkdtempSync(path.join(os.tmpdir(), "bench-addr-")), "k.json") });
const hashes: number[] = [];
const cuts: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
	let t0 = performance.now();
	for (let i = 0; i < 100_000; i++) key.hash(`203.0.${i >> 8}.${i & 255}`);
	hashes.push(((performance.now() - t0) * 1000) / 100_000);
	t0 = performance.now();
	for (let i = 0; i < 100_000; i++) truncateAddress(i & 1 ? `203.0.${i >> 8}.${i & 255}` : `2001:db8:${i}::1`);
	cuts.push(((performance.now() - t0) * 1000) / 100_000);
}

console.log(machine());
console.log(
	`request without access line: median ${median(a).toFixed(3)} ms/request (${ROUNDS}×${REQUESTS} sequential)`,
);
console.log(`request with access line:    median ${median(b).toFixed(3)} ms/request`);
console.log(`AddressKey.hash:             median ${median(hashes).toFixed(2)} µs/call`);
console.log(`truncateAddress:             median ${median(cuts).toFixed(2)} µs/call (IPv4 and IPv6 alternating)`);

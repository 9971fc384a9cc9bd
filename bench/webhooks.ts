/**
 * Webhook delivery latency: from an audit entry being appended (the event) to the customer's endpoint (an HTTP
 * server on loopback, in this process) receiving the signed POST, through the real path: the trail's append hook,
 * the projection into the SQLite outbox, the lease, the endpoint guard, signing and the POST. Baseline, in the
 * same run: the same POST sent straight to the receiver (no outbox). Events go to 20 meetings, round-robin, at a
 * steady rate; every event of a meeting waits for the one before it (order per meeting).
 *
 *   npm run bench:webhooks [-- --events 1000 --rate 200]
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { EventLog } from "../server/audit/EventLog.js";
import { createLogger } from "../server/logger.js";
import { SecretBox } from "../server/storage/secretBox.js";
import { Store } from "../server/store/Store.js";
import { WebhookService } from "../server/webhooks/WebhookService.js";
import { WebhookStore } from "../server/webhooks/WebhookStore.js";
import { WEBHOOK_EVENTS } from "../server/webhooks/WebhookTypes.js";
import { machine, median, percentile } from "./stats.js";

const { values } = parseArgs({
	options: { events: { type: "string", default: "1000" }, rate: { type: "string", default: "200" } },
});
const N = Number(values.events);
const RATE = Number(values.rate);

const received = new Map<string, number>();
const server = http.createServer((req, res) => {
	const chunks: Buffer[] = [];
	req.on("data", (c: Buffer) => chunks.push(c));
	req.on("end", () => {
		const id = (JSON.parse(Buffer.concat(chunks).toString()) as { data: { n?: number } }).data.n;
		if (id !== undefined) received.set(String(id), performance.now());
		res.writeHead(200).end("ok");
	});
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;

// Baseline: the same POSTs, one after another per meeting, straight to the receiver.
async function baseline(): Promise<number[]> {
	const out: number[] = [];
	for (let i = 0; i < Math.min(N, 300); i++) {
		const t0 = performance.now();
		await new Promise<void>((resolve, reject) => {
			const req = http.request(
				url,
				{ method: "POST", agent: false, headers: { "content-type": "application/json" } },
				(res) => {
					res.resume();
					res.on("end", () => resolve());
				},
			);
			req.on("error", reject);
			req.end(JSON.stringify({ data: {} }));
		});
		out.push(performance.now() - t0);
	}
	return out;
}

const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-bench-webhooks-"));
const cluster = await Store.open({ file: path.join(dir, "store.sqlite") });
const events = await EventLog.open(cluster);
const store = new WebhookStore(cluster, new SecretBox(randomBytes(32)));
await store.save("acme", { url, events: [...WEBHOOK_EVENTS] }, 0);
const service = new WebhookService({
	store,
	events,
	endpointPolicy: { allowHttp: true, allowPrivate: true },
	log: createLogger("silent"),
});

const base = await baseline();
const sentAt = new Map<string, number>();
const started = performance.now();
for (let i = 0; i < N; i++) {
	const due = started + (i * 1000) / RATE;
	const wait = due - performance.now();
	if (wait > 0) await new Promise((r) => setTimeout(r, wait));
	sentAt.set(String(i), performance.now());
	await events.append("operator.action", {
		tenantId: "acme",
		meetingId: `m${i % 20}`,
		data: { action: "bench", n: i },
	});
}
const deadline = Date.now() + 60_000;
while (received.size < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
const lat = [...sentAt].flatMap(([id, t]) => (received.has(id) ? [(received.get(id) as number) - t] : []));
await service.close();
server.close();
await cluster.close();
rmSync(dir, { recursive: true, force: true });

const f = (x: number) => x.toFixed(1);
console.log(`${new Date().toISOString().slice(0, 10)}, ${machine()}`);
console.log(`${N} events to 20 meetings at ${RATE}/s; delivered ${lat.length}/${N}`);
console.log("| path | p50 ms | p99 ms | max ms |");
console.log("|---|---:|---:|---:|");
console.log(
	`| webhook (append → endpoint received) | ${f(median(lat))} | ${f(percentile(lat, 99))} | ${f(Math.max(...lat))} |`,
);
console.log(
	`| baseline: the bare POST round trip | ${f(median(base))} | ${f(percentile(base, 99))} | ${f(Math.max(...base))} |`,
);
process.exit(lat.length === N ? 0 : 1);

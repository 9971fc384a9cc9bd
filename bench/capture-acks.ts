/**
 * The notice gate under load: the time from the host's "start recording" to the
 * last acknowledgement, for meetings of 50 / 200 / 500 people (the host and
 * N−1 participants), each a socket.io client that acknowledges its notice the
 * moment it arrives (as a browser would when the person clicks at once).
 *
 * The gateway runs as a child process (server/main.ts, one worker) with a real
 * storage target on a local S3 API (moto), since recording can't start
 * without one; the clients all run in this process. Per meeting size, `runs`
 * start → (all acknowledged) → stop cycles; for each: start→last ack, and
 * every person's start→own ack and start→own notice (the fan-out alone), and the gateway's CPU per cycle and per
 * acknowledgement (and, on PostgreSQL, the server's CPU per cycle, its backends included). Prints a markdown section for
 * docs/benchmarks.md on stdout, progress on stderr; stops by itself.
 *
 * `--engine postgres`: the gateway's store is a throwaway PostgreSQL (durable: fsync on) instead of its SQLite file.
 *
 *   node --import tsx bench/capture-acks.ts [--sizes 50,200,500] [--runs 20] [--engine sqlite|postgres]
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import type { NoticeView } from "../shared/protocol.js";
import { startS3 } from "../test/helpers/moto.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { connect, type RawClient } from "../test/helpers/signaling.js";
import { cpuSeconds, syscalls, treeCpuSeconds } from "./bots/proc.js";
import { GatewayProcess } from "./bots/servers.js";
import { machine, median, percentile } from "./stats.js";

const { values } = parseArgs({
	options: {
		sizes: { type: "string", default: "50,200,500" },
		runs: { type: "string", default: "20" },
		engine: { type: "string", default: "sqlite" },
	},
});
const engine = values.engine === "postgres" ? "postgres" : "sqlite";
const sizes = values.sizes.split(",").map(Number);
const runs = Number(values.runs);
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const loadAtStart = os.loadavg()[0] ?? 0;

const s3server = await startS3();
const s3 = new S3Client({
	endpoint: s3server.endpoint,
	region: "us-east-1",
	forcePathStyle: true,
	credentials: { accessKeyId: "x", secretAccessKey: "x" },
});
await s3.send(new CreateBucketCommand({ Bucket: "bench-recordings" }));
s3.destroy();
const pgServer = engine === "postgres" ? await startPostgres({ durable: true }) : undefined;
const gw = await GatewayProcess.start({
	...(pgServer ? { CONSENTRY_DATABASE_URL: await pgServer.createDatabase("bench_capture") } : {}),
	CONSENTRY_MASTER_KEY: randomBytes(32).toString("base64"),
	CONSENTRY_STORAGE_ALLOW_PRIVATE: "true",
	CONSENTRY_STORAGE_ALLOW_HTTP: "true",
});
await gw.saveStorageTarget({
	endpoint: s3server.endpoint,
	region: "us-east-1",
	bucket: "bench-recordings",
	prefix: "bench",
	forcePathStyle: true,
	credentials: { accessKeyId: "AKIABENCH", secretAccessKey: "bench-secret" },
});

interface Row {
	size: number;
	lastAck: number[];
	eachAck: number[];
	/** Start → each person's notice arriving at their client (the fan-out alone, before any acknowledgement). */
	eachNotice: number[];
	/** CPU seconds per measured cycle: the gateway process, and this process (the N clients). */
	gatewayCpu: number;
	clientsCpu: number;
	/** The gateway's write system calls per measured cycle (socket writes, plus the store's file writes). */
	gatewayWrites: number;
	/** `--engine postgres`: CPU seconds of the PostgreSQL server and its backends per measured cycle. */
	storeCpu: number;
	/** The gateway's CPU seconds per person joining (connect + join, 25 at a time): the meeting's other store load. */
	joinCpu: number;
}
const rows: Row[] = [];

try {
	for (const [i, size] of sizes.entries()) {
		const hostToken = gw.token(`ack-host-${i}`, "host");
		const res = await fetch(`${gw.url}/api/meetings`, {
			method: "POST",
			headers: { authorization: `Bearer ${hostToken}`, "content-type": "application/json" },
			body: JSON.stringify({ title: `acks ${size}`, settings: { lobby: false, maxParticipants: Math.min(500, size) } }),
		});
		const meetingId = ((await res.json()) as { id: string }).id;
		const joinCpu0 = cpuSeconds(gw.pid);
		const clients: RawClient[] = [await connect(gw.url, hostToken)];
		await clients[0]?.call("join", { meetingId, displayName: "Host" });
		for (let p = 1; p < size; p += 25) {
			const batch = await Promise.all(
				Array.from({ length: Math.min(25, size - p) }, (_, k) =>
					connect(gw.url, gw.token(`ack-${i}-${p + k}`, "participant")),
				),
			);
			await Promise.all(batch.map((c, k) => c.call("join", { meetingId, displayName: `P${p + k}` })));
			clients.push(...batch);
		}
		const joinCpu = (cpuSeconds(gw.pid) - joinCpu0) / size;
		log(`${size} people in the meeting`);

		const row: Row = {
			size,
			lastAck: [],
			eachAck: [],
			eachNotice: [],
			gatewayCpu: 0,
			clientsCpu: 0,
			gatewayWrites: 0,
			storeCpu: 0,
			joinCpu,
		};
		let t0 = 0;
		let acked = 0;
		let allAcked: () => void = () => undefined;
		for (const c of clients) {
			c.socket.on("captureNotice", (n: NoticeView) => {
				row.eachNotice.push(performance.now() - t0);
				void c.call("acknowledgeNotice", { noticeId: n.id }).then(() => {
					row.eachAck.push(performance.now() - t0);
					if (++acked === clients.length) allAcked();
				});
			});
		}
		const host = clients[0] as RawClient;
		for (let r = 0; r < runs + 2; r++) {
			acked = 0;
			const done = new Promise<void>((resolve) => {
				allAcked = resolve;
			});
			const before = row.eachAck.length;
			const beforeNotice = row.eachNotice.length;
			const cpu0 = {
				gw: cpuSeconds(gw.pid),
				me: process.cpuUsage(),
				writes: syscalls(gw.pid).writes,
				store: pgServer ? treeCpuSeconds(pgServer.pid) : 0,
			};
			t0 = performance.now();
			await host.call("startCapture", { kind: "recording" });
			await done;
			const last = performance.now() - t0;
			if (r >= 2) {
				const me = process.cpuUsage(cpu0.me);
				row.gatewayCpu += (cpuSeconds(gw.pid) - cpu0.gw) / runs;
				row.clientsCpu += (me.user + me.system) / 1e6 / runs;
				row.gatewayWrites += (syscalls(gw.pid).writes - cpu0.writes) / runs;
				if (pgServer) row.storeCpu += (treeCpuSeconds(pgServer.pid) - cpu0.store) / runs;
			}
			if (r < 2) {
				row.eachAck.length = before; // warm-up runs
				row.eachNotice.length = beforeNotice;
			} else {
				row.lastAck.push(last);
				log(
					`  cycle ${r - 1}: last ack ${last.toFixed(0)} ms, last notice ${Math.max(...row.eachNotice.slice(beforeNotice)).toFixed(0)} ms`,
				);
			}
			await host.call("stopCapture", { kind: "recording" });
			// Let the stopped session's artifacts (audit export, manifest) be written before the next start.
			await new Promise((resolve) => setTimeout(resolve, 1000));
		}
		log(`${size}: start → last ack p50 ${median(row.lastAck).toFixed(0)} ms`);
		rows.push(row);
		for (const c of clients) c.close();
		await new Promise((resolve) => setTimeout(resolve, 500));
	}
} finally {
	await gw.stop();
	await s3server.stop();
	await pgServer?.stop();
}

const f = (x: number) => x.toFixed(0);
const out = [
	`### Notice gate: host's start → every acknowledgement (${new Date().toISOString().slice(0, 10)})`,
	"",
	`Machine: ${machine()} (${loadAtStart.toFixed(1)} at the start). \`npm run bench:capture -- --engine ${engine}\` (bench/capture-acks.ts): gateway as a child`,
	`process (one worker, storage target on moto, store: ${engine === "postgres" ? "PostgreSQL 15, durable" : "SQLite file"}), N socket.io clients`,
	`in the bench process acknowledging on arrival; ${runs} start/stop cycles per size after 2 warm-ups.`,
	`Acknowledgements arriving together share one commit (group commit); each is answered once committed.`,
	"",
	"| people | start → last ack p50 | p99 (max of runs) | start → own ack p50 | p99 | start → own notice p50 / p99 | CPU per cycle: gateway / clients | gateway CPU per ack | gateway write syscalls per cycle | gateway CPU per join | PostgreSQL CPU per cycle |",
	"|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
	...rows.map(
		(r) =>
			`| ${r.size} | ${f(median(r.lastAck))} ms | ${f(percentile(r.lastAck, 99))} ms | ${f(median(r.eachAck))} ms | ${f(percentile(r.eachAck, 99))} ms | ${f(median(r.eachNotice))} / ${f(percentile(r.eachNotice, 99))} ms | ${f(r.gatewayCpu * 1000)} / ${f(r.clientsCpu * 1000)} ms | ${((r.gatewayCpu * 1000) / r.size).toFixed(2)} ms | ${f(r.gatewayWrites)} | ${(r.joinCpu * 1000).toFixed(2)} ms | ${pgServer ? `${f(r.storeCpu * 1000)} ms` : "–"} |`,
	),
	"",
];
process.stdout.write(`${out.join("\n")}\n`);

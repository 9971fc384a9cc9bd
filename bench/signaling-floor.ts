/**
 * The floor under the notice gate's cycle (bench/capture-acks.ts): what socket.io alone costs for the same exchange.
 * A bare socket.io server (same versions and WebSocket transport as the gateway, nothing else) sends a notice-sized
 * event to N clients; each answers with an acknowledgement request the moment it arrives; the server answers each one
 * at once. Measured per cycle: the server's CPU (its own process) and start → last answer. The gap between this and
 * `bench:capture`'s "gateway CPU per ack" is the gateway's own work (the gate, the audit trail, the store).
 *
 * The server runs as a child process (this file with `--serve`); the clients run in this process, as in
 * bench:capture. Prints a markdown row on stdout, stops by itself.
 *
 *   node --import tsx bench/signaling-floor.ts [--people 500] [--runs 10]
 */
import { type ChildProcess, fork } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Server } from "socket.io";
import { io, type Socket } from "socket.io-client";
import { machine, median, percentile } from "./stats.js";

const { values } = parseArgs({
	options: {
		serve: { type: "boolean", default: false },
		people: { type: "string", default: "500" },
		runs: { type: "string", default: "10" },
	},
});

/** A notice of the gateway's size and shape (the English recording notice). */
const NOTICE = {
	id: "0b6f3a4e-2222-4c4c-8888-123456789abc",
	sessionId: "0b6f3a4e-1111-4c4c-8888-123456789abc",
	kind: "recording",
	policy: { name: "notice", version: 1 },
	startedBy: "Host",
	since: "2026-12-02T00:00:00.000Z",
	consentRequired: false,
	locale: "en",
	title: "This meeting is being recorded",
	body: "The host started recording. Your voice, video and shared screen are recorded from now on and stored by the organisation that runs this meeting. If you do not want to be recorded, leave the meeting. Stored in: the organisation's own storage bucket (this meeting service keeps no copy).",
};

type Msg = { port: number } | { cpuMs: number };

if (values.serve) {
	const http = createServer();
	const server = new Server(http, { serveClient: false, pingInterval: 10_000, pingTimeout: 10_000 });
	server.on("connection", (socket) => {
		socket.on("acknowledgeNotice", (_body: unknown, reply: (r: unknown) => void) =>
			reply({ ok: true, data: { coverage: "acknowledged" } }),
		);
	});
	let cpu0 = process.cpuUsage();
	process.on("message", (m: string) => {
		if (m === "notify") {
			cpu0 = process.cpuUsage();
			for (const socket of server.sockets.sockets.values()) socket.emit("captureNotice", NOTICE);
		} else if (m === "cpu") {
			const c = process.cpuUsage(cpu0);
			process.send?.({ cpuMs: (c.user + c.system) / 1000 } satisfies Msg);
		} else if (m === "stop") {
			server.close();
			process.exit(0);
		}
	});
	http.listen(0, "127.0.0.1", () => process.send?.({ port: (http.address() as AddressInfo).port } satisfies Msg));
} else {
	const people = Number(values.people);
	const runs = Number(values.runs);
	const loadAtStart = os.loadavg()[0] ?? 0;
	const child: ChildProcess = fork(fileURLToPath(import.meta.url), ["--serve"], { execArgv: ["--import", "tsx"] });
	const next = () => new Promise<Msg>((resolve) => child.once("message", (m: Msg) => resolve(m)));
	const { port } = (await next()) as { port: number };
	const clients: Socket[] = [];
	for (let i = 0; i < people; i += 25) {
		const batch = Array.from({ length: Math.min(25, people - i) }, () =>
			io(`http://127.0.0.1:${port}`, { transports: ["websocket"], reconnection: false }),
		);
		await Promise.all(batch.map((c) => new Promise((resolve) => c.once("connect", () => resolve(undefined)))));
		clients.push(...batch);
	}
	const cpu: number[] = [];
	const last: number[] = [];
	try {
		for (let r = 0; r < runs + 2; r++) {
			let answered = 0;
			const t0 = performance.now();
			const done = new Promise<void>((resolve) => {
				for (const c of clients) {
					c.removeAllListeners("captureNotice");
					c.on("captureNotice", (n: { id: string }) => {
						void c
							.timeout(5000)
							.emitWithAck("acknowledgeNotice", { noticeId: n.id })
							.then(() => {
								if (++answered === clients.length) resolve();
							});
					});
				}
			});
			child.send("notify");
			await done;
			const wall = performance.now() - t0;
			child.send("cpu");
			const { cpuMs } = (await next()) as { cpuMs: number };
			if (r >= 2) {
				cpu.push(cpuMs);
				last.push(wall);
			}
			await new Promise((resolve) => setTimeout(resolve, 300));
		}
	} finally {
		for (const c of clients) c.close();
		child.send("stop");
	}
	const f = (x: number) => x.toFixed(0);
	process.stdout.write(
		[
			`Machine: ${machine()} (${loadAtStart.toFixed(1)} at the start). \`npm run bench:signaling-floor\`: ${people} clients, ${runs} cycles after 2 warm-ups.`,
			"",
			"| people | start → last answer p50 | p99 | server CPU per cycle (median) | server CPU per person |",
			"|---:|---:|---:|---:|---:|",
			`| ${people} | ${f(median(last))} ms | ${f(percentile(last, 99))} ms | ${f(median(cpu))} ms | ${(median(cpu) / people).toFixed(3)} ms |`,
			"",
		].join("\n"),
	);
}

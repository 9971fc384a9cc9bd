/**
 * The per-packet capture gate's cost (issue 11): packets dated and decided per second, and ns per packet, for a
 * 90 kHz video stream with a sender report every 90 packets; the baseline is the same loop without the gate.
 * Usage: npm run bench:capture-gate
 */
import os from "node:os";
import { CaptureGate } from "../recorder/CaptureGate.js";
import type { RtpHeader } from "../recorder/rtp.js";

const N = 2_000_000;
const packet = Buffer.alloc(1200);
const header = (timestamp: number): RtpHeader => ({
	payloadType: 96,
	marker: false,
	sequence: 0,
	timestamp,
	ssrc: 1,
	payloadOffset: 12,
	payloadLength: 1188,
	extensionProfile: 0,
	extensionOffset: 0,
	extensionLength: 0,
});

function run(gated: boolean): number {
	let passed = 0;
	const sink = () => {
		passed++;
	};
	const start = Date.now();
	const g = new CaptureGate({ clockRate: 90_000, openAt: start + 1000, pass: sink });
	const t0 = process.hrtime.bigint();
	for (let i = 0; i < N; i++) {
		const ts = (i * 1500) >>> 0; // 60 fps
		const h = header(ts);
		if (i % 90 === 0 && gated) g.senderReport({ ntpMs: start + (i * 1500) / 90, rtpTs: ts, receivedAt: start });
		if (gated) g.push(packet, h);
		else sink();
	}
	const ns = Number(process.hrtime.bigint() - t0) / N;
	if (gated && passed === 0) throw new Error("nothing passed");
	return ns;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const base: number[] = [];
const gate: number[] = [];
for (let r = 0; r < 5; r++) {
	base.push(run(false));
	gate.push(run(true));
}
const perPacket = median(gate) - median(base);
console.log(
	JSON.stringify(
		{
			packets: N,
			nsPerPacketBaseline: +median(base).toFixed(1),
			nsPerPacketGated: +median(gate).toFixed(1),
			nsPerPacketGate: +perPacket.toFixed(1),
			packetsPerSecondPerCore: Math.round(1e9 / median(gate)),
			load: os.loadavg().map((x) => +x.toFixed(2)),
			cpus: os.cpus().length,
		},
		null,
		1,
	),
);

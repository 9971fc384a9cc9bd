/**
 * The per-packet capture gate's cost (issue 11): packets dated and decided per second, and ns per packet, for a
 * 90 kHz video stream with a sender report every 90 packets; the baseline is the same loop without the gate. Also
 * with the close margin the recorder uses (CLOSE_MARGIN_MS: let-through packets wait 1 s for a late close).
 * Usage: npm run bench:capture-gate
 */
import os from "node:os";
import { CaptureGate, CLOSE_MARGIN_MS } from "../recorder/CaptureGate.js";
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

function run(mode: "base" | "gate" | "margin"): number {
	let passed = 0;
	const sink = () => {
		passed++;
	};
	const gated = mode !== "base";
	const start = Date.now();
	let now = start;
	const g = new CaptureGate({
		clockRate: 90_000,
		openAt: start + 1000,
		closeMarginMs: mode === "margin" ? CLOSE_MARGIN_MS : 0,
		now: () => now,
		pass: sink,
	});
	const t0 = process.hrtime.bigint();
	for (let i = 0; i < N; i++) {
		const ts = (i * 1500) >>> 0; // 60 fps, one packet a frame
		now = start + (i * 1500) / 90;
		const h = header(ts);
		if (i % 90 === 0 && gated) g.senderReport({ ntpMs: now, rtpTs: ts, receivedAt: now + 5 });
		if (gated) g.push(packet, h);
		else sink();
	}
	g.end();
	const ns = Number(process.hrtime.bigint() - t0) / N;
	if (gated && passed === 0) throw new Error("nothing passed");
	return ns;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const base: number[] = [];
const gate: number[] = [];
const margin: number[] = [];
for (let r = 0; r < 5; r++) {
	base.push(run("base"));
	gate.push(run("gate"));
	margin.push(run("margin"));
}
console.log(
	JSON.stringify(
		{
			packets: N,
			nsPerPacketBaseline: +median(base).toFixed(1),
			nsPerPacketGated: +median(gate).toFixed(1),
			nsPerPacketGate: +(median(gate) - median(base)).toFixed(1),
			nsPerPacketGatedWithCloseMargin: +median(margin).toFixed(1),
			nsPerPacketGateWithCloseMargin: +(median(margin) - median(base)).toFixed(1),
			packetsPerSecondPerCore: Math.round(1e9 / median(margin)),
			load: os.loadavg().map((x) => +x.toFixed(2)),
			cpus: os.cpus().length,
		},
		null,
		1,
	),
);

import dgram from "node:dgram";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { RtpRelay } from "./RtpRelay.js";

function rtp(seq: number, ts: number, ssrc: number): Buffer {
	const b = Buffer.alloc(12 + 20);
	b[0] = 0x80;
	b[1] = 111;
	b.writeUInt16BE(seq, 2);
	b.writeUInt32BE(ts, 4);
	b.writeUInt32BE(ssrc, 8);
	return b;
}

async function sendAll(port: number, packets: Buffer[]): Promise<void> {
	const s = dgram.createSocket("udp4");
	await Promise.all(packets.map((p) => new Promise<void>((r) => s.send(p, port, "127.0.0.1", () => r()))));
	s.close();
}

describe("RtpRelay at close", () => {
	const log = pino({ level: "silent" });

	it("drain reads what is already queued in the socket before it closes", async () => {
		const got: number[] = [];
		const relay = await RtpRelay.create({
			payloadType: 111,
			ssrc: 42,
			log,
			onRtp: (_p, h) => got.push(h.sequence),
			onRtcp: () => undefined,
		});
		await sendAll(
			relay.rtpPort,
			Array.from({ length: 200 }, (_, i) => rtp(i, i * 960, 42)),
		);
		expect(await relay.drain(5000)).toBe(true);
		relay.close();
		expect(got).toHaveLength(200);
	});

	it("past the drain's time, the rest is read only to be counted, with the RTP time it spans", async () => {
		const got: number[] = [];
		const relay = await RtpRelay.create({
			payloadType: 111,
			ssrc: 42,
			log,
			onRtp: (_p, h) => got.push(h.sequence),
			onRtcp: () => undefined,
		});
		await sendAll(
			relay.rtpPort,
			Array.from({ length: 100 }, (_, i) => rtp(i, 1000 + i * 960, 42)),
		);
		expect(await relay.drain(0)).toBe(false); // no time at all: nothing read
		const rest = await relay.discardRest(5000);
		relay.close();
		expect(got).toHaveLength(0);
		expect(rest.packets).toBe(100);
		expect(relay.stats.discarded).toBe(100);
		expect(((rest.lastTs ?? 0) - (rest.firstTs ?? 0)) / 48_000).toBeCloseTo(99 * 0.02, 5);
	});
});

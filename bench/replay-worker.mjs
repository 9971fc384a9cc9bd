/**
 * One sender thread of bench/recorder-load.ts (plain JavaScript: a worker thread does not get tsx's loader): replays captured RTP to its share of the tracks in real time (paced by
 * the RTP timestamps, looped with continuous sequence numbers and timestamps), from its own socket and event loop, so
 * that a few hundred tracks are not limited by one thread. Counts what the kernel accepted (send callbacks) and how
 * late each packet left against its schedule.
 */
import dgram from "node:dgram";
import { parentPort, workerData } from "node:worker_threads";

const media = workerData;
const socket = dgram.createSocket({ type: "udp4", sendBufferSize: 4 << 20 });
/** @type {any[]} */
const tracks = [];
/** Lateness histogram, 1 ms buckets up to 10 s. */
const late = new Uint32Array(10_001);
let lateMax = 0;
/** @type {NodeJS.Timeout | undefined} */
let timer;

function tick() {
	const now = performance.timeOrigin + performance.now();
	for (const t of tracks) {
		const { samples, periodS, periodTs } = t.media;
		while (!t.done) {
			const loop = Math.floor(t.next / samples.length);
			const s = samples[t.next % samples.length];
			const due = t.start + (loop * periodS + s.t) * 1000;
			if (due > now) break;
			const lateness = now - due;
			const bucket = Math.min(10_000, Math.floor(lateness));
			late[bucket]++;
			if (lateness > lateMax) lateMax = lateness;
			const b = Buffer.from(s.data);
			b.writeUInt16BE((t.seqBase + t.next) & 0xffff, 2);
			b.writeUInt32BE((t.tsBase + loop * periodTs + s.tsRel) >>> 0, 4);
			b.writeUInt32BE(t.ssrc, 8);
			socket.send(b, t.port, "127.0.0.1", (/** @type {Error | null} */ err) => {
				if (err) t.errors++;
				else t.acked++;
			});
			t.firstSentAt ??= Date.now();
			t.next++;
			t.packets++;
			t.payloadBytes += s.payloadBytes;
			const endOfFrame = t.media.kind === "audio" || s.marker;
			if (endOfFrame) t.frames++;
			if (t.stopping && endOfFrame) t.done = true;
		}
	}
}

/** @param {number} q */
function quantile(q) {
	let total = 0;
	for (const n of late) total += n;
	let seen = 0;
	for (let i = 0; i < late.length; i++) {
		seen += late[i];
		if (seen >= q * total) return i;
	}
	return late.length - 1;
}

parentPort?.on("message", async (msg) => {
	if (msg.type === "add") {
		for (const a of msg.tracks) {
			tracks.push({
				...a,
				media: a.kind === "audio" ? media.audio : media.video,
				next: 0,
				seqBase: Math.floor(Math.random() * 0xffff),
				tsBase: Math.floor(Math.random() * 0xffffffff),
				stopping: false,
				done: false,
				packets: 0,
				acked: 0,
				errors: 0,
				frames: 0,
				payloadBytes: 0,
			});
		}
		timer ??= setInterval(tick, 1);
		return;
	}
	for (const t of tracks) t.stopping = true;
	while (tracks.some((t) => !t.done)) await new Promise((r) => setTimeout(r, 5));
	// Every send handed to the kernel (or refused) before reporting.
	while (tracks.some((t) => t.acked + t.errors < t.packets)) await new Promise((r) => setTimeout(r, 5));
	clearInterval(timer);
	timer = undefined;
	const out = {
		type: "stopped",
		tracks: tracks.map(({ trackId, packets, acked, errors, frames, payloadBytes, firstSentAt }) => ({
			trackId,
			packets,
			acked,
			errors,
			frames,
			payloadBytes,
			...(firstSentAt !== undefined ? { firstSentAt } : {}),
		})),
		lateMs: { p50: quantile(0.5), p99: quantile(0.99), max: Math.round(lateMax) },
	};
	tracks.length = 0;
	late.fill(0);
	lateMax = 0;
	parentPort?.postMessage(out);
});

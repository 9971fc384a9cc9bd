import type { types as ms } from "mediasoup";
import { ntpToUnixMs, type SenderReport } from "../../recorder/CaptureGate.js";

interface Watched {
	/** The latest report per SSRC (simulcast: one stream per layer). */
	last: Map<number, SenderReport>;
	listeners: Set<(sr: SenderReport) => void>;
}

const watched = new WeakMap<ms.Producer, Watched>();

/**
 * The producer's RTCP sender reports (its RTP time ↔ its sender's wall clock; issue 11), for a capture sink that
 * forwards them to the recorder's per-packet gate: `onReport` gets the latest report of each of its streams at
 * once, then every new one. mediasoup reports them as `sr` trace events; one listener per producer, shared by every
 * sink that watches it. Returns the function that stops this watch.
 */
export function watchSenderReports(producer: ms.Producer, onReport: (sr: SenderReport) => void): () => void {
	let w = watched.get(producer);
	if (!w) {
		const state: Watched = { last: new Map(), listeners: new Set() };
		w = state;
		watched.set(producer, state);
		if (!producer.closed) {
			void producer.enableTraceEvent(["sr"]).catch(() => undefined);
			producer.on("trace", (t) => {
				if (t.type !== "sr" || t.direction !== "in") return;
				const info = t.info as { ssrc: number; ntpSec: number; ntpFrac: number; rtpTs: number; packetCount: number };
				// Only once the stream sent RTP (before that a report has no frame to anchor its RTP time to).
				if (!(info.packetCount > 0)) return;
				const sr: SenderReport = {
					ssrc: info.ssrc >>> 0,
					ntpMs: ntpToUnixMs(info.ntpSec, info.ntpFrac),
					rtpTs: info.rtpTs >>> 0,
					receivedAt: Date.now(),
				};
				state.last.set(sr.ssrc as number, sr);
				for (const l of state.listeners) l(sr);
			});
		}
	}
	for (const sr of w.last.values()) onReport(sr);
	w.listeners.add(onReport);
	const state = w;
	return () => state.listeners.delete(onReport);
}

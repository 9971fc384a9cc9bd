import type { Logger } from "../../contracts/logger.js";
import type { RecorderConfig } from "../../contracts/RecorderConfig.js";
import type { Codec } from "../../contracts/RecorderProtocol.js";
import type { TranscriptionEngine, TranscriptionFailure, TranscriptSegment } from "./TranscriptionEngineTypes.js";

export interface TrackTranscriberOptions {
	trackId: string;
	/** audio/opus. */
	codec: Codec;
	ssrc: number;
	engine: TranscriptionEngine;
	config: RecorderConfig;
	/** Emit partial segments too (live captions). */
	partials: boolean;
	/** The person's click on the sender's clock (Unix ms): audio captured before it is never transcribed (issue 11). */
	openAt?: number | undefined;
	/** How long let-through packets wait for a late close (default CLOSE_MARGIN_MS; only with `openAt`). */
	closeMarginMs?: number;
	log: Logger;
}

/**
 * A segment with its times moved onto the track's clock (ms since its first RTP packet, `streamStartedAt`), and
 * onto capture times (sender's clock, Unix ms) with that clock's offset from the gateway's, when dated (issue 11).
 */
export type TrackSegment = TranscriptSegment & {
	streamStartedAt: string;
	captureStartAt?: number;
	captureEndAt?: number;
	clockOffsetMs?: number;
};

export type TrackTranscriberEvents = {
	segment: [segment: TrackSegment];
	/** The transcription stopped for good. */
	failed: [failure: TranscriptionFailure];
	/** No sender report dates its packets (issue 11): nothing is transcribed until one does. */
	undatable: [info: { heldMs: number; packets: number; reports: number }];
};

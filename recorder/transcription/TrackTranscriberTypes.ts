import type { Logger } from "../../server/logger.js";
import type { Codec } from "../RecorderProtocol.js";
import type { RecorderConfig } from "../RecorderTypes.js";
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
	log: Logger;
}

/** A segment with its times moved onto the track's clock (ms since its first RTP packet, `streamStartedAt`). */
export type TrackSegment = TranscriptSegment & { streamStartedAt: string };

export type TrackTranscriberEvents = {
	segment: [segment: TrackSegment];
	/** The transcription stopped for good. */
	failed: [failure: TranscriptionFailure];
};

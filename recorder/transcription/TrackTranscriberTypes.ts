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
	log: Logger;
}

/** A segment with its times moved onto the track's clock (ms since its first RTP packet, `streamStartedAt`). */
export type TrackSegment = TranscriptSegment & { streamStartedAt: string };

export type TrackTranscriberEvents = {
	segment: [segment: TrackSegment];
	/** The transcription stopped for good. */
	failed: [failure: TranscriptionFailure];
};

import type { S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../server/logger.js";
import type { StorageTarget } from "../server/storage/StorageTargetTypes.js";
import type { Codec, ObjectWritten, PartUploaded, TrackFailed, TrackKey } from "./RecorderProtocol.js";
import type { RecorderConfig } from "./RecorderTypes.js";

export interface TrackRecorderOptions {
	trackId: string;
	key: TrackKey;
	codec: Codec;
	ssrc: number;
	target: StorageTarget;
	/** An S3 client for the target (the recorder's; not destroyed by the track). */
	client: S3Client;
	config: RecorderConfig;
	/** Segment length. */
	segmentMs: number;
	/** The first segment's seq (default 1). */
	firstSeq?: number;
	log: Logger;
}

export type TrackRecorderEvents = {
	objectWritten: [object: ObjectWritten];
	partUploaded: [part: PartUploaded];
	/** A new video segment started: the gateway should ask the producer for a key frame. */
	keyframeNeeded: [];
	/** ffmpeg died or stalled and the track goes on in a new segment `seq`. */
	segmentRestarted: [info: { seq: number; reason: string }];
	/** The track stopped for good (after its objects were reported). */
	/** The track stopped recording for good, now (the objects it still completes are reported after). */
	stopping: [failure: Omit<TrackFailed, "trackId">];
	failed: [failure: Omit<TrackFailed, "trackId">];
};

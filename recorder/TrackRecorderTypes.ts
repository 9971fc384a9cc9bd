import type { S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../contracts/logger.js";
import type { RecorderConfig } from "../contracts/RecorderConfig.js";
import type {
	Codec,
	ObjectWritten,
	PartUploaded,
	StartStages,
	TrackFailed,
	TrackKey,
} from "../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../contracts/StorageTargetTypes.js";
import type { CheckpointWriter } from "./CheckpointWriter.js";
import type { Hole } from "./DepacketizerTypes.js";

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
	/** The session's checkpoint writer (absent: no checkpoints). */
	checkpoints?: CheckpointWriter;
	/** The first segment's seq (default 1). */
	firstSeq?: number;
	/** The person's click on the sender's clock (Unix ms): packets captured before it are dropped (issue 11). */
	openAt?: number | undefined;
	/** How long let-through packets wait for a late close (default CLOSE_MARGIN_MS; only with `openAt`). */
	closeMarginMs?: number;
	log: Logger;
}

/** Every frame of a track accounted for. */
export interface TrackStats {
	/** RTP packets of the track that reached the recorder, and the sequence numbers that never did. */
	packets: number;
	lostPackets: number;
	/** Frames the gateway's RTP carried that reached the recorder (complete or not). */
	framesReceived: number;
	/** Frames in objects stored in the bucket. */
	framesWritten: number;
	/** Frames thrown away: incomplete, or undecodable until the next key frame. */
	framesDropped: number;
}

export type TrackRecorderEvents = {
	objectWritten: [object: ObjectWritten];
	partUploaded: [part: PartUploaded];
	/** Video: the stream needs a key frame (a new object starts, or a loss): call consumer.requestKeyFrame(). */
	keyframeNeeded: [];
	/** The track's first frame is in the muxer (wall-clock ms). */
	started: [at: number, stages: StartStages];
	/** A stretch of the track that will not be in the bucket (as it becomes known). */
	hole: [hole: Hole];
	/** The track stopped recording for good, now (the objects it still completes are reported after). */
	stopping: [failure: Omit<TrackFailed, "trackId">];
	/** The track stopped for good (after its objects were reported). */
	failed: [failure: Omit<TrackFailed, "trackId">];
	/** No sender report dates its packets (issue 11): nothing is recorded until one does. */
	undatable: [info: { heldMs: number; packets: number; reports: number }];
};

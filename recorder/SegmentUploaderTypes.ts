import type { S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../contracts/logger.js";
import type { RecorderConfig } from "../contracts/RecorderConfig.js";
import type { StorageTarget } from "../contracts/StorageTargetTypes.js";
import type { ByteBudget } from "./ByteBudget.js";
import type { CheckpointWriter } from "./CheckpointWriter.js";
import type { UploadError } from "./errors.js";

export type SegmentUploaderConfig = Pick<
	RecorderConfig,
	| "partSizeBytes"
	| "uploadConcurrency"
	| "requestTimeoutMs"
	| "finishDeadlineMs"
	| "retryBaseMs"
	| "retryMaxMs"
	| "rolloverParts"
	| "maxObjectBytes"
	| "bufferFullGraceMs"
	| "maxOutageMs"
>;

export interface SegmentUploaderOptions {
	client: S3Client;
	target: StorageTarget;
	key: string;
	contentType: string;
	/** The track's memory budget (shared by its segments). */
	budget: ByteBudget;
	config: SegmentUploaderConfig;
	/** The session's checkpoint writer: the object's tail goes into it every interval (absent: no checkpoints). */
	checkpoints?: CheckpointWriter;
	/** Frames entirely within the object's first `bytes` bytes (named in each checkpoint, for recovery's count). */
	framesAt?: (bytes: number) => number;
	log: Logger;
}

/** A completed object. */
export interface SegmentObject {
	bucket: string;
	key: string;
	/** The multipart upload it was written through (none: stored with one PutObject). */
	uploadId?: string;
	size: number;
	/** SHA-256 (hex) of exactly the object's bytes. */
	sha256: string;
	parts: number;
	/** Fewer bytes were stored than were read (the tail could not be uploaded). */
	truncated: boolean;
}

/** What became of a segment. */
export interface SegmentOutcome {
	/** The object, when at least one part was stored and the upload completed. */
	object?: SegmentObject;
	bytesIn: number;
	bytesStored: number;
	/** The input was cut because the buffer stayed full (or the part limit was reached). */
	overflowed: boolean;
	/** What went wrong, if anything (data lost, or the upload left open for `recover`). */
	error?: UploadError;
}

export type SegmentUploaderEvents = {
	/** A part is stored. */
	part: [info: { partNumber: number; size: number }];
	/** The object nears a limit (part count or size): start the next segment. Emitted once. */
	rolloverNeeded: [info: { reason: string }];
	/** The buffer stayed full past the grace period: input was stopped. */
	overflow: [info: { bufferedBytes: number }];
	/** The bucket refused a request for good (4xx): input was stopped. */
	rejected: [error: UploadError];
	/** A request failed transiently (5xx, timeout, connection) and will be tried again. */
	retry: [];
};

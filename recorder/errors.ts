import { RecorderError } from "../contracts/RecorderError.js";

export { RecorderError, type RecorderErrorCode } from "../contracts/RecorderError.js";

/** The bucket kept failing (or refused) while a segment was being uploaded. */
export class UploadError extends RecorderError {
	declare readonly code: "storage_unavailable" | "storage_rejected";
	/** The multipart upload left open for `recover`, when completing it failed too. */
	readonly uploadId: string | undefined;

	constructor(
		code: "storage_unavailable" | "storage_rejected",
		message: string,
		options?: { cause?: unknown; uploadId?: string },
	) {
		super(code, message, options);
		this.uploadId = options?.uploadId;
	}
}

/** ffmpeg could not be started, or died/stalled too often. */
export class FfmpegError extends RecorderError {
	constructor(code: "ffmpeg_failed" | "ffmpeg_unavailable", message: string, options?: { cause?: unknown }) {
		super(code, message, options);
	}
}

import { ConsentryError } from "./errors.js";

/**
 * Codes a recorder reports: in `error` replies to a request, in `trackFailed`,
 * and on the rejections of RecorderProcess's methods.
 */
export type RecorderErrorCode =
	| "invalid_message"
	| "invalid_config"
	| "unknown_track"
	| "track_exists"
	| "shutting_down"
	| "endpoint_forbidden"
	| "endpoint_unresolvable"
	| "storage_unavailable"
	| "storage_rejected"
	| "ffmpeg_failed"
	| "ffmpeg_unavailable"
	| "recovery_failed"
	| "transcription_exists"
	| "unknown_transcription"
	| "engine_unavailable"
	| "engine_failed"
	| "engine_rejected"
	| "decoder_failed"
	| "recorder_crashed"
	| "recorder_closed"
	| "timeout"
	| "internal_error";

/** Something the recorder (child or parent side) could not do; `code` is stable, `message` for humans. */
export class RecorderError extends ConsentryError {
	declare readonly code: RecorderErrorCode;

	constructor(code: RecorderErrorCode, message: string, options?: { cause?: unknown }) {
		super(code, message, code === "invalid_message" || code === "invalid_config" ? 400 : 500, options);
	}
}

import type { RecorderConfigInput } from "../../contracts/RecorderConfig.js";
import type {
	ErrorReply,
	HoleEntry,
	ObjectWritten,
	OpenTrackMessage,
	OpenTranscriptionMessage,
	PartUploaded,
	RecoverMessage,
	StartStages,
	TrackFailed,
	TrackStats,
	TrackUndatable,
	TranscriptionClosed,
	TranscriptionFailed,
	TranscriptSegmentMessage,
	UploadStats,
} from "../../contracts/RecorderProtocol.js";
import type { Logger } from "../logger.js";

export interface RecorderProcessOptions {
	/** The child's settings (validated here before it is started). */
	config?: RecorderConfigInput;
	/** The child's stderr (its JSON log lines): the gateway's (default), a pipe (`RecorderProcess.stderr`), or nowhere. */
	stderr?: "inherit" | "pipe" | "ignore";
	/** How long the child may take to report `ready`. Default 20 s. */
	readyTimeoutMs?: number;
	/** How long openTrack may take. Default 30 s. */
	openTimeoutMs?: number;
	log?: Logger;
}

export type OpenTrackRequest = Omit<OpenTrackMessage, "type" | "requestId">;
export type RecoverRequest = Omit<RecoverMessage, "type" | "requestId">;
export type OpenTranscriptionRequest = Omit<OpenTranscriptionMessage, "type" | "requestId">;

export type RecorderProcessEvents = {
	/** The child is up (after create() and after each restart()). */
	ready: [info: { pid: number }];
	/** A segment object was completed (by a track, or by recover with `recovered: true`). */
	objectWritten: [object: ObjectWritten];
	/** A part of a segment is stored in the bucket. */
	partUploaded: [part: PartUploaded];
	/** The track's video needs a key frame (a new object starts, or a packet was lost): call consumer.requestKeyFrame(). */
	keyframeNeeded: [info: { trackId: string }];
	/** A track's first frame is muxed (`stages`: when it passed each step on the way, for the benchmark). */
	trackStarted: [info: { trackId: string; at: string; stages?: StartStages | undefined }];
	/** A stretch of a track that will not be in the bucket, the moment it is known (warn the host). */
	trackHole: [info: { trackId: string; hole: HoleEntry }];
	/** The track stopped recording for good, just now; objectWritten and trackFailed follow once it has finished. */
	trackStopping: [failure: TrackFailed];
	/** The track stopped for good; its objects were reported first. */
	trackFailed: [failure: TrackFailed];
	/** The track closed (after closeTrack or shutdown), every frame accounted for. */
	trackClosed: [info: { trackId: string; stats?: TrackStats }];
	/** No sender report dates a track's packets (issue 11): nothing of it is recorded/transcribed; tell the hosts. */
	trackUndatable: [info: TrackUndatable];
	/** Every few seconds while tracks record: buffers and upload retries (metrics). */
	uploadStats: [stats: UploadStats];
	/** A piece of a transcription's transcript: partials while someone speaks, then one final per utterance. */
	transcriptSegment: [segment: TranscriptSegmentMessage];
	/** The transcription stopped for good (engine or decoder); its earlier segments stand. */
	transcriptionFailed: [failure: TranscriptionFailed];
	/** The transcription closed (after closeTranscription or shutdown), after its last final. */
	transcriptionClosed: [info: TranscriptionClosed];
	/** An error reply no request was waiting for, or a message from the child that failed validation. */
	protocolError: [error: ErrorReply];
	/** The child exited; `expected` after close(). */
	exit: [info: { code: number | null; signal: NodeJS.Signals | null; expected: boolean }];
	/** The child died unexpectedly: its tracks are gone (call restart(), reopen tracks, recover their uploads). */
	crashed: [
		info: {
			code: number | null;
			signal: NodeJS.Signals | null;
			openTracks: string[];
			openTranscriptions: string[];
		},
	];
};

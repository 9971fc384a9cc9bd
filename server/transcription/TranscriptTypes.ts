import type { CapturePolicy, SessionContinuation } from "../compliance/CaptureTypes.js";

/**
 * One transcribed track's capture account (issue 11), as in the recording manifest's `capture`: the speaker's click
 * and close on their clock, the first and last transcribed audio's capture times, and the packets dropped.
 */
export interface TranscriptCapture {
	speaker: string;
	clickAt: number | null;
	closeAt: number | null;
	firstCaptureAt: number | null;
	lastCaptureAt: number | null;
	clockOffsetMs: number | null;
	packetsBeforeClick: number;
	packetsAfterClose: number;
	packetsUndated: number;
	senderReports: number;
}

/** One final segment, attributed to its speaker by construction (one engine stream per person). */
export interface TranscriptEntry {
	speaker: string;
	displayName: string;
	start: string;
	end: string;
	text: string;
	/**
	 * What `start`/`end` are (issue 11): `capture` — the audio's capture times, mapped from the speaker's clock to
	 * the gateway's through their sender reports (the clock of the recording manifest's `firstFrameAt`), with the
	 * capture times on the speaker's clock and that clock's offset; `arrival` — when the audio reached the gateway
	 * (no sender report dated it: a client that sent no click time).
	 */
	clock: "capture" | "arrival";
	captureStartAt?: number;
	captureEndAt?: number;
	clockOffsetMs?: number;
}

/** What every transcript document of a session says about it (transcript.json and each checkpoint part). */
export interface TranscriptHeader {
	meeting: string;
	session: string;
	policy: CapturePolicy;
	startedAt: string;
	/** Cluster (issue 12): the session this one continues after its meeting's node was lost (as the recording manifest). */
	continues?: SessionContinuation;
	engine: string;
	disclaimer: string;
}

/**
 * transcript.json: the whole transcript, written once at the session's end (`endedAt`, `endReason`; audited). While
 * the session runs, its checkpoints are {@link TranscriptPart}s. (Gateways before the incremental checkpoints wrote
 * transcript.json itself as a checkpoint, with `checkpointedAt` instead of `endedAt`/`endReason`: still read when a
 * session of theirs is finished from the bucket.)
 */
export interface TranscriptDocument extends TranscriptHeader {
	kind: "consentry.transcript";
	version: 1;
	/** When the session ended; for one finished from the bucket (its node lost), when its last checkpoint was written. */
	endedAt?: string;
	/** Why it ended (`stopped`, `meeting_ended`, … as the trail's `session.off`; `node_lost`: finished from the bucket). */
	endReason?: string;
	/** A checkpoint of an older gateway: when it was written. */
	checkpointedAt?: string;
	/**
	 * What is missing from the transcript and why: from its last checkpoint to when it was finished (`node_lost`,
	 * `gateway_crash`); a checkpoint part missing or unreadable when it was finished (`checkpoint_missing`).
	 */
	holes?: { from: string; to: string; cause: string }[];
	entries: TranscriptEntry[];
	/** Per transcribed track (issue 11): nothing transcribed was captured before clickAt or after closeAt. */
	captures: TranscriptCapture[];
}

/**
 * `transcript.part-NNNNNN.json`: one checkpoint of a running session, in its folder. Part n holds the final entries
 * (and track capture accounts) the gateway got since part n-1, numbered from 1 with no gap; the transcript so far is
 * the parts' entries together (sorted by `start`). Each part repeats the session's header, so any one of them says
 * what it belongs to. The final transcript.json replaces them: they are deleted once it and its audit.jsonl are written.
 */
export interface TranscriptPart extends TranscriptHeader {
	kind: "consentry.transcript.part";
	version: 1;
	part: number;
	/** When it was written: the transcript holds every final segment the gateway had received by then. */
	checkpointedAt: string;
	entries: TranscriptEntry[];
	captures: TranscriptCapture[];
}

/** A checkpoint part's name in its session folder: `transcript.part-000001.json` (zero-padded, so listed in order). */
export const TRANSCRIPT_PART_NAME = /^transcript\.part-(\d{6,9})\.json$/;

export function transcriptPartName(n: number): string {
	return `transcript.part-${String(n).padStart(6, "0")}.json`;
}

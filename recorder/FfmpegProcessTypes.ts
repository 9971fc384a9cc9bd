import type { Logger } from "../contracts/logger.js";
import type { Codec } from "../contracts/RecorderProtocol.js";

export interface FfmpegProcessOptions {
	codec: Codec;
	ssrc: number;
	/** The ffmpeg binary. */
	ffmpegPath: string;
	/** No RTP for this long ends ffmpeg's input (it then finishes the WebM and exits 0). */
	idleTimeoutMs: number;
	/** Address-space limit (prlimit --as); 0 = none. */
	memoryLimitBytes: number;
	/** What ffmpeg does with the decoded input (default: remux into WebM on stdout, WEBM_OUTPUT_ARGS). */
	outputArgs?: readonly string[];
	log: Logger;
}

export interface FfmpegExit {
	code: number | null;
	signal: NodeJS.Signals | null;
	/** The last lines ffmpeg wrote to stderr. */
	stderr: string;
	/** True when the exit was asked for (stop/kill). */
	requested: boolean;
}

export type FfmpegProcessEvents = {
	/** ffmpeg exited and its output is closed. */
	exit: [info: FfmpegExit];
};

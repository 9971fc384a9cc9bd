import type { EventEmitter } from "node:events";
import type { Logger } from "../../contracts/logger.js";

/** What every engine reads: 16 kHz, mono, signed 16-bit little-endian PCM. */
export const PCM_SAMPLE_RATE = 16_000;
/** Bytes of PCM per millisecond (16 samples × 2 bytes). */
export const PCM_BYTES_PER_MS = (PCM_SAMPLE_RATE * 2) / 1000;

export interface TranscriptWord {
	word: string;
	/** Times in ms from the start of the stream (its first PCM byte). */
	startMs: number;
	endMs: number;
	/** 0…1 where the engine gives one. */
	confidence?: number;
}

/**
 * A piece of transcript. Partials (`final: false`) show what is being said and
 * may change; each utterance ends with one final, which replaces its partials.
 */
export interface TranscriptSegment {
	final: boolean;
	text: string;
	/** Times in ms from the start of the stream (its first PCM byte). */
	startMs: number;
	endMs: number;
	/** Finals: each word with its times, when the engine gives them. */
	words?: TranscriptWord[];
}

/** Why a stream stopped for good. */
export type TranscriptionFailureCode =
	/** The engine can't be started or reached (not installed, bad endpoint, network). */
	| "engine_unavailable"
	/** It died or broke its protocol too often. */
	| "engine_failed"
	/** It refused the stream (credentials, quota, language, bad request). */
	| "engine_rejected"
	/** The decoder in front of it (ffmpeg: RTP → PCM) failed too often. */
	| "decoder_failed"
	| "internal_error";

export interface TranscriptionFailure {
	code: TranscriptionFailureCode;
	message: string;
}

export type TranscriptionStreamEvents = {
	segment: [segment: TranscriptSegment];
	/** The stream stopped for good (no more segments; end() resolves, write() is ignored). */
	failed: [failure: TranscriptionFailure];
	/** The engine took what was buffered (after write() returned false). */
	drain: [];
};

/**
 * One audio stream (one person's audio track) being transcribed: PCM in, segments out. One stream per speaker
 * is what attributes every segment to its speaker, by construction.
 */
export interface TranscriptionStream extends EventEmitter<TranscriptionStreamEvents> {
	/** The engine's name (`pocketsphinx`, `aws`). */
	readonly engine: string;
	/** Milliseconds of PCM written so far. */
	readonly audioMs: number;
	/** PIDs of the processes it runs (diagnostics, tests). */
	readonly pids: number[];
	/**
	 * Appends PCM (any length; a whole number of samples overall). False when the engine is behind and more
	 * is being buffered: wait for `drain` before writing more.
	 */
	write(pcm: Buffer): boolean;
	/** End of audio: the engine finishes the last utterance (its final is emitted) and stops. */
	end(): Promise<void>;
	/** Stops at once; nothing more is emitted. */
	destroy(): void;
}

export interface TranscriptionStreamOptions {
	log: Logger;
}

/** A transcription engine: opens one stream per audio track. */
export interface TranscriptionEngine {
	readonly name: string;
	/** Opens a stream; rejects (RecorderError `engine_unavailable` / `engine_rejected`) when it can't start. */
	open(options: TranscriptionStreamOptions): Promise<TranscriptionStream>;
}

import { z } from "zod";

const MiB = 1024 * 1024;

/** S3's smallest part (all but the last). */
export const MIN_PART_SIZE = 5 * MiB;
/** S3's most parts per upload. */
export const MAX_PARTS = 10_000;

/**
 * How long a recorder whose gateway died (even kill -9: its IPC channel closes) goes on finishing what it holds
 * before it exits; past this, nothing more of it reaches the bucket. Whoever finishes that gateway's sessions from the
 * bucket (a cluster node that took its meetings) waits at least this long, so it never races the orphan's last writes.
 */
export const ORPHAN_GRACE_MS = 10_000;

/**
 * The recorder child's settings, fixed for its lifetime (RecorderProcess
 * passes them in the CONSENTRY_RECORDER_CONFIG environment variable as JSON).
 */
export const RecorderConfigSchema = z
	.object({
		/** Size at which a part is cut and uploaded (≥ 5 MiB; the last part of an object may be smaller). */
		partSizeBytes: z
			.number()
			.int()
			.min(MIN_PART_SIZE)
			.max(512 * MiB)
			.default(8 * MiB),
		/**
		 * Bytes a track may hold in memory (parts waiting or being uploaded, plus the part being filled),
		 * across its segments. When it stays full longer than bufferFullGraceMs, the track stops with
		 * `storage_unavailable`.
		 */
		maxBufferedBytes: z
			.number()
			.int()
			.min(MIN_PART_SIZE + MiB)
			.max(4096 * MiB)
			.default(64 * MiB),
		/**
		 * A bucket that answers nothing for this long stops the track cleanly (`storage_unavailable`) even while the
		 * buffer still holds: nobody should record for hours into memory without being told.
		 */
		maxOutageMs: z.number().int().min(5000).max(86_400_000).default(600_000),
		/** How long the buffer may stay full before the track gives up (frames keep coming meanwhile). */
		bufferFullGraceMs: z.number().int().min(0).max(600_000).default(5000),
		/**
		 * The bytes of an object not yet in a stored part are checkpointed into the bucket this often (one PutObject
		 * each); a crash loses at most about this much of every track. 0 = off (a crash then loses the unstored tail).
		 */
		checkpointMs: z.number().int().min(0).max(60_000).default(2000),
		/** Parts uploaded at once per segment. */
		uploadConcurrency: z.number().int().min(1).max(16).default(2),
		/** One attempt of one S3 request may take this long. */
		requestTimeoutMs: z.number().int().min(1000).max(3_600_000).default(120_000),
		/** After a segment's input ended, how long its remaining parts and the completion are retried. */
		finishDeadlineMs: z.number().int().min(1000).max(3_600_000).default(60_000),
		/** Backoff between attempts: min(cap, base·2^n), full jitter. */
		retryBaseMs: z.number().int().min(1).max(60_000).default(250),
		retryMaxMs: z.number().int().min(10).max(600_000).default(10_000),
		/** Roll over into a new object at this many parts (well below S3's 10,000)… */
		rolloverParts: z.number().int().min(2).max(9_900).default(9_000),
		/** …or when the object reaches this size. */
		maxObjectBytes: z
			.number()
			.int()
			.min(MIN_PART_SIZE)
			.default(4096 * MiB),
		/** Default segment length; openTrack may override it. */
		segmentMinutes: z
			.number()
			.min(0.05)
			.max(24 * 60)
			.default(10),
		/** The ffmpeg binary (transcription decodes Opus with it; recording uses none). */
		ffmpegPath: z.string().min(1).default("ffmpeg"),
		/** Address-space limit of each ffmpeg (prlimit --as); 0 = none. */
		ffmpegMemoryLimitBytes: z
			.number()
			.int()
			.min(0)
			.default(1024 * MiB),
		/** Transcription: RTP flowing into the decoding ffmpeg but no output for this long → restart it. */
		watchdogMs: z.number().int().min(1000).max(600_000).default(15_000),
		/** Transcription: more decoder/engine restarts than this within restartWindowMs fail the track. */
		maxRestarts: z.number().int().min(0).max(100).default(5),
		restartWindowMs: z.number().int().min(1000).default(600_000),
		/** How long a missing RTP packet is waited for (reordering, retransmission) before it counts as lost. */
		jitterMs: z.number().int().min(0).max(5000).default(200),
		/**
		 * Issue 11: how long packets the capture gate let through wait before they are recorded or transcribed, so a
		 * close (pause, leave…) whose message arrives this late still drops what was captured after its click.
		 */
		closeMarginMs: z.number().int().min(0).max(10_000).default(1000),
		/** Issue 11: packets held this long with no sender report to date them make the track undatable (hosts told). */
		undatableAfterMs: z.number().int().min(1000).max(120_000).default(10_000),
		/**
		 * Recording: a frame that comes this long after the previous one, by its arrival and by the media's own clock
		 * (the producer paused), starts a new object; with no frame at all, an object ends after 3× this.
		 * Transcription: no RTP for this long ends the decoder's input.
		 */
		idleTimeoutMs: z.number().int().min(500).max(60_000).default(2000),
		/**
		 * Closing a track, what is already in its socket (sent before the gateway stopped the media) is still read and
		 * recorded, until the socket is quiet or this long has passed.
		 */
		closeDrainMs: z.number().int().min(0).max(600_000).default(10_000),
		/** After idleTimeoutMs, how long an ending ffmpeg may take before SIGKILL. */
		stopGraceMs: z.number().int().min(100).max(120_000).default(10_000),
		/** The Python with pocketsphinx (default: $CONSENTRY_STT_PYTHON, else the project's .venv-stt, else python3). */
		sttPythonPath: z.string().min(1).optional(),
		/** Address-space limit of each pocketsphinx process (prlimit --as; it peaks at ~120 MB); 0 = none. */
		sttMemoryLimitBytes: z
			.number()
			.int()
			.min(0)
			.default(512 * MiB),
		logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
	})
	.refine((c) => c.maxBufferedBytes > c.partSizeBytes, {
		message: "maxBufferedBytes must be larger than partSizeBytes",
		path: ["maxBufferedBytes"],
	});
export type RecorderConfig = z.infer<typeof RecorderConfigSchema>;
export type RecorderConfigInput = z.input<typeof RecorderConfigSchema>;

export const RECORDER_CONFIG_ENV = "CONSENTRY_RECORDER_CONFIG";

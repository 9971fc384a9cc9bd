import { z } from "zod";
import { storageTargetSchema } from "./StorageTargetTypes.js";

/**
 * The IPC protocol between the gateway (parent) and the recorder child
 * process (`child_process.fork`, `process.send`, JSON serialization). Every
 * message is validated on receipt, on both sides; an invalid one gets an
 * `error` reply naming the problem and never crashes the receiver.
 *
 * Requests may carry a `requestId`; the replies to them (`trackOpened`,
 * `trackClosed`, `recovered`, `error`, and `objectWritten` of a recovery)
 * echo it so concurrent requests can be told apart.
 */

/** One path segment of an object key: URL-safe characters only (ids, pseudonyms). */
const SAFE_SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;
/** `/`-separated URL-safe segments (no `.`/`..` segments, no leading/trailing `/`), or empty. */
const PREFIX_RE = /^(?!.*(?:^|\/)\.{1,2}(?:\/|$))[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;

const safeSegment = (what: string) => z.string().regex(SAFE_SEGMENT, `${what} must be 1–128 of A-Z a-z 0-9 _ -`);

export const TrackIdSchema = safeSegment("trackId");
export const RequestIdSchema = z.string().min(1).max(128);
export const KeyPrefixSchema = z
	.string()
	.max(512)
	.refine((p) => p === "" || PREFIX_RE.test(p), {
		message: "must be empty or `/`-separated segments of A-Z a-z 0-9 . _ - (no leading/trailing `/`, no `.` or `..`)",
	});

export const TrackKindSchema = z.enum(["audio", "camera", "screen"]);
export type TrackKind = z.infer<typeof TrackKindSchema>;

/**
 * Where a track's segments go: `{prefix}/{meetingId}/{sessionId}/{person}-{kind}-{seq}.webm` (Opus, VP8), or `.mkv`
 * (H.264: Matroska, as WebM carries only VP8/VP9/AV1; see `containerOf`).
 */
export const TrackKeySchema = z.object({
	prefix: KeyPrefixSchema,
	meetingId: safeSegment("meetingId"),
	sessionId: safeSegment("sessionId"),
	/** The person's pseudonym (never a name or e-mail address). */
	person: safeSegment("person"),
	kind: TrackKindSchema,
});
export type TrackKey = z.infer<typeof TrackKeySchema>;

export const CodecSchema = z
	.object({
		kind: z.enum(["audio", "video"]),
		mimeType: z.enum(["audio/opus", "video/VP8", "video/H264"]),
		payloadType: z.number().int().min(0).max(127),
		clockRate: z.number().int().positive(),
		channels: z.number().int().min(1).max(8).optional(),
		/** H.264: the SDP's `sprop-parameter-sets` (base64 SPS and PPS), when the sender gave them out of band. */
		spropParameterSets: z
			.string()
			.max(4096)
			.regex(/^[A-Za-z0-9+/=]+(,[A-Za-z0-9+/=]+)*$/)
			.optional(),
	})
	.refine((c) => (c.kind === "audio") === (c.mimeType === "audio/opus"), {
		message: "kind must match mimeType (audio ↔ audio/opus, video ↔ video/VP8 or video/H264)",
		path: ["mimeType"],
	})
	.refine((c) => c.clockRate === (c.mimeType === "audio/opus" ? 48000 : 90000), {
		message: "clockRate must be 48000 for Opus and 90000 for VP8 and H.264",
		path: ["clockRate"],
	});
export type Codec = z.infer<typeof CodecSchema>;

/** The storage target, decrypted (credentials and SSE-C key included). `http:` is refused later unless allowHttp. */
export const WireStorageTargetSchema = storageTargetSchema({ allowHttp: true });

export const EndpointOptionsSchema = z.object({
	/** Allow an `http:` endpoint (tests, a trusted local network). */
	allowHttp: z.boolean().optional(),
	/** Allow an endpoint on a loopback/private address. */
	allowPrivate: z.boolean().optional(),
});

export const OpenTrackOptionsSchema = EndpointOptionsSchema.extend({
	/** Roll over into a new object every this many minutes (default: the recorder's, 10). */
	segmentMinutes: z
		.number()
		.min(0.05)
		.max(24 * 60)
		.optional(),
	/** Same, in seconds; wins over segmentMinutes (for tests; at least 1). */
	segmentSeconds: z
		.number()
		.min(1)
		.max(24 * 3600)
		.optional(),
});
export type OpenTrackOptions = z.infer<typeof OpenTrackOptionsSchema>;

// ---- transcription ----

/** The embedded engine (pocketsphinx 5.1.1, its bundled US English model), one child process per track. */
export const PocketsphinxEngineSchema = z.object({
	type: z.literal("pocketsphinx"),
	/** Only the bundled model's language. */
	languageCode: z.literal("en-US").optional(),
	options: z
		.object({
			/** VAD aggressiveness, 0 (loose, default) … 3 (strict). */
			vadMode: z.number().int().min(0).max(3).optional(),
			/** A partial at most this often (ms of audio), when its text changed. Default 300. */
			partialIntervalMs: z.number().int().min(30).max(10_000).optional(),
			/** Utterances longer than this are cut (ms). Default 20,000. */
			maxUtteranceMs: z.number().int().min(1000).max(120_000).optional(),
			/** Audio from before the VAD's speech start fed to the decoder (ms). Default 200. */
			prerollMs: z.number().int().min(0).max(1000).optional(),
		})
		.optional(),
});

/** AWS Transcribe Streaming with the tenant's own credentials (its data goes to the tenant's AWS account). */
export const AwsEngineSchema = z.object({
	type: z.literal("aws"),
	region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, "region must look like eu-west-1"),
	credentials: z.object({
		accessKeyId: z.string().min(1).max(256),
		secretAccessKey: z.string().min(1).max(1024),
		sessionToken: z.string().min(1).max(8192).optional(),
	}),
	/** BCP-47 code AWS supports for streaming, e.g. en-US, fr-FR. */
	languageCode: z.string().regex(/^[a-z]{2,3}-[A-Z]{2}$/, "languageCode must look like en-US"),
	/** Another endpoint (a VPC endpoint, FIPS, a test server); checked like storage endpoints. */
	endpoint: z.url({ protocol: /^https?$/ }).optional(),
	vocabularyName: z
		.string()
		.regex(/^[0-9a-zA-Z._-]{1,200}$/)
		.optional(),
});

/** A BCP-47 language code (`fr`, `fr-FR`, `es-419`). */
const LanguageCodeSchema = z
	.string()
	.regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, "languageCode must look like fr or fr-FR");
/** The locales a person can join with (their choice of language), for per-person languages. */
const PersonLocaleSchema = z.enum(["en", "fr"]);

/**
 * A Vosk server the customer runs (vosk-server's WebSocket protocol: a `config` message, PCM in binary messages,
 * one JSON answer per message, `{"eof" : 1}` at the end). One server runs one language's model.
 */
export const VoskEngineSchema = z.object({
	type: z.literal("vosk"),
	/** ws:// or wss:// URL of the server; checked like storage endpoints. */
	endpoint: z.url({ protocol: /^wss?$/ }),
	/** The language of the server's model (for the transcript and the notice). */
	languageCode: LanguageCodeSchema,
	/** Per person: the locale they joined with → the server of that language. */
	languages: z
		.partialRecord(
			PersonLocaleSchema,
			z.object({ endpoint: z.url({ protocol: /^wss?$/ }), languageCode: LanguageCodeSchema }),
		)
		.optional(),
});

/**
 * An OpenAI-compatible speech-to-text server (`POST {endpoint}/v1/audio/transcriptions`, multipart: file, model,
 * language, response_format=verbose_json), e.g. a whisper server the customer runs. The stream is cut at pauses
 * into utterances, each sent as a WAV; each answer becomes one final segment.
 */
export const OpenAiEngineSchema = z.object({
	type: z.literal("openai"),
	/** The server's base URL (without `/v1/...`); checked like storage endpoints. */
	endpoint: z.url({ protocol: /^https?$/ }),
	model: z.string().min(1).max(200).default("whisper-1"),
	/** Sent as `Authorization: Bearer …` when set. */
	apiKey: z.string().min(1).max(1024).optional(),
	/** The language spoken (its primary subtag is sent: `fr-FR` → `fr`). */
	languageCode: LanguageCodeSchema,
	/** Per person: the locale they joined with → the language sent for them. */
	languages: z.partialRecord(PersonLocaleSchema, LanguageCodeSchema).optional(),
	/** Utterances are cut after this long even without a pause (ms). Default 15,000. */
	maxUtteranceMs: z.number().int().min(2000).max(60_000).optional(),
});

export const TranscriptionEngineSpecSchema = z.discriminatedUnion("type", [
	PocketsphinxEngineSchema,
	AwsEngineSchema,
	VoskEngineSchema,
	OpenAiEngineSchema,
]);
export type TranscriptionEngineSpec = z.infer<typeof TranscriptionEngineSpecSchema>;

export const OpenTranscriptionOptionsSchema = EndpointOptionsSchema.extend({
	/** Send partial segments (live captions). Default true. */
	partials: z.boolean().optional(),
});

const AudioCodecSchema = CodecSchema.refine((c) => c.mimeType === "audio/opus", {
	message: "transcription takes audio/opus",
	path: ["mimeType"],
});

const TranscriptWordSchema = z.object({
	word: z.string().min(1).max(256),
	startMs: z.number().int().nonnegative(),
	endMs: z.number().int().nonnegative(),
	confidence: z.number().min(0).max(1).optional(),
});

// ---- parent → child ----

export const OpenTrackSchema = z.object({
	type: z.literal("openTrack"),
	requestId: RequestIdSchema.optional(),
	trackId: TrackIdSchema,
	key: TrackKeySchema,
	codec: CodecSchema,
	/** The SSRC the gateway's consumer sends with; other SSRCs are dropped. */
	ssrc: z.number().int().min(0).max(0xffff_ffff),
	target: WireStorageTargetSchema,
	/** The seq of the track's first segment (default 1): lets a person's later tracks in a session use fresh keys. */
	firstSeq: z.number().int().min(1).max(999_000_000).optional(),
	/**
	 * The person's click (their answer to the notice) on the sender's clock, Unix ms (issue 11): every packet whose
	 * capture time (RTP time through the producer's sender reports) precedes it is dropped.
	 */
	openAt: z.number().finite().positive().optional(),
	options: OpenTrackOptionsSchema.optional(),
});

/** One RTCP sender report of the track's producer (the gateway forwards each): dates the track's packets. */
export const SenderReportSchema = z.object({
	type: z.literal("senderReport"),
	requestId: RequestIdSchema.optional(),
	trackId: TrackIdSchema,
	/** The report's NTP time as Unix ms (sender's clock), its RTP timestamp, and its arrival (gateway's clock). */
	/** The stream it reports on (simulcast: one per layer; the recorder finds the one its RTP time is on). */
	ssrc: z.number().int().min(0).max(0xffff_ffff).optional(),
	ntpMs: z.number().finite().positive(),
	rtpTs: z.number().int().min(0).max(0xffff_ffff),
	receivedAt: z.number().finite().positive(),
});
export type SenderReportMessage = z.infer<typeof SenderReportSchema>;

/**
 * When capture ends (issue 11): the click that closed the gate (pause, stop, leave, decline) or the gateway's own
 * close time where nobody clicked; `sender`: on the sender's clock, `gateway`: on the gateway's (the recorder maps it
 * through the sender reports). Packets captured after it are dropped, also those already received.
 */
export const CloseTimeSchema = z.object({
	at: z.number().finite().positive(),
	clock: z.enum(["sender", "gateway"]),
});
/** When capture ends, on the sender's or the gateway's clock (issue 11). */
export type CloseTime = z.infer<typeof CloseTimeSchema>;

/** NTP (seconds since 1900 + 2⁻³² fractions) → Unix ms. */
export function ntpToUnixMs(ntpSec: number, ntpFrac: number): number {
	return (ntpSec - 2_208_988_800) * 1000 + (ntpFrac / 2 ** 32) * 1000;
}

export const CloseTrackSchema = z.object({
	type: z.literal("closeTrack"),
	requestId: RequestIdSchema.optional(),
	trackId: TrackIdSchema,
	closeAt: CloseTimeSchema.optional(),
});

export const RecoverSchema = z.object({
	type: z.literal("recover"),
	requestId: RequestIdSchema.optional(),
	target: WireStorageTargetSchema,
	/** The key prefix the tracks were opened with (`key.prefix`). */
	prefix: KeyPrefixSchema,
	/** Uploads still being written by a live recorder: never touched. */
	liveUploadIds: z.array(z.string().min(1).max(1024)).max(100_000).optional(),
	/** Only these sessions' objects are completed, and their checkpoints used and deleted. */
	sessions: z.array(z.object({ meetingId: safeSegment("meetingId"), sessionId: safeSegment("sessionId") })).max(10_000),
	options: EndpointOptionsSchema.optional(),
});

export const ShutdownSchema = z.object({ type: z.literal("shutdown"), requestId: RequestIdSchema.optional() });

/** Transcribe one audio track (one person): RTP in, transcriptSegment out. Track ids are apart from recordings'. */
export const OpenTranscriptionSchema = z.object({
	type: z.literal("openTranscription"),
	requestId: RequestIdSchema.optional(),
	trackId: TrackIdSchema,
	codec: AudioCodecSchema,
	/** The SSRC the gateway's consumer sends with; other SSRCs are dropped. */
	ssrc: z.number().int().min(0).max(0xffff_ffff),
	engine: TranscriptionEngineSpecSchema,
	/** The person's click on the sender's clock (Unix ms, issue 11): audio captured before it is never transcribed. */
	openAt: z.number().finite().positive().optional(),
	options: OpenTranscriptionOptionsSchema.optional(),
});

/** Ends a transcription: the engine finishes the last utterance (its final is sent), then transcriptionClosed. */
export const CloseTranscriptionSchema = z.object({
	type: z.literal("closeTranscription"),
	requestId: RequestIdSchema.optional(),
	trackId: TrackIdSchema,
	closeAt: CloseTimeSchema.optional(),
});

export const ParentMessageSchema = z.discriminatedUnion("type", [
	OpenTrackSchema,
	CloseTrackSchema,
	RecoverSchema,
	ShutdownSchema,
	OpenTranscriptionSchema,
	CloseTranscriptionSchema,
	SenderReportSchema,
]);
export type ParentMessage = z.infer<typeof ParentMessageSchema>;
export type OpenTrackMessage = z.infer<typeof OpenTrackSchema>;
export type CloseTrackMessage = z.infer<typeof CloseTrackSchema>;
export type RecoverMessage = z.infer<typeof RecoverSchema>;
export type OpenTranscriptionMessage = z.infer<typeof OpenTranscriptionSchema>;
export type CloseTranscriptionMessage = z.infer<typeof CloseTranscriptionSchema>;

// ---- child → parent ----

const isoTime = z.string().datetime({ offset: true });

export const ReadySchema = z.object({ type: z.literal("ready"), pid: z.number().int().positive() });

export const TrackOpenedSchema = z.object({
	type: z.literal("trackOpened"),
	requestId: RequestIdSchema.optional(),
	trackId: TrackIdSchema,
	/** UDP ports on 127.0.0.1: connect the PlainTransport (rtcpMux: false) to these. */
	rtpPort: z.number().int().min(1).max(65535),
	rtcpPort: z.number().int().min(1).max(65535),
});

/** Every frame of a track accounted for (sent with trackClosed and trackFailed). */
export const TrackStatsSchema = z.object({
	/** RTP packets that reached the recorder, and sequence numbers that never did (within the jitter window). */
	packets: z.number().int().nonnegative(),
	lostPackets: z.number().int().nonnegative(),
	/** Frames that reached the recorder (complete or not). */
	framesReceived: z.number().int().nonnegative(),
	/** Frames in objects stored in the bucket. */
	framesWritten: z.number().int().nonnegative(),
	/** Frames thrown away: incomplete (a packet lost), or undecodable until the next key frame. */
	framesDropped: z.number().int().nonnegative(),
});
export type TrackStats = z.infer<typeof TrackStatsSchema>;

export const HoleCauseSchema = z.enum([
	"network_loss",
	"overflow",
	"storage_outage",
	"recorder_crash",
	"gateway_crash",
	/** Cluster (issue 12 placement): the meeting's node was lost; the recording continues in a new session elsewhere. */
	"node_lost",
]);

/** A stretch of a track that is not in the bucket, in wall-clock time, with its cause. */
export const HoleSchema = z.object({
	from: isoTime,
	to: isoTime,
	cause: HoleCauseSchema,
	/** Frames known to be missing in it. */
	frames: z.number().int().nonnegative().optional(),
});
export type HoleEntry = z.infer<typeof HoleSchema>;

/** A track's first frame is in the muxer (its media is being recorded from `at` on). */
/** When a track's first frame passed each stage on its way into the muxer (Unix ms, the recorder's clock). */
export const StartStagesSchema = z.object({
	/** openTrack handled (ports bound). */
	opened: z.number().optional(),
	/** The first RTP packet read from the socket. */
	firstPacket: z.number().optional(),
	/** The first frame out of the depacketizer that starts an object (video: a key frame). */
	firstFrame: z.number().optional(),
	/** Its bytes out of the muxer (`at`). */
	muxed: z.number().optional(),
});
export type StartStages = z.infer<typeof StartStagesSchema>;

export const TrackStartedSchema = z.object({
	type: z.literal("trackStarted"),
	trackId: TrackIdSchema,
	/** The track's first frame is muxed: its bytes are out of the muxer, on their way to the bucket. */
	at: isoTime,
	stages: StartStagesSchema.optional(),
});

/** Sent the moment a track loses data (so the host can be warned), and listed in the track's manifest entry. */
export const TrackHoleSchema = z.object({
	type: z.literal("trackHole"),
	trackId: TrackIdSchema,
	hole: HoleSchema,
});

/** What the per-packet capture gate did with a track (issue 11), on the sender's clock (Unix ms). */
export const CaptureSummarySchema = z.object({
	openAt: z.number().nullable(),
	/** The close (click, or the gateway's close mapped) on the sender's clock: nothing captured after it is kept. */
	closeAt: z.number().nullable().optional(),
	firstCaptureAt: z.number().nullable(),
	lastCaptureAt: z.number().nullable(),
	/** Sender clock − gateway clock, ms (null: no sender report came). */
	clockOffsetMs: z.number().nullable(),
	packetsBeforeOpen: z.number().int().nonnegative(),
	packetsAfterClose: z.number().int().nonnegative(),
	packetsUndated: z.number().int().nonnegative(),
	senderReports: z.number().int().nonnegative(),
	/** Steps of the sender's clock seen in its reports (the latest report dates the packets after one). */
	clockSteps: z.number().int().nonnegative().optional(),
	/** The least capture → arrival delay of any recorded packet, on the gateway's clock (ms). */
	minTransitMs: z.number().nullable().optional(),
});
export type CaptureSummaryWire = z.infer<typeof CaptureSummarySchema>;

export const TrackClosedSchema = z.object({
	type: z.literal("trackClosed"),
	requestId: RequestIdSchema.optional(),
	trackId: TrackIdSchema,
	stats: TrackStatsSchema.optional(),
	capture: CaptureSummarySchema.optional(),
});

export const ObjectWrittenSchema = z.object({
	type: z.literal("objectWritten"),
	/** The track it belongs to; absent for objects completed by `recover`. */
	trackId: TrackIdSchema.optional(),
	/** Echoes the recover request's id. */
	requestId: RequestIdSchema.optional(),
	bucket: z.string().min(1),
	key: z.string().min(1),
	seq: z.number().int().positive(),
	size: z.number().int().nonnegative(),
	/** SHA-256 (hex) of the object's bytes, computed while streaming; absent when recovered (unknown). */
	sha256: z
		.string()
		.regex(/^[0-9a-f]{64}$/)
		.optional(),
	startedAt: isoTime,
	endedAt: isoTime,
	/** The object was completed by `recover` from the parts of a dead recorder. */
	recovered: z.boolean().optional(),
	/** The object ends early: the stream was cut (storage gave up, a crash) rather than finished. */
	truncated: z.boolean().optional(),
	/** Frames (blocks) in the object, when known (not for objects recovered from a dead recorder's parts). */
	frames: z.number().int().nonnegative().optional(),
	/** Its first frame's capture time on the sender's clock (Unix ms, issue 11), when a sender report dated it. */
	firstCaptureAt: z.number().optional(),
	/** Sender clock − gateway clock around its first frame (the reports within ±15 s): maps firstCaptureAt. */
	clockOffsetMs: z.number().optional(),
});
export type ObjectWritten = Omit<z.infer<typeof ObjectWrittenSchema>, "type">;

export const PartUploadedSchema = z.object({
	type: z.literal("partUploaded"),
	trackId: TrackIdSchema,
	seq: z.number().int().positive(),
	partNumber: z.number().int().min(1).max(10_000),
	size: z.number().int().positive(),
});
export type PartUploaded = Omit<z.infer<typeof PartUploadedSchema>, "type">;

export const KeyframeNeededSchema = z.object({ type: z.literal("keyframeNeeded"), trackId: TrackIdSchema });

export const TrackFailedCodeSchema = z.enum(["storage_unavailable", "storage_rejected", "internal_error"]);
/**
 * Sent the moment a track stops recording for good (e.g. the bucket stayed down past the buffer), before it
 * completes what it can and reports `objectWritten`s and `trackFailed`: the gateway tells people at once.
 */
export const TrackStoppingSchema = z.object({
	type: z.literal("trackStopping"),
	trackId: TrackIdSchema,
	code: TrackFailedCodeSchema,
	message: z.string(),
});

export const TrackFailedSchema = z.object({
	type: z.literal("trackFailed"),
	trackId: TrackIdSchema,
	code: TrackFailedCodeSchema,
	message: z.string(),
	stats: TrackStatsSchema.optional(),
});
export type TrackFailed = Omit<z.infer<typeof TrackFailedSchema>, "type">;

export const RecoveredSchema = z.object({
	type: z.literal("recovered"),
	requestId: RequestIdSchema.optional(),
	completed: z.number().int().nonnegative(),
	aborted: z.number().int().nonnegative(),
	/** Uploads that could not be completed or aborted now (left for a later `recover`). */
	failed: z.number().int().nonnegative().optional(),
});
export type Recovered = Omit<z.infer<typeof RecoveredSchema>, "type">;

export const ErrorReplySchema = z.object({
	type: z.literal("error"),
	requestId: RequestIdSchema.optional(),
	trackId: z.string().optional(),
	code: z.string().min(1),
	message: z.string(),
});
export type ErrorReply = Omit<z.infer<typeof ErrorReplySchema>, "type">;

export const TranscriptionOpenedSchema = z.object({
	type: z.literal("transcriptionOpened"),
	requestId: RequestIdSchema.optional(),
	trackId: TrackIdSchema,
	/** UDP ports on 127.0.0.1: connect the PlainTransport (rtcpMux: false) to these. */
	rtpPort: z.number().int().min(1).max(65535),
	rtcpPort: z.number().int().min(1).max(65535),
});

export const TranscriptionClosedSchema = z.object({
	type: z.literal("transcriptionClosed"),
	requestId: RequestIdSchema.optional(),
	trackId: TrackIdSchema,
	/** Milliseconds of audio the engine got. */
	audioMs: z.number().int().nonnegative(),
	/** What the per-packet capture gate did (issue 11), as for a recorded track. */
	capture: CaptureSummarySchema.optional(),
});
export type TranscriptionClosed = Omit<z.infer<typeof TranscriptionClosedSchema>, "type" | "requestId">;

/**
 * A piece of one track's transcript. Partials (`final: false`) may change; each utterance ends with one final
 * that replaces them. Times are ms from `streamStartedAt`, the track's first RTP packet.
 */
export const TranscriptSegmentSchema = z.object({
	type: z.literal("transcriptSegment"),
	trackId: TrackIdSchema,
	final: z.boolean(),
	text: z.string().max(100_000),
	startMs: z.number().int().nonnegative(),
	endMs: z.number().int().nonnegative(),
	words: z.array(TranscriptWordSchema).max(20_000).optional(),
	streamStartedAt: isoTime,
	/**
	 * The segment's start and end as capture times (issue 11): on the sender's clock (Unix ms) and mapped to the
	 * gateway's (the session's one clock, as objects' `firstFrameAt`). Absent when no sender report dated the audio.
	 */
	captureStartAt: z.number().finite().optional(),
	captureEndAt: z.number().finite().optional(),
	clockOffsetMs: z.number().finite().optional(),
	/** Which engine produced it. */
	engine: z.enum(["pocketsphinx", "aws", "vosk", "openai"]),
});
export type TranscriptSegmentMessage = Omit<z.infer<typeof TranscriptSegmentSchema>, "type">;

export const TranscriptionFailedCodeSchema = z.enum([
	"engine_unavailable",
	"engine_failed",
	"engine_rejected",
	"decoder_failed",
	"internal_error",
]);
export const TranscriptionFailedSchema = z.object({
	type: z.literal("transcriptionFailed"),
	trackId: TrackIdSchema,
	code: TranscriptionFailedCodeSchema,
	message: z.string(),
});
export type TranscriptionFailed = Omit<z.infer<typeof TranscriptionFailedSchema>, "type">;

/**
 * A track (recording or transcription) whose packets no sender report could date for `heldMs` (issue 11): none of
 * it is recorded or transcribed until one does (`reports`: reports seen that matched none of its packets). Tell the
 * hosts why.
 */
export const TrackUndatableSchema = z.object({
	type: z.literal("trackUndatable"),
	trackId: TrackIdSchema,
	heldMs: z.number().nonnegative(),
	packets: z.number().int().nonnegative(),
	reports: z.number().int().nonnegative(),
});
export type TrackUndatable = Omit<z.infer<typeof TrackUndatableSchema>, "type">;

/**
 * Every few seconds while tracks record: each track's buffer (bytes held for the bucket, out of its limit) and the
 * upload requests retried since the previous report (the gateway's metrics).
 */
export const UploadStatsSchema = z.object({
	type: z.literal("uploadStats"),
	tracks: z
		.array(
			z.object({
				trackId: TrackIdSchema,
				bufferedBytes: z.number().int().nonnegative(),
				bufferLimit: z.number().int().positive(),
				retries: z.number().int().nonnegative(),
			}),
		)
		.max(10_000),
	/** Checkpoint uploads (the tails, every 2 s) retried since the previous report, all sessions together. */
	checkpointRetries: z.number().int().nonnegative().default(0),
});
export type UploadStats = Omit<z.infer<typeof UploadStatsSchema>, "type">;

export const ChildMessageSchema = z.discriminatedUnion("type", [
	ReadySchema,
	UploadStatsSchema,
	TrackUndatableSchema,
	TrackOpenedSchema,
	TrackClosedSchema,
	ObjectWrittenSchema,
	PartUploadedSchema,
	KeyframeNeededSchema,
	TrackHoleSchema,
	TrackStartedSchema,
	TrackStoppingSchema,
	TrackFailedSchema,
	RecoveredSchema,
	ErrorReplySchema,
	TranscriptionOpenedSchema,
	TranscriptionClosedSchema,
	TranscriptSegmentSchema,
	TranscriptionFailedSchema,
]);
export type ChildMessage = z.infer<typeof ChildMessageSchema>;

export type ParseResult<T> = { ok: true; message: T } | { ok: false; requestId?: string; error: string };

function describe(error: z.ZodError): string {
	return error.issues
		.slice(0, 8)
		.map((i) => `${i.path.length ? i.path.join(".") : "(message)"}: ${i.message}`)
		.join("; ");
}

function requestIdOf(raw: unknown): string | undefined {
	const id = (raw as { requestId?: unknown } | null)?.requestId;
	return typeof id === "string" && id.length > 0 && id.length <= 128 ? id : undefined;
}

/** Validates a parent→child message; the error names the failing fields (never the secrets' values). */
export function parseParentMessage(raw: unknown): ParseResult<ParentMessage> {
	const result = ParentMessageSchema.safeParse(raw);
	if (result.success) return { ok: true, message: result.data };
	const requestId = requestIdOf(raw);
	return { ok: false, ...(requestId ? { requestId } : {}), error: `invalid message: ${describe(result.error)}` };
}

/** Validates a child→parent message. */
export function parseChildMessage(raw: unknown): ParseResult<ChildMessage> {
	const result = ChildMessageSchema.safeParse(raw);
	if (result.success) return { ok: true, message: result.data };
	return { ok: false, error: `invalid message from the recorder: ${describe(result.error)}` };
}

/** The container a track's objects are written in: WebM for Opus and VP8, Matroska for H.264 (WebM can't carry it). */
export type Container = "webm" | "mkv";

export function containerOf(mimeType: Codec["mimeType"]): Container {
	return mimeType === "video/H264" ? "mkv" : "webm";
}

/** The Content-Type an object of this container and track kind is stored with. */
export function contentTypeOf(container: Container, kind: TrackKind): string {
	if (container === "mkv") return kind === "audio" ? "audio/x-matroska" : "video/x-matroska";
	return kind === "audio" ? "audio/webm" : "video/webm";
}

/** The object key of segment `seq` of a track (`container`: the file name's extension, default `webm`). */
export function objectKey(key: TrackKey, seq: number, container: Container = "webm"): string {
	const name = `${key.meetingId}/${key.sessionId}/${key.person}-${key.kind}-${seq}.${container}`;
	return key.prefix ? `${key.prefix}/${name}` : name;
}

/**
 * The name of a session's checkpoint object, `{ms}-{n}.ckpt` in the session's folder: a JSON index line
 * `{ v: 1, at, entries: [{ key, offset, size, at, frames }] }` (each piece: an object's bytes [offset, offset + size),
 * found at `at` after the index line), then the pieces.
 */
export function checkpointKey(at: number, n: number): string {
	return `${at}-${n}.ckpt`;
}

/** True for a checkpoint object's key. */
export function isCheckpointKey(key: string): boolean {
	return /\/\d{1,15}-\d{1,12}\.ckpt$/.test(key);
}

/** The inverse of objectKey under `prefix`; undefined for keys the recorder did not write. */
export function parseObjectKey(
	prefix: string,
	objectKeyValue: string,
): (TrackKey & { seq: number; container: Container }) | undefined {
	const base = prefix ? `${prefix}/` : "";
	if (!objectKeyValue.startsWith(base)) return undefined;
	const m =
		/^([A-Za-z0-9_-]{1,128})\/([A-Za-z0-9_-]{1,128})\/([A-Za-z0-9_-]{1,128})-(audio|camera|screen)-([1-9]\d{0,8})\.(webm|mkv)$/.exec(
			objectKeyValue.slice(base.length),
		);
	if (!m) return undefined;
	const [, meetingId, sessionId, person, kind, seq, container] = m as unknown as [
		string,
		string,
		string,
		string,
		TrackKind,
		string,
		Container,
	];
	return { prefix, meetingId, sessionId, person, kind, seq: Number(seq), container };
}

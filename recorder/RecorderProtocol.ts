import { z } from "zod";
import { storageTargetSchema } from "../server/storage/StorageTargetTypes.js";

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

/** Where a track's segments go: `{prefix}/{meetingId}/{sessionId}/{person}-{kind}-{seq}.webm`. */
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
		mimeType: z.enum(["audio/opus", "video/VP8"]),
		payloadType: z.number().int().min(0).max(127),
		clockRate: z.number().int().positive(),
		channels: z.number().int().min(1).max(8).optional(),
	})
	.refine((c) => (c.kind === "audio") === (c.mimeType === "audio/opus"), {
		message: "kind must match mimeType (audio ↔ audio/opus, video ↔ video/VP8)",
		path: ["mimeType"],
	})
	.refine((c) => c.clockRate === (c.mimeType === "audio/opus" ? 48000 : 90000), {
		message: "clockRate must be 48000 for Opus and 90000 for VP8",
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
	options: OpenTrackOptionsSchema.optional(),
});

export const CloseTrackSchema = z.object({
	type: z.literal("closeTrack"),
	requestId: RequestIdSchema.optional(),
	trackId: TrackIdSchema,
});

export const RecoverSchema = z.object({
	type: z.literal("recover"),
	requestId: RequestIdSchema.optional(),
	target: WireStorageTargetSchema,
	/** The key prefix the tracks were opened with (`key.prefix`). */
	prefix: KeyPrefixSchema,
	/** Uploads still being written by a live recorder: never touched. */
	liveUploadIds: z.array(z.string().min(1).max(1024)).max(100_000).optional(),
	/** Only uploads whose key's sessionId is one of these are completed or aborted. */
	ownedSessionIds: z.array(safeSegment("sessionId")).max(100_000),
	options: EndpointOptionsSchema.optional(),
});

export const ShutdownSchema = z.object({ type: z.literal("shutdown"), requestId: RequestIdSchema.optional() });

export const ParentMessageSchema = z.discriminatedUnion("type", [
	OpenTrackSchema,
	CloseTrackSchema,
	RecoverSchema,
	ShutdownSchema,
]);
export type ParentMessage = z.infer<typeof ParentMessageSchema>;
export type OpenTrackMessage = z.infer<typeof OpenTrackSchema>;
export type CloseTrackMessage = z.infer<typeof CloseTrackSchema>;
export type RecoverMessage = z.infer<typeof RecoverSchema>;

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

export const TrackClosedSchema = z.object({
	type: z.literal("trackClosed"),
	requestId: RequestIdSchema.optional(),
	trackId: TrackIdSchema,
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
	/** The object ends early: the stream was cut (ffmpeg killed, storage gave up) rather than finished. */
	truncated: z.boolean().optional(),
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

export const TrackFailedCodeSchema = z.enum([
	"storage_unavailable",
	"storage_rejected",
	"ffmpeg_failed",
	"ffmpeg_unavailable",
	"internal_error",
]);
export const TrackFailedSchema = z.object({
	type: z.literal("trackFailed"),
	trackId: TrackIdSchema,
	code: TrackFailedCodeSchema,
	message: z.string(),
});
export type TrackFailed = Omit<z.infer<typeof TrackFailedSchema>, "type">;

export const SegmentRestartedSchema = z.object({
	type: z.literal("segmentRestarted"),
	trackId: TrackIdSchema,
	/** The new segment's sequence number. */
	seq: z.number().int().positive(),
	reason: z.string(),
});
export type SegmentRestarted = Omit<z.infer<typeof SegmentRestartedSchema>, "type">;

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

export const ChildMessageSchema = z.discriminatedUnion("type", [
	ReadySchema,
	TrackOpenedSchema,
	TrackClosedSchema,
	ObjectWrittenSchema,
	PartUploadedSchema,
	KeyframeNeededSchema,
	TrackFailedSchema,
	SegmentRestartedSchema,
	RecoveredSchema,
	ErrorReplySchema,
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

/** The object key of segment `seq` of a track. */
export function objectKey(key: TrackKey, seq: number): string {
	const name = `${key.meetingId}/${key.sessionId}/${key.person}-${key.kind}-${seq}.webm`;
	return key.prefix ? `${key.prefix}/${name}` : name;
}

/** The inverse of objectKey under `prefix`; undefined for keys the recorder did not write. */
export function parseObjectKey(prefix: string, objectKeyValue: string): (TrackKey & { seq: number }) | undefined {
	const base = prefix ? `${prefix}/` : "";
	if (!objectKeyValue.startsWith(base)) return undefined;
	const m =
		/^([A-Za-z0-9_-]{1,128})\/([A-Za-z0-9_-]{1,128})\/([A-Za-z0-9_-]{1,128})-(audio|camera|screen)-([1-9]\d{0,8})\.webm$/.exec(
			objectKeyValue.slice(base.length),
		);
	if (!m) return undefined;
	const [, meetingId, sessionId, person, kind, seq] = m as unknown as [
		string,
		string,
		string,
		string,
		TrackKind,
		string,
	];
	return { prefix, meetingId, sessionId, person, kind, seq: Number(seq) };
}

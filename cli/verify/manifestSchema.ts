import { z } from "zod";

/**
 * What `manifest.json` must look like (server/recording/RecordingTypes.ts, `consentry.recording.manifest` v2), as
 * the verifier reads it: only the fields it checks are required, unknown ones are kept (a newer gateway may add
 * some). Every problem is reported, with its path, never thrown.
 */
const hash = z.string().regex(/^[0-9a-f]{64}$/, "a lowercase hex SHA-256");
const isoTime = z.iso.datetime({ offset: true });
const count = z.number().int().nonnegative();
const unixMs = z.number().finite();

export const HoleSchema = z.looseObject({
	from: isoTime,
	to: isoTime,
	cause: z.string().min(1),
	frames: count.optional(),
});

export const ManifestObjectSchema = z.looseObject({
	key: z.string().min(1).max(1024),
	seq: z.number().int().positive(),
	size: count,
	sha256: hash.nullable(),
	startedAt: isoTime,
	endedAt: isoTime,
	truncated: z.boolean().optional(),
	recovered: z.boolean().optional(),
	frames: count.optional(),
	firstCaptureAt: unixMs.optional(),
	firstFrameAt: unixMs.optional(),
});

export const CaptureSchema = z.looseObject({
	clickAt: unixMs.nullable(),
	firstCaptureAt: unixMs.nullable(),
	lastCaptureAt: unixMs.nullable(),
	clockOffsetMs: z.number().finite().nullable(),
	packetsBeforeClick: count,
	packetsUndated: count,
	senderReports: count,
	minTransitMs: z.number().finite().nullable().optional(),
});

export const ManifestTrackSchema = z.looseObject({
	trackId: z.string().min(1),
	person: z.string().min(1),
	kind: z.enum(["audio", "camera", "screen"]),
	producerId: z.string().min(1),
	openedAt: isoTime,
	closedAt: isoTime.nullable(),
	closeReason: z.string().nullable(),
	coveredBy: z.looseObject({ type: z.string(), seq: z.number().int().positive(), hash, at: isoTime }).nullable(),
	framesReceived: count.nullable(),
	framesWritten: count.nullable(),
	holes: z.array(HoleSchema).max(1_000_000),
	capture: CaptureSchema.optional(),
	objects: z.array(ManifestObjectSchema).max(1_000_000),
});

const headSchema = z.looseObject({ seq: z.number().int().positive(), hash }).nullable();

export const ManifestSchema = z.looseObject({
	kind: z.literal("consentry.recording.manifest"),
	version: z.literal(2),
	tenant: z.string().min(1),
	meeting: z.string().min(1),
	session: z.string().min(1),
	policy: z.looseObject({ name: z.enum(["notice", "explicit-consent"]), version: z.number() }),
	startedAt: isoTime,
	endedAt: isoTime,
	endReason: z.string(),
	persons: z.array(z.string()).max(100_000),
	notRecorded: z.array(z.string()).max(100_000),
	tracks: z.array(ManifestTrackSchema).max(100_000),
	chat: z.looseObject({ key: z.string().min(1), size: count, sha256: hash, messages: count }),
	audit: z.looseObject({
		key: z.string().min(1),
		size: count,
		sha256: hash,
		chainHead: headSchema,
		meetingHead: headSchema,
	}),
});

export type VerifiedManifest = z.infer<typeof ManifestSchema>;
export type VerifiedTrack = z.infer<typeof ManifestTrackSchema>;
export type VerifiedObject = z.infer<typeof ManifestObjectSchema>;

/** One line of chat.jsonl. */
export const ChatLineSchema = z.looseObject({ at: isoTime, from: z.string().nullable(), text: z.string() });

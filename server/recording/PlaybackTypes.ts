import { z } from "zod";
import type { Manifest } from "./RecordingTypes.js";

/** `/r/{sessionId}` and `/api/recordings/{sessionId}`: a recording session's ID (a UUID). */
export const SessionParams = z.object({
	sessionId: z.string().regex(/^[0-9a-fA-F-]{36}$/, "not a recording session ID"),
});

/** A recording session as the trail knows it. */
export interface PlaybackSession {
	tenantId: string;
	meetingId: string;
	sessionId: string;
	/** When the session began (its `session.on`). */
	startedAt: string;
	/** When it paused or stopped (null: still running). */
	endedAt: string | null;
	/** The tenant's link lifetime, counted from the session's start. */
	expiresAt: string;
	/** The host revoked the page (a `recording.playback_revoked` of this session). */
	revoked: boolean;
	/** The session's manifest in the bucket (bucket + key), once written. */
	manifest: { bucket: string; key: string } | null;
}

/** One person of the session, as the evidence panel shows them (all from the gateway's trail and the manifest). */
export interface EvidencePerson {
	/** Pseudonym (`psn_…`): the trail and the bucket name nobody. */
	person: string;
	/** A display name when the transcript gave one (people who spoke), else null. */
	displayName: string | null;
	role: string | null;
	/** The person opening the page. */
	you: boolean;
	/** When the gateway sent them this session's notice, when their client showed it. */
	notifiedAt: string | null;
	shownAt: string | null;
	/** Their answer (acknowledged, consented, declined, withdrew) and when; null: never answered. */
	answer: { type: string; at: string } | null;
	/** Intervals in the bucket, per track, on the gateway's clock. */
	recorded: { kind: string; from: string; to: string }[];
	/** Declined and stayed unrecorded (the manifest's `notRecorded`). */
	notRecorded: boolean;
}

export interface Evidence {
	persons: EvidencePerson[];
	holes: { person: string; kind: string; from: string; to: string; cause: string; frames?: number }[];
	endReason: string;
}

/** One transcript line, placed on the session's wall clock. */
export interface PlaybackTranscriptLine {
	speaker: string;
	displayName: string;
	start: string;
	end: string;
	text: string;
}

/** What `GET /api/recordings/{sessionId}` answers. */
export interface PlaybackView {
	meeting: { id: string; title: string };
	sessionId: string;
	startedAt: string;
	endedAt: string | null;
	expiresAt: string;
	manifest: Manifest;
	/** Presigned GET URL of each object key of the manifest (and of manifest.json, audit.jsonl, chat.jsonl). */
	urls: Record<string, string>;
	files: { manifest: string; audit: string | null; chat: string | null };
	transcript: { lines: PlaybackTranscriptLine[]; disclaimers: { en: string; fr: string } } | null;
	evidence: Evidence;
	urlsExpireInSeconds: number;
}

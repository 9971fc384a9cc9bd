import { z } from "zod";

/** What a capture session feeds: a recording (to the customer's bucket) or a transcription engine. */
export type CaptureKind = "recording" | "transcription";

/**
 * A named, versioned notice/consent policy.
 * - `notice`: the notice is shown; staying is consent (the terms' default).
 * - `explicit-consent`: all-party consent jurisdictions; each person, host
 *   included, must press "I consent" before their media is captured.
 */
export const CapturePolicySchema = z.object({
	name: z.enum(["notice", "explicit-consent"]),
	version: z.number().int().positive(),
	/** A person who has not acknowledged (or consented) within this time is reported as not covered. */
	ackTimeoutMs: z.number().int().min(1000).max(600_000).default(30_000),
});
export type CapturePolicy = z.infer<typeof CapturePolicySchema>;

export const DEFAULT_POLICY: CapturePolicy = { name: "notice", version: 1, ackTimeoutMs: 30_000 };

export type CaptureState = "off" | "on" | "paused";

/** One turn-on (start or resume) of recording or transcription. */
export interface CaptureSession {
	id: string;
	kind: CaptureKind;
	meetingId: string;
	policy: CapturePolicy;
	/** Person key of who turned it on. */
	startedBy: string;
	startedAt: string;
}

/** The notice of one session shown to one person. */
export interface Notice {
	id: string;
	sessionId: string;
	kind: CaptureKind;
	person: string;
	policy: CapturePolicy;
	startedBy: string;
	since: string;
	/** True when the person must press "I consent" (explicit-consent policy). */
	consentRequired: boolean;
}

/** Where one person stands in the current session. */
export type Coverage = "pending" | "acknowledged" | "consented" | "declined";

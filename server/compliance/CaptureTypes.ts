import { z } from "zod";
import { TranscriptionEngineSpecSchema } from "../../contracts/RecorderProtocol.js";
import type { CaptureKind } from "../../shared/protocol.js";

export type { CaptureKind };

export const PolicyName = z.enum(["notice", "explicit-consent"]);
export type PolicyName = z.infer<typeof PolicyName>;

/**
 * A named, versioned notice/consent policy.
 * - `notice`: the notice is shown; staying is consent (the terms' default).
 * - `explicit-consent`: all-party consent jurisdictions; each person, host
 *   included, must press "I consent" before their media is captured.
 */
export const CapturePolicySchema = z.object({
	name: PolicyName,
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
	/**
	 * Cluster (issue 12): the session this one continues, and why there is a gap between them (its meeting's node was
	 * lost). Set by {@link CaptureService.continueAfterNodeLoss}; the recording's manifest carries it.
	 */
	continues?: SessionContinuation;
}

/** A session a re-homed meeting's new home started to continue the one its lost node held. */
export interface SessionContinuation {
	/** The lost node's session (its manifest says `endReason: node_lost`). */
	session: string;
	cause: "node_lost";
	/** The node that was lost. */
	lostNode: string;
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

const NoticeTextSchema = z.object({
	title: z.string().trim().min(1).max(200),
	body: z.string().trim().min(1).max(2000),
});
export type NoticeText = z.infer<typeof NoticeTextSchema>;

export const LOCALES = ["en", "fr"] as const;
export type Locale = (typeof LOCALES)[number];

/** A tenant's own notice texts, per locale, per kind, and for the consent variant. All optional: defaults fill in. */
const TenantTextsSchema = z
	.object({
		recording: NoticeTextSchema,
		transcription: NoticeTextSchema,
		recordingConsent: NoticeTextSchema,
		transcriptionConsent: NoticeTextSchema,
		transcriptionDisclaimer: z.string().trim().min(1).max(1000),
	})
	.partial();
export type TenantTexts = z.infer<typeof TenantTextsSchema>;

/**
 * A tenant's capture settings (the tenants file, `capture`): the policy in force
 * unless a meeting overrides it, the current version of each policy (bump it when
 * the legal text or rule changes: every session records the version it ran under),
 * how long a person may take to acknowledge, and the notice texts.
 */
export const TenantCaptureSchema = z.object({
	policy: PolicyName.default("notice"),
	versions: z
		.object({
			notice: z.number().int().positive().default(1),
			"explicit-consent": z.number().int().positive().default(1),
		})
		.default({ notice: 1, "explicit-consent": 1 }),
	ackTimeoutMs: z.number().int().min(1000).max(600_000).default(30_000),
	/** Who may turn transcription on: any member (the terms' default) or only the host and co-hosts. */
	transcription: z.enum(["all", "host"]).default("all"),
	/**
	 * The transcription engine: the embedded pocketsphinx (default), or AWS Transcribe Streaming with the tenant's
	 * own AWS credentials (its audio then goes to the tenant's AWS account). Validated like the recorder does.
	 */
	transcriptionEngine: TranscriptionEngineSpecSchema.default({ type: "pocketsphinx" }),
	/** How long a transcript link (/t/{id}) stays valid, in seconds (default 30 days). */
	transcriptLinkSeconds: z
		.number()
		.int()
		.min(1)
		.max(366 * 86_400)
		.default(30 * 86_400),
	texts: z.object({ en: TenantTextsSchema.optional(), fr: TenantTextsSchema.optional() }).default({}),
	/**
	 * What declining a notice (or withdrawing consent) does: leave the meeting (the terms' rule, default), or stay
	 * in it, never captured in that session, everyone seeing they are not recorded.
	 */
	onDecline: z.enum(["leave", "stay-unrecorded"]).default("leave"),
	/** The customer's own privacy notice (https URL), linked from every notice and from the join page. */
	privacyNoticeUrl: z
		.string()
		.url()
		.max(500)
		.refine((u) => u.startsWith("https://"), "must be an https:// URL")
		.optional(),
});
export type TenantCapture = z.infer<typeof TenantCaptureSchema>;

export const DEFAULT_TENANT_CAPTURE: TenantCapture = TenantCaptureSchema.parse({});

/** The policy in force for a meeting: the meeting's override, else the tenant's, at the tenant's current version. */
export function resolvePolicy(tenant: TenantCapture, meetingOverride: PolicyName | undefined): CapturePolicy {
	const name = meetingOverride ?? tenant.policy;
	return { name, version: tenant.versions[name], ackTimeoutMs: tenant.ackTimeoutMs };
}

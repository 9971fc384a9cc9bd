import { z } from "zod";
import { TenantKeySchema, TenantLimitsSchema, TenantRetentionSchema, TenantSchema } from "../auth/TenantTypes.js";
import { TenantCaptureSchema } from "../compliance/CaptureTypes.js";

/** The operator's own verification keys (`CONSENTRY_OPERATOR_KEYS_FILE`): configured like a tenant's keys. */
export const OperatorKeysFileSchema = z.object({ keys: z.array(TenantKeySchema).min(1).max(16) });

/** Who calls an operator route: the verified operator token's subject. */
export interface OperatorIdentity {
	role: "operator";
	/** The operator person (`sub`), named in every `operator.action` entry. */
	subject: string;
	jti?: string;
}

/** Why the operator acts: every action carries one (it lands in the affected tenant's audit chain). */
export const ReasonSchema = z.object({ reason: z.string().trim().min(1).max(500) });

const uniqueKids = (keys: { kid?: string | undefined }[]) => {
	const kids = keys.map((k) => k.kid).filter((k) => k !== undefined);
	return new Set(kids).size === kids.length;
};

/** A new tenant, as the operator API takes it (the tenants file's shape). */
export const CreateTenantSchema = TenantSchema.extend({ reason: z.string().trim().min(1).max(500).optional() }).refine(
	(t) => uniqueKids(t.keys),
	{ message: "each key's kid must be unique", path: ["keys"] },
);

/**
 * A change to a tenant: any of its fields (the ID stays). Rotating keys: send the old and the new key (distinct
 * `kid`s) so tokens signed with either pass, then the new one alone once the customer signs with it.
 */
export const UpdateTenantSchema = z
	.object({
		name: z.string().min(1).max(200).optional(),
		keys: z.array(TenantKeySchema).min(1).max(16).optional(),
		capture: TenantCaptureSchema.optional(),
		locale: z.enum(["en", "fr"]).optional(),
		/** Limits, applied on the next start or join in every process (an empty object lifts them all). */
		limits: TenantLimitsSchema.optional(),
		/** Issue 14: days the store keeps the tenant's meetings and audit entries (at least 7). */
		retention: TenantRetentionSchema.optional(),
		reason: z.string().trim().min(1).max(500),
	})
	.refine((t) => t.keys === undefined || uniqueKids(t.keys), {
		message: "each key's kid must be unique",
		path: ["keys"],
	});

/** Issue 14: the operator's security hold on log files (server/privacy/SecurityHold.ts): why, and until when. */
export const SecurityHoldSchema = z.object({
	reason: z.string().trim().min(1).max(500),
	until: z.iso.datetime({ offset: true }).describe("When the hold lapses by itself: at most 90 days away."),
});

export const TenantParams = z.object({
	tenantId: z
		.string()
		.min(1)
		.max(64)
		.regex(/^[a-z0-9][a-z0-9._-]*$/, "tenant IDs are lowercase letters, digits, '.', '_' and '-'"),
});

export const SubjectParams = TenantParams.extend({ subject: z.string().min(1).max(256) });

export const MeetingParams = z.object({ id: z.string().min(1).max(64) });

export const ChatParams = MeetingParams.extend({ messageId: z.uuid() });

export const LinkIdParams = z.object({ linkId: z.string().min(1).max(128) });

/** A warning to one person (`subject`) or, without it, everyone of the tenant; shown until each acknowledges it. */
export const WarningSchema = z.object({
	subject: z.string().min(1).max(256).optional(),
	message: z.string().trim().min(1).max(1000),
	reason: z.string().trim().min(1).max(500),
});

/** Revoke one token (`jti`, with its `exp` so the deny-list entry can lapse) or every token of a subject issued before a time. */
export const RevocationSchema = z.union([
	z.object({
		jti: z.string().min(1).max(256),
		/** The token's `exp` (seconds): the entry is kept until then. Default: the longest lifetime (24 h) from now. */
		exp: z.number().int().positive().optional(),
		reason: z.string().trim().min(1).max(500),
	}),
	z.object({
		subject: z.string().min(1).max(256),
		/** Seconds since the epoch; default: now. Tokens of this subject with an older (or no) `iat` are refused. */
		issuedBefore: z.number().int().positive().optional(),
		reason: z.string().trim().min(1).max(500),
	}),
]);

/** One live meeting as the operator sees it: metadata only (never media, chat or titles). */
export const OperatorMeetingSchema = z
	.object({
		id: z.string(),
		tenantId: z.string(),
		/** The host as a pseudonym of the tenant's audit chain (docs/audit.md), never their subject. */
		host: z.string().nullable(),
		startedAt: z.string().nullable(),
		/** People in it on gateway processes sharing the store that answered (this process: exact). */
		size: z.number().int(),
		capture: z.object({ recording: z.string(), transcription: z.string() }),
		disabled: z.boolean(),
	})
	.meta({ id: "OperatorMeeting" });
export type OperatorMeeting = z.infer<typeof OperatorMeetingSchema>;

/** What each change in the feed (table `operator_changes`) asks every gateway process to do. */
export type ChangeKind =
	/** A tenant was created, updated, suspended, reinstated, terminated or deleted: reload, eject if not active. */
	| "tenant"
	/** A person was suspended, terminated or reinstated. */
	| "subject"
	/** A token was revoked, or a subject's tokens issued before a time. */
	| "revocation"
	/** The operator ended a meeting: eject everyone in it here. */
	| "meeting_end"
	/** A warning to a person or a whole tenant: show it to their sessions here. */
	| "warning"
	/** A chat message removed: off every screen, marked in the recording's chat log. */
	| "chat_remove"
	/** Every screen share of a meeting stopped. */
	| "share_stop";

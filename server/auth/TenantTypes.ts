import { z } from "zod";
import { TenantCaptureSchema } from "../compliance/CaptureTypes.js";

/** A token verification key a tenant registered. The algorithm is pinned per key. */
export const TenantKeySchema = z.discriminatedUnion("alg", [
	z.object({
		kid: z.string().min(1).max(64).optional(),
		alg: z.literal("HS256"),
		/** Shared secret, at least 32 bytes. */
		secret: z.string().min(32, "HS256 secrets must be at least 32 characters"),
	}),
	z.object({
		kid: z.string().min(1).max(64).optional(),
		alg: z.enum(["RS256", "ES256"]),
		/** PEM public key (SPKI). */
		publicKey: z.string().includes("PUBLIC KEY", { message: "publicKey must be a PEM public key" }),
	}),
]);
export type TenantKey = z.infer<typeof TenantKeySchema>;

/**
 * What the operator allows a tenant (docs/operator.md#limits): applied live, on the next start or join (never by
 * dropping people already in). Unset: no limit beyond the gateway's own.
 */
export const TenantLimitsSchema = z
	.object({
		/** Live meetings the tenant may hold at once: a start beyond it is refused (`tenant_limit_reached`). */
		maxLiveMeetings: z.number().int().min(0).max(1_000_000).optional(),
		/** People in one meeting (also caps each meeting's own setting): a join beyond it is `meeting_full`. */
		maxParticipants: z.number().int().min(1).max(500).optional(),
		/** Minutes a meeting may run: after that, nobody new joins (`meeting_too_long`); those in it stay. */
		maxMeetingMinutes: z
			.number()
			.int()
			.min(1)
			.max(7 * 24 * 60)
			.optional(),
		/** false: recording can't be turned on (`recording_not_allowed`). */
		recording: z.boolean().optional(),
		/** false: transcription can't be turned on (`transcription_not_allowed`). */
		transcription: z.boolean().optional(),
		/** false: no guest joins (`guests_not_allowed`), whatever the meeting's setting. */
		guests: z.boolean().optional(),
	})
	.strict();
export type TenantLimits = z.infer<typeof TenantLimitsSchema>;

/** Issue 14: how long the store keeps a tenant's meetings and audit entries (docs/privacy.md, "Retention"). */
export const DEFAULT_RETENTION_DAYS = 365;
export const MIN_RETENTION_DAYS = 7;
export const MAX_RETENTION_DAYS = 3650;
export const TenantRetentionSchema = z
	.object({
		days: z
			.number()
			.int()
			.min(
				MIN_RETENTION_DAYS,
				`retention.days must be at least ${MIN_RETENTION_DAYS}: the customer needs that long to export a meeting's trail`,
			)
			.max(MAX_RETENTION_DAYS, `retention.days must be at most ${MAX_RETENTION_DAYS}`),
	})
	.strict();

export const TenantSchema = z.object({
	/** The tenant's ID; tokens carry it as `iss`. */
	id: z
		.string()
		.min(1)
		.max(64)
		.regex(/^[a-z0-9][a-z0-9._-]*$/, "tenant IDs are lowercase letters, digits, '.', '_' and '-'"),
	name: z.string().min(1).max(200),
	keys: z.array(TenantKeySchema).min(1).max(16),
	/** Recording/transcription notice policy and texts (docs/compliance.md). Defaults: `notice`, v1, 30 s, built-in texts. */
	capture: TenantCaptureSchema.optional(),
	/** The language of the meeting pages for people whose browser prefers neither English nor French. */
	locale: z.enum(["en", "fr"]).optional(),
	/** What the operator allows this tenant (set through the operator API). */
	limits: TenantLimitsSchema.optional(),
	/** Issue 14: days its meetings and audit entries stay in the store (default 365, at least 7). */
	retention: TenantRetentionSchema.optional(),
});
export type Tenant = z.infer<typeof TenantSchema>;

/** The tenant's state: `suspended` refuses their tokens (`account_suspended`) until reinstated; `terminated` is final. */
export type TenantState = "active" | "suspended" | "terminated";

export const TenantsFileSchema = z.object({ tenants: z.array(TenantSchema).max(10_000) });

/** `admin`: the Customer's administrator (manages the tenant's storage target); not a meeting role. */
export type Role = "host" | "participant" | "admin";

/** Who is calling, as established from a verified token (or a guest join). */
export interface Identity {
	tenantId: string;
	/** The person, as the tenant names them (`sub`). Guests get a random one. */
	subject: string;
	role: Role | "guest";
	displayName?: string;
	/** When set, the token is only good for this meeting. */
	meetingScope?: string;
	/** The token's `jti` (revocation by token; docs/operator.md). */
	jti?: string;
	/** The token's `iat`, seconds (revocation of "every token issued before T"). */
	issuedAt?: number;
}

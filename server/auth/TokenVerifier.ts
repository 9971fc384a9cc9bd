import { createPublicKey, type KeyObject } from "node:crypto";
import jwt from "jsonwebtoken";
import { z } from "zod";
import { AuthenticationError, ConfigError, ForbiddenError } from "../errors.js";
import type { TenantRegistry } from "./TenantRegistry.js";
import type { Identity, TenantKey } from "./TenantTypes.js";

export interface TokenVerifierOptions {
	/** The `aud` every token must carry: this gateway. */
	audience: string;
	/** Clock skew tolerated on `exp`/`nbf`/`iat`, seconds (bounded to 120). */
	clockToleranceSec?: number;
	/** Longest accepted token lifetime, seconds: `exp` at most this far past the verifier's clock (and past `iat`). */
	maxLifetimeSec?: number;
	/** The verifier's clock, ms since the epoch (tests). */
	now?: () => number;
	/**
	 * What the operator cut off (server/operator/TenantDirectory.ts): throws `account_suspended` (403) for a suspended
	 * or terminated tenant or person, `token_revoked` (401) for a revoked token. Runs after the signature checks.
	 */
	gate?: { check(identity: Identity): void };
}

/** The `iss` of the operator's tokens: no tenant can have it (tenant IDs have no ':'). */
export const OPERATOR_ISSUER = "consentry:operator";

const ClaimsSchema = z.object({
	iss: z.string().min(1),
	sub: z.string().min(1).max(256),
	aud: z.union([z.string(), z.array(z.string())]),
	exp: z.number().int(),
	iat: z.number().int().optional(),
	nbf: z.number().int().optional(),
	role: z.enum(["host", "participant", "admin"]),
	name: z.string().trim().min(1).max(64).optional(),
	meeting: z.string().min(1).max(64).optional(),
	jti: z.string().min(1).max(256).optional(),
});

/**
 * Verifies host and participant JWTs. The tenant is found from `iss`; the
 * signature is checked only with that tenant's keys, each pinned to its own
 * algorithm (never `none`, no HS/RS confusion). `exp` is required and at most
 * the lifetime cap away on the verifier's clock, `nbf` honoured, an `iat` in the
 * future refused, skew bounded; every rejection is an AuthenticationError with a
 * reason code.
 */
export class TokenVerifier {
	readonly #tenants: TenantRegistry;
	readonly #audience: string;
	readonly #skew: number;
	readonly #maxLifetime: number;
	readonly #now: () => number;
	readonly #keyObjects = new WeakMap<TenantKey, KeyObject | Buffer>();
	readonly #gate: TokenVerifierOptions["gate"];

	constructor(tenants: TenantRegistry, options: TokenVerifierOptions) {
		this.#gate = options.gate;
		this.#tenants = tenants;
		this.#audience = options.audience;
		this.#skew = Math.min(120, Math.max(0, options.clockToleranceSec ?? 30));
		this.#maxLifetime = options.maxLifetimeSec ?? 24 * 3600;
		this.#now = options.now ?? Date.now;
	}

	verify(token: string): Identity {
		if (typeof token !== "string" || token.length === 0) {
			throw new AuthenticationError("token_missing", "A token is required.");
		}
		if (token.length > 8192) throw new AuthenticationError("token_malformed", "The token is too long.");
		const decoded = jwt.decode(token, { complete: true });
		if (!decoded || typeof decoded.payload !== "object" || decoded.payload === null) {
			throw new AuthenticationError("token_malformed", "The token is not a well-formed JWT.");
		}
		const { alg, kid } = decoded.header;
		const iss = (decoded.payload as { iss?: unknown }).iss;
		if (iss === OPERATOR_ISSUER) {
			throw new ForbiddenError("operator_token_refused", "An operator token is no key to a tenant's routes.");
		}
		if (typeof iss !== "string" || !this.#tenants.has(iss)) {
			throw new AuthenticationError("unknown_tenant", "The token's issuer is not a tenant of this gateway.");
		}
		const tenant = this.#tenants.get(iss);
		const candidates = tenant.keys.filter((k) => k.alg === alg && (kid === undefined || k.kid === kid));
		if (candidates.length === 0) {
			throw new AuthenticationError(
				"token_algorithm_refused",
				`The tenant has no ${String(alg)} key${kid ? ` "${kid}"` : ""}.`,
			);
		}
		const now = Math.floor(this.#now() / 1000);
		let payload: unknown;
		let lastError: unknown;
		for (const key of candidates) {
			try {
				payload = jwt.verify(token, this.#keyObject(key), {
					algorithms: [key.alg],
					audience: this.#audience,
					issuer: tenant.id,
					clockTolerance: this.#skew,
					clockTimestamp: now, // `exp` and `nbf` against this verifier's clock
				});
				break;
			} catch (err) {
				lastError = err;
			}
		}
		if (payload === undefined) throw mapJwtError(lastError);
		const claims = ClaimsSchema.safeParse(payload);
		if (!claims.success) {
			const fields = claims.error.issues.map((i) => i.path.join(".")).join(", ");
			throw new AuthenticationError("token_claims_invalid", `The token's claims are missing or wrong: ${fields}.`);
		}
		const c = claims.data;
		// The lifetime is judged by this verifier's clock, whatever `iat` says (or whether it is there at all): a token
		// may not be good for longer than the cap from now. An `iat` from the future is refused outright.
		if (c.iat !== undefined && c.iat > now + this.#skew) {
			throw new AuthenticationError("token_issued_in_future", "The token claims to be issued in the future.");
		}
		if (c.exp - now > this.#maxLifetime + this.#skew || (c.iat !== undefined && c.exp - c.iat > this.#maxLifetime)) {
			throw new AuthenticationError("token_lifetime_too_long", `Tokens may live at most ${this.#maxLifetime} s.`);
		}
		const identity: Identity = {
			tenantId: tenant.id,
			subject: c.sub,
			role: c.role,
			...(c.name ? { displayName: c.name } : {}),
			...(c.meeting ? { meetingScope: c.meeting } : {}),
			...(c.jti ? { jti: c.jti } : {}),
			...(c.iat !== undefined ? { issuedAt: c.iat } : {}),
		};
		this.#gate?.check(identity);
		return identity;
	}

	/** Throws 403 unless the identity may act in `meetingId` of `tenantId`. */
	static assertScope(identity: Identity, tenantId: string, meetingId: string): void {
		if (identity.tenantId !== tenantId) {
			throw new ForbiddenError("wrong_tenant", "This meeting belongs to another customer.");
		}
		if (identity.meetingScope && identity.meetingScope !== meetingId) {
			throw new ForbiddenError("token_wrong_meeting", "This token is for another meeting.");
		}
	}

	#keyObject(key: TenantKey): KeyObject | Buffer {
		let k = this.#keyObjects.get(key);
		if (k) return k;
		k = keyObject(key);
		this.#keyObjects.set(key, k);
		return k;
	}
}

/** The key material of a verification key, checked against its pinned algorithm. */
export function keyObject(key: TenantKey): KeyObject | Buffer {
	if (key.alg === "HS256") return Buffer.from(key.secret, "utf8");
	const pub = createPublicKey(key.publicKey);
	const want = key.alg === "RS256" ? "rsa" : "ec";
	if (pub.asymmetricKeyType !== want) {
		throw new ConfigError(`a ${key.alg} key must be an ${want.toUpperCase()} public key`);
	}
	if (key.alg === "ES256" && pub.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
		throw new ConfigError("an ES256 key must be on the P-256 curve");
	}
	return pub;
}

/** A jsonwebtoken failure as the AuthenticationError (with its reason code) a caller sees. */
export function mapJwtError(err: unknown): AuthenticationError {
	if (err instanceof jwt.TokenExpiredError) return new AuthenticationError("token_expired", "The token has expired.");
	if (err instanceof jwt.NotBeforeError)
		return new AuthenticationError("token_not_yet_valid", "The token is not valid yet.");
	if (err instanceof jwt.JsonWebTokenError) {
		const m = err.message;
		if (m.includes("audience"))
			return new AuthenticationError("token_wrong_audience", "The token is for another service.");
		if (m.includes("issuer")) return new AuthenticationError("unknown_tenant", "The token's issuer does not match.");
		if (m.includes("signature"))
			return new AuthenticationError("token_bad_signature", "The token's signature is invalid.");
		if (m.includes("algorithm"))
			return new AuthenticationError("token_algorithm_refused", "The token's algorithm is not accepted.");
		return new AuthenticationError("token_invalid", `The token was refused: ${m}.`);
	}
	return new AuthenticationError("token_invalid", "The token was refused.");
}

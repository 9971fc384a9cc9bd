import { readFileSync } from "node:fs";
import jwt from "jsonwebtoken";
import { z } from "zod";
import type { TenantKey } from "../auth/TenantTypes.js";
import { keyObject, mapJwtError, OPERATOR_ISSUER } from "../auth/TokenVerifier.js";
import { AuthenticationError, ConfigError, ForbiddenError } from "../errors.js";
import { type OperatorIdentity, OperatorKeysFileSchema } from "./OperatorTypes.js";

const ClaimsSchema = z.object({
	iss: z.literal(OPERATOR_ISSUER),
	sub: z.string().min(1).max(256),
	exp: z.number().int(),
	iat: z.number().int().optional(),
	role: z.literal("operator"),
	jti: z.string().min(1).max(256).optional(),
});

/**
 * Verifies the operator's tokens: `iss` is `consentry:operator` (no tenant can have it), `role` is `operator`, the
 * signature checked only with the operator's own keys (CONSENTRY_OPERATOR_KEYS_FILE), each pinned to its algorithm;
 * lifetime at most 12 h. A tenant's token is refused with 403 `operator_only` before any signature work, so no
 * tenant key ever opens an operator route (and the tenants' verifier refuses this issuer: `operator_token_refused`).
 */
export class OperatorVerifier {
	readonly #keys: readonly TenantKey[];
	readonly #audience: string;
	readonly #now: () => number;

	constructor(keys: readonly TenantKey[], options: { audience: string; now?: () => number }) {
		this.#keys = keys;
		this.#audience = options.audience;
		this.#now = options.now ?? Date.now;
		for (const k of keys) keyObject(k); // a bad key stops the start, not the first call
	}

	static fromFile(file: string, options: { audience: string }): OperatorVerifier {
		let raw: unknown;
		try {
			raw = JSON.parse(readFileSync(file, "utf8"));
		} catch (cause) {
			throw new ConfigError(`cannot read operator keys file ${file}: ${(cause as Error).message}`, { cause });
		}
		const parsed = OperatorKeysFileSchema.safeParse(raw);
		if (!parsed.success) {
			const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
			throw new ConfigError(`invalid operator keys file ${file}:\n${lines.join("\n")}`);
		}
		return new OperatorVerifier(parsed.data.keys, options);
	}

	verify(token: string): OperatorIdentity {
		if (token.length > 8192) throw new AuthenticationError("token_malformed", "The token is too long.");
		const decoded = jwt.decode(token, { complete: true });
		if (!decoded || typeof decoded.payload !== "object" || decoded.payload === null) {
			throw new AuthenticationError("token_malformed", "The token is not a well-formed JWT.");
		}
		if ((decoded.payload as { iss?: unknown }).iss !== OPERATOR_ISSUER) {
			throw new ForbiddenError("operator_only", "Only the service operator may do this.");
		}
		const { alg, kid } = decoded.header;
		const candidates = this.#keys.filter((k) => k.alg === alg && (kid === undefined || k.kid === kid));
		if (candidates.length === 0) {
			throw new AuthenticationError("token_algorithm_refused", `No operator ${String(alg)} key fits this token.`);
		}
		const now = Math.floor(this.#now() / 1000);
		let payload: unknown;
		let lastError: unknown;
		for (const key of candidates) {
			try {
				payload = jwt.verify(token, keyObject(key), {
					algorithms: [key.alg],
					audience: this.#audience,
					issuer: OPERATOR_ISSUER,
					clockTolerance: 30,
					clockTimestamp: now,
				});
				break;
			} catch (err) {
				lastError = err;
			}
		}
		if (payload === undefined) throw mapJwtError(lastError);
		const c = ClaimsSchema.safeParse(payload);
		if (!c.success) {
			const fields = c.error.issues.map((i) => i.path.join(".")).join(", ");
			throw new AuthenticationError("token_claims_invalid", `The token's claims are missing or wrong: ${fields}.`);
		}
		if (c.data.exp - now > 12 * 3600 + 30) {
			throw new AuthenticationError("token_lifetime_too_long", "Operator tokens may live at most 12 h.");
		}
		return { role: "operator", subject: c.data.sub, ...(c.data.jti ? { jti: c.data.jti } : {}) };
	}
}

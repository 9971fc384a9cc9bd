import { generateKeyPairSync } from "node:crypto";
import jwt from "jsonwebtoken";
import { describe, expect, it } from "vitest";
import { AuthenticationError, ForbiddenError } from "../errors.js";
import { TenantRegistry } from "./TenantRegistry.js";
import { TokenVerifier } from "./TokenVerifier.js";

const secret = "s".repeat(40);
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const rsaPub = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();
const ecPub = ec.publicKey.export({ type: "spki", format: "pem" }).toString();

const tenants = new TenantRegistry([
	{ id: "acme", name: "Acme", keys: [{ alg: "HS256", secret }] },
	{
		id: "globex",
		name: "Globex",
		keys: [
			{ alg: "RS256", kid: "r1", publicKey: rsaPub },
			{ alg: "ES256", kid: "e1", publicKey: ecPub },
		],
	},
]);
const verifier = new TokenVerifier(tenants, { audience: "consentry-test", clockToleranceSec: 30 });
const now = () => Math.floor(Date.now() / 1000);
const claims = (over: Record<string, unknown> = {}) => ({
	iss: "acme",
	aud: "consentry-test",
	sub: "alice",
	role: "host",
	iat: now(),
	exp: now() + 600,
	...over,
});

function code(fn: () => unknown): string {
	try {
		fn();
	} catch (err) {
		expect(err).toBeInstanceOf(AuthenticationError);
		return (err as AuthenticationError).code;
	}
	return "accepted";
}

describe("TokenVerifier", () => {
	it("accepts HS256, RS256 and ES256 tokens of the right tenant", () => {
		expect(verifier.verify(jwt.sign(claims({ name: "Alice" }), secret, { algorithm: "HS256" }))).toEqual({
			tenantId: "acme",
			subject: "alice",
			role: "host",
			displayName: "Alice",
			issuedAt: expect.any(Number),
		});
		const rs = jwt.sign(claims({ iss: "globex", role: "participant", meeting: "m1" }), rsa.privateKey, {
			algorithm: "RS256",
			keyid: "r1",
		});
		expect(verifier.verify(rs)).toMatchObject({ tenantId: "globex", role: "participant", meetingScope: "m1" });
		const es = jwt.sign(claims({ iss: "globex" }), ec.privateKey, { algorithm: "ES256", keyid: "e1" });
		expect(verifier.verify(es).tenantId).toBe("globex");
	});

	it("refuses alg none and HS/RS confusion", () => {
		const none = jwt.sign(claims(), "", { algorithm: "none" } as jwt.SignOptions);
		expect(code(() => verifier.verify(none))).toBe("token_algorithm_refused");
		// An attacker signs HS256 with the tenant's *public* RSA key as the secret.
		const confused = jwt.sign(claims({ iss: "globex" }), rsaPub, { algorithm: "HS256" });
		expect(code(() => verifier.verify(confused))).toBe("token_algorithm_refused");
		const wrongKey = jwt.sign(claims(), "x".repeat(40), { algorithm: "HS256" });
		expect(code(() => verifier.verify(wrongKey))).toBe("token_bad_signature");
	});

	it("requires exp, bounds skew and lifetime", () => {
		const { exp: _exp, ...noExp } = claims();
		expect(code(() => verifier.verify(jwt.sign(noExp, secret, { algorithm: "HS256" })))).toBe("token_claims_invalid");
		expect(code(() => verifier.verify(jwt.sign(claims({ exp: now() - 10 }), secret)))).toBe("accepted"); // within 30 s skew
		expect(code(() => verifier.verify(jwt.sign(claims({ exp: now() - 120 }), secret)))).toBe("token_expired");
		expect(code(() => verifier.verify(jwt.sign(claims({ nbf: now() + 300 }), secret)))).toBe("token_not_yet_valid");
		expect(code(() => verifier.verify(jwt.sign(claims({ exp: now() + 3 * 86400 }), secret)))).toBe(
			"token_lifetime_too_long",
		);
	});

	it("judges the lifetime from exp on the verifier's clock, whatever iat says; refuses iat from the future; honours nbf", () => {
		// jsonwebtoken keeps a given iat, and with noTimestamp sets none.
		const sign = (c: Record<string, unknown>) =>
			jwt.sign(c, secret, { algorithm: "HS256", ...("iat" in c ? {} : { noTimestamp: true }) });
		const { iat: _iat, ...noIat } = claims();
		// No iat, exp two years ahead: refused (the cap held only when iat was there).
		expect(code(() => verifier.verify(sign({ ...noIat, exp: now() + 2 * 365 * 86400 })))).toBe(
			"token_lifetime_too_long",
		);
		expect(code(() => verifier.verify(sign({ ...noIat, exp: now() + 3600 })))).toBe("accepted");
		// iat in the future beyond the skew: refused, even with a short exp-iat; within the skew: accepted.
		expect(code(() => verifier.verify(sign(claims({ iat: now() + 3600, exp: now() + 3700 }))))).toBe(
			"token_issued_in_future",
		);
		expect(code(() => verifier.verify(sign(claims({ iat: now() + 20, exp: now() + 600 }))))).toBe("accepted");
		// A fake iat making exp-iat look short does not stretch the lifetime.
		expect(code(() => verifier.verify(sign(claims({ iat: now() + 86400 * 30, exp: now() + 86400 * 30 + 60 }))))).toBe(
			"token_issued_in_future",
		);
		expect(code(() => verifier.verify(sign(claims({ iat: now() - 86400 * 30, exp: now() + 600 }))))).toBe(
			"token_lifetime_too_long",
		);

		// The verifier's own clock decides: the same token, three clocks.
		const t = 1_900_000_000;
		const token = sign({ ...noIat, nbf: t + 100, exp: t + 23 * 3600 });
		const at = (sec: number) =>
			new TokenVerifier(tenants, { audience: "consentry-test", clockToleranceSec: 30, now: () => sec * 1000 });
		expect(code(() => at(t).verify(token))).toBe("token_not_yet_valid");
		expect(code(() => at(t + 200).verify(token))).toBe("accepted");
		expect(code(() => at(t - 2 * 86400).verify(sign({ ...noIat, exp: t + 23 * 3600 })))).toBe(
			"token_lifetime_too_long",
		);
		expect(code(() => at(t + 24 * 3600).verify(token))).toBe("token_expired");
	});

	it("checks issuer, audience and claims", () => {
		expect(code(() => verifier.verify(jwt.sign(claims({ iss: "nobody" }), secret)))).toBe("unknown_tenant");
		expect(code(() => verifier.verify(jwt.sign(claims({ aud: "other" }), secret)))).toBe("token_wrong_audience");
		expect(code(() => verifier.verify(jwt.sign(claims({ role: "superuser" }), secret)))).toBe("token_claims_invalid");
		expect(code(() => verifier.verify("not.a.jwt"))).toBe("token_malformed");
		expect(code(() => verifier.verify(""))).toBe("token_missing");
	});

	it("enforces tenant and meeting scope", () => {
		const id = verifier.verify(jwt.sign(claims({ meeting: "m1" }), secret));
		expect(() => TokenVerifier.assertScope(id, "acme", "m1")).not.toThrow();
		expect(() => TokenVerifier.assertScope(id, "acme", "m2")).toThrow(ForbiddenError);
		expect(() => TokenVerifier.assertScope(id, "globex", "m1")).toThrow(ForbiddenError);
	});
});

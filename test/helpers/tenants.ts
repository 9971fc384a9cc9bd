import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import jwt from "jsonwebtoken";

export const AUDIENCE = "consentry-test";

/** A tenant with an HS256 key, and a way to mint its tokens. */
export interface TestTenant {
	id: string;
	secret: string;
	/** The tenant's `capture` settings in the tenants file (notice policy, texts, transcript links…). */
	capture?: Record<string, unknown>;
	/** The tenant's page language for browsers that prefer neither English nor French. */
	locale?: "en" | "fr";
	/** Signs a token for `sub` with `role` (default host), valid 10 minutes. */
	token(sub: string, role?: "host" | "participant" | "admin", extra?: Record<string, unknown>): string;
}

export function testTenant(id = "acme", capture?: Record<string, unknown>): TestTenant {
	const secret = randomBytes(32).toString("base64url");
	return {
		id,
		secret,
		...(capture ? { capture } : {}),
		token: (sub, role = "host", extra = {}) =>
			jwt.sign({ role, ...extra }, secret, {
				algorithm: "HS256",
				issuer: id,
				audience: AUDIENCE,
				subject: sub,
				expiresIn: 600,
			}),
	};
}

/** Writes a tenants file for the given tenants; returns its path. */
export function writeTenantsFile(tenants: TestTenant[]): string {
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-tenants-"));
	const file = path.join(dir, "tenants.json");
	writeFileSync(
		file,
		JSON.stringify({
			tenants: tenants.map((t) => ({
				id: t.id,
				name: t.id,
				keys: [{ alg: "HS256", secret: t.secret }],
				...(t.capture ? { capture: t.capture } : {}),
				...(t.locale ? { locale: t.locale } : {}),
			})),
		}),
	);
	return file;
}

import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import jwt from "jsonwebtoken";
import { AUDIENCE } from "./tenants.js";

/** The service operator's HS256 key (CONSENTRY_OPERATOR_KEYS_FILE) and a way to mint operator tokens. */
export interface TestOperator {
	keysFile: string;
	secret: string;
	/** An operator token for `sub` (valid 10 minutes). */
	token(sub?: string, extra?: Record<string, unknown>): string;
}

export function testOperator(): TestOperator {
	const secret = randomBytes(32).toString("base64url");
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-operator-"));
	const keysFile = path.join(dir, "operator.json");
	writeFileSync(keysFile, JSON.stringify({ keys: [{ kid: "op-1", alg: "HS256", secret }] }));
	return {
		keysFile,
		secret,
		token: (sub = "ops-alice", extra = {}) =>
			jwt.sign({ role: "operator", ...extra }, secret, {
				algorithm: "HS256",
				keyid: "op-1",
				issuer: "consentry:operator",
				audience: AUDIENCE,
				subject: sub,
				expiresIn: 600,
			}),
	};
}

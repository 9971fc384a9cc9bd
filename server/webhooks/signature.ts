import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Webhook signatures. Each request carries
 *
 *   Consentry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
 *
 * A receiver recomputes the HMAC over the raw body with its secret, compares in constant time, and refuses
 * a timestamp further than the replay window (default 300 s) from its clock; it deduplicates on the
 * payload's `id` (a retry carries the same id with a fresh timestamp and signature).
 */
export const SIGNATURE_HEADER = "consentry-signature";
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function sign(secret: string, body: string, timestampSeconds: number): string {
	const mac = createHmac("sha256", secret).update(`${timestampSeconds}.${body}`).digest("hex");
	return `t=${timestampSeconds},v1=${mac}`;
}

export type VerifyFailure = "malformed" | "stale" | "mismatch";

/** Checks a signature header against the raw body; what is wrong, or undefined when it is good. */
export function verifySignature(
	secret: string,
	body: string,
	header: string | undefined,
	options: { toleranceSeconds?: number; nowSeconds?: number } = {},
): VerifyFailure | undefined {
	const parts = new Map(
		(header ?? "").split(",").map((p) => {
			const i = p.indexOf("=");
			return [p.slice(0, i).trim(), p.slice(i + 1).trim()] as const;
		}),
	);
	const t = Number(parts.get("t"));
	const v1 = parts.get("v1") ?? "";
	if (!Number.isInteger(t) || !/^[0-9a-f]{64}$/.test(v1)) return "malformed";
	const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
	if (Math.abs(now - t) > (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return "stale";
	const expected = createHmac("sha256", secret).update(`${t}.${body}`).digest();
	return timingSafeEqual(expected, Buffer.from(v1, "hex")) ? undefined : "mismatch";
}

/** Where a meeting's passcode attempts stand, as its host sees it (the wire type). */
export type { PasscodeLockout } from "../../shared/protocol.js";

/** The limits (docs/security.md). */
export interface PasscodeLimits {
	/** Wrong passcodes one address may send before backing off. */
	freePerAddress: number;
	/** First backoff after those, ms; doubles with each further failure… */
	backoffMs: number;
	/** …up to this. */
	maxBackoffMs: number;
	/** Wrong passcodes (all addresses) that lock the meeting's passcode joins until the host lifts it. */
	lockoutAfter: number;
	/** Counts older than this are forgotten (unless locked), ms. */
	windowMs: number;
}

export const DEFAULT_PASSCODE_LIMITS: PasscodeLimits = {
	freePerAddress: 3,
	backoffMs: 2_000,
	maxBackoffMs: 5 * 60_000,
	lockoutAfter: 20,
	windowMs: 60 * 60_000,
};

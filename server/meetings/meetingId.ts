import { randomBytes } from "node:crypto";

// Crockford base32: no I, L, O, U; case-insensitive; readable over the phone.
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/** A new meeting ID: 60 random bits as 12 base32 characters. */
export function newMeetingId(): string {
	const bytes = randomBytes(8);
	let n = bytes.readBigUInt64BE() >> 4n; // 60 bits
	let s = "";
	for (let i = 0; i < 12; i++) {
		s = ALPHABET[Number(n & 31n)] + s;
		n >>= 5n;
	}
	return s;
}

/** The human-friendly form: `abcd-efgh-jkmn`. */
export function formatMeetingId(id: string): string {
	return id.length === 12 ? `${id.slice(0, 4)}-${id.slice(4, 8)}-${id.slice(8)}` : id;
}

/**
 * Accepts what a person types (any case, dashes or spaces, I/L for 1, O for 0)
 * and returns the canonical ID, or undefined when it cannot be one.
 */
export function parseMeetingId(input: string): string | undefined {
	const s = input.toLowerCase().replace(/[\s-]/g, "").replace(/[il]/g, "1").replace(/o/g, "0");
	return /^[0-9a-hjkmnp-tv-z]{12}$/.test(s) ? s : undefined;
}

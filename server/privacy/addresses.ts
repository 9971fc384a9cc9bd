import { createHash, createHmac, randomBytes } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { isIPv4, isIPv6 } from "node:net";

/** The longest an address key may live (004 §2.1: logs with IP addresses at most 14 days). */
export const MAX_KEY_DAYS = 14;
const DAY_MS = 86_400_000;

/**
 * An address as the gateway's own logs keep it outside security events: IPv4 cut to its /24 (`203.0.113.0/24`),
 * IPv6 to its /48 (`2001:db8:1::/48`); an IPv4-mapped IPv6 address counts as IPv4. Anything else (no address, a
 * UNIX socket) becomes `"unknown"`.
 */
export function truncateAddress(address: string | undefined): string {
	if (!address) return "unknown";
	const v4 = address.startsWith("::ffff:") && isIPv4(address.slice(7)) ? address.slice(7) : address;
	if (isIPv4(v4)) return `${v4.split(".").slice(0, 3).join(".")}.0/24`;
	if (!isIPv6(address)) return "unknown";
	const groups = expandV6(address).slice(0, 3);
	return `${groups.map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/48`;
}

/** The eight 16-bit groups of an IPv6 address, in hex (an embedded IPv4 tail converted). */
function expandV6(address: string): string[] {
	let a = address.split("%")[0] ?? address;
	const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(a)?.[1];
	if (tail) {
		const [b0, b1, b2, b3] = tail.split(".").map(Number) as [number, number, number, number];
		a = `${a.slice(0, -tail.length)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
	}
	const [head = "", rest] = a.split("::");
	const h = head ? head.split(":") : [];
	const r = rest === undefined ? [] : rest ? rest.split(":") : [];
	const zeros = rest === undefined ? [] : Array(8 - h.length - r.length).fill("0");
	return [...h, ...zeros, ...r];
}

interface KeyFile {
	/** The period the key belongs to: floor(time / period). */
	epoch: number;
	periodDays: number;
	key: string;
}

export interface AddressKeyOptions {
	/** Where the current key lives (gateways sharing a store share this file, or a copy of it). */
	file: string;
	/** How long one key lives, in days (1–14; default 7). */
	periodDays?: number;
	now?: () => number;
}

/**
 * A keyed hash of client addresses whose key rotates every `periodDays` (at most 14) and is destroyed when it
 * does: the next key is SHA-256 of the previous one (a one-way ratchet), so gateways holding the same key file
 * move to the same next key on their own, and nobody holding today's key can compute an earlier one — entries
 * hashed under a destroyed key can no longer be linked to an address, even by trying every IPv4 address.
 * Only the current key is ever on disk (the file is replaced, not appended).
 */
export class AddressKey {
	readonly #file: string;
	readonly #periodMs: number;
	readonly #periodDays: number;
	readonly #now: () => number;
	#current: { epoch: number; key: Buffer } | undefined;

	constructor(options: AddressKeyOptions) {
		const days = options.periodDays ?? 7;
		if (!Number.isInteger(days) || days < 1 || days > MAX_KEY_DAYS) {
			throw new RangeError(`address key period must be 1–${MAX_KEY_DAYS} days`);
		}
		this.#file = options.file;
		this.#periodDays = days;
		this.#periodMs = days * DAY_MS;
		this.#now = options.now ?? Date.now;
	}

	/** `h_…`: the address's hash under the current key (stable within one period, unlinkable after). */
	hash(address: string): string {
		return `h_${createHmac("sha256", this.#key()).update(address).digest("hex").slice(0, 32)}`;
	}

	/** The epoch of the key in use (for tests and the operator). */
	get epoch(): number {
		this.#key();
		return this.#current?.epoch ?? 0;
	}

	#key(): Buffer {
		const epoch = Math.floor(this.#now() / this.#periodMs);
		if (this.#current?.epoch === epoch) return this.#current.key;
		let stored = this.#current ?? this.#read();
		if (!stored || stored.epoch > epoch || epoch - stored.epoch > 10_000) {
			// No key yet, or one from the future / far past: start a fresh random one.
			stored = { epoch, key: randomBytes(32) };
		}
		let key = stored.key;
		for (let e = stored.epoch; e < epoch; e++) key = createHash("sha256").update(key).digest();
		this.#current = { epoch, key };
		if (stored.epoch !== epoch || !this.#read()) this.#write();
		return key;
	}

	#read(): { epoch: number; key: Buffer } | undefined {
		try {
			const f = JSON.parse(readFileSync(this.#file, "utf8")) as KeyFile;
			if (f.periodDays !== this.#periodDays || typeof f.epoch !== "number" || typeof f.key !== "string") return;
			const key = Buffer.from(f.key, "base64");
			return key.length === 32 ? { epoch: f.epoch, key } : undefined;
		} catch {
			return undefined;
		}
	}

	/** Replaces the key file atomically: the previous key is gone from it. */
	#write(): void {
		const c = this.#current;
		if (!c) return;
		const body: KeyFile = { epoch: c.epoch, periodDays: this.#periodDays, key: c.key.toString("base64") };
		const tmp = `${this.#file}.${process.pid}.tmp`;
		writeFileSync(tmp, `${JSON.stringify(body)}\n`, { mode: 0o600 });
		renameSync(tmp, this.#file);
	}
}

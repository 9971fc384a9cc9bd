import { ForbiddenError, RateLimitError } from "../errors.js";
import type { AddressKey } from "../privacy/addresses.js";
import type { Database } from "../store/Database.js";
import { DEFAULT_PASSCODE_LIMITS, type PasscodeLimits, type PasscodeLockout } from "./PasscodeTypes.js";

interface Row {
	failures: number;
	last_at: number;
	locked_at: string | null;
}

const MEETING = "meeting";

/**
 * Limits passcode guessing, per meeting and per address, in the shared store (so it holds across gateway
 * processes). An attempt is counted *before* the passcode is checked, in one immediate transaction, so parallel
 * guesses can't slip past the count: a right passcode then takes its count back. Per address: a few free
 * failures, then exponential backoff (`passcode_backoff`, 429, with `retryAfterSec`). Per meeting: after
 * `lockoutAfter` wrong passcodes from anywhere, guests' passcode joins are refused (`passcode_locked`, 403) —
 * even with the right one — until the host lifts it.
 */
export class PasscodeGuard {
	readonly #db: Database;
	readonly #limits: PasscodeLimits;
	readonly #now: () => number;

	readonly #addressKey: AddressKey | undefined;

	/** `addressKey`: addresses are stored as its rotating keyed hash (never in clear once one is given). */
	constructor(
		db: Database,
		limits: Partial<PasscodeLimits> = {},
		now: () => number = Date.now,
		addressKey?: AddressKey,
	) {
		this.#addressKey = addressKey;
		this.#db = db;
		this.#limits = { ...DEFAULT_PASSCODE_LIMITS, ...limits };
		this.#now = now;
	}

	/**
	 * Counts an attempt from `address` before its passcode is checked, or refuses it: locked out (`lockedNow` when
	 * this attempt is the one that tipped the count over), or backing off.
	 */
	reserve(meetingId: string, address: string): void {
		const now = this.#now();
		const lockedNow = this.#db
			.transaction((): boolean => {
				const m = this.#row(meetingId, MEETING, now);
				if (m.locked_at) return false;
				if (m.failures >= this.#limits.lockoutAfter) {
					this.#upsert(meetingId, MEETING, m.failures, now, new Date(now).toISOString());
					return true;
				}
				const a = this.#row(meetingId, this.#addr(address), now);
				const wait = this.#backoff(a.failures) - (now - a.last_at);
				if (wait > 0) throw new BackoffError(Math.ceil(wait / 1000));
				this.#upsert(meetingId, this.#addr(address), a.failures + 1, now, null);
				this.#upsert(meetingId, MEETING, m.failures + 1, now, null);
				return false;
			})
			.immediate();
		if (lockedNow || this.status(meetingId).locked) {
			throw new PasscodeLockedError(lockedNow);
		}
	}

	/** The attempt's passcode was right: its count is taken back and the address starts afresh. */
	succeeded(meetingId: string, address: string): void {
		this.#db
			.transaction(() => {
				this.#db
					.prepare("DELETE FROM passcode_attempts WHERE meeting_id = ? AND scope = ?")
					.run(meetingId, this.#addr(address));
				this.#db
					.prepare("UPDATE passcode_attempts SET failures = max(0, failures - 1) WHERE meeting_id = ? AND scope = ?")
					.run(meetingId, MEETING);
			})
			.immediate();
	}

	/** The attempt's passcode was wrong (already counted). Returns the meeting's count and whether it now locks. */
	failed(meetingId: string): { failures: number; locked: boolean } {
		const now = this.#now();
		return this.#db
			.transaction(() => {
				const m = this.#row(meetingId, MEETING, now);
				if (!m.locked_at && m.failures >= this.#limits.lockoutAfter) {
					this.#upsert(meetingId, MEETING, m.failures, now, new Date(now).toISOString());
					return { failures: m.failures, locked: true };
				}
				return { failures: m.failures, locked: false };
			})
			.immediate();
	}

	status(meetingId: string): PasscodeLockout {
		const m = this.#row(meetingId, MEETING, this.#now());
		return { locked: m.locked_at !== null, failures: m.failures, ...(m.locked_at ? { since: m.locked_at } : {}) };
	}

	/** The row key of an address: `addr:` and its keyed hash (key rotating ≤ 14 days), not the address itself. */
	#addr(address: string): string {
		return `addr:${this.#addressKey ? this.#addressKey.hash(address) : address}`;
	}

	/** The host lifts the lockout: the meeting's count starts afresh (each address keeps its backoff). */
	lift(meetingId: string): boolean {
		const res = this.#db
			.prepare("DELETE FROM passcode_attempts WHERE meeting_id = ? AND scope = ?")
			.run(meetingId, MEETING);
		return res.changes > 0;
	}

	#backoff(failures: number): number {
		const over = failures - this.#limits.freePerAddress;
		if (over < 0) return 0;
		return Math.min(this.#limits.maxBackoffMs, this.#limits.backoffMs * 2 ** Math.min(over, 30));
	}

	#row(meetingId: string, scope: string, now: number): Row {
		const r = this.#db
			.prepare("SELECT failures, last_at, locked_at FROM passcode_attempts WHERE meeting_id = ? AND scope = ?")
			.get(meetingId, scope) as Row | undefined;
		if (!r || (!r.locked_at && now - r.last_at > this.#limits.windowMs))
			return { failures: 0, last_at: 0, locked_at: null };
		return r;
	}

	#upsert(meetingId: string, scope: string, failures: number, now: number, lockedAt: string | null): void {
		this.#db
			.prepare(
				`INSERT INTO passcode_attempts (meeting_id, scope, failures, last_at, locked_at) VALUES (?, ?, ?, ?, ?)
				 ON CONFLICT (meeting_id, scope) DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at,
				 locked_at = coalesce(passcode_attempts.locked_at, excluded.locked_at)`,
			)
			.run(meetingId, scope, failures, now, lockedAt);
	}
}

/** Too many wrong passcodes from this address lately: wait. */
export class BackoffError extends RateLimitError {
	constructor(retryAfterSec: number) {
		super(
			`Too many wrong passcodes from your network. Wait ${retryAfterSec} s before trying again.`,
			"passcode_backoff",
			retryAfterSec,
		);
	}
}

/** The meeting's passcode joins are locked out. */
export class PasscodeLockedError extends ForbiddenError {
	/** This attempt tipped the count over (the host is told, the trail records it). */
	readonly lockedNow: boolean;

	constructor(lockedNow: boolean) {
		super(
			"passcode_locked",
			"Too many wrong passcodes were tried for this meeting, so joining with the passcode is paused. Ask the host to lift it.",
		);
		this.lockedNow = lockedNow;
	}
}

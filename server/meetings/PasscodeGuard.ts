import { ForbiddenError, RateLimitError } from "../errors.js";
import type { AddressKey } from "../privacy/addresses.js";
import { type AttemptRow, type PasscodeQueries, PasscodeRepository } from "../store/PasscodeRepository.js";
import type { Store } from "../store/Store.js";
import { DEFAULT_PASSCODE_LIMITS, type PasscodeLimits, type PasscodeLockout } from "./PasscodeTypes.js";

type Row = AttemptRow;

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
	readonly #repo: PasscodeRepository;
	readonly #limits: PasscodeLimits;
	readonly #now: () => number;

	readonly #addressKey: AddressKey | undefined;

	/** `addressKey`: addresses are stored as its rotating keyed hash (never in clear once one is given). */
	constructor(
		store: Store,
		limits: Partial<PasscodeLimits> = {},
		now: () => number = Date.now,
		addressKey?: AddressKey,
	) {
		this.#addressKey = addressKey;
		this.#repo = new PasscodeRepository(store);
		this.#limits = { ...DEFAULT_PASSCODE_LIMITS, ...limits };
		this.#now = now;
	}

	/**
	 * Counts an attempt from `address` before its passcode is checked, or refuses it: locked out (`lockedNow` when
	 * this attempt is the one that tipped the count over), or backing off.
	 */
	async reserve(meetingId: string, address: string): Promise<void> {
		const now = this.#now();
		// The transaction commits whatever happens; a refusal is thrown after it.
		const outcome = await this.#repo.transaction(
			meetingId,
			async (q): Promise<{ locked?: boolean; lockedNow?: boolean; waitMs?: number }> => {
				const m = await this.#row(q, meetingId, MEETING, now);
				if (m.locked_at) return { locked: true };
				if (m.failures >= this.#limits.lockoutAfter) {
					await q.upsert(meetingId, MEETING, m.failures, now, new Date(now).toISOString());
					return { locked: true, lockedNow: true };
				}
				const a = await this.#row(q, meetingId, this.#addr(address), now);
				const wait = this.#backoff(a.failures) - (now - a.last_at);
				if (wait > 0) return { waitMs: wait };
				await q.upsert(meetingId, this.#addr(address), a.failures + 1, now, null);
				await q.upsert(meetingId, MEETING, m.failures + 1, now, null);
				return {};
			},
		);
		if (outcome.waitMs !== undefined) throw new BackoffError(Math.ceil(outcome.waitMs / 1000));
		// Decided inside the transaction: a lockout that another attempt sets later does not undo this one's turn.
		if (outcome.locked) throw new PasscodeLockedError(outcome.lockedNow === true);
	}

	/** The attempt's passcode was right: its count is taken back and the address starts afresh. */
	async succeeded(meetingId: string, address: string): Promise<void> {
		await this.#repo.transaction(meetingId, async (q) => {
			await q.delete(meetingId, this.#addr(address));
			await q.takeBack(meetingId, MEETING);
		});
	}

	/** The attempt's passcode was wrong (already counted). Returns the meeting's count and whether it now locks. */
	failed(meetingId: string): Promise<{ failures: number; locked: boolean }> {
		const now = this.#now();
		return this.#repo.transaction(meetingId, async (q) => {
			const m = await this.#row(q, meetingId, MEETING, now);
			if (!m.locked_at && m.failures >= this.#limits.lockoutAfter) {
				await q.upsert(meetingId, MEETING, m.failures, now, new Date(now).toISOString());
				return { failures: m.failures, locked: true };
			}
			return { failures: m.failures, locked: false };
		});
	}

	async status(meetingId: string): Promise<PasscodeLockout> {
		const m = await this.#repo.guard(() => this.#row(this.#repo.queries, meetingId, MEETING, this.#now()));
		return { locked: m.locked_at !== null, failures: m.failures, ...(m.locked_at ? { since: m.locked_at } : {}) };
	}

	/** The row key of an address: `addr:` and its keyed hash (key rotating ≤ 14 days), not the address itself. */
	#addr(address: string): string {
		return `addr:${this.#addressKey ? this.#addressKey.hash(address) : address}`;
	}

	/** The host lifts the lockout: the meeting's count starts afresh (each address keeps its backoff). */
	lift(meetingId: string): Promise<boolean> {
		return this.#repo.guard(() => this.#repo.queries.delete(meetingId, MEETING));
	}

	#backoff(failures: number): number {
		const over = failures - this.#limits.freePerAddress;
		if (over < 0) return 0;
		return Math.min(this.#limits.maxBackoffMs, this.#limits.backoffMs * 2 ** Math.min(over, 30));
	}

	async #row(q: PasscodeQueries, meetingId: string, scope: string, now: number): Promise<Row> {
		const r = await q.row(meetingId, scope);
		if (!r || (!r.locked_at && now - r.last_at > this.#limits.windowMs))
			return { failures: 0, last_at: 0, locked_at: null };
		return r;
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

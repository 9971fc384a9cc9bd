import { type Kysely, sql } from "kysely";
import type { Schema } from "./Schema.js";
import type { Store } from "./Store.js";

export interface AttemptRow {
	failures: number;
	last_at: number;
	locked_at: string | null;
}

/** The queries on `passcode_attempts` inside one transaction (see {@link PasscodeRepository.transaction}). */
export class PasscodeQueries {
	readonly #db: Kysely<Schema>;

	constructor(db: Kysely<Schema>) {
		this.#db = db;
	}

	async row(meetingId: string, scope: string): Promise<AttemptRow | undefined> {
		const r = await this.#db
			.selectFrom("passcode_attempts")
			.select(["failures", "last_at", "locked_at"])
			.where("meeting_id", "=", meetingId)
			.where("scope", "=", scope)
			.executeTakeFirst();
		return r && { failures: Number(r.failures), last_at: Number(r.last_at), locked_at: r.locked_at };
	}

	/** Sets the count; a lockout once set stays set (until the row is deleted). */
	async upsert(
		meetingId: string,
		scope: string,
		failures: number,
		now: number,
		lockedAt: string | null,
	): Promise<void> {
		await this.#db
			.insertInto("passcode_attempts")
			.values({ meeting_id: meetingId, scope, failures, last_at: now, locked_at: lockedAt })
			.onConflict((oc) =>
				oc.columns(["meeting_id", "scope"]).doUpdateSet({
					failures: (eb) => eb.ref("excluded.failures"),
					last_at: (eb) => eb.ref("excluded.last_at"),
					locked_at: sql`coalesce(passcode_attempts.locked_at, excluded.locked_at)`,
				}),
			)
			.execute();
	}

	async delete(meetingId: string, scope: string): Promise<boolean> {
		const r = await this.#db
			.deleteFrom("passcode_attempts")
			.where("meeting_id", "=", meetingId)
			.where("scope", "=", scope)
			.executeTakeFirst();
		return Number(r.numDeletedRows) > 0;
	}

	/** Takes one attempt back from the count (never below 0). */
	async takeBack(meetingId: string, scope: string): Promise<void> {
		await this.#db
			.updateTable("passcode_attempts")
			.set({ failures: sql`CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END` })
			.where("meeting_id", "=", meetingId)
			.where("scope", "=", scope)
			.execute();
	}
}

/**
 * Passcode attempts per meeting and per address (table `passcode_attempts`). Read-modify-write runs in
 * {@link transaction}: one meeting's attempts take turns across processes and nodes. Service (the limits):
 * server/meetings/PasscodeGuard.ts.
 */
export class PasscodeRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	/** Runs `fn` in one write transaction, serialized with every other on this meeting's attempts. */
	transaction<T>(meetingId: string, fn: (q: PasscodeQueries) => Promise<T>): Promise<T> {
		return this.#s.transaction(`passcode_attempts:${meetingId}`, (trx) => fn(new PasscodeQueries(trx)));
	}

	/** Outside a transaction (a single statement each). */
	get queries(): PasscodeQueries {
		return new PasscodeQueries(this.#s.db);
	}

	guard<T>(fn: () => Promise<T>): Promise<T> {
		return this.#s.guard(fn);
	}
}

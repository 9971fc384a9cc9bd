import { type Kysely, type Selectable, sql } from "kysely";
import type { Schema, SecurityHoldsTable } from "./Schema.js";
import type { Store } from "./Store.js";

export type SecurityHoldRow = Selectable<SecurityHoldsTable>;

/** Rows per `IN (…)` list. */
const CHUNK = 500;

/**
 * The tables holding a tenant's rows by `tenant_id` (outside the audit chain's `events`): what a tenant's wipe deletes
 * and what its test counts. A new table with a `tenant_id` belongs here.
 */
const TENANT_TABLES = [
	"meetings",
	"host_seats",
	"transcript_links",
	"storage_targets",
	"webhook_settings",
	"webhook_deliveries",
	"subject_blocks",
	"meeting_blocks",
	"token_revocations",
	"subject_cutoffs",
	"operator_warnings",
	"operator_changes",
	"audit_person_secrets",
	"dsr_requests",
] as const;

/**
 * Issue 14 retention: the store side of retention (meetings past their tenant's retention and what hangs off them),
 * a tenant's wipe, the job lease that keeps the purge to one process at a time, and the operator's security hold
 * (tables `job_leases`, `security_holds`). The audit chain's own purge is in AuditRepository (EventLog.purgeBefore).
 * Service: server/retention/RetentionService.ts.
 */
export class RetentionRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	// Job lease ------------------------------------------------------------------------------------------------------

	/** Takes (or renews) the named lease until `nowMs + ttlMs`; false while another holder's lease runs. */
	lease(name: string, holder: string, ttlMs: number, nowMs: number): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.insertInto("job_leases")
				.values({ name, holder, until: nowMs + ttlMs })
				.onConflict((oc) =>
					oc
						.column("name")
						.doUpdateSet({ holder, until: nowMs + ttlMs })
						.where((eb) => eb.or([eb("job_leases.until", "<", nowMs), eb("job_leases.holder", "=", holder)])),
				)
				.executeTakeFirst();
			return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
		});
	}

	/**
	 * Drops the leases named `namePrefix…` held by `holderPrefix…`: a process starting again frees what its previous
	 * run (same gateway ID, dead now) held, instead of waiting for the leases to run out.
	 */
	releaseHeldBy(namePrefix: string, holderPrefix: string): Promise<number> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.deleteFrom("job_leases")
				.where(sql<string>`substr(name, 1, ${namePrefix.length})`, "=", namePrefix)
				.where(sql<string>`substr(holder, 1, ${holderPrefix.length})`, "=", holderPrefix)
				.executeTakeFirst();
			return Number(r.numDeletedRows);
		});
	}

	release(name: string, holder: string): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db.deleteFrom("job_leases").where("name", "=", name).where("holder", "=", holder).execute();
		});
	}

	// Meetings past retention ----------------------------------------------------------------------------------------

	/**
	 * Deletes these meetings (none live: a live one stays) and what the store holds about them (removed persons,
	 * passcode attempts, transcript links, presence): on the caller's transaction `x` (the retention purge deletes
	 * them with the entries that named them, all or nothing), or in one of its own.
	 */
	deleteMeetings(all: readonly string[], x?: Kysely<Schema>): Promise<number> {
		if (all.length === 0) return Promise.resolve(0);
		const run = async (trx: Kysely<Schema>) => {
			const live = new Set(
				(
					await trx
						.selectFrom("meetings")
						.select("id")
						.where("id", "in", all.slice(0, 30_000))
						.where("state", "=", "live")
						.execute()
				).map((r) => r.id),
			);
			const ids = all.filter((id) => !live.has(id));
			let n = 0;
			for (let i = 0; i < ids.length; i += CHUNK) {
				const part = ids.slice(i, i + CHUNK);
				await trx.deleteFrom("removed_persons").where("meeting_id", "in", part).execute();
				await trx.deleteFrom("passcode_attempts").where("meeting_id", "in", part).execute();
				await trx.deleteFrom("transcript_links").where("meeting_id", "in", part).execute();
				await trx.deleteFrom("meeting_presence").where("meeting_id", "in", part).execute();
				const r = await trx.deleteFrom("meetings").where("id", "in", part).executeTakeFirst();
				n += Number(r.numDeletedRows);
			}
			return n;
		};
		if (x) return run(x);
		return this.#s.guard(() => this.#s.db.transaction().execute(run));
	}

	/** Settled webhook deliveries (delivered, failed, cancelled) created before `beforeMs`. */
	deleteSettledDeliveries(tenantId: string, beforeMs: number): Promise<number> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.deleteFrom("webhook_deliveries")
				.where("tenant_id", "=", tenantId)
				.where("state", "!=", "pending")
				.where("created_at", "<", beforeMs)
				.executeTakeFirst();
			return Number(r.numDeletedRows);
		});
	}

	// A tenant's wipe ------------------------------------------------------------------------------------------------

	/**
	 * Deletes every row of the tenant outside the audit chain (which EventLog.purgeBefore cuts, keeping a checkpoint):
	 * meetings and what hangs off them, seats, storage target, webhooks, links, blocks, revocations, warnings, the
	 * change feed's rows, and every pseudonym secret (their entries become unlinkable). The tenant's row stays as a
	 * tombstone (`deleted`, config `{}`). Idempotent: a second call finds nothing.
	 */
	wipeTenant(tenantId: string): Promise<Record<string, number>> {
		return this.#s.guard(() =>
			this.#s.db.transaction().execute(async (trx) => {
				const out: Record<string, number> = {};
				const meetings = (
					await trx.selectFrom("meetings").select("id").where("tenant_id", "=", tenantId).execute()
				).map((r) => r.id);
				for (let i = 0; i < meetings.length; i += CHUNK) {
					const part = meetings.slice(i, i + CHUNK);
					await trx.deleteFrom("removed_persons").where("meeting_id", "in", part).execute();
					await trx.deleteFrom("passcode_attempts").where("meeting_id", "in", part).execute();
					await trx.deleteFrom("meeting_presence").where("meeting_id", "in", part).execute();
				}
				const warnings = (
					await trx.selectFrom("operator_warnings").select("id").where("tenant_id", "=", tenantId).execute()
				).map((r) => r.id);
				for (let i = 0; i < warnings.length; i += CHUNK)
					await trx
						.deleteFrom("warning_acks")
						.where("warning_id", "in", warnings.slice(i, i + CHUNK))
						.execute();
				for (const t of TENANT_TABLES) {
					const r = await trx.deleteFrom(t).where("tenant_id", "=", tenantId).executeTakeFirst();
					out[t] = Number(r.numDeletedRows);
				}
				await trx.updateTable("tenants").set({ config: "{}", state: "deleted" }).where("id", "=", tenantId).execute();
				return out;
			}),
		);
	}

	/** Rows the store still holds of the tenant, per table (outside the audit chain): the wipe test's proof. */
	countTenantRows(tenantId: string): Promise<Record<string, number>> {
		return this.#s.guard(async () => {
			const out: Record<string, number> = {};
			for (const t of [...TENANT_TABLES, "events"] as const) {
				const r = await this.#s.db
					.selectFrom(t)
					.select((eb) => eb.fn.countAll().as("n"))
					.where("tenant_id", "=", tenantId)
					.executeTakeFirst();
				out[t] = Number(r?.n ?? 0);
			}
			return out;
		});
	}

	// The operator's security hold -----------------------------------------------------------------------------------

	/** The hold in force at `nowIso` (set, not lifted, not lapsed), or undefined. */
	activeHold(nowIso: string): Promise<SecurityHoldRow | undefined> {
		return this.#s.guard(() => holdInForce(this.#s.db, nowIso));
	}

	/**
	 * Sets a hold, lifting any other in force (one hold at a time): on the caller's transaction `x` (SecurityHold
	 * records it in the same one), or in one of its own.
	 */
	setHold(row: SecurityHoldRow, x?: Kysely<Schema>): Promise<void> {
		const run = async (trx: Kysely<Schema>) => {
			await trx
				.updateTable("security_holds")
				.set({ ended_at: row.set_at, ended_by: row.set_by })
				.where("ended_at", "is", null)
				.where("until", ">", row.set_at)
				.execute();
			await trx.insertInto("security_holds").values(row).execute();
		};
		if (x) return run(x);
		return this.#s.guard(() => this.#s.db.transaction().execute(run));
	}

	/** Lifts the hold in force (on the caller's transaction `x`, if given); returns the one lifted, if any. */
	async liftHold(by: string, nowIso: string, x?: Kysely<Schema>): Promise<SecurityHoldRow | undefined> {
		const run = async (db: Kysely<Schema>) => {
			const current = await holdInForce(db, nowIso);
			if (!current) return undefined;
			await db
				.updateTable("security_holds")
				.set({ ended_at: nowIso, ended_by: by })
				.where("ended_at", "is", null)
				.where("until", ">", nowIso)
				.execute();
			return current;
		};
		if (x) return run(x);
		return this.#s.guard(() => run(this.#s.db));
	}

	holds(limit: number): Promise<SecurityHoldRow[]> {
		return this.#s.guard(() =>
			this.#s.db.selectFrom("security_holds").selectAll().orderBy("set_at", "desc").limit(limit).execute(),
		);
	}
}

/** The hold in force at `nowIso` (set, not lifted, not lapsed; the newest if several), read through `db`. */
function holdInForce(db: Kysely<Schema>, nowIso: string): Promise<SecurityHoldRow | undefined> {
	return db
		.selectFrom("security_holds")
		.selectAll()
		.where("ended_at", "is", null)
		.where("until", ">", nowIso)
		.orderBy("set_at", "desc")
		.limit(1)
		.executeTakeFirst();
}

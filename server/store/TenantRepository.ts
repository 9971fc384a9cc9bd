import type { Selectable } from "kysely";
import type { TenantsTable } from "./Schema.js";
import type { Store } from "./Store.js";

export type TenantRow = Selectable<TenantsTable>;

/**
 * The tenants (table `tenants`): the one source of truth for who the gateway serves and the keys their tokens are
 * verified with (the tenants file only seeds it; docs/operator.md). `config` is the tenant's JSON without its ID.
 * Service: server/operator/TenantDirectory.ts.
 */
export class TenantRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	/** Every tenant not deleted. */
	all(): Promise<TenantRow[]> {
		return this.#s.guard(() =>
			this.#s.db.selectFrom("tenants").selectAll().where("state", "!=", "deleted").orderBy("id").execute(),
		);
	}

	find(id: string): Promise<TenantRow | undefined> {
		return this.#s.guard(() => this.#s.db.selectFrom("tenants").selectAll().where("id", "=", id).executeTakeFirst());
	}

	/**
	 * Inserts unless the ID exists; returns whether this call did. `overDeleted`: a deleted tenant's ID may be taken
	 * again (the operator API); a seed from the tenants file never revives one.
	 */
	insert(row: TenantRow, overDeleted = false): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.insertInto("tenants")
				.values(row)
				.onConflict((oc) =>
					overDeleted
						? oc
								.column("id")
								.doUpdateSet({
									config: row.config,
									state: row.state,
									reason: row.reason,
									created_at: row.created_at,
									updated_at: row.updated_at,
								})
								.where("tenants.state", "=", "deleted")
						: oc.column("id").doNothing(),
				)
				.executeTakeFirst();
			return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
		});
	}

	/** Replaces the configuration; returns whether the tenant exists (and is not deleted). */
	updateConfig(id: string, config: string, at: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.updateTable("tenants")
				.set({ config, updated_at: at })
				.where("id", "=", id)
				.where("state", "!=", "deleted")
				.executeTakeFirst();
			return Number(r.numUpdatedRows) === 1;
		});
	}

	/** Moves the tenant to `state` unless it is there already (or terminated, which is final); returns whether it moved. */
	setState(
		id: string,
		state: "active" | "suspended" | "terminated",
		reason: string | null,
		at: string,
	): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.updateTable("tenants")
				.set({ state, reason, updated_at: at })
				.where("id", "=", id)
				.where("state", "!=", state)
				.where("state", "not in", ["terminated", "deleted"])
				.executeTakeFirst();
			return Number(r.numUpdatedRows) === 1;
		});
	}

	/** Deletes the tenant: its keys and settings go; a tombstone row stays (the seed must not revive it). */
	delete(id: string, reason: string | null, at: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.updateTable("tenants")
				.set({ config: "{}", state: "deleted", reason, updated_at: at })
				.where("id", "=", id)
				.where("state", "!=", "deleted")
				.executeTakeFirst();
			return Number(r.numUpdatedRows) === 1;
		});
	}
}

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

	all(): Promise<TenantRow[]> {
		return this.#s.guard(() => this.#s.db.selectFrom("tenants").selectAll().orderBy("id").execute());
	}

	find(id: string): Promise<TenantRow | undefined> {
		return this.#s.guard(() => this.#s.db.selectFrom("tenants").selectAll().where("id", "=", id).executeTakeFirst());
	}

	/** Inserts unless the ID exists; returns whether this call did. */
	insert(row: TenantRow): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.insertInto("tenants")
				.values(row)
				.onConflict((oc) => oc.column("id").doNothing())
				.executeTakeFirst();
			return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
		});
	}

	/** Replaces the configuration; returns whether the tenant exists. */
	updateConfig(id: string, config: string, at: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.updateTable("tenants")
				.set({ config, updated_at: at })
				.where("id", "=", id)
				.executeTakeFirst();
			return Number(r.numUpdatedRows) === 1;
		});
	}

	/** Moves the tenant to `state` unless it is there already (or terminated, which is final); returns whether it moved. */
	setState(id: string, state: TenantRow["state"], reason: string | null, at: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.updateTable("tenants")
				.set({ state, reason, updated_at: at })
				.where("id", "=", id)
				.where("state", "!=", state)
				.where("state", "!=", "terminated")
				.executeTakeFirst();
			return Number(r.numUpdatedRows) === 1;
		});
	}

	delete(id: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db.deleteFrom("tenants").where("id", "=", id).executeTakeFirst();
			return Number(r.numDeletedRows) === 1;
		});
	}
}

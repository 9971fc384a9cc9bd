import type { Store } from "./Store.js";

export interface StorageTargetRow {
	config: string;
	secrets: Buffer;
	updated_at: string;
}

/**
 * Each tenant's storage target (table `storage_targets`): the customer's bucket, config JSON in clear, secrets
 * sealed by the service. Service: server/storage/StorageTargetStore.ts.
 */
export class StorageTargetRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	upsert(tenantId: string, row: StorageTargetRow): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db
				.insertInto("storage_targets")
				.values({ tenant_id: tenantId, ...row })
				.onConflict((oc) =>
					oc.column("tenant_id").doUpdateSet((eb) => ({
						config: eb.ref("excluded.config"),
						secrets: eb.ref("excluded.secrets"),
						updated_at: eb.ref("excluded.updated_at"),
					})),
				)
				.execute();
		});
	}

	get(tenantId: string): Promise<StorageTargetRow | undefined> {
		return this.#s.guard(() =>
			this.#s.db
				.selectFrom("storage_targets")
				.select(["config", "secrets", "updated_at"])
				.where("tenant_id", "=", tenantId)
				.executeTakeFirst(),
		);
	}

	remove(tenantId: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db.deleteFrom("storage_targets").where("tenant_id", "=", tenantId).executeTakeFirst();
			return Number(r.numDeletedRows) > 0;
		});
	}
}

import {
	joinSecrets,
	parseStorageTarget,
	type StorageTarget,
	type StorageTargetConfig,
	type StorageTargetSecrets,
	splitSecrets,
} from "../../contracts/StorageTargetTypes.js";
import type { Database } from "../store/Database.js";
import type { SecretBox } from "./secretBox.js";

interface Row {
	config: string;
	secrets: Buffer;
	updated_at: string;
}

/**
 * One storage target per tenant, in SQLite. The non-secret part is JSON in
 * clear; credentials and the SSE-C key are sealed with the SecretBox, bound to
 * the tenant id, so they never sit in the database file in clear.
 */
export class StorageTargetStore {
	readonly #db: Database;
	readonly #box: SecretBox;

	constructor(db: Database, box: SecretBox) {
		this.#db = db;
		this.#box = box;
	}

	/**
	 * Creates or replaces the tenant's target. It is validated for shape only
	 * (http is accepted here); the caller decides the endpoint policy
	 * (parseStorageTarget, assertEndpointAllowed, preflight) before saving.
	 */
	save(tenantId: string, target: StorageTarget, now: Date = new Date()): void {
		const valid = parseStorageTarget(target, { allowHttp: true });
		const { config, secrets } = splitSecrets(valid);
		const sealed = this.#box.seal(JSON.stringify(secrets), context(tenantId));
		this.#db
			.prepare(
				`INSERT INTO storage_targets (tenant_id, config, secrets, updated_at) VALUES (?, ?, ?, ?)
				 ON CONFLICT (tenant_id) DO UPDATE SET config = excluded.config, secrets = excluded.secrets, updated_at = excluded.updated_at`,
			)
			.run(tenantId, JSON.stringify(config), sealed, now.toISOString());
	}

	/** The tenant's target with its secrets decrypted, or undefined. Throws SecretBoxError on a wrong key or tampering. */
	get(tenantId: string): StorageTarget | undefined {
		const row = this.#row(tenantId);
		if (!row) return undefined;
		const secrets = JSON.parse(this.#box.open(row.secrets, context(tenantId)).toString("utf8")) as StorageTargetSecrets;
		return joinSecrets(JSON.parse(row.config) as StorageTargetConfig, secrets);
	}

	/** The tenant's target without secrets (for display), or undefined. Needs no decryption. */
	getConfig(tenantId: string): (StorageTargetConfig & { updatedAt: string }) | undefined {
		const row = this.#row(tenantId);
		return row ? { ...(JSON.parse(row.config) as StorageTargetConfig), updatedAt: row.updated_at } : undefined;
	}

	/** Deletes the tenant's target; true when there was one. */
	remove(tenantId: string): boolean {
		return this.#db.prepare("DELETE FROM storage_targets WHERE tenant_id = ?").run(tenantId).changes > 0;
	}

	#row(tenantId: string): Row | undefined {
		return this.#db
			.prepare("SELECT config, secrets, updated_at FROM storage_targets WHERE tenant_id = ?")
			.get(tenantId) as Row | undefined;
	}
}

function context(tenantId: string): string {
	return `storage_targets/${tenantId}`;
}

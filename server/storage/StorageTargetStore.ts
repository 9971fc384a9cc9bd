import {
	joinSecrets,
	parseStorageTarget,
	type StorageTarget,
	type StorageTargetConfig,
	type StorageTargetSecrets,
	splitSecrets,
} from "../../contracts/StorageTargetTypes.js";
import { StorageTargetRepository, type StorageTargetRow } from "../store/StorageTargetRepository.js";
import type { Store } from "../store/Store.js";
import type { SecretBox } from "./secretBox.js";

/**
 * One storage target per tenant, in the store (server/store/StorageTargetRepository.ts). The non-secret part is
 * JSON in clear; credentials and the SSE-C key are sealed with the SecretBox, bound to the tenant id, so they never
 * sit in the database in clear.
 *
 * The capture path needs a tenant's target synchronously when a session starts: {@link load} (awaited by each
 * start, before the session begins) reads it fresh from the store — so a target saved on another node counts at
 * the next start — and {@link current} then answers from what it read.
 */
export class StorageTargetStore {
	readonly #repo: StorageTargetRepository;
	readonly #box: SecretBox;
	readonly #loaded = new Map<string, StorageTarget | undefined>();

	constructor(store: Store, box: SecretBox) {
		this.#repo = new StorageTargetRepository(store);
		this.#box = box;
	}

	/**
	 * Creates or replaces the tenant's target. It is validated for shape only
	 * (http is accepted here); the caller decides the endpoint policy
	 * (parseStorageTarget, assertEndpointAllowed, preflight) before saving.
	 */
	async save(tenantId: string, target: StorageTarget, now: Date = new Date()): Promise<void> {
		const valid = parseStorageTarget(target, { allowHttp: true });
		const { config, secrets } = splitSecrets(valid);
		const sealed = this.#box.seal(JSON.stringify(secrets), context(tenantId));
		await this.#repo.upsert(tenantId, {
			config: JSON.stringify(config),
			secrets: sealed,
			updated_at: now.toISOString(),
		});
		this.#loaded.delete(tenantId);
	}

	/** The tenant's target with its secrets decrypted, or undefined. Throws SecretBoxError on a wrong key or tampering. */
	async get(tenantId: string): Promise<StorageTarget | undefined> {
		const row = await this.#repo.get(tenantId);
		const target = row ? this.#open(tenantId, row) : undefined;
		this.#loaded.set(tenantId, target);
		return target;
	}

	/** Reads the tenant's target fresh (see {@link current}); returns it. */
	load(tenantId: string): Promise<StorageTarget | undefined> {
		return this.get(tenantId);
	}

	/** The target the last {@link get}/{@link load} of this tenant read (undefined: none, or not read yet). */
	current(tenantId: string): StorageTarget | undefined {
		return this.#loaded.get(tenantId);
	}

	/** The tenant's target without secrets (for display), or undefined. Needs no decryption. */
	async getConfig(tenantId: string): Promise<(StorageTargetConfig & { updatedAt: string }) | undefined> {
		const row = await this.#repo.get(tenantId);
		return row ? { ...(JSON.parse(row.config) as StorageTargetConfig), updatedAt: row.updated_at } : undefined;
	}

	/** Deletes the tenant's target; true when there was one. */
	async remove(tenantId: string): Promise<boolean> {
		this.#loaded.delete(tenantId);
		return this.#repo.remove(tenantId);
	}

	#open(tenantId: string, row: StorageTargetRow): StorageTarget {
		const secrets = JSON.parse(this.#box.open(row.secrets, context(tenantId)).toString("utf8")) as StorageTargetSecrets;
		return joinSecrets(JSON.parse(row.config) as StorageTargetConfig, secrets);
	}
}

function context(tenantId: string): string {
	return `storage_targets/${tenantId}`;
}

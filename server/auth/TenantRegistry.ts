import { readFileSync } from "node:fs";
import { ConfigError, NotFoundError } from "../errors.js";
import { type Tenant, TenantSchema, type TenantState, TenantsFileSchema } from "./TenantTypes.js";

/**
 * The Customers (tenants) this gateway serves and the keys their tokens are verified with: this process's copy of
 * the store's `tenants` table (server/operator/TenantDirectory.ts keeps it current within a second of an operator's
 * change). The JSON file `CONSENTRY_TENANTS_FILE` only seeds the store; see docs/identity.md and docs/operator.md.
 */
export class TenantRegistry {
	#tenants = new Map<string, Tenant>();
	#states = new Map<string, { state: TenantState; reason: string | null }>();

	constructor(tenants: Iterable<Tenant> = []) {
		for (const t of tenants) this.add(t);
	}

	static fromFile(file: string): TenantRegistry {
		let raw: unknown;
		try {
			raw = JSON.parse(readFileSync(file, "utf8"));
		} catch (cause) {
			throw new ConfigError(`cannot read tenants file ${file}: ${(cause as Error).message}`, { cause });
		}
		const parsed = TenantsFileSchema.safeParse(raw);
		if (!parsed.success) {
			const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
			throw new ConfigError(`invalid tenants file ${file}:\n${lines.join("\n")}`);
		}
		return new TenantRegistry(parsed.data.tenants);
	}

	add(tenant: Tenant): void {
		const t = TenantSchema.parse(tenant);
		if (this.#tenants.has(t.id)) throw new ConfigError(`tenant ${t.id} is registered twice`);
		this.#tenants.set(t.id, t);
	}

	/** Replaces every tenant at once (a reload from the store). */
	replaceAll(entries: readonly { tenant: Tenant; state: TenantState; reason: string | null }[]): void {
		const tenants = new Map<string, Tenant>();
		const states = new Map<string, { state: TenantState; reason: string | null }>();
		for (const e of entries) {
			tenants.set(e.tenant.id, e.tenant);
			states.set(e.tenant.id, { state: e.state, reason: e.reason });
		}
		this.#tenants = tenants;
		this.#states = states;
	}

	/** `active` unless the operator suspended or terminated the tenant. */
	state(id: string): { state: TenantState; reason: string | null } {
		return this.#states.get(id) ?? { state: "active", reason: null };
	}

	/** Every tenant registered, in ID order. */
	list(): Tenant[] {
		return [...this.#tenants.values()].sort((a, b) => a.id.localeCompare(b.id));
	}

	get(id: string): Tenant {
		const t = this.#tenants.get(id);
		if (!t) throw new NotFoundError("unknown_tenant", `No tenant ${id} is registered on this gateway.`);
		return t;
	}

	has(id: string): boolean {
		return this.#tenants.has(id);
	}

	ids(): string[] {
		return [...this.#tenants.keys()];
	}

	get size(): number {
		return this.#tenants.size;
	}
}

import { readFileSync } from "node:fs";
import { ConfigError, NotFoundError } from "../errors.js";
import { type Tenant, TenantSchema, TenantsFileSchema } from "./TenantTypes.js";

/**
 * The Customers (tenants) this gateway serves and the keys their tokens are
 * verified with. Loaded from a JSON file the operator keeps
 * (`CONSENTRY_TENANTS_FILE`); see docs/identity.md.
 */
export class TenantRegistry {
	readonly #tenants = new Map<string, Tenant>();

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

import type { Selectable } from "kysely";
import type { OperatorWarningsTable } from "./Schema.js";
import type { Store } from "./Store.js";

export type WarningRow = Selectable<OperatorWarningsTable>;

/**
 * The operator's warnings (tables `operator_warnings`, `warning_acks`): to one person (tenant + subject) or a whole
 * tenant, shown until the person acknowledges; each acknowledgement is one row (and an audit entry, by the service).
 * Service: server/operator/OperatorService.ts.
 */
export class WarningRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	insert(row: WarningRow): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db.insertInto("operator_warnings").values(row).execute();
		});
	}

	find(id: string): Promise<WarningRow | undefined> {
		return this.#s.guard(() =>
			this.#s.db.selectFrom("operator_warnings").selectAll().where("id", "=", id).executeTakeFirst(),
		);
	}

	/** Warnings meant for this person (theirs and their tenant's) that they have not acknowledged, oldest first. */
	pendingFor(tenantId: string, subject: string): Promise<WarningRow[]> {
		const person = `${tenantId}:${subject}`;
		return this.#s.guard(() =>
			this.#s.db
				.selectFrom("operator_warnings as w")
				.selectAll("w")
				.where("w.tenant_id", "=", tenantId)
				.where((eb) => eb.or([eb("w.subject", "is", null), eb("w.subject", "=", subject)]))
				.where(({ not, exists, selectFrom }) =>
					not(
						exists(
							selectFrom("warning_acks as a")
								.select("a.warning_id")
								.whereRef("a.warning_id", "=", "w.id")
								.where("a.person", "=", person),
						),
					),
				)
				.orderBy("w.created_at")
				.limit(20)
				.execute(),
		);
	}

	/** Records the acknowledgement; returns whether this call did (false: acknowledged already). */
	acknowledge(warningId: string, person: string, at: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.insertInto("warning_acks")
				.values({ warning_id: warningId, person, at })
				.onConflict((oc) => oc.columns(["warning_id", "person"]).doNothing())
				.executeTakeFirst();
			return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
		});
	}
}

import { sql } from "kysely";
import type { Store } from "./Store.js";

export interface SeatRow {
	connection_id: string;
	meeting_id: string;
	taken_at: string;
}

/**
 * The host seats (table `host_seats`): at most one live host connection per host identity; the primary key
 * decides, across every process and node sharing the store. Each write is one statement (compare-and-set), so
 * no transaction is held open across processes. Service: server/meetings/HostSeats.ts.
 */
export class HostSeatRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	/** Inserts the seat unless someone holds it; returns whether this call took it. */
	insertIfFree(tenantId: string, subject: string, seat: SeatRow): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.insertInto("host_seats")
				.values({ tenant_id: tenantId, host_subject: subject, ...seat })
				.onConflict((oc) => oc.columns(["tenant_id", "host_subject"]).doNothing())
				.executeTakeFirst();
			return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
		});
	}

	/** Replaces the seat if (and only if) `previous` still holds it; returns whether this call did. */
	replaceIfHeldBy(tenantId: string, subject: string, previous: string, seat: SeatRow): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.updateTable("host_seats")
				.set(seat)
				.where("tenant_id", "=", tenantId)
				.where("host_subject", "=", subject)
				.where("connection_id", "=", previous)
				.executeTakeFirst();
			return Number(r.numUpdatedRows) === 1;
		});
	}

	holder(tenantId: string, subject: string): Promise<SeatRow | undefined> {
		return this.#s.guard(() =>
			this.#s.db
				.selectFrom("host_seats")
				.select(["connection_id", "meeting_id", "taken_at"])
				.where("tenant_id", "=", tenantId)
				.where("host_subject", "=", subject)
				.executeTakeFirst(),
		);
	}

	/** Deletes the seat if (and only if) this connection holds it. */
	deleteIfHeldBy(tenantId: string, subject: string, connectionId: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.deleteFrom("host_seats")
				.where("tenant_id", "=", tenantId)
				.where("host_subject", "=", subject)
				.where("connection_id", "=", connectionId)
				.executeTakeFirst();
			return Number(r.numDeletedRows) === 1;
		});
	}

	/** Deletes every seat held by a connection whose ID starts with `prefix`; returns how many. */
	deleteByConnectionPrefix(prefix: string): Promise<number> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.deleteFrom("host_seats")
				.where(sql<boolean>`substr(connection_id, 1, length(CAST(${prefix} AS TEXT))) = ${prefix}`)
				.executeTakeFirst();
			return Number(r.numDeletedRows);
		});
	}
}

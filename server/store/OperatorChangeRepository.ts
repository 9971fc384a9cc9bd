import type { Selectable } from "kysely";
import type { OperatorChangesTable } from "./Schema.js";
import type { Store } from "./Store.js";

export type OperatorChangeRow = Selectable<OperatorChangesTable>;

/**
 * The change feed (table `operator_changes`) every gateway process sharing the store polls: tenants changed,
 * people or tokens cut off, meetings ended by the operator. Appending is one insert; reading is "after my cursor".
 * It also holds where meetings are live (table `meeting_presence`: which gateway process has people in which
 * meeting), so a restarted process ends what its previous run left live.
 */
export class OperatorChangeRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	/** Appends a change; returns its position in the feed. */
	append(row: Omit<OperatorChangeRow, "seq">): Promise<number> {
		return this.#s.guard(async () => {
			const r = await this.#s.db.insertInto("operator_changes").values(row).returning("seq").executeTakeFirstOrThrow();
			return Number(r.seq);
		});
	}

	/** The last position written (0: none). */
	head(): Promise<number> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.selectFrom("operator_changes")
				.select((eb) => eb.fn.max("seq").as("seq"))
				.executeTakeFirst();
			return Number(r?.seq ?? 0);
		});
	}

	after(seq: number, limit = 1000): Promise<OperatorChangeRow[]> {
		return this.#s.guard(() =>
			this.#s.db
				.selectFrom("operator_changes")
				.selectAll()
				.where("seq", ">", seq)
				.orderBy("seq")
				.limit(limit)
				.execute(),
		);
	}

	/** Records that this gateway process has people in the meeting. */
	present(meetingId: string, gatewayId: string, since: string): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db
				.insertInto("meeting_presence")
				.values({ meeting_id: meetingId, gateway_id: gatewayId, since })
				.onConflict((oc) => oc.columns(["meeting_id", "gateway_id"]).doNothing())
				.execute();
		});
	}

	absent(meetingId: string, gatewayId: string): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db
				.deleteFrom("meeting_presence")
				.where("meeting_id", "=", meetingId)
				.where("gateway_id", "=", gatewayId)
				.execute();
		});
	}

	/**
	 * Live meetings a previous run of `gatewayId` had people in and no other process has: what a crash or stop left
	 * `live`. Its presence rows are dropped in the same call.
	 */
	orphanedBy(gatewayId: string): Promise<string[]> {
		return this.#s.transaction("meeting_presence", async (trx) => {
			const rows = await trx
				.selectFrom("meeting_presence as p")
				.innerJoin("meetings as m", "m.id", "p.meeting_id")
				.select("p.meeting_id")
				.where("p.gateway_id", "=", gatewayId)
				.where("m.state", "=", "live")
				.where(({ not, exists, selectFrom }) =>
					not(
						exists(
							selectFrom("meeting_presence as o")
								.select("o.meeting_id")
								.whereRef("o.meeting_id", "=", "p.meeting_id")
								.where("o.gateway_id", "!=", gatewayId),
						),
					),
				)
				.execute();
			await trx.deleteFrom("meeting_presence").where("gateway_id", "=", gatewayId).execute();
			return rows.map((r) => r.meeting_id);
		});
	}

	/** Live meetings (all tenants, or one), for the operator's list: metadata only. */
	liveMeetings(tenantId?: string): Promise<
		{
			id: string;
			tenant_id: string;
			host_subject: string;
			started_at: string | null;
			settings: string;
			locked: number;
		}[]
	> {
		return this.#s.guard(() => {
			let q = this.#s.db
				.selectFrom("meetings")
				.select(["id", "tenant_id", "host_subject", "started_at", "settings", "locked"])
				.where("state", "=", "live");
			if (tenantId !== undefined) q = q.where("tenant_id", "=", tenantId);
			return q.orderBy("started_at").orderBy("id").limit(10_000).execute();
		});
	}

	/** Live meetings a person hosts (one at most, by the store's rule; a list for safety). */
	liveHostedBy(tenantId: string, subject: string): Promise<string[]> {
		return this.#s.guard(async () =>
			(
				await this.#s.db
					.selectFrom("meetings")
					.select("id")
					.where("tenant_id", "=", tenantId)
					.where("host_subject", "=", subject)
					.where("state", "=", "live")
					.execute()
			).map((r) => r.id),
		);
	}
}

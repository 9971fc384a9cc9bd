import { type Kysely, type Selectable, sql } from "kysely";
import type { Schema, WebhookDeliveriesTable, WebhookSettingsTable } from "./Schema.js";
import type { Store } from "./Store.js";

export interface SettingsRow {
	tenant_id: string;
	url: string;
	events: string;
	secret: Buffer;
	cursor_seq: number;
	created_at: string;
	updated_at: string;
}

export interface DeliveryRecord {
	id: number;
	tenant_id: string;
	event_id: string;
	event: string;
	meeting_id: string | null;
	payload: string;
	state: "pending" | "delivered" | "failed" | "cancelled";
	attempts: number;
	created_at: number;
	next_attempt_at: number | null;
	lease_until: number | null;
	delivered_at: number | null;
	last_status: number | null;
	last_error: string | null;
	last_duration_ms: number | null;
}

const num = (x: number | string | null): number | null => (x === null ? null : Number(x));

function settings(r: Selectable<WebhookSettingsTable>): SettingsRow {
	return { ...r, secret: Buffer.from(r.secret), cursor_seq: Number(r.cursor_seq) };
}

function delivery(r: Selectable<WebhookDeliveriesTable>): DeliveryRecord {
	return {
		...r,
		id: Number(r.id),
		created_at: Number(r.created_at),
		next_attempt_at: num(r.next_attempt_at),
		lease_until: num(r.lease_until),
		delivered_at: num(r.delivered_at),
	};
}

export interface QueuedPayload {
	id: string;
	type: string;
	meetingId: string | null;
	json: string;
}

/** The queries on the webhook tables inside one transaction (see {@link WebhookRepository.transaction}). */
export class WebhookQueries {
	readonly #db: Kysely<Schema>;

	constructor(db: Kysely<Schema>) {
		this.#db = db;
	}

	async settings(tenantId: string): Promise<SettingsRow | undefined> {
		const r = await this.#db
			.selectFrom("webhook_settings")
			.selectAll()
			.where("tenant_id", "=", tenantId)
			.executeTakeFirst();
		return r && settings(r);
	}

	/** Creates or updates the endpoint; a new one starts its cursor at `cursorSeq`, an update keeps its cursor. */
	async upsertSettings(row: Omit<SettingsRow, "created_at" | "updated_at">, at: string): Promise<void> {
		await this.#db
			.insertInto("webhook_settings")
			.values({ ...row, created_at: at, updated_at: at })
			.onConflict((oc) =>
				oc.column("tenant_id").doUpdateSet({
					url: (eb) => eb.ref("excluded.url"),
					events: (eb) => eb.ref("excluded.events"),
					secret: (eb) => eb.ref("excluded.secret"),
					updated_at: (eb) => eb.ref("excluded.updated_at"),
				}),
			)
			.execute();
	}

	async deleteSettings(tenantId: string): Promise<boolean> {
		const r = await this.#db.deleteFrom("webhook_settings").where("tenant_id", "=", tenantId).executeTakeFirst();
		return Number(r.numDeletedRows) > 0;
	}

	async cancelPending(tenantId: string, now: number, reason: string): Promise<void> {
		await this.#db
			.updateTable("webhook_deliveries")
			.set({ state: "cancelled", next_attempt_at: null, last_error: reason, delivered_at: now })
			.where("tenant_id", "=", tenantId)
			.where("state", "=", "pending")
			.execute();
	}

	/** Queues a payload unless its event id is queued already; returns whether it was. */
	async queueOnce(tenantId: string, p: QueuedPayload, now: number): Promise<boolean> {
		const r = await this.#db
			.insertInto("webhook_deliveries")
			.values({
				tenant_id: tenantId,
				event_id: p.id,
				event: p.type,
				meeting_id: p.meetingId,
				payload: p.json,
				state: "pending",
				created_at: now,
				next_attempt_at: now,
			})
			.onConflict((oc) => oc.column("event_id").doNothing())
			.executeTakeFirst();
		return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
	}

	async setCursor(tenantId: string, seq: number): Promise<void> {
		await this.#db.updateTable("webhook_settings").set({ cursor_seq: seq }).where("tenant_id", "=", tenantId).execute();
	}
}

/**
 * Webhook endpoints (`webhook_settings`) and the outbox of deliveries (`webhook_deliveries`). Leases are
 * compare-and-set updates, so processes and nodes sharing the store never send the same attempt twice.
 * Service: server/webhooks/WebhookStore.ts (secrets) and WebhookService.ts (projection, dispatch).
 */
export class WebhookRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	/** Runs `fn` in one write transaction, taking turns with every other on this tenant's webhook rows. */
	transaction<T>(tenantId: string, fn: (q: WebhookQueries) => Promise<T>): Promise<T> {
		return this.#s.transaction(`webhooks:${tenantId}`, (trx) => fn(new WebhookQueries(trx)));
	}

	/** Outside a transaction (a single statement each). */
	get queries(): WebhookQueries {
		return new WebhookQueries(this.#s.db);
	}

	cursors(): Promise<{ tenantId: string; cursorSeq: number }[]> {
		return this.#s.guard(async () =>
			(await this.#s.db.selectFrom("webhook_settings").select(["tenant_id", "cursor_seq"]).execute()).map((r) => ({
				tenantId: r.tenant_id,
				cursorSeq: Number(r.cursor_seq),
			})),
		);
	}

	/** Queues one payload now; returns its delivery id. */
	enqueue(tenantId: string, p: QueuedPayload, now: number): Promise<number> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.insertInto("webhook_deliveries")
				.values({
					tenant_id: tenantId,
					event_id: p.id,
					event: p.type,
					meeting_id: p.meetingId,
					payload: p.json,
					state: "pending",
					created_at: now,
					next_attempt_at: now,
				})
				.returning("id")
				.executeTakeFirstOrThrow();
			return Number(r.id);
		});
	}

	/**
	 * Due deliveries first in line for their meeting (in order per meeting: a later event waits while an earlier
	 * one of the same meeting is pending).
	 */
	due(now: number, limit: number): Promise<DeliveryRecord[]> {
		return this.#s.guard(async () => {
			// (SQLite's planner, without statistics, would rather scan the table than use the per-meeting index.)
			const heads =
				this.#s.engine === "sqlite"
					? sql`SELECT min(id) AS id FROM webhook_deliveries INDEXED BY webhook_deliveries_by_meeting
					      WHERE state = 'pending' GROUP BY tenant_id, meeting_id`
					: sql`SELECT min(id) AS id FROM webhook_deliveries WHERE state = 'pending' GROUP BY tenant_id, meeting_id`;
			const r = await sql<Selectable<WebhookDeliveriesTable>>`
				SELECT d.* FROM (${heads}) AS head JOIN webhook_deliveries d ON d.id = head.id
				WHERE d.next_attempt_at <= ${now} AND (d.lease_until IS NULL OR d.lease_until < ${now})
				ORDER BY d.next_attempt_at, d.id LIMIT ${limit}`.execute(this.#s.db);
			return r.rows.map(delivery);
		});
	}

	/** When the next pending delivery is due (ms), or undefined when none is pending. */
	nextDueAt(): Promise<number | undefined> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.selectFrom("webhook_deliveries")
				.select(
					sql<number | string | null>`min(CASE WHEN coalesce(lease_until, 0) > next_attempt_at
					THEN lease_until ELSE next_attempt_at END)`.as("at"),
				)
				.where("state", "=", "pending")
				.executeTakeFirst();
			return r?.at === null || r?.at === undefined ? undefined : Number(r.at);
		});
	}

	/** Takes the delivery for one attempt until `until`; false when another process has it. */
	lease(id: number, now: number, until: number): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.updateTable("webhook_deliveries")
				.set({ lease_until: until })
				.where("id", "=", id)
				.where("state", "=", "pending")
				.where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<", now)]))
				.executeTakeFirst();
			return Number(r.numUpdatedRows) > 0;
		});
	}

	delivered(id: number, status: number, durationMs: number, now: number): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db
				.updateTable("webhook_deliveries")
				.set((eb) => ({
					state: "delivered",
					attempts: eb("attempts", "+", 1),
					delivered_at: now,
					next_attempt_at: null,
					lease_until: null,
					last_status: status,
					last_error: null,
					last_duration_ms: durationMs,
				}))
				.where("id", "=", id)
				.execute();
		});
	}

	attemptFailed(
		id: number,
		f: { status: number | null; error: string; durationMs: number; retryAt: number | undefined },
		now: number,
	): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db
				.updateTable("webhook_deliveries")
				.set((eb) => ({
					attempts: eb("attempts", "+", 1),
					lease_until: null,
					last_status: f.status,
					last_error: f.error.slice(0, 500),
					last_duration_ms: f.durationMs,
					state: f.retryAt === undefined ? "failed" : "pending",
					next_attempt_at: f.retryAt ?? null,
					delivered_at: f.retryAt === undefined ? now : null,
				}))
				.where("id", "=", id)
				.execute();
		});
	}

	/** The tenant's deliveries, newest first. */
	log(
		tenantId: string,
		q: { state?: DeliveryRecord["state"]; limit: number; before?: number },
	): Promise<DeliveryRecord[]> {
		return this.#s.guard(async () => {
			let query = this.#s.db.selectFrom("webhook_deliveries").selectAll().where("tenant_id", "=", tenantId);
			if (q.state) query = query.where("state", "=", q.state);
			if (q.before !== undefined) query = query.where("id", "<", q.before);
			return (await query.orderBy("id", "desc").limit(q.limit).execute()).map(delivery);
		});
	}

	pendingCount(): Promise<number> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.selectFrom("webhook_deliveries")
				.select((eb) => eb.fn.countAll<number | string>().as("n"))
				.where("state", "=", "pending")
				.executeTakeFirstOrThrow();
			return Number(r.n);
		});
	}

	guard<T>(fn: () => Promise<T>): Promise<T> {
		return this.#s.guard(fn);
	}
}

import { randomBytes } from "node:crypto";
import type BetterSqlite3 from "better-sqlite3";
import type { SecretBox } from "../storage/secretBox.js";
import type { Database } from "../store/Database.js";
import type {
	DeliveryState,
	DeliveryView,
	WebhookEventType,
	WebhookPayload,
	WebhookRetryPolicy,
	WebhookView,
} from "./WebhookTypes.js";

/** A tenant's endpoint with its secret opened (only the dispatcher holds it, only while delivering). */
export interface WebhookEndpoint {
	tenantId: string;
	url: string;
	events: WebhookEventType[];
	secret: string;
	cursorSeq: number;
}

interface SettingsRow {
	tenant_id: string;
	url: string;
	events: string;
	secret: Buffer;
	cursor_seq: number;
	created_at: string;
	updated_at: string;
}

export interface DeliveryRow {
	id: number;
	tenant_id: string;
	event_id: string;
	event: WebhookEventType;
	meeting_id: string | null;
	payload: string;
	state: DeliveryState;
	attempts: number;
	created_at: number;
	next_attempt_at: number | null;
	lease_until: number | null;
	delivered_at: number | null;
	last_status: number | null;
	last_error: string | null;
	last_duration_ms: number | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * Webhook settings (one endpoint per tenant, its signing secret sealed with the SecretBox, bound to the tenant)
 * and the durable outbox of deliveries, in the gateway's SQLite store: what is pending survives a restart,
 * and several gateway processes sharing the file never send the same attempt twice (leases).
 */
export class WebhookStore {
	readonly #db: Database;
	readonly #box: SecretBox;

	readonly #statements = new Map<string, BetterSqlite3.Statement<unknown[]>>();

	constructor(db: Database, box: SecretBox) {
		this.#db = db;
		this.#box = box;
	}

	/** A prepared statement, prepared once. */
	#stmt(sql: string): BetterSqlite3.Statement<unknown[]> {
		let st = this.#statements.get(sql);
		if (!st) {
			st = this.#db.prepare(sql);
			this.#statements.set(sql, st);
		}
		return st;
	}

	/**
	 * Creates or updates the tenant's endpoint. A new endpoint starts at the trail's head (`headSeq`: nothing
	 * from before is sent). The secret: the one given, else the current one (unless `rotate`), else a new one.
	 * Returns the view and the secret when it is new (shown once).
	 */
	save(
		tenantId: string,
		input: { url: string; events: WebhookEventType[]; secret?: string; rotate?: boolean },
		headSeq: number,
		now = new Date(),
	): { view: WebhookView; newSecret?: string } {
		return this.#db
			.transaction(() => {
				const row = this.#row(tenantId);
				let secret = input.secret;
				if (!secret && row && !input.rotate) secret = this.#open(row);
				let newSecret: string | undefined;
				if (!secret) {
					newSecret = `whsec_${randomBytes(32).toString("base64url")}`;
					secret = newSecret;
				}
				const sealed = this.#box.seal(secret, context(tenantId));
				const at = now.toISOString();
				this.#stmt(
					`INSERT INTO webhook_settings (tenant_id, url, events, secret, cursor_seq, created_at, updated_at)
						 VALUES (?, ?, ?, ?, ?, ?, ?)
						 ON CONFLICT (tenant_id) DO UPDATE SET url = excluded.url, events = excluded.events,
						   secret = excluded.secret, updated_at = excluded.updated_at`,
				).run(tenantId, input.url, JSON.stringify(input.events), sealed, headSeq, at, at);
				const view = this.view(tenantId) as WebhookView;
				return newSecret ? { view, newSecret } : { view };
			})
			.immediate();
	}

	view(tenantId: string): WebhookView | undefined {
		const row = this.#row(tenantId);
		return row
			? {
					url: row.url,
					events: JSON.parse(row.events) as WebhookEventType[],
					createdAt: row.created_at,
					updatedAt: row.updated_at,
				}
			: undefined;
	}

	/** Removes the endpoint and cancels its pending deliveries; true when there was one. */
	remove(tenantId: string, now = Date.now()): boolean {
		return this.#db
			.transaction(() => {
				const removed = this.#stmt("DELETE FROM webhook_settings WHERE tenant_id = ?").run(tenantId).changes > 0;
				this.#stmt(
					`UPDATE webhook_deliveries SET state = 'cancelled', next_attempt_at = NULL, last_error = 'endpoint removed',
						 delivered_at = ? WHERE tenant_id = ? AND state = 'pending'`,
				).run(now, tenantId);
				return removed;
			})
			.immediate();
	}

	/** Tenants with an endpoint, and where their cursor is. */
	cursors(): { tenantId: string; cursorSeq: number }[] {
		return (
			this.#stmt("SELECT tenant_id, cursor_seq FROM webhook_settings").all() as {
				tenant_id: string;
				cursor_seq: number;
			}[]
		).map((r) => ({ tenantId: r.tenant_id, cursorSeq: r.cursor_seq }));
	}

	endpoint(tenantId: string): WebhookEndpoint | undefined {
		const row = this.#row(tenantId);
		return row
			? {
					tenantId,
					url: row.url,
					events: JSON.parse(row.events) as WebhookEventType[],
					secret: this.#open(row),
					cursorSeq: row.cursor_seq,
				}
			: undefined;
	}

	/**
	 * In one transaction: `build(cursor)` turns the trail after the tenant's cursor into payloads; they are
	 * queued (an event id already queued is skipped) and the cursor moves to `upTo`. Returns how many were queued.
	 * Two processes doing it at once queue each event once: the cursor is re-read under the write lock.
	 */
	project(
		tenantId: string,
		build: (cursorSeq: number, events: WebhookEventType[]) => { upTo: number; payloads: WebhookPayload[] },
		now = Date.now(),
	): number {
		return this.#db
			.transaction(() => {
				const row = this.#row(tenantId);
				if (!row) return 0;
				const { upTo, payloads } = build(row.cursor_seq, JSON.parse(row.events) as WebhookEventType[]);
				if (upTo <= row.cursor_seq) return 0;
				const insert = this.#stmt(
					`INSERT OR IGNORE INTO webhook_deliveries (tenant_id, event_id, event, meeting_id, payload, state, created_at, next_attempt_at)
					 VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)`,
				);
				let queued = 0;
				for (const p of payloads)
					queued += insert.run(tenantId, p.id, p.type, p.meetingId, JSON.stringify(p), now, now).changes;
				this.#stmt("UPDATE webhook_settings SET cursor_seq = ? WHERE tenant_id = ?").run(upTo, tenantId);
				return queued;
			})
			.immediate();
	}

	/** Queues one payload now (a ping). */
	enqueue(tenantId: string, p: WebhookPayload, now = Date.now()): number {
		return Number(
			this.#stmt(
				`INSERT INTO webhook_deliveries (tenant_id, event_id, event, meeting_id, payload, state, created_at, next_attempt_at)
					 VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)`,
			).run(tenantId, p.id, p.type, p.meetingId, JSON.stringify(p), now, now).lastInsertRowid,
		);
	}

	/**
	 * Due deliveries that are first in line for their meeting (in order per meeting: a later event waits while an
	 * earlier one of the same meeting is pending, however long its retries take), skipping `busy` meeting keys.
	 */
	due(now: number, limit: number): DeliveryRow[] {
		return this.#stmt(
			`SELECT d.* FROM (SELECT min(id) AS id FROM webhook_deliveries INDEXED BY webhook_deliveries_by_meeting
				                   WHERE state = 'pending' GROUP BY tenant_id, meeting_id) AS head
				 JOIN webhook_deliveries d ON d.id = head.id
				 WHERE d.next_attempt_at <= ? AND (d.lease_until IS NULL OR d.lease_until < ?)
				 ORDER BY d.next_attempt_at, d.id LIMIT ?`,
		).all(now, now, limit) as DeliveryRow[];
	}

	/** When the next pending delivery is due (ms), or undefined when none is pending. */
	nextDueAt(): number | undefined {
		const r = this.#stmt(
			"SELECT min(max(next_attempt_at, coalesce(lease_until, 0))) AS at FROM webhook_deliveries WHERE state = 'pending'",
		).get() as { at: number | null };
		return r.at ?? undefined;
	}

	/** Takes the delivery for one attempt until `until`; false when another process has it. */
	lease(id: number, now: number, until: number): boolean {
		return (
			this.#stmt(
				`UPDATE webhook_deliveries SET lease_until = ?
					 WHERE id = ? AND state = 'pending' AND (lease_until IS NULL OR lease_until < ?)`,
			).run(until, id, now).changes > 0
		);
	}

	delivered(id: number, status: number, durationMs: number, now = Date.now()): void {
		this.#stmt(
			`UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, next_attempt_at = NULL,
				 lease_until = NULL, last_status = ?, last_error = NULL, last_duration_ms = ? WHERE id = ?`,
		).run(now, status, durationMs, id);
	}

	/** An attempt failed: retried at `retryAt`, or failed for good (undefined). */
	attemptFailed(
		id: number,
		f: { status: number | null; error: string; durationMs: number; retryAt: number | undefined },
		now = Date.now(),
	): void {
		this.#stmt(
			`UPDATE webhook_deliveries SET attempts = attempts + 1, lease_until = NULL, last_status = ?, last_error = ?,
				 last_duration_ms = ?, state = ?, next_attempt_at = ?, delivered_at = ? WHERE id = ?`,
		).run(
			f.status,
			f.error.slice(0, 500),
			f.durationMs,
			f.retryAt === undefined ? "failed" : "pending",
			f.retryAt ?? null,
			f.retryAt === undefined ? now : null,
			id,
		);
	}

	/** The tenant's delivery log, newest first. */
	log(tenantId: string, q: { state?: DeliveryState; limit: number; before?: number }): DeliveryView[] {
		const rows = this.#stmt(
			`SELECT * FROM webhook_deliveries INDEXED BY webhook_deliveries_by_tenant
				 WHERE tenant_id = @tenantId AND (@state IS NULL OR state = @state) AND (@before IS NULL OR id < @before)
				 ORDER BY id DESC LIMIT @limit`,
		).all({ tenantId, state: q.state ?? null, before: q.before ?? null, limit: q.limit }) as DeliveryRow[];
		return rows.map((r) => ({
			id: r.id,
			eventId: r.event_id,
			event: r.event,
			meetingId: r.meeting_id,
			state: r.state,
			attempts: r.attempts,
			createdAt: iso(r.created_at) as string,
			nextAttemptAt: iso(r.next_attempt_at),
			deliveredAt: iso(r.delivered_at),
			lastStatus: r.last_status,
			lastError: r.last_error,
			lastDurationMs: r.last_duration_ms,
		}));
	}

	/** How many deliveries are pending (metrics). */
	pendingCount(): number {
		return (this.#stmt("SELECT count(*) AS n FROM webhook_deliveries WHERE state = 'pending'").get() as { n: number })
			.n;
	}

	#row(tenantId: string): SettingsRow | undefined {
		return this.#stmt("SELECT * FROM webhook_settings WHERE tenant_id = ?").get(tenantId) as SettingsRow | undefined;
	}

	#open(row: SettingsRow): string {
		return this.#box.open(row.secret, context(row.tenant_id)).toString("utf8");
	}
}

function context(tenantId: string): string {
	return `webhooks/${tenantId}`;
}

/** The wait before attempt `attempts + 1` (attempts ≥ 1 made so far): doubling, capped, ±20 % jitter. */
export function backoffMs(attempts: number, policy: WebhookRetryPolicy, random = Math.random): number {
	const base = Math.min(policy.maxDelayMs, policy.firstDelayMs * 2 ** Math.max(0, attempts - 1));
	return Math.round(base * (0.8 + 0.4 * random()));
}

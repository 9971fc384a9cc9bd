import { randomBytes } from "node:crypto";
import type { SecretBox } from "../storage/secretBox.js";
import type { Store } from "../store/Store.js";
import {
	type DeliveryRecord,
	type QueuedPayload,
	type SettingsRow,
	WebhookRepository,
} from "../store/WebhookRepository.js";
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

export type DeliveryRow = Omit<DeliveryRecord, "event" | "state"> & { event: WebhookEventType; state: DeliveryState };

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * Webhook settings (one endpoint per tenant, its signing secret sealed with the SecretBox, bound to the tenant)
 * and the durable outbox of deliveries, in the gateway's store: what is pending survives a restart, and several
 * gateway processes sharing the store never send the same attempt twice (leases). Queries:
 * server/store/WebhookRepository.ts.
 */
export class WebhookStore {
	readonly #repo: WebhookRepository;
	readonly #box: SecretBox;

	constructor(store: Store, box: SecretBox) {
		this.#repo = new WebhookRepository(store);
		this.#box = box;
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
	): Promise<{ view: WebhookView; newSecret?: string }> {
		return this.#repo.transaction(tenantId, async (q) => {
			const row = await q.settings(tenantId);
			let secret = input.secret;
			if (!secret && row && !input.rotate) secret = this.#open(row);
			let newSecret: string | undefined;
			if (!secret) {
				newSecret = `whsec_${randomBytes(32).toString("base64url")}`;
				secret = newSecret;
			}
			const sealed = this.#box.seal(secret, context(tenantId));
			await q.upsertSettings(
				{
					tenant_id: tenantId,
					url: input.url,
					events: JSON.stringify(input.events),
					secret: sealed,
					cursor_seq: headSeq,
				},
				now.toISOString(),
			);
			const view = viewOf((await q.settings(tenantId)) as SettingsRow);
			return newSecret ? { view, newSecret } : { view };
		});
	}

	async view(tenantId: string): Promise<WebhookView | undefined> {
		const row = await this.#repo.guard(() => this.#repo.queries.settings(tenantId));
		return row && viewOf(row);
	}

	/** Removes the endpoint and cancels its pending deliveries; true when there was one. */
	remove(tenantId: string, now = Date.now()): Promise<boolean> {
		return this.#repo.transaction(tenantId, async (q) => {
			const removed = await q.deleteSettings(tenantId);
			await q.cancelPending(tenantId, now, "endpoint removed");
			return removed;
		});
	}

	/** Tenants with an endpoint, and where their cursor is. */
	cursors(): Promise<{ tenantId: string; cursorSeq: number }[]> {
		return this.#repo.cursors();
	}

	async endpoint(tenantId: string): Promise<WebhookEndpoint | undefined> {
		const row = await this.#repo.guard(() => this.#repo.queries.settings(tenantId));
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
	 * Two processes doing it at once queue each event once: the cursor is re-read inside the transaction, which
	 * takes turns with every other on this tenant's webhook rows.
	 */
	project(
		tenantId: string,
		build: (
			cursorSeq: number,
			events: WebhookEventType[],
		) => { upTo: number; payloads: WebhookPayload[] } | Promise<{ upTo: number; payloads: WebhookPayload[] }>,
		now = Date.now(),
	): Promise<number> {
		return this.#repo.transaction(tenantId, async (q) => {
			const row = await q.settings(tenantId);
			if (!row) return 0;
			const { upTo, payloads } = await build(row.cursor_seq, JSON.parse(row.events) as WebhookEventType[]);
			if (upTo <= row.cursor_seq) return 0;
			let queued = 0;
			for (const p of payloads) if (await q.queueOnce(tenantId, queued$(p), now)) queued++;
			await q.setCursor(tenantId, upTo);
			return queued;
		});
	}

	/** Queues one payload now (a ping). */
	enqueue(tenantId: string, p: WebhookPayload, now = Date.now()): Promise<number> {
		return this.#repo.enqueue(tenantId, queued$(p), now);
	}

	/**
	 * Due deliveries that are first in line for their meeting (in order per meeting: a later event waits while an
	 * earlier one of the same meeting is pending, however long its retries take).
	 */
	async due(now: number, limit: number): Promise<DeliveryRow[]> {
		return (await this.#repo.due(now, limit)) as DeliveryRow[];
	}

	/** When the next pending delivery is due (ms), or undefined when none is pending. */
	nextDueAt(): Promise<number | undefined> {
		return this.#repo.nextDueAt();
	}

	/** Takes the delivery for one attempt until `until`; false when another process has it. */
	lease(id: number, now: number, until: number): Promise<boolean> {
		return this.#repo.lease(id, now, until);
	}

	delivered(id: number, status: number, durationMs: number, now = Date.now()): Promise<void> {
		return this.#repo.delivered(id, status, durationMs, now);
	}

	/** An attempt failed: retried at `retryAt`, or failed for good (undefined). */
	attemptFailed(
		id: number,
		f: { status: number | null; error: string; durationMs: number; retryAt: number | undefined },
		now = Date.now(),
	): Promise<void> {
		return this.#repo.attemptFailed(id, f, now);
	}

	/** The tenant's delivery log, newest first. */
	async log(tenantId: string, q: { state?: DeliveryState; limit: number; before?: number }): Promise<DeliveryView[]> {
		const rows = (await this.#repo.log(tenantId, q)) as DeliveryRow[];
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
	pendingCount(): Promise<number> {
		return this.#repo.pendingCount();
	}

	#open(row: SettingsRow): string {
		return this.#box.open(row.secret, context(row.tenant_id)).toString("utf8");
	}
}

function viewOf(row: SettingsRow): WebhookView {
	return {
		url: row.url,
		events: JSON.parse(row.events) as WebhookEventType[],
		createdAt: row.created_at,
		updatedAt: row.updated_at,
	};
}

function queued$(p: WebhookPayload): QueuedPayload {
	return { id: p.id, type: p.type, meetingId: p.meetingId, json: JSON.stringify(p) };
}

function context(tenantId: string): string {
	return `webhooks/${tenantId}`;
}

/** The wait before attempt `attempts + 1` (attempts ≥ 1 made so far): doubling, capped, ±20 % jitter. */
export function backoffMs(attempts: number, policy: WebhookRetryPolicy, random = Math.random): number {
	const base = Math.min(policy.maxDelayMs, policy.firstDelayMs * 2 ** Math.max(0, attempts - 1));
	return Math.round(base * (0.8 + 0.4 * random()));
}

import { randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { assertEndpointAllowed, type EndpointPolicy, guardedLookup } from "../../contracts/endpointGuard.js";
import type { AuditEvent, EventLog } from "../audit/EventLog.js";
import type { Logger } from "../logger.js";
import { sign } from "./signature.js";
import { backoffMs, type DeliveryRow, type WebhookStore } from "./WebhookStore.js";
import { DEFAULT_RETRY, type WebhookEventType, type WebhookPayload, type WebhookRetryPolicy } from "./WebhookTypes.js";
import { payloadOf, toWebhookEvent } from "./webhookEvents.js";

export interface WebhookServiceOptions {
	store: WebhookStore;
	events: EventLog;
	/** Which endpoints the operator allows (the same policy as storage endpoints). */
	endpointPolicy: EndpointPolicy;
	retry?: Partial<WebhookRetryPolicy>;
	/** Attempts in flight at once, all tenants together. Default 16. */
	concurrency?: number;
	/** How often the outbox and the trail are looked at without a nudge (other gateway processes' entries). Default 1000 ms. */
	pollMs?: number;
	log: Logger;
}

/** One attempt's outcome, for the service's listeners (metrics, benchmarks). */
export interface AttemptResult {
	tenantId: string;
	event: WebhookEventType;
	ok: boolean;
	status: number | null;
	durationMs: number;
	/** From the event's audit entry to this attempt's answer (ms). */
	latencyMs: number;
}

/**
 * Delivers webhooks: turns new audit entries of every tenant with an endpoint into queued deliveries (the
 * outbox in the store), and POSTs them, signed, in order per meeting, retrying with backoff for 24 h. Nothing
 * here runs on a meeting's path: the trail hook only nudges, delivery is asynchronous, every attempt has a
 * timeout, redirects are refused, and answers are never read past 1 KiB. A restart picks up what is pending.
 */
export class WebhookService {
	readonly #o: WebhookServiceOptions;
	readonly #retry: WebhookRetryPolicy;
	readonly #concurrency: number;
	readonly #inFlight = new Map<number, { abort: AbortController; done: Promise<void> }>();
	readonly #busyMeetings = new Set<string>();
	/** Attempts in flight per tenant: one customer's slow endpoint never takes every slot. */
	readonly #perTenant = new Map<string, number>();
	readonly #listeners = new Set<(r: AttemptResult) => void>();
	#timer: NodeJS.Timeout | undefined;
	#poll: NodeJS.Timeout | undefined;
	#scheduled = false;
	/** Whether the next run also reads the trail (a nudge) or only dispatches (an attempt finished). */
	#projectNext = false;
	#closed = false;
	/** The run in progress (runs never overlap: a nudge meanwhile runs again after it). */
	#running: Promise<void> | undefined;
	#rerun = false;
	#unhook: () => void;

	constructor(o: WebhookServiceOptions) {
		this.#o = o;
		this.#retry = { ...DEFAULT_RETRY, ...o.retry };
		this.#concurrency = o.concurrency ?? 16;
		this.#unhook = o.events.onAppend((appended) => {
			if (appended.some((e) => toWebhookEventCheap(e))) this.nudge();
		});
		this.#poll = setInterval(() => this.nudge(), o.pollMs ?? 1000);
		this.#poll.unref();
		this.nudge();
	}

	get store(): WebhookStore {
		return this.#o.store;
	}

	/** Listens to every attempt's outcome. */
	onAttempt(listener: (r: AttemptResult) => void): () => void {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
	}

	/** Looks at the trail and the outbox soon (coalesced). */
	nudge(): void {
		this.#projectNext = true;
		this.#schedule();
	}

	#schedule(): void {
		if (this.#scheduled || this.#closed) return;
		this.#scheduled = true;
		setImmediate(() => {
			this.#scheduled = false;
			if (this.#running) {
				this.#rerun = true;
				return;
			}
			const project = this.#projectNext;
			this.#projectNext = false;
			this.#running = this.#run(project).finally(() => {
				this.#running = undefined;
				if (this.#rerun) {
					this.#rerun = false;
					this.#schedule();
				}
			});
		});
	}

	/** Queues a `ping` for the tenant's endpoint; returns the delivery id. */
	async ping(tenantId: string): Promise<number> {
		const p: WebhookPayload = {
			id: `evt_ping_${randomUUID().replaceAll("-", "")}`,
			type: "ping",
			createdAt: new Date().toISOString(),
			tenant: tenantId,
			meetingId: null,
			data: {},
			audit: null,
		};
		const id = await this.#o.store.enqueue(tenantId, p);
		this.nudge();
		return id;
	}

	/** Stops: no new attempts; attempts in flight are cut (they are retried after the next start). */
	async close(): Promise<void> {
		this.#closed = true;
		this.#unhook();
		clearTimeout(this.#timer);
		clearInterval(this.#poll);
		await this.#running;
		for (const f of this.#inFlight.values()) f.abort.abort();
		await Promise.all([...this.#inFlight.values()].map((f) => f.done));
	}

	async #run(project: boolean): Promise<void> {
		if (this.#closed) return;
		try {
			if (project) await this.#project();
			await this.#dispatch();
		} catch (err) {
			this.#o.log.error({ err }, "webhooks: could not read the outbox");
		}
	}

	/** New trail entries of every tenant with an endpoint → queued deliveries. */
	async #project(): Promise<void> {
		for (const { tenantId, cursorSeq } of await this.#o.store.cursors()) {
			const head = (await this.#o.events.head(tenantId))?.seq ?? 0;
			if (head <= cursorSeq) continue;
			// Read and turned into events before the projection's transaction (which, on SQLite, holds the one
			// connection); inside it, only what lies after the cursor as it is then is queued.
			const entries = await this.#o.events.list({ tenantId, afterSeq: cursorSeq, limit: 1000 });
			const made: { seq: number; payload?: WebhookPayload }[] = [];
			for (const e of entries) {
				const ev = await toWebhookEvent(e, this.#o.events);
				made.push({ seq: e.seq, ...(ev ? { payload: payloadOf(e, ev.type, ev.data) } : {}) });
			}
			await this.#o.store.project(tenantId, (cursor, wanted) => {
				const after = made.filter((m) => m.seq > cursor);
				const payloads = after.flatMap((m) => (m.payload && wanted.includes(m.payload.type) ? [m.payload] : []));
				return { upTo: Math.max(cursor, after.at(-1)?.seq ?? cursor), payloads };
			});
		}
	}

	async #dispatch(): Promise<void> {
		const now = Date.now();
		const free = this.#concurrency - this.#inFlight.size;
		if (free > 0) {
			const tenantCap = Math.max(1, Math.floor(this.#concurrency / 2));
			for (const row of await this.#o.store.due(now, 200)) {
				if (this.#inFlight.size >= this.#concurrency) break;
				const mk = `${row.tenant_id}\n${row.meeting_id ?? ""}`;
				const tenantBusy = this.#perTenant.get(row.tenant_id) ?? 0;
				if (this.#busyMeetings.has(mk) || this.#inFlight.has(row.id) || tenantBusy >= tenantCap) continue;
				if (this.#closed) break;
				if (!(await this.#o.store.lease(row.id, now, now + this.#retry.timeoutMs + 5000))) continue;
				this.#busyMeetings.add(mk);
				this.#perTenant.set(row.tenant_id, (this.#perTenant.get(row.tenant_id) ?? 0) + 1);
				const abort = new AbortController();
				const done = this.#attempt(row, abort.signal)
					.catch((err: unknown) => {
						// The outcome could not be written (the store is unavailable): the lease lapses and it is retried.
						this.#o.log.error({ err, deliveryId: row.id }, "webhooks: could not record an attempt");
					})
					.finally(() => {
						this.#inFlight.delete(row.id);
						this.#busyMeetings.delete(mk);
						const n = (this.#perTenant.get(row.tenant_id) ?? 1) - 1;
						if (n > 0) this.#perTenant.set(row.tenant_id, n);
						else this.#perTenant.delete(row.tenant_id);
						this.#schedule(); // the meeting's next event may go now
					});
				this.#inFlight.set(row.id, { abort, done });
			}
		}
		// Idle: wake up for the next due retry (the poll also catches other processes' work).
		if (this.#inFlight.size > 0) return;
		clearTimeout(this.#timer);
		const next = await this.#o.store.nextDueAt();
		if (this.#closed || this.#inFlight.size > 0) return;
		if (next !== undefined && next > now) {
			this.#timer = setTimeout(() => this.nudge(), Math.min(next - now + 5, 2 ** 31 - 1));
			this.#timer.unref();
		}
	}

	async #attempt(row: DeliveryRow, signal: AbortSignal): Promise<void> {
		const started = Date.now();
		const endpoint = await this.#o.store.endpoint(row.tenant_id).catch(() => undefined);
		const payload = JSON.parse(row.payload) as WebhookPayload;
		let status: number | null = null;
		let error: string | undefined;
		if (!endpoint) {
			error = "no endpoint";
		} else {
			try {
				await assertEndpointAllowed(endpoint.url, this.#o.endpointPolicy);
				status = await post(endpoint.url, endpoint.secret, row, payload, this.#o.endpointPolicy, {
					timeoutMs: this.#retry.timeoutMs,
					signal,
				});
				if (status < 200 || status > 299)
					error = status >= 300 && status < 400 ? `redirect refused (HTTP ${status})` : `HTTP ${status}`;
			} catch (err) {
				error = errorText(err);
			}
		}
		const durationMs = Date.now() - started;
		if (signal.aborted && error) {
			// The gateway is closing: the lease lapses and the next start retries it; this attempt does not count.
			return;
		}
		if (error === undefined) {
			await this.#o.store.delivered(row.id, status as number, durationMs);
		} else {
			const attempts = row.attempts + 1;
			const wait = backoffMs(attempts, this.#retry);
			const retryAt = Date.now() + wait <= row.created_at + this.#retry.giveUpAfterMs ? Date.now() + wait : undefined;
			await this.#o.store.attemptFailed(row.id, { status, error, durationMs, retryAt });
			(retryAt === undefined ? this.#o.log.warn : this.#o.log.info).call(
				this.#o.log,
				{ tenantId: row.tenant_id, deliveryId: row.id, event: row.event, attempts, error },
				retryAt === undefined ? "webhook delivery failed for good" : "webhook delivery failed; will retry",
			);
		}
		const result: AttemptResult = {
			tenantId: row.tenant_id,
			event: row.event,
			ok: error === undefined,
			status,
			durationMs,
			latencyMs: Date.now() - Date.parse(payload.createdAt),
		};
		for (const l of this.#listeners) {
			try {
				l(result);
			} catch {
				// listeners never break delivery
			}
		}
	}
}

/** Entry types that can make a webhook event (a quick filter before waking the projector). */
const RELEVANT = new Set([
	"meeting.started",
	"meeting.ended",
	"session.on",
	"session.paused",
	"session.off",
	"storage.object_written",
	"consent.declined",
	"operator.action",
]);
function toWebhookEventCheap(e: AuditEvent): boolean {
	return RELEVANT.has(e.type);
}

function errorText(err: unknown): string {
	const e = err as { code?: string; message?: string; name?: string };
	if (e.name === "AbortError" || e.code === "ABORT_ERR") return "timed out";
	return `${e.code ? `${e.code}: ` : ""}${e.message ?? String(err)}`;
}

/**
 * POSTs one signed payload; resolves with the HTTP status. The connection uses the endpoint guard's lookup
 * (no DNS-rebinding gap), follows no redirect, and reads at most 1 KiB of the answer.
 */
function post(
	url: string,
	secret: string,
	row: DeliveryRow,
	payload: WebhookPayload,
	policy: EndpointPolicy,
	o: { timeoutMs: number; signal: AbortSignal },
): Promise<number> {
	const body = JSON.stringify(payload);
	const t = Math.floor(Date.now() / 1000);
	const u = new URL(url);
	const mod = u.protocol === "https:" ? https : http;
	const signal = AbortSignal.any([o.signal, AbortSignal.timeout(o.timeoutMs)]);
	return new Promise<number>((resolve, reject) => {
		const req = mod.request(
			u,
			{
				method: "POST",
				agent: false,
				lookup: guardedLookup(policy) as unknown as http.RequestOptions["lookup"],
				signal,
				headers: {
					"content-type": "application/json",
					"content-length": Buffer.byteLength(body),
					"user-agent": "consentry-webhooks/1",
					"consentry-event": payload.type,
					"consentry-event-id": payload.id,
					"consentry-delivery": String(row.id),
					"consentry-attempt": String(row.attempts + 1),
					"consentry-signature": sign(secret, body, t),
				},
			},
			(res) => {
				let read = 0;
				res.on("data", (chunk: Buffer) => {
					read += chunk.length;
					if (read > 1024) res.destroy();
				});
				res.on("error", () => undefined);
				res.on("close", () => resolve(res.statusCode ?? 0));
				res.on("end", () => resolve(res.statusCode ?? 0));
			},
		);
		req.on("error", reject);
		req.end(body);
	});
}

import { randomUUID } from "node:crypto";
import type { EventLog } from "../audit/EventLog.js";
import { StoreUnavailableError } from "../errors.js";
import type { Logger } from "../logger.js";
import { RetentionRepository } from "../store/RetentionRepository.js";
import type { Store } from "../store/Store.js";

const DAY_MS = 86_400_000;
/** How long one holder keeps the purge lease without renewing it (it renews after every batch). */
const LEASE_MS = 2 * 60_000;
const LEASE = "retention.purge";

/** A tenant's retention when it sets none (docs/privacy.md, "Retention"), and the bounds a tenant may set. */
export { DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, MIN_RETENTION_DAYS } from "../auth/TenantTypes.js";

export interface RetentionOptions {
	store: Store;
	events: EventLog;
	/** Every tenant that has data in the store, and its retention in days. */
	tenants: () => { id: string; days: number }[];
	/** Names this gateway process (the lease's holder says which process purges). */
	gatewayId: string;
	/** How often the purge runs (ms); 0: never by itself (runOnce only). */
	intervalMs: number;
	/** Entries per transaction (a crash loses at most one batch's work, never the chain's integrity). */
	batch?: number;
	now?: () => number;
	log: Logger;
	/** Tests: called after each committed batch (a throw stands for a crash between batches). */
	afterBatch?: (tenantId: string, purged: number) => void;
}

export interface PurgeReport {
	tenants: { id: string; before: string; entries: number; meetings: number; deliveries: number }[];
	entries: number;
	ms: number;
}

/**
 * Issue 14 retention: every `intervalMs`, purges from the store what is older than each tenant's retention:
 * the oldest entries of its audit chain (a `chain.checkpoint` entry at the head records each cut, so what remains
 * verifies), meetings that ended (or never started) before then with what hangs off them, and settled webhook
 * deliveries. One process at a time across every process sharing the store (a lease in `job_leases`, renewed after
 * every batch), and never concurrently with itself in a process. Also a terminated tenant's wipe.
 */
export class RetentionService {
	readonly #o: RetentionOptions;
	readonly #repo: RetentionRepository;
	readonly #holder: string;
	readonly #now: () => number;
	#timer: NodeJS.Timeout | undefined;
	#running: Promise<PurgeReport | null> | undefined;

	constructor(o: RetentionOptions) {
		this.#o = o;
		this.#repo = new RetentionRepository(o.store);
		this.#holder = `${o.gatewayId}:${process.pid}:${randomUUID().slice(0, 8)}`;
		this.#now = o.now ?? Date.now;
	}

	get repository(): RetentionRepository {
		return this.#repo;
	}

	start(): void {
		if (this.#o.intervalMs <= 0 || this.#timer) return;
		this.#timer = setInterval(() => {
			this.runOnce().catch((err: unknown) => {
				// The store down: every batch committed is whole; the next run goes on where this one stopped.
				if (err instanceof StoreUnavailableError)
					this.#o.log.warn(
						{ err: err.message },
						"retention purge stopped: the store is unavailable; the next run goes on",
					);
				else this.#o.log.error({ err }, "retention purge failed");
			});
		}, this.#o.intervalMs);
		this.#timer.unref();
	}

	/**
	 * One purge over every tenant; null when it did not run (another process holds the lease, or a run of this
	 * process is under way).
	 */
	runOnce(): Promise<PurgeReport | null> {
		if (this.#running) return Promise.resolve(null);
		const run = this.#run().finally(() => {
			this.#running = undefined;
		});
		this.#running = run;
		return run;
	}

	async #run(): Promise<PurgeReport | null> {
		const t0 = performance.now();
		if (!(await this.#repo.lease(LEASE, this.#holder, LEASE_MS, this.#now()))) return null;
		const report: PurgeReport = { tenants: [], entries: 0, ms: 0 };
		try {
			for (const t of this.#o.tenants()) {
				const cutoffMs = this.#now() - t.days * DAY_MS;
				const before = new Date(cutoffMs).toISOString();
				let entries = 0;
				let meetings = 0;
				for (;;) {
					const r = await this.#o.events.purgeBefore(t.id, before, {
						...(this.#o.batch ? { batch: this.#o.batch } : {}),
						reason: "retention",
						by: `gateway:${this.#o.gatewayId}`,
						// A meeting whose last entry is gone goes too (unless live): its row, removed persons, links… in
						// the batch's own transaction, so a store failing between the two can't strand a meeting whose
						// entries (the only thing that would name it for a later run) are already gone.
						withCut: (trx, gone) => this.#repo.deleteMeetings(gone, trx),
					});
					if (r.purged === 0) break;
					entries += r.purged;
					meetings += r.cutRows;
					this.#o.afterBatch?.(t.id, r.purged);
					// Still ours? (a lease lost to a stall: stop; the other holder goes on where this one stopped)
					if (!(await this.#repo.lease(LEASE, this.#holder, LEASE_MS, this.#now()))) return report;
				}
				const deliveries = await this.#repo.deleteSettledDeliveries(t.id, cutoffMs);
				if (entries || meetings || deliveries) {
					report.tenants.push({ id: t.id, before, entries, meetings, deliveries });
					this.#o.log.info({ tenantId: t.id, before, entries, meetings, deliveries }, "retention purge");
				}
				report.entries += entries;
			}
		} finally {
			await this.#repo.release(LEASE, this.#holder).catch(() => undefined);
		}
		report.ms = performance.now() - t0;
		return report;
	}

	/**
	 * A terminated tenant's wipe: every row of theirs goes, their chain is cut to what the operator keeps by law
	 * (one `operator.action` entry `tenant.wiped` that carries, verbatim with their hashes, the operator's actions
	 * on the tenant: `tenant.terminate`, `tenant.deleted` and the like), then the checkpoint of that cut. Resumable:
	 * a second call finishes what a crash left (the rows' deletion is one transaction; the chain is cut in batches).
	 */
	async wipeTenant(tenantId: string, by: { operator: string; reason: string }): Promise<{ entries: number }> {
		const kept = (await this.#o.events.list({ tenantId, type: "operator.action", limit: 10_000 }))
			.filter((e) => /^tenant\./.test(String(e.data.action)))
			.map((e) => ({ seq: e.seq, at: e.at, hash: e.hash, data: e.data }));
		const head = await this.#o.events.head(tenantId);
		const priorWipe = kept.find((k) => k.data.action === "tenant.wiped");
		let through: number;
		if (priorWipe) through = priorWipe.seq - 1;
		else {
			const [entry] = await this.#o.events.appendMany([
				{
					type: "operator.action",
					tenantId,
					data: { operator: by.operator, action: "tenant.wiped", reason: by.reason, kept },
				},
			]);
			through = (entry?.seq ?? (head?.seq ?? 0) + 1) - 1;
		}
		await this.#repo.wipeTenant(tenantId);
		let entries = 0;
		for (;;) {
			const r = await this.#o.events.purgeBefore(tenantId, null, {
				through,
				reason: "tenant_wiped",
				by: `operator:${by.operator}`,
				...(this.#o.batch ? { batch: this.#o.batch } : {}),
			});
			if (r.purged === 0) break;
			entries += r.purged;
		}
		return { entries };
	}

	close(): void {
		if (this.#timer) clearInterval(this.#timer);
		this.#timer = undefined;
	}

	/** Settles once a run under way (if any) is over. */
	async settled(): Promise<void> {
		await this.#running?.catch(() => undefined);
	}
}

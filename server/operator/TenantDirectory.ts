import { EventEmitter } from "node:events";
import type { TenantRegistry } from "../auth/TenantRegistry.js";
import { type Identity, type Tenant, TenantSchema, type TenantState } from "../auth/TenantTypes.js";
import { AuthenticationError, ForbiddenError } from "../errors.js";
import type { Logger } from "../logger.js";
import { AccessRepository } from "../store/AccessRepository.js";
import type { ClusterBus } from "../store/ClusterBus.js";
import { OperatorChangeRepository, type OperatorChangeRow } from "../store/OperatorChangeRepository.js";
import type { Store } from "../store/Store.js";
import { TenantRepository, type TenantRow } from "../store/TenantRepository.js";
import { WarningRepository } from "../store/WarningRepository.js";
import type { ChangeKind } from "./OperatorTypes.js";

export interface TenantDirectoryOptions {
	store: Store;
	/** This process's copy of the tenants, replaced on every reload. */
	registry: TenantRegistry;
	log: Logger;
	/** How often the change feed is polled (ms). */
	pollMs?: number;
	now?: () => number;
}

/** One change from the feed, as listeners get it. */
export interface Change {
	seq: number;
	kind: ChangeKind;
	tenantId: string | null;
	subject: string | null;
	meetingId: string | null;
	data: Record<string, unknown>;
}

/**
 * The tenants and what the operator cut off, as every gateway process sees them: the store is the one source of
 * truth (tables `tenants`, `subject_blocks`, `token_revocations`, `subject_cutoffs`), this process keeps an
 * in-memory copy that token checks read synchronously, and the change feed (`operator_changes`) tells it when to
 * reload: a cheap `max(seq)` poll every `pollMs` (200 ms by default), so an operator's change reaches every process
 * sharing the store within a poll interval plus a reload, on SQLite as on PostgreSQL. With a cluster bus
 * (`listen(bus)`; PostgreSQL's LISTEN/NOTIFY, server/store/ClusterBus.ts) the node that wrote a change also announces
 * its position in the feed, and every other node reads the feed at once instead of at its next poll; the poll stays
 * as the safety net (the bus is at most once). Listeners get each change once per process, after the copy is
 * reloaded (to eject people, end meetings).
 */
export class TenantDirectory extends EventEmitter<{ change: [Change] }> {
	readonly registry: TenantRegistry;
	readonly tenants: TenantRepository;
	readonly access: AccessRepository;
	readonly changes: OperatorChangeRepository;
	readonly warnings: WarningRepository;
	readonly #log: Logger;
	readonly #now: () => number;
	readonly #pollMs: number;
	#cursor = 0;
	#timer: NodeJS.Timeout | undefined;
	#polling: Promise<void> | undefined;
	#blocked = new Map<string, { state: "suspended" | "terminated"; reason: string | null }>();
	#revoked = new Map<string, number>();
	#cutoffs = new Map<string, number>();
	#bus: ClusterBus | undefined;
	#unlisten: (() => void) | undefined;

	private constructor(o: TenantDirectoryOptions) {
		super();
		this.registry = o.registry;
		this.tenants = new TenantRepository(o.store);
		this.access = new AccessRepository(o.store);
		this.changes = new OperatorChangeRepository(o.store);
		this.warnings = new WarningRepository(o.store);
		this.#log = o.log.child({ component: "TenantDirectory" });
		this.#now = o.now ?? Date.now;
		this.#pollMs = o.pollMs ?? 200;
	}

	/**
	 * Opens the directory: seeds the store with the tenants file's tenants the store does not have yet (the store
	 * wins for those it has: the operator API changed them since), loads everything and starts polling.
	 */
	static async open(o: TenantDirectoryOptions & { seed?: readonly Tenant[] }): Promise<TenantDirectory> {
		const d = new TenantDirectory(o);
		let seeded = 0;
		for (const t of o.seed ?? []) {
			const at = new Date(d.#now()).toISOString();
			const { id, ...config } = t;
			if (
				await d.tenants.insert({
					id,
					config: JSON.stringify(config),
					state: "active",
					reason: null,
					created_at: at,
					updated_at: at,
				})
			)
				seeded++;
		}
		if (seeded) d.#log.info({ seeded }, "tenants imported from the tenants file into the store");
		d.#cursor = await d.changes.head();
		await d.reload();
		d.#timer = setInterval(
			() => void d.poll().catch((err: unknown) => d.#log.warn({ err }, "change feed poll failed")),
			d.#pollMs,
		);
		d.#timer.unref();
		return d;
	}

	/** Reads tenants and blocks from the store into this process's copy. */
	async reload(): Promise<void> {
		const [rows, blocks, revoked, cutoffs] = await Promise.all([
			this.tenants.all(),
			this.access.subjectBlocks(),
			this.access.revokedTokens(this.#now()),
			this.access.cutoffs(),
		]);
		const entries: { tenant: Tenant; state: TenantState; reason: string | null }[] = [];
		for (const r of rows) {
			const t = r.state === "deleted" ? undefined : tenantOf(r);
			if (t && r.state !== "deleted") entries.push({ tenant: t, state: r.state, reason: r.reason });
			else this.#log.error({ tenantId: r.id }, "a tenant's stored configuration is invalid: skipped");
		}
		this.registry.replaceAll(entries);
		this.#blocked = new Map(blocks.map((b) => [key(b.tenant_id, b.subject), { state: b.state, reason: b.reason }]));
		this.#revoked = new Map(revoked.map((r) => [key(r.tenant_id, r.jti), r.expires_at]));
		this.#cutoffs = new Map(cutoffs.map((c) => [key(c.tenant_id, c.subject), c.issued_before]));
	}

	/**
	 * Hears the other nodes' changes as they are written (`operator.changed` on the bus) and announces this node's;
	 * `undefined` stops (only the poll then carries changes between nodes).
	 */
	listen(bus: ClusterBus | undefined): void {
		this.#unlisten?.();
		this.#unlisten = undefined;
		this.#bus = bus;
		if (!bus) return;
		this.#unlisten = bus.subscribe((m) => {
			if (m.type !== "operator.changed" || m.seq <= this.#cursor) return;
			void (async () => {
				await this.poll();
				// A poll already running may have read the head before that row: read again.
				if (this.#cursor < m.seq) await this.poll();
			})().catch((err: unknown) => this.#log.warn({ err }, "change feed read (cluster bus) failed"));
		});
	}

	/** Reads the feed once: on anything new, reloads and tells the listeners. Concurrent calls share one read. */
	poll(): Promise<void> {
		this.#polling ??= this.#poll().finally(() => {
			this.#polling = undefined;
		});
		return this.#polling;
	}

	async #poll(): Promise<void> {
		const head = await this.changes.head();
		if (head <= this.#cursor) return;
		const rows = await this.changes.after(this.#cursor);
		await this.reload();
		for (const r of rows) {
			this.#cursor = Math.max(this.#cursor, Number(r.seq));
			const change = changeOf(r);
			try {
				this.emit("change", change);
			} catch (err) {
				this.#log.error({ err, seq: change.seq }, "applying an operator change failed");
			}
		}
	}

	/** Appends a change to the feed and applies it in this process at once (the others within a poll). */
	async publish(
		kind: ChangeKind,
		target: { tenantId?: string; subject?: string; meetingId?: string },
		data: Record<string, unknown> = {},
	): Promise<void> {
		const seq = await this.changes.append({
			at: this.#now(),
			kind,
			tenant_id: target.tenantId ?? null,
			subject: target.subject ?? null,
			meeting_id: target.meetingId ?? null,
			data: JSON.stringify(data),
		});
		// A poll already running may have read the head before this row: wait for it, then read again.
		await this.poll();
		await this.poll();
		// The other nodes read the feed now rather than at their next poll (which still comes if this is lost).
		await this.#bus
			?.publish({ type: "operator.changed", seq })
			.catch((err: unknown) => this.#log.warn({ err }, "cluster bus: announcing an operator change failed"));
	}

	/**
	 * Refuses an identity the operator cut off (run by the token verifier after the signature checks): 403
	 * `account_suspended` for a suspended or terminated tenant or person, 401 `token_revoked` for a revoked token or
	 * one issued before its subject's cutoff.
	 */
	check(identity: Identity): void {
		const t = this.registry.state(identity.tenantId);
		if (t.state !== "active") {
			throw new ForbiddenError(
				"account_suspended",
				"This organisation's account is suspended by the service operator.",
			);
		}
		if (this.#blocked.has(key(identity.tenantId, identity.subject))) {
			throw new ForbiddenError("account_suspended", "Your account is suspended by the service operator.");
		}
		if (identity.jti !== undefined && (this.#revoked.get(key(identity.tenantId, identity.jti)) ?? 0) > this.#now()) {
			throw new AuthenticationError("token_revoked", "This token was revoked.");
		}
		const cutoff = this.#cutoffs.get(key(identity.tenantId, identity.subject));
		if (cutoff !== undefined && (identity.issuedAt === undefined || identity.issuedAt < cutoff)) {
			throw new AuthenticationError("token_revoked", "This token was revoked: sign in again for a new one.");
		}
	}

	/** Whether a live session of this identity must go now (the same rules as check, without throwing). */
	cutOff(identity: Identity): string | undefined {
		try {
			this.check(identity);
			return undefined;
		} catch (err) {
			return (err as { code?: string }).code ?? "account_suspended";
		}
	}

	close(): void {
		this.listen(undefined);
		if (this.#timer) clearInterval(this.#timer);
		this.#timer = undefined;
	}
}

const key = (tenantId: string, x: string) => `${tenantId}\u0000${x}`;

/** The tenant a stored row holds (undefined if it does not validate). */
export function tenantOf(r: TenantRow): Tenant | undefined {
	let config: unknown;
	try {
		config = JSON.parse(r.config);
	} catch {
		return undefined;
	}
	const p = TenantSchema.safeParse({ ...(config as object), id: r.id });
	return p.success ? p.data : undefined;
}

function changeOf(r: OperatorChangeRow): Change {
	let data: Record<string, unknown> = {};
	try {
		data = JSON.parse(r.data) as Record<string, unknown>;
	} catch {
		// an unreadable payload: the change still applies by its kind and target
	}
	return {
		seq: Number(r.seq),
		kind: r.kind as ChangeKind,
		tenantId: r.tenant_id,
		subject: r.subject,
		meetingId: r.meeting_id,
		data,
	};
}

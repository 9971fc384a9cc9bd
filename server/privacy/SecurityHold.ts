import { randomUUID } from "node:crypto";
import type { EventLog } from "../audit/EventLog.js";
import { ConsentryError } from "../errors.js";
import type { RetentionRepository, SecurityHoldRow } from "../store/RetentionRepository.js";

/** The longest one security hold may run (set a new one to go on: each is audited with its own reason). */
export const MAX_HOLD_DAYS = 90;
const DAY_MS = 86_400_000;

/**
 * The audit chain of gateway-wide operator actions (the hold concerns every tenant's log lines, no one tenant):
 * its own hash chain in the store, verified like a tenant's (`_` can't start a tenant ID, so it is no tenant's).
 */
export const GATEWAY_CHAIN = "_gateway";

export interface HoldView {
	id: string;
	reason: string;
	setBy: string;
	setAt: string;
	until: string;
	/** Lifted early (or replaced by a newer hold). */
	endedAt: string | null;
	endedBy: string | null;
	/** In force now. */
	active: boolean;
}

/**
 * Issue 14 (004 §2.1, "unless a security event is being investigated"): the operator's security hold. While it
 * runs, the gateway's security log files (full client addresses of refused requests, operator sessions) are not
 * deleted at the end of their window; ordinary log files still are. It has a reason and an end (at most
 * {@link MAX_HOLD_DAYS} days away), lapses by itself at its end, can be lifted early, and every change is an
 * `operator.action` entry in the gateway-wide chain {@link GATEWAY_CHAIN}. Only the operator sets it (OperatorApi).
 */
export class SecurityHold {
	readonly #repo: RetentionRepository;
	readonly #events: EventLog;
	readonly #now: () => number;

	constructor(o: { repo: RetentionRepository; events: EventLog; now?: () => number }) {
		this.#repo = o.repo;
		this.#events = o.events;
		this.#now = o.now ?? Date.now;
	}

	/** The hold in force, or null. */
	async current(): Promise<HoldView | null> {
		const r = await this.#repo.activeHold(new Date(this.#now()).toISOString());
		return r ? this.#view(r) : null;
	}

	/** The end (ms) of the hold in force, or null: what the log files' sweep is told. */
	async activeUntil(): Promise<number | null> {
		const r = await this.#repo.activeHold(new Date(this.#now()).toISOString());
		return r ? Date.parse(r.until) : null;
	}

	async history(limit = 50): Promise<HoldView[]> {
		return (await this.#repo.holds(limit)).map((r) => this.#view(r));
	}

	/** Sets a hold until `until` (replacing any in force). */
	async set(operator: string, body: { reason: string; until: string }): Promise<HoldView> {
		const now = this.#now();
		const until = Date.parse(body.until);
		if (Number.isNaN(until)) throw new ConsentryError("hold_until_invalid", "`until` must be an ISO 8601 time.", 400);
		if (until <= now) throw new ConsentryError("hold_until_past", "`until` must be in the future.", 400);
		if (until > now + MAX_HOLD_DAYS * DAY_MS) {
			throw new ConsentryError(
				"hold_too_long",
				`A security hold runs at most ${MAX_HOLD_DAYS} days; set a new one (with its reason) to go on.`,
				400,
			);
		}
		const row: SecurityHoldRow = {
			id: randomUUID(),
			reason: body.reason,
			set_by: operator,
			set_at: new Date(now).toISOString(),
			until: new Date(until).toISOString(),
			ended_at: null,
			ended_by: null,
		};
		// The hold and its entry in one transaction: never a hold nobody can see being set, nor an entry for a hold
		// that was not (a store that fails midway leaves neither: 503 store_unavailable, set it again).
		await this.#events.appendWith([GATEWAY_CHAIN], async (trx) => {
			await this.#repo.setHold(row, trx);
			return {
				result: undefined,
				entries: [
					{
						type: "operator.action",
						tenantId: GATEWAY_CHAIN,
						data: { operator, action: "security_hold.set", reason: body.reason, holdId: row.id, until: row.until },
					},
				],
			};
		});
		return this.#view(row);
	}

	/** Lifts the hold in force now; `changed: false` when there was none. Lifted and audited in one transaction. */
	async lift(operator: string, reason: string): Promise<{ changed: boolean }> {
		const nowIso = new Date(this.#now()).toISOString();
		const { result } = await this.#events.appendWith([GATEWAY_CHAIN], async (trx) => {
			const lifted = await this.#repo.liftHold(operator, nowIso, trx);
			return {
				result: lifted !== undefined,
				entries: lifted
					? [
							{
								type: "operator.action" as const,
								tenantId: GATEWAY_CHAIN,
								data: { operator, action: "security_hold.lift", reason, holdId: lifted.id },
							},
						]
					: [],
			};
		});
		return { changed: result };
	}

	#view(r: SecurityHoldRow): HoldView {
		const now = this.#now();
		return {
			id: r.id,
			reason: r.reason,
			setBy: r.set_by,
			setAt: r.set_at,
			until: r.until,
			endedAt: r.ended_at,
			endedBy: r.ended_by,
			active: r.ended_at === null && Date.parse(r.until) > now,
		};
	}
}

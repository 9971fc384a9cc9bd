import { createHmac, randomBytes } from "node:crypto";
import type { Database } from "../store/Database.js";
import { type ChainHead, canonicalJson, entryHashFromColumns, GENESIS, type Json, toJson } from "./chain.js";
import { exportMeeting } from "./meetingExport.js";
import { type VerifyResult, verifyDatabase } from "./verify.js";

/** Every event type the audit trail records. */
export const EVENT_TYPES = [
	// Meetings core.
	"meeting.scheduled",
	"meeting.started",
	"meeting.ended",
	"host_seat.taken",
	"host_seat.refused",
	"host_seat.taken_over",
	"person.joined",
	"person.left",
	"lobby.entered",
	"lobby.admitted",
	"lobby.denied",
	"host.locked",
	"host.unlocked",
	"host.muted",
	"host.stopped_share",
	"host.removed",
	/** The host named (data.coHost true) or un-named a co-host (data.person), who may then turn recording on and off. */
	"host.cohost_set",
	/** A guest's wrong passcode (data.failures: the meeting's count); the attempts are limited (docs/security.md). */
	"passcode.failed",
	/** Too many wrong passcodes: guests' passcode joins refused until the host lifts it (data.failures). */
	"passcode.locked",
	/** The host lifted the passcode lockout. */
	"passcode.unlocked",
	// Recording / transcription notice and consent (data: kind, sessionId, policy, …).
	/** A capture session began (start or resume): a new notice for everyone. */
	"session.on",
	"session.paused",
	"session.off",
	/** The gateway sent a person the notice of a session. */
	"notice.sent",
	/** The person's client reported the notice on screen. */
	"notice.shown",
	"notice.acknowledged",
	"consent.given",
	"consent.declined",
	"consent.withdrawn",
	/** A person's media gate for one producer (data: producerId, kind, reason). */
	"gate.opened",
	"gate.closed",
	/** An object (recording part, transcript) landed in the customer's bucket (data: bucket, key, size, sha256). */
	"storage.object_written",
	/** A tenant administrator saved or removed the tenant's storage target (after a passing preflight). */
	"storage.target_saved",
	"storage.target_removed",
	"transcript.link_issued",
	"transcript.link_opened",
	/** The host revoked a transcript link (data.linkId). */
	"transcript.link_revoked",
	/** Someone opened a recording's playback page (/r/{sessionId}; data.sessionId). */
	"recording.playback_opened",
	/** The host revoked a recording's playback page (data.sessionId). */
	"recording.playback_revoked",
	/** Something an operator did (data.action says what). */
	"operator.action",
	/** A tenant administrator saved or removed the tenant's webhook endpoint (server/webhooks). */
	"webhook.saved",
	"webhook.removed",
	/** A person's pseudonym secret was destroyed (data.pseudonym); emitted by {@link EventLog.erasePerson}. */
	"person.erased",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** An entry of the audit trail, as stored and hashed. */
export interface AuditEvent {
	/** Position in the tenant's chain: 1, 2, 3, … */
	seq: number;
	at: string;
	tenantId: string;
	meetingId: string | null;
	type: EventType;
	/** Pseudonym of who did it (`psn_…`), or null. */
	actor: string | null;
	/** Details; any field named `person` (or `persons`) holds pseudonyms. */
	data: Record<string, unknown>;
	/** Hash of the tenant's previous entry (GENESIS for the first). */
	prevHash: string;
	/** Hash of the meeting's previous entry (GENESIS for its first), null outside meetings. */
	meetingPrevHash: string | null;
	/** SHA-256 of this entry's canonical form (docs/audit.md). */
	hash: string;
}

export interface AppendInput {
	tenantId: string;
	meetingId?: string;
	/** Person key of who did it (`acme:alice`, `guest:<uuid>`): stored as a pseudonym. */
	actor?: string;
	/** Details. Person keys go in fields named `person` (one) or `persons` (a list): stored as pseudonyms. */
	data?: Record<string, unknown>;
}

/** What a pseudonym looks like: `psn_` and the hex HMAC-SHA256 of the person key under the person's secret. */
export const PSEUDONYM_RE = /^psn_[0-9a-f]{64}$/;

/** A row of the `events` table as SQLite returns it. */
export type EventRow = {
	seq: number;
	at: string;
	tenant_id: string;
	meeting_id: string | null;
	type: EventType;
	actor: string | null;
	data: string;
	prev_hash: string;
	meeting_prev_hash: string | null;
	hash: string;
};

const COLUMNS = "seq, at, tenant_id, meeting_id, type, actor, data, prev_hash, meeting_prev_hash, hash";

function toEvent(r: EventRow): AuditEvent {
	return {
		seq: r.seq,
		at: r.at,
		tenantId: r.tenant_id,
		meetingId: r.meeting_id,
		type: r.type,
		actor: r.actor,
		data: JSON.parse(r.data) as Record<string, unknown>,
		prevHash: r.prev_hash,
		meetingPrevHash: r.meeting_prev_hash,
		hash: r.hash,
	};
}

/** What one write transaction has learnt (heads, pseudonyms): valid while it holds the write lock. */
interface TxCache {
	heads: Map<string, ChainHead | null>;
	meetingHeads: Map<string, string>;
	pseudonyms: Map<string, string>;
}
const newCache = (): TxCache => ({ heads: new Map(), meetingHeads: new Map(), pseudonyms: new Map() });
const key2 = (a: string, b: string) => `${a.length}:${a}${b}`;

/**
 * The audit trail: append-only, one hash chain per tenant (each entry also
 * links to its meeting's previous entry), persons as erasable pseudonyms.
 * Safe with several gateway processes on one database file: an append reads
 * the head and inserts in one IMMEDIATE transaction, and the database refuses
 * any insert that does not extend the head (primary key + trigger).
 * See docs/audit.md.
 */
export class EventLog {
	readonly #db: Database;
	readonly #stmt;
	readonly #appendTx: (items: readonly (AppendInput & { type: EventType })[]) => AuditEvent[];
	readonly #listeners = new Set<(events: readonly AuditEvent[]) => void>();

	constructor(db: Database) {
		this.#db = db;
		this.#stmt = {
			head: db.prepare("SELECT seq, hash FROM events WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1"),
			// (The planner, without statistics, would rather scan the tenant's chain backwards.)
			meetingHead: db.prepare(
				"SELECT hash FROM events INDEXED BY events_by_meeting WHERE tenant_id = ? AND meeting_id = ? ORDER BY seq DESC LIMIT 1",
			),
			insert: db.prepare(
				`INSERT INTO events (tenant_id, seq, at, meeting_id, type, actor, data, prev_hash, meeting_prev_hash, hash)
				 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			),
			secret: db.prepare("SELECT secret, pseudonym FROM audit_person_secrets WHERE tenant_id = ? AND person_key = ?"),
			addSecret: db.prepare(
				"INSERT INTO audit_person_secrets (tenant_id, person_key, secret, pseudonym, created_at) VALUES (?, ?, ?, ?, ?)",
			),
			byPseudonym: db.prepare("SELECT person_key FROM audit_person_secrets WHERE tenant_id = ? AND pseudonym = ?"),
			dropSecret: db.prepare("DELETE FROM audit_person_secrets WHERE tenant_id = ? AND person_key = ?"),
		};
		const tx = db.transaction((items: readonly (AppendInput & { type: EventType })[]) => {
			const cache = newCache();
			return items.map((item) => this.#appendOne(item, cache));
		});
		this.#appendTx = (items) => {
			const appended = tx.immediate(items);
			for (const listener of this.#listeners) {
				try {
					listener(appended);
				} catch {
					// A listener never breaks an append (webhooks, metrics): it is written.
				}
			}
			return appended;
		};
		this.#sealLegacy();
	}

	/**
	 * Calls `listener` with the entries of each append once they are committed (webhooks, metrics). It must be
	 * quick and never throw; it sees only this process's appends. Returns a function that removes it.
	 */
	onAppend(listener: (events: readonly AuditEvent[]) => void): () => void {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
	}

	/** Appends one entry at the head of its tenant's chain, in its own transaction. */
	append(type: EventType, e: AppendInput): AuditEvent {
		return this.#appendTx([{ ...e, type }])[0] as AuditEvent;
	}

	/**
	 * Appends several entries, in order, in one transaction (all or none): several
	 * times faster per entry than single appends. For bursts, e.g. a session start
	 * notifying everyone present.
	 */
	appendMany(items: readonly (AppendInput & { type: EventType })[]): AuditEvent[] {
		return items.length ? this.#appendTx(items) : [];
	}

	/** Entries in chain order; `afterSeq`: only those after this position (a reader's cursor). */
	list(filter: {
		tenantId: string;
		meetingId?: string;
		type?: EventType;
		limit?: number;
		afterSeq?: number;
	}): AuditEvent[] {
		const rows = this.#db
			.prepare(
				filter.meetingId === undefined
					? `SELECT ${COLUMNS} FROM events WHERE tenant_id = @tenantId AND seq > @afterSeq
					   AND (@type IS NULL OR type = @type) ORDER BY seq LIMIT @limit`
					: `SELECT ${COLUMNS} FROM events INDEXED BY events_by_meeting
					   WHERE tenant_id = @tenantId AND meeting_id = @meetingId AND seq > @afterSeq
					   AND (@type IS NULL OR type = @type) ORDER BY seq LIMIT @limit`,
			)
			.all({
				tenantId: filter.tenantId,
				...(filter.meetingId === undefined ? {} : { meetingId: filter.meetingId }),
				type: filter.type ?? null,
				limit: filter.limit ?? 10_000,
				afterSeq: filter.afterSeq ?? 0,
			}) as EventRow[];
		return rows.map(toEvent);
	}

	/** The tenant chain's last entry (null: no entries yet). Record it somewhere else to anchor the chain. */
	head(tenantId: string): ChainHead | null {
		return (this.#stmt.head.get(tenantId) as ChainHead | undefined) ?? null;
	}

	/** Recomputes the chains (one tenant, or all) and reports each one's first broken link. */
	verify(opts: { tenantId?: string; anchor?: ChainHead } = {}): VerifyResult[] {
		return verifyDatabase(this.#db, opts);
	}

	/** The meeting's entries as JSON Lines, verifiable offline (docs/audit.md). */
	exportMeeting(tenantId: string, meetingId: string): string {
		return exportMeeting(this.#db, tenantId, meetingId);
	}

	/**
	 * The person's pseudonym in this tenant's entries, or null when they have
	 * none (never appeared, or erased). For access requests: find their entries.
	 */
	pseudonym(tenantId: string, personKey: string): string | null {
		const row = this.#stmt.secret.get(tenantId, personKey) as { secret: Buffer } | undefined;
		return row ? pseudonymOf(row.secret, personKey) : null;
	}

	/** The person key behind a pseudonym, or null when it cannot be resolved (unknown or erased). */
	resolvePseudonym(tenantId: string, pseudonym: string): string | null {
		return (this.#stmt.byPseudonym.get(tenantId, pseudonym) as { person_key: string } | undefined)?.person_key ?? null;
	}

	/** Entries where the person is the actor or named in data (access requests). Empty once erased. */
	listForPerson(tenantId: string, personKey: string, limit = 10_000): AuditEvent[] {
		const psn = this.pseudonym(tenantId, personKey);
		if (!psn) return [];
		const rows = this.#db
			.prepare(
				`SELECT ${COLUMNS} FROM events WHERE tenant_id = ? AND (actor = ? OR instr(data, ?) > 0)
				 ORDER BY seq LIMIT ?`,
			)
			.all(tenantId, psn, `"${psn}"`, limit) as EventRow[];
		return rows.map(toEvent);
	}

	/**
	 * Erasure: destroys the person's secret, so their pseudonym can no longer be
	 * linked to them. Entries are not touched and every chain still verifies.
	 * Records a `person.erased` entry naming the (now unlinkable) pseudonym. If
	 * the same person key appears again later, it gets a new, unrelated pseudonym.
	 * Backups taken before the erasure still hold the secret: keep them short.
	 */
	erasePerson(
		tenantId: string,
		personKey: string,
		by?: { actor?: string; reason?: string },
	): { erased: boolean; pseudonym: string | null } {
		const secureDelete = this.#db.pragma("secure_delete", { simple: true }) as number;
		this.#db.pragma("secure_delete = ON"); // overwrite the deleted secret's bytes in the page
		let pseudonym: string | null;
		try {
			pseudonym = this.#db
				.transaction((): string | null => {
					const psn = this.pseudonym(tenantId, personKey);
					if (!psn) return null;
					this.#stmt.dropSecret.run(tenantId, personKey);
					this.#appendOne(
						{
							type: "person.erased",
							tenantId,
							...(by?.actor ? { actor: by.actor } : {}),
							data: { pseudonym: psn, ...(by?.reason ? { reason: by.reason } : {}) },
						},
						newCache(),
					);
					return psn;
				})
				.immediate();
		} finally {
			this.#db.pragma(`secure_delete = ${secureDelete}`);
		}
		// Move the zeroed page into the main file and empty the WAL, which still holds the old page.
		if (pseudonym) this.#db.pragma("wal_checkpoint(TRUNCATE)");
		return { erased: pseudonym !== null, pseudonym };
	}

	#appendOne(item: AppendInput & { type: EventType }, cache: TxCache): AuditEvent {
		const { tenantId, type } = item;
		const meetingId = item.meetingId ?? null;
		const actor =
			item.actor === undefined || item.actor === null ? null : this.#pseudonymize(tenantId, item.actor, cache);
		const data = this.#pseudonymizeData(tenantId, toJson(item.data ?? {}), cache);
		if (typeof data !== "object" || data === null || Array.isArray(data)) throw new TypeError("data must be an object");
		const dataText = canonicalJson(data);
		let head = cache.heads.get(tenantId);
		if (head === undefined) head = (this.#stmt.head.get(tenantId) as ChainHead | undefined) ?? null;
		const seq = (head?.seq ?? 0) + 1;
		const prevHash = head?.hash ?? GENESIS;
		let meetingPrevHash: string | null = null;
		if (meetingId !== null) {
			const mk = key2(tenantId, meetingId);
			meetingPrevHash =
				cache.meetingHeads.get(mk) ??
				(this.#stmt.meetingHead.get(tenantId, meetingId) as { hash: string } | undefined)?.hash ??
				GENESIS;
		}
		const at = new Date().toISOString();
		const hash = entryHashFromColumns(seq, at, tenantId, meetingId, type, actor, dataText, prevHash, meetingPrevHash);
		this.#stmt.insert.run(tenantId, seq, at, meetingId, type, actor, dataText, prevHash, meetingPrevHash, hash);
		cache.heads.set(tenantId, { seq, hash });
		if (meetingId !== null) cache.meetingHeads.set(key2(tenantId, meetingId), hash);
		return { seq, at, tenantId, meetingId, type, actor, data, prevHash, meetingPrevHash, hash };
	}

	/** The person's pseudonym, creating their secret on first sight. Inside the write transaction. */
	#pseudonymize(tenantId: string, personKey: string, cache: TxCache): string {
		if (PSEUDONYM_RE.test(personKey)) return personKey;
		const k = key2(tenantId, personKey);
		const known = cache.pseudonyms.get(k);
		if (known) return known;
		const row = this.#stmt.secret.get(tenantId, personKey) as { pseudonym: string } | undefined;
		let pseudonym = row?.pseudonym;
		if (!pseudonym) {
			const secret = randomBytes(32);
			pseudonym = pseudonymOf(secret, personKey);
			this.#stmt.addSecret.run(tenantId, personKey, secret, pseudonym, new Date().toISOString());
		}
		cache.pseudonyms.set(k, pseudonym);
		return pseudonym;
	}

	#pseudonymizeData(tenantId: string, v: Json, cache: TxCache): Json {
		if (Array.isArray(v)) return v.map((x) => this.#pseudonymizeData(tenantId, x, cache));
		if (v === null || typeof v !== "object") return v;
		const out: Record<string, Json> = {};
		for (const [k, x] of Object.entries(v)) {
			if (k === "person" && typeof x === "string") out[k] = this.#pseudonymize(tenantId, x, cache);
			else if (k === "persons" && Array.isArray(x))
				out[k] = x.map((p) =>
					typeof p === "string" ? this.#pseudonymize(tenantId, p, cache) : this.#pseudonymizeData(tenantId, p, cache),
				);
			else out[k] = this.#pseudonymizeData(tenantId, x, cache);
		}
		return out;
	}

	/**
	 * Rows written before the chain existed (migration 2 numbered them 1..n per
	 * tenant, in their original order) get their hashes, with persons
	 * pseudonymized, once. The database refuses unchained inserts, so this finds
	 * nothing after the first gateway start on this version.
	 */
	#sealLegacy(): void {
		if (!this.#db.prepare("SELECT 1 FROM events WHERE hash IS NULL LIMIT 1").get()) return;
		this.#db
			.transaction(() => {
				const rows = this.#db
					.prepare(
						"SELECT tenant_id, seq, at, meeting_id, type, actor, data FROM events WHERE hash IS NULL ORDER BY tenant_id, seq",
					)
					.all() as {
					tenant_id: string;
					seq: number;
					at: string;
					meeting_id: string | null;
					type: string;
					actor: string | null;
					data: string;
				}[];
				const seal = this.#db.prepare(
					`UPDATE events SET actor = ?, data = ?, prev_hash = ?, meeting_prev_hash = ?, hash = ?
					 WHERE tenant_id = ? AND seq = ?`,
				);
				const cache = newCache();
				for (const r of rows) {
					const actor = r.actor === null ? null : this.#pseudonymize(r.tenant_id, r.actor, cache);
					let parsed: Json;
					try {
						parsed = JSON.parse(r.data) as Json;
					} catch {
						parsed = { unparsed: r.data };
					}
					if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) parsed = { value: parsed };
					const dataText = canonicalJson(this.#pseudonymizeData(r.tenant_id, parsed, cache));
					const prevHash =
						r.seq === 1
							? GENESIS
							: ((
									this.#db
										.prepare("SELECT hash FROM events WHERE tenant_id = ? AND seq = ?")
										.get(r.tenant_id, r.seq - 1) as { hash: string | null } | undefined
								)?.hash ?? GENESIS);
					const meetingPrevHash =
						r.meeting_id === null
							? null
							: ((
									this.#db
										.prepare(
											"SELECT hash FROM events INDEXED BY events_by_meeting WHERE tenant_id = ? AND meeting_id = ? AND seq < ? ORDER BY seq DESC LIMIT 1",
										)
										.get(r.tenant_id, r.meeting_id, r.seq) as { hash: string | null } | undefined
								)?.hash ?? GENESIS);
					const hash = entryHashFromColumns(
						r.seq,
						r.at,
						r.tenant_id,
						r.meeting_id,
						r.type,
						actor,
						dataText,
						prevHash,
						meetingPrevHash,
					);
					seal.run(actor, dataText, prevHash, meetingPrevHash, hash, r.tenant_id, r.seq);
				}
			})
			.immediate();
	}
}

function pseudonymOf(secret: Buffer, personKey: string): string {
	return `psn_${createHmac("sha256", secret).update(personKey, "utf8").digest("hex")}`;
}

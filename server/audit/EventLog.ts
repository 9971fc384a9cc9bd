import { createHmac, randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import { StoreUnavailableError } from "../errors.js";
import {
	AuditRepository,
	type ChainNeeds,
	type ChainState,
	type ChainWrite,
	type EventRow,
	fixedLiterals,
	type PseudonymReader,
} from "../store/AuditRepository.js";
import type { Schema } from "../store/Schema.js";
import type { Store } from "../store/Store.js";
import {
	type ChainHead,
	canonicalJson,
	chainedHash,
	type EntryHashParts,
	entryHashFromColumns,
	entryHashParts,
	GENESIS,
	type Json,
	toJson,
} from "./chain.js";
import { exportText } from "./meetingExport.js";
import { type Row, type VerifyResult, verifyChain } from "./verify.js";

/** Every event type the audit trail records. */
export const EVENT_TYPES = [
	// Meetings core.
	"meeting.scheduled",
	"meeting.started",
	"meeting.ended",
	/** Cluster (issue 12 placement): the meeting's node was lost and another took it (data: from, to, epoch, cause). */
	"meeting.rehomed",
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
	/** The gateway sent a person the notice of a session (at their join; data.person, noticeId, locale, textSha256). */
	"notice.sent",
	/**
	 * The gateway sent a session's notice to everyone in the meeting at its start, one entry for all (data.recipients:
	 * person, peerId, noticeId, locale; data.texts: the text's SHA-256 per locale). Read both with server/audit/notices.ts.
	 */
	"notices.sent",
	/** The person's client reported the notice on screen. */
	"notice.shown",
	"notice.acknowledged",
	/**
	 * Acknowledgements of one session's notice that reached the gateway while the meeting's previous entries were
	 * being committed, recorded together (data.answers: person, peerId, noticeId). Read with server/audit/notices.ts.
	 */
	"notices.acknowledged",
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
	/**
	 * Issue 14 retention: the chain's first entries were purged (retention, or a tenant's wipe). data: throughSeq and
	 * throughHash (the last purged entry), purged (how many this cut), meetingHeads (meeting → hash of its last purged
	 * entry, for meetings that go on after the cut), before, reason. Verifiers take it as the chain's new start.
	 */
	"chain.checkpoint",
	/**
	 * Data-subject requests (issue #14, server/privacy): an access or export answered, an erasure requested or
	 * finished (data: requestId, outcome; never the person), and, per capture session whose objects in the
	 * customer's bucket an erasure removed or rewrote, the tombstone naming the erasure record (data.amendment).
	 */
	"dsr.access",
	"dsr.export",
	"dsr.erasure",
	"dsr.objects_erased",
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

export type { EventRow } from "../store/AuditRepository.js";

function toEvent(r: EventRow): AuditEvent {
	return {
		seq: r.seq,
		at: r.at,
		tenantId: r.tenant_id,
		meetingId: r.meeting_id,
		type: r.type as EventType,
		actor: r.actor,
		data: JSON.parse(r.data) as Record<string, unknown>,
		prevHash: r.prev_hash as string,
		meetingPrevHash: r.meeting_prev_hash,
		hash: r.hash as string,
	};
}

const toTuple = (r: EventRow): Row => [
	r.seq,
	r.at,
	r.tenant_id,
	r.meeting_id,
	r.type,
	r.actor,
	r.data,
	r.prev_hash,
	r.meeting_prev_hash,
	r.hash,
];

type Item = AppendInput & { type: EventType };
/** One entry to append: its type and what {@link AppendInput} says. */
export type AppendItem = Item;
/** An item checked before it queues: its data is plain JSON (a bad item fails its own caller, not the batch). */
interface Prepared {
	type: EventType;
	tenantId: string;
	meetingId: string | null;
	actor: string | null;
	data: { [k: string]: Json };
	/**
	 * True: `data` (this append's own copy) has no field named `person`, `persons` or `__proto__` anywhere, so it is
	 * hashed and stored as it is: no person keys to collect, no pseudonymizing copy. Unset: the general path.
	 */
	plain?: boolean;
}
interface Request {
	items: Prepared[];
	resolve: (events: AuditEvent[]) => void;
	reject: (err: unknown) => void;
}

/** An entry with everything its chain position does not decide (EventLog #prebuild). */
interface PreRow {
	cols: { at: string; tenant_id: string; meeting_id: string | null; type: string; actor: string | null; data: string };
	data: { [k: string]: Json };
	parts: EntryHashParts;
	fixed?: string;
}
interface Prebuilt {
	secrets: ChainWrite["secrets"];
	rows: PreRow[];
	/** Entries per group, in order. */
	sizes: number[];
	/** Every person key named (by tenant and key), its pseudonym, and whether its secret is new in this batch. */
	pseudonyms: Map<string, { tenantId: string; key: string; psn: string; created: boolean }>;
}
interface Chained {
	write: ChainWrite;
	events: AuditEvent[][];
	used: Prebuilt["pseudonyms"];
}

/** Entries from which a batch reads the pseudonyms this process does not remember before the lock is requested. */
const PREREAD_MIN = 32;

/** Pseudonyms a process remembers at most (then it forgets them all and reads them again). */
const KNOWN_MAX = 100_000;

/** Items one group commit takes at most (the rest wait for the next). */
const MAX_BATCH = 2_000;

const key2 = (a: string, b: string) => `${a.length}:${a}${b}`;

/**
 * The audit trail: append-only, one hash chain per tenant (each entry also
 * links to its meeting's previous entry), persons as erasable pseudonyms.
 * The SQL is in server/store/AuditRepository.ts, on SQLite or PostgreSQL.
 *
 * **One total order per tenant, across processes and nodes.** An append reads
 * its tenant's head and inserts inside `Store.transaction("audit:<tenant>")`:
 * SQLite's write lock, or a PostgreSQL advisory lock held until the commit.
 * The database also refuses any insert that does not extend the head (primary
 * key + trigger), so no fork can be written even by a buggy writer.
 *
 * **Group commit.** Appends that arrive together (the same turn of the event
 * loop, or while the previous commit is in flight) share one transaction; each
 * caller's promise resolves only once its entries are committed, in the order
 * the appends were made (entries of one process land in call order). A failed
 * batch is retried one append at a time, so one bad append fails only its
 * caller (unless the store is unreachable: then the whole batch fails at once). See docs/audit.md.
 */
export class EventLog {
	readonly #repo: AuditRepository;
	readonly #store: Store;
	readonly #listeners = new Set<(events: readonly AuditEvent[]) => void>();
	readonly #queue: Request[] = [];
	#draining = false;
	#batches = 0;
	/** Settles once every append queued so far is committed (or failed): reads wait for it (read-your-writes). */
	#tail: Promise<unknown> = Promise.resolve();

	/** The clock entries are stamped with (tests of retention set a fake one). */
	readonly #now: () => number;

	private constructor(store: Store, now: () => number) {
		this.#store = store;
		this.#repo = new AuditRepository(store);
		this.#now = now;
	}

	/** The audit log of `store`; seals rows written before the chain existed (once, on an old SQLite file). */
	static async open(store: Store, opts: { now?: () => number } = {}): Promise<EventLog> {
		const log = new EventLog(store, opts.now ?? Date.now);
		await log.#sealLegacy();
		return log;
	}

	/** Group commits done so far (for tests and benchmarks: appends per commit). */
	get commits(): number {
		return this.#batches;
	}

	/**
	 * Calls `listener` with the entries of each append once they are committed (webhooks, metrics). It must be
	 * quick and never throw; it sees only this process's appends. Returns a function that removes it.
	 */
	onAppend(listener: (events: readonly AuditEvent[]) => void): () => void {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
	}

	/** Appends one entry at the head of its tenant's chain; resolves once it is committed. */
	async append(type: EventType, e: AppendInput): Promise<AuditEvent> {
		return (await this.#enqueue([{ ...e, type }]))[0] as AuditEvent;
	}

	/**
	 * Appends several entries, in order and contiguous in their tenant's chain, all or none, committed together:
	 * several times faster per entry than single appends. For bursts, e.g. a session start notifying everyone present.
	 */
	appendMany(items: readonly Item[]): Promise<AuditEvent[]> {
		return items.length ? this.#enqueue(items) : Promise.resolve([]);
	}

	/**
	 * Writes the caller's own rows and the entries that record them in **one** transaction (all or nothing), under
	 * the audit lock of each tenant in `tenants` (and `locks`): `fn` runs on the transaction and returns its result
	 * and the entries to append (none: nothing to record), each of one of those tenants. For an action whose record
	 * must never be missing, nor exist without the action (e.g. the operator's security hold). A store that fails
	 * midway leaves neither.
	 */
	async appendWith<T>(
		tenants: readonly string[],
		fn: (trx: Kysely<Schema>) => Promise<{ result: T; entries: readonly AppendItem[] }>,
		locks: readonly string[] = [],
	): Promise<{ result: T; events: AuditEvent[] }> {
		await this.#settled();
		const done = await this.#store.transaction([...tenants.map((t) => `audit:${t}`), ...locks], async (trx) => {
			const { result, entries } = await fn(trx);
			const prepared = entries.map(prepare);
			for (const p of prepared)
				if (!tenants.includes(p.tenantId)) throw new Error(`appendWith: ${p.tenantId} is not among the locked tenants`);
			const events = prepared.length ? ((await this.#write(trx, [prepared]))[0] ?? []) : [];
			return { result, events };
		});
		this.#notify(done.events);
		return done;
	}

	/** Entries in chain order; `afterSeq`: only those after this position (a reader's cursor). */
	async list(filter: {
		tenantId: string;
		meetingId?: string;
		type?: EventType;
		limit?: number;
		afterSeq?: number;
	}): Promise<AuditEvent[]> {
		await this.#settled();
		const rows = await this.#repo.list({
			tenantId: filter.tenantId,
			...(filter.meetingId === undefined ? {} : { meetingId: filter.meetingId }),
			...(filter.type === undefined ? {} : { type: filter.type }),
			limit: filter.limit ?? 10_000,
			afterSeq: filter.afterSeq ?? 0,
		});
		return rows.map(toEvent);
	}

	/** The tenant chain's last entry (null: no entries yet). Record it somewhere else to anchor the chain. */
	async head(tenantId: string): Promise<ChainHead | null> {
		await this.#settled();
		return this.#store.guard(() => this.#repo.head(this.#store.db, tenantId));
	}

	/** Recomputes the chains (one tenant, or all) and reports each one's first broken link. */
	async verify(opts: { tenantId?: string; anchor?: ChainHead } = {}): Promise<VerifyResult[]> {
		await this.#settled();
		const tenants = opts.tenantId !== undefined ? [opts.tenantId] : await this.#repo.tenants();
		const out: VerifyResult[] = [];
		for (const t of tenants) {
			const repo = this.#repo;
			const rows = (async function* () {
				for await (const r of repo.chain(t)) yield toTuple(r);
			})();
			out.push(await verifyChain(t, rows, opts.anchor ? { anchor: opts.anchor } : {}));
		}
		return out;
	}

	/** The meeting's entries as JSON Lines, verifiable offline (docs/audit.md). */
	async exportMeeting(tenantId: string, meetingId: string): Promise<string> {
		await this.#settled();
		const rows = await this.#repo.meetingEntries(tenantId, meetingId);
		const chainHead = await this.head(tenantId); // after the rows: at or after the meeting's last entry
		// A meeting cut by retention starts after a checkpoint: the export carries it (its new start).
		const first = rows[0];
		const checkpoint =
			first && first.meeting_prev_hash !== GENESIS
				? await this.#store.guard(async () => {
						const p = await this.#repo.purgeOf(this.#store.db, tenantId);
						return p ? this.#repo.entryAt(this.#store.db, tenantId, p.checkpointSeq) : undefined;
					})
				: undefined;
		return exportText(tenantId, meetingId, rows, chainHead, checkpoint);
	}

	/**
	 * The person's pseudonym in this tenant's entries, or null when they have
	 * none (never appeared, or erased). For access requests: find their entries.
	 */
	async pseudonym(tenantId: string, personKey: string, x?: Kysely<Schema>): Promise<string | null> {
		// (On a caller's executor the caller settles first: waiting here, inside its snapshot, for appends that need
		// the connection the snapshot holds would never end on SQLite.)
		if (!x) await this.#settled();
		const row = await this.#repo.secretOf(tenantId, personKey, x);
		return row ? pseudonymOf(row.secret, personKey) : null;
	}

	/** The person key behind a pseudonym, or null when it cannot be resolved (unknown or erased). */
	resolvePseudonym(tenantId: string, pseudonym: string, x?: Kysely<Schema>): Promise<string | null> {
		return this.#repo.resolvePseudonym(tenantId, pseudonym, x);
	}

	/**
	 * Entries where the person is the actor or named in data (access requests). Empty once erased. `x`: read on
	 * this executor (a snapshot: Store.snapshot), as `pseudonym` and `resolvePseudonym`.
	 */
	async listForPerson(tenantId: string, personKey: string, limit = 10_000, x?: Kysely<Schema>): Promise<AuditEvent[]> {
		const psn = await this.pseudonym(tenantId, personKey, x);
		if (!psn) return [];
		return (await this.#repo.listForPseudonym(tenantId, psn, limit, x)).map(toEvent);
	}

	/** Whether this person (`tenant:subject`) joined the meeting: a `person.joined` entry of theirs in it. */
	async joined(tenantId: string, personKey: string, meetingId: string): Promise<boolean> {
		const psn = await this.pseudonym(tenantId, personKey);
		return psn !== null && (await this.#repo.hasJoined(tenantId, meetingId, psn));
	}

	/**
	 * Erasure: destroys the person's secret, so their pseudonym can no longer be
	 * linked to them. Entries are not touched and every chain still verifies.
	 * Records a `person.erased` entry naming the (now unlinkable) pseudonym, in the
	 * same transaction. If the same person key appears again later, it gets a new,
	 * unrelated pseudonym. Backups taken before the erasure still hold the secret:
	 * keep them short.
	 */
	async erasePerson(
		tenantId: string,
		personKey: string,
		by?: { actor?: string; reason?: string; data?: Record<string, Json> },
		within?: { locks?: readonly string[]; run: (trx: Kysely<Schema>, pseudonym: string | null) => Promise<void> },
	): Promise<{ erased: boolean; pseudonym: string | null }> {
		await this.#settled();
		const erased = await this.#store.transaction([`audit:${tenantId}`, ...(within?.locks ?? [])], async (trx) => {
			const row = (await this.#repo.secrets(trx, tenantId, [personKey]))[0];
			const psn = row ? pseudonymOf(row.secret, personKey) : null;
			// The caller's own rows (a data-subject erasure: every other table) go in the same transaction.
			await within?.run(trx, psn);
			if (!row || !psn) return null;
			await this.#repo.dropSecret(trx, tenantId, personKey);
			const entry: Prepared = {
				type: "person.erased",
				tenantId,
				meetingId: null,
				actor: by?.actor ?? null,
				data: { ...(by?.data ?? {}), pseudonym: psn, ...(by?.reason ? { reason: by.reason } : {}) },
			};
			return { psn, events: await this.#write(trx, [[entry]]) };
		});
		this.#known.delete(key2(tenantId, personKey)); // (another process's memory is checked under the lock)
		if (!erased) return { erased: false, pseudonym: null };
		this.#notify(erased.events.flat());
		// Hygiene after the commit (the erasure itself is done): a store too slow or gone for it now must not turn a
		// committed erasure into a failure; the next erasure's scrub covers this one's bytes too.
		await this.#repo.scrubAfterErase().catch(() => undefined);
		return { erased: true, pseudonym: erased.psn };
	}

	/**
	 * Issue 14 retention: purges one batch (at most `batch` entries) of the tenant chain's oldest entries written
	 * before `before` (ISO time; all of them with `before: null`, a tenant's wipe), in one transaction under the
	 * tenant's audit lock: a `chain.checkpoint` entry is appended at the head first (the hash and position of the last
	 * purged entry, how many, and the meetings that go on after the cut with their last purged hash), then the prefix
	 * is deleted (the database lets exactly that prefix go: `audit_purges`). A crash between batches leaves a chain
	 * that verifies; the next run goes on. Only a prefix is ever cut: an old entry after a newer one waits.
	 * Returns how many entries this batch purged (0: nothing (more) to purge). `withCut` runs in the same
	 * transaction with the meetings none of whose entries remain (their rows go with the entries, or neither does).
	 */
	async purgeBefore(
		tenantId: string,
		before: string | null,
		opts: {
			batch?: number;
			reason?: string;
			by?: string;
			through?: number;
			withCut?: (trx: Kysely<Schema>, meetingsGone: readonly string[]) => Promise<number>;
		} = {},
	): Promise<{
		purged: number;
		throughSeq: number | null;
		checkpointSeq: number | null;
		/** Meetings none of whose entries remain: their rows can go too (RetentionService). */
		meetingsGone: string[];
		/** What `withCut` returned (0 without it). */
		cutRows: number;
	}> {
		const batch = Math.max(1, opts.batch ?? 5_000);
		await this.#settled();
		const done = await this.#store.transaction(`audit:${tenantId}`, async (trx) => {
			const rows = await this.#repo.prefix(trx, tenantId, batch);
			let n = 0;
			const through = opts.through ?? Number.POSITIVE_INFINITY;
			for (const r of rows) {
				if (r.seq > through || (before !== null && r.at >= before)) break;
				n++;
			}
			const cut = rows.slice(0, n);
			// Nothing of substance to cut (only earlier checkpoints): leave them, or each run would add one.
			if (!cut.some((r) => r.type !== "chain.checkpoint")) return null;
			const last = cut.at(-1) as (typeof rows)[number];
			const previous = await this.#repo.purgeOf(trx, tenantId);
			// Meetings that go on after the cut: their first remaining entry links to a purged one.
			const candidates = new Set<string>();
			for (const r of cut) if (r.meeting_id !== null) candidates.add(r.meeting_id);
			if (previous) {
				const cp = await this.#repo.entryAt(trx, tenantId, previous.checkpointSeq);
				const heads = cp ? (JSON.parse(cp.data) as { meetingHeads?: Record<string, string> }).meetingHeads : undefined;
				for (const m of Object.keys(heads ?? {})) candidates.add(m);
			}
			const meetingHeads: Record<string, string> = {};
			const meetingsGone: string[] = [];
			for (const m of [...candidates].sort()) {
				const prev = await this.#repo.meetingPrevAfter(trx, tenantId, m, last.seq);
				if (prev && prev !== GENESIS) meetingHeads[m] = prev;
				if (prev === undefined) meetingsGone.push(m);
			}
			const entry: Prepared = {
				type: "chain.checkpoint",
				tenantId,
				meetingId: null,
				actor: null, // (a person key here would create a pseudonym secret: who purged is named in data.by)
				data: {
					...(opts.by ? { by: opts.by } : {}),
					throughSeq: last.seq,
					throughHash: last.hash,
					purged: cut.length,
					purgedTotal: (previous?.purged ?? 0) + cut.length,
					before,
					reason: opts.reason ?? "retention",
					meetingHeads,
				},
			};
			const events = await this.#write(trx, [[entry]]);
			const checkpoint = events[0]?.[0] as AuditEvent;
			await this.#repo.deletePrefix(
				trx,
				tenantId,
				last.seq,
				last.hash,
				cut.length,
				checkpoint.seq,
				new Date(this.#now()).toISOString(),
			);
			const cutRows = opts.withCut ? await opts.withCut(trx, meetingsGone) : 0;
			return { purged: cut.length, throughSeq: last.seq, checkpoint, meetingsGone, cutRows };
		});
		if (!done) return { purged: 0, throughSeq: null, checkpointSeq: null, meetingsGone: [], cutRows: 0 };
		this.#notify([done.checkpoint]);
		return {
			purged: done.purged,
			throughSeq: done.throughSeq,
			checkpointSeq: done.checkpoint.seq,
			meetingsGone: done.meetingsGone,
			cutRows: done.cutRows,
		};
	}

	#enqueue(items: readonly Item[]): Promise<AuditEvent[]> {
		let prepared: Prepared[];
		try {
			prepared = items.map(prepare);
		} catch (err) {
			return Promise.reject(err);
		}
		const p = new Promise<AuditEvent[]>((resolve, reject) => {
			this.#queue.push({ items: prepared, resolve, reject });
			if (!this.#draining) {
				this.#draining = true;
				// Let the appends of this turn of the event loop (e.g. a burst of acknowledgements read from many
				// sockets at once) join the first commit.
				setImmediate(() => void this.#drain());
			}
		});
		this.#tail = p.catch(() => undefined);
		return p;
	}

	/** What this process appended before a read is visible to it (the appends are committed in call order). */
	async #settled(): Promise<void> {
		await this.#tail;
	}

	/** Settles once every append made so far is committed or failed (e.g. before closing the store). */
	settled(): Promise<void> {
		return this.#settled();
	}

	async #drain(): Promise<void> {
		try {
			while (this.#queue.length) {
				const batch: Request[] = [];
				let n = 0;
				while (this.#queue.length && (n === 0 || n + (this.#queue[0] as Request).items.length <= MAX_BATCH)) {
					const r = this.#queue.shift() as Request;
					batch.push(r);
					n += r.items.length;
				}
				await this.#commit(batch);
				// Let the callers just answered append again, and sockets read meanwhile, before the next batch: without
				// this turn the next commit took only the first few of them and a second, full one followed (measured:
				// commits alternating ~270 and ~60 entries with 3 processes on one chain; docs/benchmarks.md).
				await new Promise<void>((resolve) => setImmediate(resolve));
			}
		} finally {
			this.#draining = false;
		}
	}

	async #commit(batch: Request[]): Promise<void> {
		let results: AuditEvent[][];
		try {
			results = await this.#commitGroups(batch.map((r) => r.items));
		} catch (err) {
			if (batch.length === 1 || err instanceof StoreUnavailableError) {
				// (The store unreachable: every append of the batch fails at once, none waits for a retry.)
				for (const r of batch) r.reject(err);
				return;
			}
			// One append may be the cause: retry each alone, so only its own caller fails.
			for (const r of batch) await this.#commit([r]);
			return;
		}
		batch.forEach((r, i) => {
			r.resolve(results[i] as AuditEvent[]);
		});
		this.#notify(results.flat());
	}

	async #commitGroups(groups: Prepared[][]): Promise<AuditEvent[][]> {
		const needs = this.#needs(groups);
		const locks = needs.tenants.map((t) => `audit:${t}`);
		this.#batches++;
		if (this.#store.engine !== "postgres") return this.#store.transaction(locks, (trx) => this.#write(trx, groups));
		// PostgreSQL: everything but the chain's four columns is made before the tenant's lock is taken (pseudonyms as
		// this process last saw them, canonical JSON, the INSERT's literals); under the lock (two round trips,
		// AuditRepository.appendLocked) the pseudonyms read there must be those guessed, else the batch is built again
		// from what was read (a person erased or first seen by another node meanwhile): an erased person never gets
		// the old pseudonym.
		const entries = groups.reduce((sum, g) => sum + g.length, 0);
		let pre: Prebuilt | undefined;
		const prepare = async (read: PseudonymReader) => {
			const guessed = await this.#guessPseudonyms(needs, entries >= PREREAD_MIN ? read : undefined);
			pre = this.#prebuild(groups, (t, k) => guessed.get(key2(t, k)), true);
		};
		const { events, used } = await this.#repo.appendLocked(
			locks,
			needs,
			(state) => {
				if (!pre) throw new Error("audit: the batch was not prepared");
				const ok = [...pre.pseudonyms.values()].every((p) => {
					const found = state.pseudonyms.get(p.tenantId)?.get(p.key);
					return p.created ? found === undefined : found === p.psn;
				});
				const built = ok ? this.#chain(pre, state) : this.#build(groups, state);
				return { write: built.write, result: built };
			},
			prepare,
		);
		this.#remember(used);
		return events;
	}

	/** Pseudonyms this process has seen committed, by tenant and person key (re-checked under the lock each time). */
	readonly #known = new Map<string, string>();

	#remember(used: ReadonlyMap<string, { tenantId: string; key: string; psn: string }>): void {
		if (this.#known.size > KNOWN_MAX) this.#known.clear();
		for (const u of used.values()) this.#known.set(key2(u.tenantId, u.key), u.psn);
	}

	/**
	 * The pseudonyms of the persons the batch names, as last seen: this process's memory, else (`read`) read without
	 * the lock. Unread ones are guessed new: if one exists after all, the batch is built under the lock (as small
	 * batches, where an extra round trip would cost more than that, always were).
	 */
	async #guessPseudonyms(needs: ChainNeeds, read: PseudonymReader | undefined): Promise<Map<string, string>> {
		const out = new Map<string, string>();
		for (const [t, keys] of needs.persons) {
			const unknown: string[] = [];
			for (const k of keys) {
				const p = this.#known.get(key2(t, k));
				if (p) out.set(key2(t, k), p);
				else unknown.push(k);
			}
			if (!unknown.length || !read) continue;
			for (const [k, p] of await read(t, unknown)) out.set(key2(t, k), p);
		}
		return out;
	}

	#notify(appended: readonly AuditEvent[]): void {
		if (appended.length === 0) return;
		for (const listener of this.#listeners) {
			try {
				listener(appended);
			} catch {
				// A listener never breaks an append (webhooks, metrics): it is written.
			}
		}
	}

	/**
	 * Chains and inserts the groups' entries, in order, inside the caller's transaction (which holds every involved
	 * tenant's lock): heads, meeting heads and pseudonyms read once, new secrets and rows written in one go.
	 */
	async #write(trx: Kysely<Schema>, groups: readonly Prepared[][]): Promise<AuditEvent[][]> {
		const state = await this.#repo.readChain(trx, this.#needs(groups));
		const { write, events } = this.#build(groups, state);
		await this.#repo.writeChain(trx, write);
		return events;
	}

	/** The tenants, person keys (not yet pseudonyms) and meetings the groups name. */
	#needs(groups: readonly Prepared[][]): ChainNeeds {
		const tenants = new Set<string>();
		const persons = new Map<string, Set<string>>();
		const meetings = new Map<string, Set<string>>();
		const add = (m: Map<string, Set<string>>, t: string, v: string) => {
			const set = m.get(t) ?? new Set<string>();
			m.set(t, set);
			set.add(v);
		};
		const want = (t: string, k: string) => {
			if (!PSEUDONYM_RE.test(k)) add(persons, t, k);
		};
		for (const g of groups)
			for (const it of g) {
				tenants.add(it.tenantId);
				if (it.actor !== null) want(it.tenantId, it.actor);
				if (!it.plain) collectPersons(it.data, (k) => want(it.tenantId, k));
				if (it.meetingId !== null) add(meetings, it.tenantId, it.meetingId);
			}
		const lists = (m: Map<string, Set<string>>) => new Map([...m].map(([t, set]) => [t, [...set]] as const));
		return { tenants: [...tenants], persons: lists(persons), meetings: lists(meetings) };
	}

	/** The groups' entries chained from the state read under the locks (pseudonyms included). Pure CPU. */
	#build(groups: readonly Prepared[][], state: ChainState): Chained {
		return this.#chain(
			this.#prebuild(groups, (t, k) => state.pseudonyms.get(t)?.get(k), false),
			state,
		);
	}

	/**
	 * Everything of the groups' entries their chain position does not decide: each person key's pseudonym (`known`,
	 * else a new secret), the data with pseudonyms in canonical JSON, the time, the hashed text around the chain's
	 * fields and (`literals`, PostgreSQL) the INSERT's literals of the other columns. Pure CPU.
	 */
	#prebuild(
		groups: readonly Prepared[][],
		known: (tenantId: string, personKey: string) => string | undefined,
		literals: boolean,
	): Prebuilt {
		const at = new Date(this.#now()).toISOString();
		const secrets: ChainWrite["secrets"] = [];
		const pseudonyms: Prebuilt["pseudonyms"] = new Map();
		const rows: PreRow[] = [];
		const sizes: number[] = [];
		let tenantId = "";
		// One closure for the whole batch (of the entry's tenant). New secrets are written in the order they are made,
		// consecutive ones of a tenant in one statement (as many rows, in the same order, as one statement per entry).
		const psn = (k: string): string => {
			if (PSEUDONYM_RE.test(k)) return k;
			const ck = key2(tenantId, k);
			const seen = pseudonyms.get(ck);
			if (seen) return seen.psn;
			const found = known(tenantId, k);
			if (found) {
				pseudonyms.set(ck, { tenantId, key: k, psn: found, created: false });
				return found;
			}
			const secret = randomBytes(32);
			const row = { person_key: k, secret, pseudonym: pseudonymOf(secret, k) };
			const last = secrets.at(-1);
			if (last?.tenantId === tenantId) last.rows.push(row);
			else secrets.push({ tenantId, rows: [row], at });
			pseudonyms.set(ck, { tenantId, key: k, psn: row.pseudonym, created: true });
			return row.pseudonym;
		};
		for (const g of groups) {
			sizes.push(g.length);
			for (const it of g) {
				const { meetingId, type } = it;
				tenantId = it.tenantId;
				const actor = it.actor === null ? null : psn(it.actor);
				// (The same object pseudonymizeData would copy when no field names a person: it.data is this append's own.)
				const data = it.plain ? it.data : (pseudonymizeData(it.data, psn) as { [k: string]: Json });
				const dataText = canonicalJson(data);
				const cols = { at, tenant_id: tenantId, meeting_id: meetingId, type, actor, data: dataText };
				const row: PreRow = { cols, data, parts: entryHashParts(at, tenantId, meetingId, type, actor, dataText) };
				if (literals) row.fixed = fixedLiterals(cols);
				rows.push(row);
			}
		}
		return { secrets, rows, sizes, pseudonyms };
	}

	/** The prebuilt entries placed at the head of their chains (seq, prev and meeting hashes, hash), in order. */
	#chain(pre: Prebuilt, state: ChainState): Chained {
		const heads = new Map<string, ChainHead | null>(state.heads);
		const meetingHeads = new Map<string, string>();
		for (const [t, m] of state.meetingHeads) for (const [id, hash] of m) meetingHeads.set(key2(t, id), hash);
		const rows: ChainWrite["rows"] = [];
		const events: AuditEvent[][] = [];
		let i = 0;
		for (const size of pre.sizes) {
			const group: AuditEvent[] = [];
			for (const end = i + size; i < end; i++) {
				const { cols, data, parts, fixed } = pre.rows[i] as PreRow;
				const tenantId = cols.tenant_id;
				const meetingId = cols.meeting_id;
				const head = heads.get(tenantId) ?? null;
				const seq = (head?.seq ?? 0) + 1;
				const prevHash = head?.hash ?? GENESIS;
				const meetingPrevHash = meetingId === null ? null : (meetingHeads.get(key2(tenantId, meetingId)) ?? GENESIS);
				const hash = chainedHash(parts, seq, prevHash, meetingPrevHash);
				const row: ChainWrite["rows"][number] = {
					at: cols.at,
					tenant_id: tenantId,
					meeting_id: meetingId,
					type: cols.type,
					actor: cols.actor,
					data: cols.data,
					seq,
					prev_hash: prevHash,
					meeting_prev_hash: meetingPrevHash,
					hash,
				};
				if (fixed !== undefined) row.fixed = fixed;
				rows.push(row);
				heads.set(tenantId, { seq, hash });
				if (meetingId !== null) meetingHeads.set(key2(tenantId, meetingId), hash);
				group.push({
					seq,
					at: cols.at,
					tenantId,
					meetingId,
					type: cols.type as EventType,
					actor: cols.actor,
					data,
					prevHash,
					meetingPrevHash,
					hash,
				});
			}
			events.push(group);
		}
		return { write: { secrets: pre.secrets, rows }, events, used: pre.pseudonyms };
	}

	/**
	 * Rows written before the chain existed (migration 2 numbered them 1..n per
	 * tenant, in their original order) get their hashes, with persons
	 * pseudonymized, once. The database refuses unchained inserts, so this finds
	 * nothing after the first gateway start on this version.
	 */
	async #sealLegacy(): Promise<void> {
		if (!(await this.#repo.hasUnsealed())) return;
		await this.#store.transaction("audit:legacy", async (trx) => {
			const rows = await this.#repo.unsealed(trx);
			const now = new Date().toISOString();
			const cache = new Map<string, string>();
			const psn = async (tenantId: string, k: string): Promise<string> => {
				if (PSEUDONYM_RE.test(k)) return k;
				const ck = key2(tenantId, k);
				let p = cache.get(ck) ?? (await this.#repo.secrets(trx, tenantId, [k]))[0]?.pseudonym;
				if (!p) {
					const secret = randomBytes(32);
					p = pseudonymOf(secret, k);
					await this.#repo.addSecrets(trx, tenantId, [{ person_key: k, secret, pseudonym: p }], now);
				}
				cache.set(ck, p);
				return p;
			};
			for (const r of rows) {
				const actor = r.actor === null ? null : await psn(r.tenant_id, r.actor);
				let parsed: Json;
				try {
					parsed = JSON.parse(r.data) as Json;
				} catch {
					parsed = { unparsed: r.data };
				}
				if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) parsed = { value: parsed };
				const persons: string[] = [];
				collectPersons(parsed, (k) => persons.push(k));
				const known = new Map<string, string>();
				for (const k of persons) known.set(k, await psn(r.tenant_id, k));
				const dataText = canonicalJson(pseudonymizeData(parsed, (k) => known.get(k) ?? k));
				const prevHash = r.seq === 1 ? GENESIS : ((await this.#repo.hashAt(trx, r.tenant_id, r.seq - 1)) ?? GENESIS);
				const meetingPrevHash =
					r.meeting_id === null
						? null
						: ((await this.#repo.meetingHashBefore(trx, r.tenant_id, r.meeting_id, r.seq)) ?? GENESIS);
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
				await this.#repo.seal(trx, {
					tenant_id: r.tenant_id,
					seq: r.seq,
					actor,
					data: dataText,
					prev_hash: prevHash,
					meeting_prev_hash: meetingPrevHash,
					hash,
				});
			}
		});
	}
}

/** Checks an item's data is plain JSON (an object) before it queues, and takes its own copy of it. */
function prepare(item: Item): Prepared {
	const shape = { named: false };
	const copied = jsonCopy(item.data ?? {}, shape, 0);
	const data = copied === undefined ? toJson(item.data ?? {}) : copied;
	if (typeof data !== "object" || data === null || Array.isArray(data)) throw new TypeError("data must be an object");
	return {
		type: item.type,
		tenantId: item.tenantId,
		meetingId: item.meetingId ?? null,
		actor: item.actor === undefined || item.actor === null ? null : item.actor,
		data,
		...(copied !== undefined && !shape.named ? { plain: true } : {}),
	};
}

/** Deeper than this, {@link jsonCopy} leaves the value to `toJson` (which also names a cycle). */
const COPY_DEPTH_MAX = 64;

/**
 * `v` copied as `JSON.parse(JSON.stringify(v))` (toJson) would copy it, without the text in between (the audit
 * trail's hot path: every append's data), or undefined when `v` holds anything that round trip would change or
 * drop (undefined, functions, symbols, bigint, non-finite numbers, holes, dates and other non-plain objects, a
 * `__proto__` key, an inherited `toJSON`, depth beyond {@link COPY_DEPTH_MAX}): the caller then uses toJson.
 * `-0` becomes 0, as the round trip makes it. `shape.named` is set when a key is `person`, `persons` or
 * `__proto__`. server/audit/fastPaths.test.ts compares it with toJson over random values.
 */
export function jsonCopy(v: unknown, shape: { named: boolean }, depth: number): Json | undefined {
	switch (typeof v) {
		case "string":
		case "boolean":
			return v;
		case "number":
			if (!Number.isFinite(v)) return undefined;
			return v === 0 ? 0 : v;
		case "object": {
			if (v === null) return null;
			if (depth >= COPY_DEPTH_MAX || "toJSON" in v) return undefined;
			const proto = Object.getPrototypeOf(v);
			if (Array.isArray(v)) {
				if (proto !== Array.prototype) return undefined;
				const out: Json[] = new Array(v.length);
				for (let i = 0; i < v.length; i++) {
					if (!Object.hasOwn(v, i)) return undefined;
					const x = jsonCopy(v[i], shape, depth + 1);
					if (x === undefined) return undefined;
					out[i] = x;
				}
				return out;
			}
			if (proto !== Object.prototype && proto !== null) return undefined;
			const obj = v as Record<string, unknown>;
			const out: { [k: string]: Json } = {};
			for (const k of Object.keys(obj)) {
				if (k === "person" || k === "persons") shape.named = true;
				else if (k === "__proto__") return undefined;
				const x = jsonCopy(obj[k], shape, depth + 1);
				if (x === undefined) return undefined;
				out[k] = x;
			}
			return out;
		}
		default:
			return undefined;
	}
}

/** Calls `found` with every person key in `data`: fields named `person` (a string) or `persons` (strings). */
function collectPersons(v: Json, found: (personKey: string) => void): void {
	if (Array.isArray(v)) {
		for (const x of v) collectPersons(x, found);
		return;
	}
	if (v === null || typeof v !== "object") return;
	for (const k of Object.keys(v)) {
		const x = v[k] as Json;
		if (k === "person" && typeof x === "string") found(x);
		else if (k === "persons" && Array.isArray(x)) {
			for (const p of x) {
				if (typeof p === "string") found(p);
				else collectPersons(p, found);
			}
		} else collectPersons(x, found);
	}
}

/** `data` with every person key replaced by `psn(key)` (the same fields {@link collectPersons} finds). */
function pseudonymizeData(v: Json, psn: (personKey: string) => string): Json {
	if (Array.isArray(v)) return v.map((x) => pseudonymizeData(x, psn));
	if (v === null || typeof v !== "object") return v;
	const out: Record<string, Json> = {};
	for (const k of Object.keys(v)) {
		const x = v[k] as Json;
		if (k === "person" && typeof x === "string") out[k] = psn(x);
		else if (k === "persons" && Array.isArray(x))
			out[k] = x.map((p) => (typeof p === "string" ? psn(p) : pseudonymizeData(p, psn)));
		else out[k] = pseudonymizeData(x, psn);
	}
	return out;
}

function pseudonymOf(secret: Buffer, personKey: string): string {
	return `psn_${createHmac("sha256", secret).update(personKey, "utf8").digest("hex")}`;
}

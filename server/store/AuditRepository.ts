import { type Kysely, sql } from "kysely";
import type pg from "pg";
import type { Schema } from "./Schema.js";
import type { Store } from "./Store.js";

/** A row of the `events` table (the audit chain), numbers as numbers. */
export type EventRow = {
	seq: number;
	at: string;
	tenant_id: string;
	meeting_id: string | null;
	type: string;
	actor: string | null;
	data: string;
	prev_hash: string | null;
	meeting_prev_hash: string | null;
	hash: string | null;
};

/** A chained row as inserted (every chain field set). */
export type NewEventRow = {
	[K in keyof EventRow]: K extends "prev_hash" | "hash" ? string : EventRow[K];
};

export interface SecretRow {
	person_key: string;
	secret: Buffer;
	pseudonym: string;
}

/** Rows per INSERT statement (SQLite allows 32,766 bound values; 10 columns a row). */
const INSERT_CHUNK = 500;
/** Rows per page when a whole chain is read (verify): bounded memory on both engines. */
export const CHAIN_PAGE = 2_000;

const COLUMNS = [
	"seq",
	"at",
	"tenant_id",
	"meeting_id",
	"type",
	"actor",
	"data",
	"prev_hash",
	"meeting_prev_hash",
	"hash",
] as const;

/** SQLite: one chained row (AuditRepository.insert). */
const INSERT_EVENT_SQLITE = `INSERT INTO events (${COLUMNS.join(", ")}) VALUES (${COLUMNS.map(() => "?").join(", ")})`;

/** SQLite, under the tenants' locks (AuditRepository.readChain): the same reads as {@link AuditRepository.head}, … */
const HEAD_SQLITE = "SELECT seq, hash FROM events WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1";
/** … {@link AuditRepository.meetingHead} … */
const MEETING_HEAD_SQLITE =
	"SELECT hash FROM events INDEXED BY events_by_meeting WHERE tenant_id = ? AND meeting_id = ? ORDER BY seq DESC LIMIT 1";
/** … and the pseudonyms of up to this many person keys per statement (unused places bound to NULL: no match). */
const PSEUDONYMS_CHUNK = 100;
const PSEUDONYMS_SQLITE = `SELECT person_key, pseudonym FROM audit_person_secrets WHERE tenant_id = ? AND person_key IN (${Array.from({ length: PSEUDONYMS_CHUNK }, () => "?").join(", ")})`;

/** What a group commit must read at the head of its tenants' chains (under their locks). */
export interface ChainNeeds {
	/** The tenants written (each one's lock is held; its head is read). */
	tenants: readonly string[];
	/** Per tenant: the person keys named (their pseudonyms are read). */
	persons: ReadonlyMap<string, readonly string[]>;
	/** Per tenant: the meetings named (each one's last entry is read). */
	meetings: ReadonlyMap<string, readonly string[]>;
}

/** What a group commit reads, under the locks: per tenant. */
export interface ChainState {
	heads: Map<string, { seq: number; hash: string } | null>;
	/** tenant → meeting → hash of its last entry (meetings without entries left out). */
	meetingHeads: Map<string, Map<string, string>>;
	/** tenant → person key → pseudonym (keys without a secret yet left out). */
	pseudonyms: Map<string, Map<string, string>>;
}

/** Reads, without any lock, the pseudonyms of these person keys that have a secret (person key → pseudonym). */
export type PseudonymReader = (tenantId: string, personKeys: readonly string[]) => Promise<Map<string, string>>;

/** What a group commit writes: new secrets, then the chained rows in order. */
export interface ChainWrite {
	secrets: { tenantId: string; rows: SecretRow[]; at: string }[];
	/** `fixed`: the row's {@link fixedLiterals}, made before the lock (PostgreSQL; else made while it is held). */
	rows: (NewEventRow & { fixed?: string })[];
}

/** The columns of a row its chain position does not decide, in the order {@link fixedLiterals} writes them. */
const FIXED = ["at", "tenant_id", "meeting_id", "type", "actor", "data"] as const;
type FixedColumns = Pick<EventRow, (typeof FIXED)[number]>;

/** A string as an SQL literal: what `pg.escapeLiteral` returns, with native replaces (a batch is ~1 MB of text). */
const lit = (v: string | null): string => {
	if (v === null) return "NULL";
	const quoted = v.replaceAll("'", "''");
	return v.includes("\\") ? ` E'${quoted.replaceAll("\\", "\\\\")}'` : `'${quoted}'`;
};

/**
 * PostgreSQL group commit: a row's chain-independent columns ({@link FIXED}) as SQL literals, so that the text of
 * the INSERT is made before the tenant's lock is taken and only the chain's four columns are added under it.
 */
export function fixedLiterals(r: FixedColumns): string {
	return FIXED.map((c) => lit(r[c])).join(", ");
}

function toRow(r: Record<string, unknown>): EventRow {
	return { ...(r as EventRow), seq: Number(r.seq) };
}

/**
 * The audit chain's SQL (tables `events` and `audit_person_secrets`), on both engines. The chain's rules (hashing,
 * pseudonyms, group commit) are in server/audit/EventLog.ts, which calls these inside `Store.transaction` with the
 * tenant's lock (`audit:<tenant>`): the writes of one tenant's chain take turns across every process and node, and
 * the database refuses any insert that does not extend the head (primary key + trigger, both engines).
 * Methods taking `x` run on the caller's transaction.
 */
export class AuditRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	get store(): Store {
		return this.#s;
	}

	/** SQLite's planner, without statistics, would rather scan the tenant's chain backwards than use this index. */
	#byMeeting() {
		return sql.raw(this.#s.engine === "sqlite" ? "INDEXED BY events_by_meeting" : "");
	}

	/** The tenant chain's last entry. */
	async head(x: Kysely<Schema>, tenantId: string): Promise<{ seq: number; hash: string } | null> {
		const r = await x
			.selectFrom("events")
			.select(["seq", "hash"])
			.where("tenant_id", "=", tenantId)
			.orderBy("seq", "desc")
			.limit(1)
			.executeTakeFirst();
		return r ? { seq: Number(r.seq), hash: r.hash as string } : null;
	}

	/** Hash of the meeting's last entry, or null. */
	async meetingHead(x: Kysely<Schema>, tenantId: string, meetingId: string): Promise<string | null> {
		const r = await sql<{ hash: string | null }>`SELECT hash FROM events ${this.#byMeeting()}
			WHERE tenant_id = ${tenantId} AND meeting_id = ${meetingId} ORDER BY seq DESC LIMIT 1`.execute(x);
		return r.rows[0]?.hash ?? null;
	}

	/** Hash of each meeting's last entry (meetings without entries left out), in one round trip. */
	async meetingHeads(x: Kysely<Schema>, tenantId: string, meetingIds: readonly string[]): Promise<Map<string, string>> {
		const out = new Map<string, string>();
		for (let i = 0; i < meetingIds.length; i += 200) {
			const parts = meetingIds.slice(i, i + 200).map(
				(m) => sql`SELECT ${m} AS meeting_id, (SELECT hash FROM events ${this.#byMeeting()}
					WHERE tenant_id = ${tenantId} AND meeting_id = ${m} ORDER BY seq DESC LIMIT 1) AS hash`,
			);
			const r = await sql<{ meeting_id: string; hash: string | null }>`${sql.join(parts, sql` UNION ALL `)}`.execute(x);
			for (const row of r.rows) if (row.hash !== null) out.set(row.meeting_id, row.hash);
		}
		return out;
	}

	/** The secrets of these person keys that exist. */
	async secrets(x: Kysely<Schema>, tenantId: string, personKeys: readonly string[]): Promise<SecretRow[]> {
		if (personKeys.length === 0) return [];
		const out: SecretRow[] = [];
		for (let i = 0; i < personKeys.length; i += INSERT_CHUNK) {
			out.push(
				...(await x
					.selectFrom("audit_person_secrets")
					.select(["person_key", "secret", "pseudonym"])
					.where("tenant_id", "=", tenantId)
					.where("person_key", "in", personKeys.slice(i, i + INSERT_CHUNK))
					.execute()),
			);
		}
		return out;
	}

	async addSecrets(x: Kysely<Schema>, tenantId: string, rows: readonly SecretRow[], at: string): Promise<void> {
		for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
			await x
				.insertInto("audit_person_secrets")
				.values(rows.slice(i, i + INSERT_CHUNK).map((r) => ({ tenant_id: tenantId, created_at: at, ...r })))
				.execute();
		}
	}

	async dropSecret(x: Kysely<Schema>, tenantId: string, personKey: string): Promise<void> {
		await x
			.deleteFrom("audit_person_secrets")
			.where("tenant_id", "=", tenantId)
			.where("person_key", "=", personKey)
			.execute();
	}

	/** Inserts chained rows, in order (the trigger checks each against the one before). */
	async insert(x: Kysely<Schema>, rows: readonly NewEventRow[]): Promise<void> {
		if (this.#s.engine === "sqlite") {
			// One cached single-row statement run per row, on the caller's transaction: no query built and prepared
			// per group commit (the SQLite work runs on the gateway's thread; measured in docs/benchmarks.md).
			this.#s.runEachSqlite(
				INSERT_EVENT_SQLITE,
				rows.map((r) => [
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
				]),
			);
			return;
		}
		for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
			await x
				.insertInto("events")
				.values(rows.slice(i, i + INSERT_CHUNK))
				.execute();
		}
	}

	/** Reads what a group commit needs, on the caller's transaction (which holds the tenants' locks). */
	async readChain(x: Kysely<Schema>, needs: ChainNeeds): Promise<ChainState> {
		if (this.#s.engine === "sqlite") return this.#readChainSqlite(needs);
		const state: ChainState = { heads: new Map(), meetingHeads: new Map(), pseudonyms: new Map() };
		for (const t of needs.tenants) state.heads.set(t, await this.head(x, t));
		for (const [t, list] of needs.meetings) state.meetingHeads.set(t, await this.meetingHeads(x, t, list));
		for (const [t, list] of needs.persons) {
			const found = new Map<string, string>();
			for (const r of await this.secrets(x, t, list)) found.set(r.person_key, r.pseudonym);
			state.pseudonyms.set(t, found);
		}
		return state;
	}

	/**
	 * SQLite: {@link readChain}'s reads as cached statements (the same queries as head, meetingHead and secrets; no
	 * query built and prepared per group commit, no secret read where only the pseudonym is needed), on the one
	 * connection, inside the caller's transaction (BEGIN IMMEDIATE: the file's write lock is held).
	 */
	#readChainSqlite(needs: ChainNeeds): ChainState {
		const state: ChainState = { heads: new Map(), meetingHeads: new Map(), pseudonyms: new Map() };
		for (const t of needs.tenants) {
			const r = this.#s.allSqlite<{ seq: number; hash: string }>(HEAD_SQLITE, [t])[0];
			state.heads.set(t, r ? { seq: Number(r.seq), hash: r.hash } : null);
		}
		for (const [t, list] of needs.meetings) {
			const found = new Map<string, string>();
			for (const m of list) {
				const hash = this.#s.allSqlite<{ hash: string | null }>(MEETING_HEAD_SQLITE, [t, m])[0]?.hash;
				if (hash !== undefined && hash !== null) found.set(m, hash);
			}
			state.meetingHeads.set(t, found);
		}
		for (const [t, list] of needs.persons) {
			const found = new Map<string, string>();
			for (let i = 0; i < list.length; i += PSEUDONYMS_CHUNK) {
				const params: unknown[] = [t];
				for (let j = i; j < i + PSEUDONYMS_CHUNK; j++) params.push(j < list.length ? list[j] : null);
				for (const r of this.#s.allSqlite<{ person_key: string; pseudonym: string }>(PSEUDONYMS_SQLITE, params))
					found.set(r.person_key, r.pseudonym);
			}
			state.pseudonyms.set(t, found);
		}
		return state;
	}

	/** Writes a group commit's secrets and rows, on the caller's transaction. */
	async writeChain(x: Kysely<Schema>, w: ChainWrite): Promise<void> {
		for (const s of w.secrets) await this.addSecrets(x, s.tenantId, s.rows, s.at);
		if (!w.rows.length) return;
		// (SQLite's insert binds the columns it names: no copy without `fixed` needed there.)
		await this.insert(x, this.#s.engine === "sqlite" ? w.rows : w.rows.map(({ fixed, ...r }) => r));
	}

	/**
	 * PostgreSQL: a whole group commit in two round trips on one connection, however many tenants, meetings and
	 * people it names (the lock is held for these two, the Node work between them and the commit's flush):
	 * 1. `BEGIN ISOLATION LEVEL READ COMMITTED` (whatever the database's default), each tenant's advisory lock
	 *    (sorted), then one SELECT of the heads, meeting heads and pseudonyms. Each statement of a multi-statement
	 *    simple query takes its own snapshot in READ COMMITTED, so the SELECT sees what the lock's previous holder
	 *    committed.
	 * 2. The new secrets and the rows (one INSERT each: the chain trigger runs once), then `COMMIT`.
	 * `build` turns what was read into what to write (in this process; EventLog makes everything but the chain's
	 * hashes before calling this, so `build` is short); its result is returned once committed. `fixed` rows carry
	 * their other columns' literals ready-made. Values travel as escaped literals (`lit`: a simple query takes no
	 * parameters). Any failure rolls back. Measured: docs/benchmarks.md.
	 */
	async appendLocked<T>(
		lockKeys: readonly string[],
		needs: ChainNeeds,
		build: (state: ChainState) => { write: ChainWrite; result: T },
		before?: (pseudonyms: PseudonymReader) => Promise<void>,
	): Promise<T> {
		const keys = [...new Set(lockKeys)].sort();
		const reads: string[] = [];
		for (const t of needs.tenants) {
			reads.push(`(SELECT 0 AS k, tenant_id AS t, NULL::text AS n, seq::text AS s, hash AS h FROM events
				WHERE tenant_id = ${lit(t)} ORDER BY seq DESC LIMIT 1)`);
		}
		for (const [t, list] of needs.meetings) {
			if (!list.length) continue;
			reads.push(`(SELECT 1, ${lit(t)}, m.id, NULL, (SELECT hash FROM events e WHERE e.tenant_id = ${lit(t)}
				AND e.meeting_id = m.id ORDER BY e.seq DESC LIMIT 1) FROM (VALUES ${list.map((m) => `(${lit(m)})`).join(",")}) AS m(id))`);
		}
		for (const [t, list] of needs.persons) {
			if (!list.length) continue;
			reads.push(`(SELECT 2, tenant_id, person_key, NULL, pseudonym FROM audit_person_secrets
				WHERE tenant_id = ${lit(t)} AND person_key IN (${list.map(lit).join(",")}))`);
		}
		const first = [
			"BEGIN ISOLATION LEVEL READ COMMITTED",
			...keys.map((k) => `SELECT pg_advisory_xact_lock(hashtext(${lit(k)}))`),
			...(reads.length ? [reads.join(" UNION ALL ")] : []),
		].join(";\n");
		return this.#s.withConnection(async (c) => {
			// Before the lock, on the same connection (one pool checkout per commit): the caller's own preparation.
			await before?.(async (tenantId, keys) => {
				const r = await c.query<{ person_key: string; pseudonym: string }>(
					"SELECT person_key, pseudonym FROM audit_person_secrets WHERE tenant_id = $1 AND person_key = ANY($2::text[])",
					[tenantId, keys],
				);
				return new Map(r.rows.map((row) => [row.person_key, row.pseudonym]));
			});
			try {
				const res = (await c.query(first)) as unknown as pg.QueryResult[];
				const state: ChainState = { heads: new Map(), meetingHeads: new Map(), pseudonyms: new Map() };
				for (const t of needs.tenants) state.heads.set(t, null);
				for (const t of needs.meetings.keys()) state.meetingHeads.set(t, new Map());
				for (const t of needs.persons.keys()) state.pseudonyms.set(t, new Map());
				const rows = reads.length ? ((res.at(-1) as pg.QueryResult).rows as Record<string, string | null>[]) : [];
				for (const r of rows) {
					const t = r.t as string;
					if (Number(r.k) === 0) state.heads.set(t, { seq: Number(r.s), hash: r.h as string });
					else if (Number(r.k) === 1) {
						if (r.h !== null) state.meetingHeads.get(t)?.set(r.n as string, r.h as string);
					} else state.pseudonyms.get(t)?.set(r.n as string, r.h as string);
				}
				const { write, result } = build(state);
				const second: string[] = [];
				for (const s of write.secrets) {
					if (!s.rows.length) continue;
					second.push(
						`INSERT INTO audit_person_secrets (tenant_id, person_key, secret, pseudonym, created_at) VALUES ${s.rows
							.map(
								(r) =>
									`(${lit(s.tenantId)}, ${lit(r.person_key)}, decode('${r.secret.toString("hex")}', 'hex'), ${lit(r.pseudonym)}, ${lit(s.at)})`,
							)
							.join(",")}`,
					);
				}
				if (write.rows.length) {
					second.push(
						`INSERT INTO events (seq, prev_hash, meeting_prev_hash, hash, ${FIXED.join(", ")}) VALUES ${write.rows
							.map(
								(r) =>
									`(${Math.trunc(r.seq)}, ${lit(r.prev_hash)}, ${lit(r.meeting_prev_hash)}, ${lit(r.hash)}, ${r.fixed ?? fixedLiterals(r)})`,
							)
							.join(",")}`,
					);
				}
				second.push("COMMIT");
				await c.query(second.join(";\n"));
				return result;
			} catch (err) {
				await c.query("ROLLBACK").catch(() => undefined);
				throw err;
			}
		});
	}

	/** The person's secret row by person key (outside a transaction). */
	secretOf(tenantId: string, personKey: string, x: Kysely<Schema> = this.#s.db): Promise<SecretRow | undefined> {
		return this.#s.guard(async () => (await this.secrets(x, tenantId, [personKey]))[0]);
	}

	resolvePseudonym(tenantId: string, pseudonym: string, x: Kysely<Schema> = this.#s.db): Promise<string | null> {
		return this.#s.guard(async () => {
			const r = await x
				.selectFrom("audit_person_secrets")
				.select("person_key")
				.where("tenant_id", "=", tenantId)
				.where("pseudonym", "=", pseudonym)
				.executeTakeFirst();
			return r?.person_key ?? null;
		});
	}

	/** Entries in chain order (see EventLog.list). */
	list(f: {
		tenantId: string;
		meetingId?: string;
		type?: string;
		limit: number;
		afterSeq: number;
	}): Promise<EventRow[]> {
		return this.#s.guard(async () => {
			const cols = sql.raw(COLUMNS.join(", "));
			const type = f.type === undefined ? sql`` : sql`AND type = ${f.type}`;
			const r =
				f.meetingId === undefined
					? await sql<EventRow>`SELECT ${cols} FROM events WHERE tenant_id = ${f.tenantId} AND seq > ${f.afterSeq}
						${type} ORDER BY seq LIMIT ${f.limit}`.execute(this.#s.db)
					: await sql<EventRow>`SELECT ${cols} FROM events ${this.#byMeeting()}
						WHERE tenant_id = ${f.tenantId} AND meeting_id = ${f.meetingId} AND seq > ${f.afterSeq}
						${type} ORDER BY seq LIMIT ${f.limit}`.execute(this.#s.db);
			return r.rows.map(toRow);
		});
	}

	/** Entries naming this pseudonym, as actor or anywhere in data (as a JSON string). */
	listForPseudonym(
		tenantId: string,
		pseudonym: string,
		limit: number,
		x: Kysely<Schema> = this.#s.db,
	): Promise<EventRow[]> {
		return this.#s.guard(async () => {
			const find = sql.raw(this.#s.engine === "sqlite" ? "instr" : "strpos");
			const r = await sql<EventRow>`SELECT ${sql.raw(COLUMNS.join(", "))} FROM events
				WHERE tenant_id = ${tenantId} AND (actor = ${pseudonym} OR ${find}(data, ${`"${pseudonym}"`}) > 0)
				ORDER BY seq LIMIT ${limit}`.execute(x);
			return r.rows.map(toRow);
		});
	}

	/**
	 * Whether this pseudonym has a `person.joined` entry in the meeting: one probe of the partial index `events_joins`
	 * (migration 13), whatever the tenant's chain or the meeting's length.
	 */
	hasJoined(tenantId: string, meetingId: string, pseudonym: string): Promise<boolean> {
		return this.#s.guard(async () => {
			// The type is a literal: a partial index is used only for a query that names its condition.
			const r = await sql<{ one: number }>`SELECT 1 AS one FROM events WHERE tenant_id = ${tenantId}
				AND actor = ${pseudonym} AND meeting_id = ${meetingId} AND type = 'person.joined' LIMIT 1`.execute(this.#s.db);
			return r.rows.length > 0;
		});
	}

	/** Tenants that have entries. */
	tenants(): Promise<string[]> {
		return this.#s.guard(async () =>
			(await this.#s.db.selectFrom("events").select("tenant_id").distinct().orderBy("tenant_id").execute())
				.map((r) => r.tenant_id)
				.filter((t) => t !== null),
		);
	}

	/** One tenant's whole chain, in order, a page at a time. */
	async *chain(tenantId: string): AsyncGenerator<EventRow> {
		let after = 0;
		for (;;) {
			const page = await this.list({ tenantId, afterSeq: after, limit: CHAIN_PAGE });
			yield* page;
			if (page.length < CHAIN_PAGE) return;
			after = (page.at(-1) as EventRow).seq;
		}
	}

	/** A meeting's chained entries (for an export). */
	meetingEntries(tenantId: string, meetingId: string): Promise<EventRow[]> {
		return this.#s.guard(async () => {
			const r = await sql<EventRow>`SELECT ${sql.raw(COLUMNS.join(", "))} FROM events ${this.#byMeeting()}
				WHERE tenant_id = ${tenantId} AND meeting_id = ${meetingId} AND hash IS NOT NULL ORDER BY seq`.execute(
				this.#s.db,
			);
			return r.rows.map(toRow);
		});
	}

	/** Whether rows written before the chain (migration 2) still wait for their hashes. */
	hasUnsealed(): Promise<boolean> {
		return this.#s.guard(
			async () =>
				(await this.#s.db.selectFrom("events").select("seq").where("hash", "is", null).limit(1).executeTakeFirst()) !==
				undefined,
		);
	}

	async unsealed(x: Kysely<Schema>): Promise<EventRow[]> {
		const r = await x
			.selectFrom("events")
			.select([...COLUMNS])
			.where("hash", "is", null)
			.orderBy("tenant_id")
			.orderBy("seq")
			.execute();
		return r.map((row) => toRow(row));
	}

	async hashAt(x: Kysely<Schema>, tenantId: string, seq: number): Promise<string | null> {
		const r = await x
			.selectFrom("events")
			.select("hash")
			.where("tenant_id", "=", tenantId)
			.where("seq", "=", seq)
			.executeTakeFirst();
		return r?.hash ?? null;
	}

	async meetingHashBefore(x: Kysely<Schema>, tenantId: string, meetingId: string, seq: number): Promise<string | null> {
		const r = await sql<{ hash: string | null }>`SELECT hash FROM events ${this.#byMeeting()}
			WHERE tenant_id = ${tenantId} AND meeting_id = ${meetingId} AND seq < ${seq} ORDER BY seq DESC LIMIT 1`.execute(
			x,
		);
		return r.rows[0]?.hash ?? null;
	}

	/** The one UPDATE the chain allows: sealing a pre-chain row, once. */
	async seal(
		x: Kysely<Schema>,
		r: Pick<EventRow, "tenant_id" | "seq" | "actor" | "data"> & {
			prev_hash: string;
			meeting_prev_hash: string | null;
			hash: string;
		},
	): Promise<void> {
		await x
			.updateTable("events")
			.set({
				actor: r.actor,
				data: r.data,
				prev_hash: r.prev_hash,
				meeting_prev_hash: r.meeting_prev_hash,
				hash: r.hash,
			})
			.where("tenant_id", "=", r.tenant_id)
			.where("seq", "=", r.seq)
			.execute();
	}

	// Issue 14 retention: a deliberate prefix purge ---------------------------------------------------------------

	/** The tenant's last purge (entries 1..throughSeq are gone), or undefined. */
	async purgeOf(
		x: Kysely<Schema>,
		tenantId: string,
	): Promise<{ throughSeq: number; throughHash: string; purged: number; checkpointSeq: number } | undefined> {
		const r = await x.selectFrom("audit_purges").selectAll().where("tenant_id", "=", tenantId).executeTakeFirst();
		return r
			? {
					throughSeq: Number(r.through_seq),
					throughHash: r.through_hash,
					purged: Number(r.purged),
					checkpointSeq: Number(r.checkpoint_seq),
				}
			: undefined;
	}

	/** The chain's first `limit` entries from its start (position, time, meeting, hash): what a purge would cut. */
	async prefix(
		x: Kysely<Schema>,
		tenantId: string,
		limit: number,
	): Promise<{ seq: number; at: string; meeting_id: string | null; hash: string; type: string; data: string }[]> {
		const r = await x
			.selectFrom("events")
			.select(["seq", "at", "meeting_id", "hash", "type", "data"])
			.where("tenant_id", "=", tenantId)
			.orderBy("seq")
			.limit(limit)
			.execute();
		return r.map((row) => ({ ...row, seq: Number(row.seq), hash: row.hash as string }));
	}

	/** The meeting's first entry after `seq`: its `meeting_prev_hash` (undefined: the meeting has none after). */
	async meetingPrevAfter(
		x: Kysely<Schema>,
		tenantId: string,
		meetingId: string,
		seq: number,
	): Promise<string | null | undefined> {
		const r = await sql<{ meeting_prev_hash: string | null }>`SELECT meeting_prev_hash FROM events ${this.#byMeeting()}
			WHERE tenant_id = ${tenantId} AND meeting_id = ${meetingId} AND seq > ${seq} ORDER BY seq LIMIT 1`.execute(x);
		return r.rows.length ? (r.rows[0]?.meeting_prev_hash ?? null) : undefined;
	}

	/**
	 * Deletes entries 1..throughSeq of the tenant's chain: first records the purge (the delete trigger lets exactly
	 * these rows go, on both engines), then deletes. Runs in the caller's transaction (the tenant's audit lock).
	 */
	async deletePrefix(
		x: Kysely<Schema>,
		tenantId: string,
		throughSeq: number,
		throughHash: string,
		count: number,
		checkpointSeq: number,
		at: string,
	): Promise<void> {
		await x
			.insertInto("audit_purges")
			.values({
				tenant_id: tenantId,
				through_seq: throughSeq,
				through_hash: throughHash,
				purged: count,
				checkpoint_seq: checkpointSeq,
				at,
			})
			.onConflict((oc) =>
				oc.column("tenant_id").doUpdateSet((eb) => ({
					through_seq: throughSeq,
					through_hash: throughHash,
					purged: eb(eb.ref("audit_purges.purged"), "+", count),
					checkpoint_seq: checkpointSeq,
					at,
				})),
			)
			.execute();
		await x.deleteFrom("events").where("tenant_id", "=", tenantId).where("seq", "<=", throughSeq).execute();
	}

	/** The entry at `seq` (a checkpoint, for an export of a cut meeting or the next cut). */
	async entryAt(x: Kysely<Schema>, tenantId: string, seq: number): Promise<EventRow | undefined> {
		const r = await sql<EventRow>`SELECT ${sql.raw(COLUMNS.join(", "))} FROM events
			WHERE tenant_id = ${tenantId} AND seq = ${seq}`.execute(x);
		return r.rows[0] ? toRow(r.rows[0]) : undefined;
	}

	/**
	 * After an erasure, make the destroyed secret's bytes unrecoverable from the store's files as far as the engine
	 * allows: SQLite (secure_delete is on) moves the zeroed page into the main file and empties the WAL; PostgreSQL
	 * vacuums the table so the dead row's space is reclaimed.
	 */
	async scrubAfterErase(): Promise<void> {
		await this.#s.guard(async () => {
			if (this.#s.engine === "sqlite") await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(this.#s.db);
			else await sql`VACUUM audit_person_secrets`.execute(this.#s.db);
		});
	}
}

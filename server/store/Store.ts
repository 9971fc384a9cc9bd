import { Kysely, PostgresDialect, SqliteDialect, sql } from "kysely";
import pg from "pg";
import { ConfigError, ConsentryError, StoreUnavailableError } from "../errors.js";
import { type Database, MIGRATIONS, openDatabase } from "./Database.js";
import { POSTGRES_MIGRATIONS } from "./postgresMigrations.js";
import type { Schema } from "./Schema.js";

export type Engine = "sqlite" | "postgres";

/** PostgreSQL: connections in a process's pool unless CONSENTRY_DATABASE_POOL_SIZE says otherwise. */
export const DEFAULT_DATABASE_POOL_SIZE = 10;

export interface StoreOptions {
	/** SQLite file (the default engine), or ":memory:". */
	file?: string;
	/** `postgres://…` (CONSENTRY_DATABASE_URL): PostgreSQL instead of the SQLite file. */
	url?: string;
	/** PostgreSQL: how long a query may wait for a connection before answering `store_unavailable` (ms). */
	connectTimeoutMs?: number;
	/** PostgreSQL: connections in the pool (CONSENTRY_DATABASE_POOL_SIZE; default DEFAULT_DATABASE_POOL_SIZE). */
	poolSize?: number;
	/**
	 * PostgreSQL: how long a query may go unanswered before it fails as `store_unavailable` (ms). A server that hangs
	 * (or a node cut off from it) then refuses new work quickly instead of leaving callers waiting.
	 */
	queryTimeoutMs?: number;
	/**
	 * SQLite: how long a statement waits for another process's lock on the file (busy timeout) before it fails as
	 * `store_unavailable` (ms, default 5000). better-sqlite3 waits synchronously: the process stalls that long.
	 */
	busyTimeoutMs?: number;
}

/**
 * The gateway's store: one typed query builder (kysely) over SQLite (better-sqlite3, the default: nothing to
 * install) or PostgreSQL (`pg`, for several gateway nodes). Every query lives in a repository in this folder
 * (docs/architecture.md lists them); services call repositories, never SQL.
 */
export class Store {
	readonly engine: Engine;
	readonly db: Kysely<Schema>;
	readonly #sqlite: Database | undefined;
	readonly #pool: pg.Pool | undefined;

	private constructor(engine: Engine, db: Kysely<Schema>, sqlite?: Database, pool?: pg.Pool) {
		this.engine = engine;
		this.db = db;
		this.#sqlite = sqlite;
		this.#pool = pool;
	}

	/** Opens (creating and migrating if needed) the store; refuses a schema newer than this gateway knows. */
	static async open(opts: StoreOptions): Promise<Store> {
		if (opts.url) {
			if (!/^postgres(ql)?:\/\//.test(opts.url)) {
				throw new ConfigError("CONSENTRY_DATABASE_URL must be a postgres:// URL");
			}
			const pool = new pg.Pool({
				connectionString: opts.url,
				max: opts.poolSize ?? DEFAULT_DATABASE_POOL_SIZE,
				// How the pool's connections show in pg_stat_activity (unless the URL or PGAPPNAME names them).
				fallback_application_name: "consentry",
				connectionTimeoutMillis: opts.connectTimeoutMs ?? 2000,
				query_timeout: opts.queryTimeoutMs ?? 5000,
			});
			pool.on("error", () => undefined); // an idle connection lost: the next query reconnects (or fails, named)
			// A connection lost while checked out (between a transaction's statements) emits its error on the client,
			// where the pool listens only while it is idle: unheard, it would end the process. The query in flight
			// fails on its own (store_unavailable) and the pool drops the broken client when it is released.
			pool.on("connect", (client) => client.on("error", () => undefined));
			const store = new Store(
				"postgres",
				new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) }),
				undefined,
				pool,
			);
			try {
				await store.guard(() => migratePostgres(pool));
			} catch (err) {
				await pool.end().catch(() => undefined);
				throw err;
			}
			return store;
		}
		if (!opts.file) throw new ConfigError("the store needs a SQLite file or a PostgreSQL URL");
		const raw = openDatabase(opts.file, opts.busyTimeoutMs !== undefined ? { busyTimeoutMs: opts.busyTimeoutMs } : {});
		return new Store("sqlite", new Kysely<Schema>({ dialect: new SqliteDialect({ database: raw }) }), raw);
	}

	/** The schema version the store is at (migrations applied). */
	async schemaVersion(): Promise<number> {
		if (this.#sqlite) return this.#sqlite.pragma("user_version", { simple: true }) as number;
		const r = await sql<{ version: number }>`SELECT version FROM consentry_schema`.execute(this.db);
		return Number(r.rows[0]?.version ?? 0);
	}

	/**
	 * Runs a store call, naming an unreachable store: PostgreSQL down, refusing connections or too slow to hand
	 * one out; the SQLite file locked by another process past the busy timeout, or failing (I/O error, disk full,
	 * read-only, can't be opened) → {@link StoreUnavailableError} (503 `store_unavailable`). Constraint violations and the like pass
	 * through unchanged: the callers decide what they mean.
	 */
	async guard<T>(fn: () => Promise<T>): Promise<T> {
		try {
			return await fn();
		} catch (err) {
			if (err instanceof ConsentryError) throw err;
			if (isUnavailable(err)) throw new StoreUnavailableError(undefined, { cause: err });
			throw err;
		}
	}

	/**
	 * Runs `fn` as one write transaction: all or nothing, and serialized with every other writer of `lockKey` (or
	 * of any of several keys).
	 * SQLite: `BEGIN IMMEDIATE` (the file's write lock: processes on the host take turns) on the one connection.
	 * PostgreSQL: a transaction holding the advisory lock of `lockKey` (`pg_advisory_xact_lock`), so a
	 * read-modify-write of the same rows from several nodes takes turns; each statement sees what the previous
	 * holder committed. Throw inside only to give up: prefer returning a result and throwing after the commit.
	 */
	transaction<T>(lockKey: string | readonly string[], fn: (trx: Kysely<Schema>) => Promise<T>): Promise<T> {
		return this.guard(() => {
			if (this.engine === "postgres") {
				// Several keys: taken in one order (sorted) by every node, so two transactions never wait on each other.
				const keys = typeof lockKey === "string" ? [lockKey] : [...new Set(lockKey)].sort();
				return this.db.transaction().execute(async (trx) => {
					for (const key of keys) await sql`SELECT pg_advisory_xact_lock(hashtext(${key}))`.execute(trx);
					return fn(trx);
				});
			}
			return this.#sqliteTransaction("BEGIN IMMEDIATE", fn);
		});
	}

	/** SQLite: `fn` on one connection between `begin` (deferred or IMMEDIATE) and COMMIT, rolled back if it throws. */
	#sqliteTransaction<T>(begin: "BEGIN" | "BEGIN IMMEDIATE", fn: (x: Kysely<Schema>) => Promise<T>): Promise<T> {
		// (BEGIN, COMMIT and ROLLBACK as cached statements on the one handle, while kysely's connection is held: not
		// built, compiled and prepared anew for every transaction, e.g. each audit group commit.)
		return this.db.connection().execute(async (conn) => {
			this.#statement(begin).run([]);
			try {
				const result = await fn(conn);
				this.#statement("COMMIT").run([]);
				return result;
			} catch (err) {
				try {
					// (After a failed COMMIT SQLite may have rolled back already: then there is nothing to roll back.)
					if (this.#sqlite?.inTransaction) this.#statement("ROLLBACK").run([]);
				} catch {
					// as before: a failed ROLLBACK leaves the caller's error to report
				}
				throw err;
			}
		});
	}

	/**
	 * Runs `fn`'s reads on one consistent snapshot of the store: every query sees the same committed state, none of a
	 * transaction that commits meanwhile (e.g. a data-subject export never half before, half after an erasure).
	 * SQLite: a deferred read transaction (WAL: writers are not held up). PostgreSQL: `REPEATABLE READ READ ONLY`.
	 * `fn` must read through the executor it is given only.
	 */
	snapshot<T>(fn: (x: Kysely<Schema>) => Promise<T>): Promise<T> {
		return this.guard(() => {
			if (this.engine === "postgres")
				return this.db.transaction().setIsolationLevel("repeatable read").setAccessMode("read only").execute(fn);
			return this.#sqliteTransaction("BEGIN", fn);
		});
	}

	/** SQLite: prepared statements of {@link runEachSqlite}, by SQL text (a handful: one per hot statement). */
	readonly #statements = new Map<string, ReturnType<Database["prepare"]>>();

	/**
	 * SQLite only: runs one statement once per row of parameters, all or nothing, prepared once per store (not once
	 * per call, as a query built for a given number of rows must be). For a hot path where building and preparing a
	 * statement costs more than running it (the audit chain's inserts: ~3 µs of CPU per entry saved, docs/benchmarks.md).
	 * Inside the caller's transaction when there is one (the one connection), else in its own.
	 */
	runEachSqlite(text: string, rows: readonly (readonly unknown[])[]): void {
		const db = this.#sqlite;
		if (!db) throw new Error("runEachSqlite: SQLite only");
		const prepared = this.#statement(text);
		const run = () => {
			for (const r of rows) prepared.run(r as unknown[]);
		};
		if (db.inTransaction) run();
		else db.transaction(run)();
	}

	/**
	 * SQLite only: the rows of one cached statement (prepared once per store, as {@link runEachSqlite}'s), on the one
	 * connection: inside the caller's transaction when there is one. For a hot read (the audit chain's heads and
	 * pseudonyms, read under the lock at each group commit).
	 */
	allSqlite<T>(text: string, params: readonly unknown[]): T[] {
		if (!this.#sqlite) throw new Error("allSqlite: SQLite only");
		return this.#statement(text).all(params as unknown[]) as T[];
	}

	#statement(text: string): ReturnType<Database["prepare"]> {
		const db = this.#sqlite;
		if (!db) throw new Error("SQLite only");
		let stmt = this.#statements.get(text);
		if (!stmt) {
			stmt = db.prepare(text);
			this.#statements.set(text, stmt);
		}
		return stmt;
	}

	/**
	 * PostgreSQL only: runs `fn` on one pooled connection of its own (raw `pg`), for a path that must save round
	 * trips (several statements in one simple query, e.g. the audit chain's group commit). `fn` leaves the
	 * connection as it found it (no open transaction); a connection `fn` failed on is dropped, not reused.
	 */
	async withConnection<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
		const pool = this.#pool;
		if (!pool) throw new Error("withConnection: PostgreSQL only");
		return this.guard(async () => {
			const c = await pool.connect();
			try {
				const out = await fn(c);
				c.release();
				return out;
			} catch (err) {
				c.release(err instanceof Error ? err : new Error(String(err)));
				throw err;
			}
		});
	}

	async close(): Promise<void> {
		await this.db.destroy(); // ends the pool (PostgreSQL) or closes the SQLite handle
		void this.#pool;
	}
}

/** Connection-level failures: the engine is down, unreachable, restarting or out of connections. */
function isUnavailable(err: unknown): boolean {
	const e = err as { code?: string; message?: string };
	const code = e?.code ?? "";
	if (["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND", "EPIPE"].includes(code)) return true;
	// SQLite: the file locked by another process past the busy timeout, or the file/disk failing. (Not CORRUPT,
	// CONSTRAINT and the like: those are not an outage.)
	if (/^SQLITE_(BUSY|LOCKED|IOERR|FULL|READONLY|CANTOPEN|PROTOCOL|NOLFS)/.test(code)) return true;
	// PostgreSQL classes 08 (connection exception), 53 (insufficient resources), 57P0x (shutting down / cannot connect now).
	if (/^(08|53)/.test(code) || /^57P0/.test(code)) return true;
	return /timeout exceeded when trying to connect|Query read timeout|Connection terminated|connection timeout|Client has encountered a connection error/i.test(
		e?.message ?? "",
	);
}

/** Applies the PostgreSQL migrations once, whichever node gets there first (an advisory lock serializes them). */
async function migratePostgres(pool: pg.Pool): Promise<void> {
	const c = await pool.connect();
	try {
		await c.query("BEGIN");
		await c.query("SELECT pg_advisory_xact_lock(4242001)");
		await c.query("CREATE TABLE IF NOT EXISTS consentry_schema (version INTEGER NOT NULL)");
		const r = await c.query<{ version: number }>("SELECT version FROM consentry_schema");
		if (r.rowCount === 0) await c.query("INSERT INTO consentry_schema (version) VALUES (0)");
		const done = Number(r.rows[0]?.version ?? 0);
		if (done > POSTGRES_MIGRATIONS.length) {
			throw new ConfigError(
				`the PostgreSQL database was written by a newer consentry (schema ${done}, this one knows ${POSTGRES_MIGRATIONS.length}); upgrade this gateway`,
			);
		}
		for (let i = done; i < POSTGRES_MIGRATIONS.length; i++) await c.query(POSTGRES_MIGRATIONS[i] as string);
		await c.query("UPDATE consentry_schema SET version = $1", [POSTGRES_MIGRATIONS.length]);
		await c.query("COMMIT");
	} catch (err) {
		await c.query("ROLLBACK").catch(() => undefined);
		throw err;
	} finally {
		c.release();
	}
}

/** Both engines know the same number of migrations (a version means the same tables on each). */
export const SCHEMA_VERSION = MIGRATIONS.length;
if (POSTGRES_MIGRATIONS.length !== MIGRATIONS.length) {
	throw new Error("server/store: the SQLite and PostgreSQL migrations disagree on the schema version");
}

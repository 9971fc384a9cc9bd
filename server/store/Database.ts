import { mkdirSync } from "node:fs";
import path from "node:path";
import BetterSqlite3 from "better-sqlite3";

export type Database = BetterSqlite3.Database;

/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
 * Uniqueness rules that must hold across gateway processes live here as
 * constraints, never as check-then-set in code.
 */
const MIGRATIONS: string[] = [
	`
	CREATE TABLE meetings (
		id            TEXT PRIMARY KEY,
		tenant_id     TEXT NOT NULL,
		host_subject  TEXT NOT NULL,
		title         TEXT NOT NULL,
		scheduled_for TEXT,
		settings      TEXT NOT NULL,
		passcode_hash TEXT,
		state         TEXT NOT NULL CHECK (state IN ('scheduled', 'live', 'ended')),
		locked        INTEGER NOT NULL DEFAULT 0,
		created_at    TEXT NOT NULL,
		started_at    TEXT,
		ended_at      TEXT
	);
	CREATE INDEX meetings_by_host ON meetings (tenant_id, host_subject, created_at);
	-- A host can hold only one meeting at a time: enforced by the store, atomically.
	CREATE UNIQUE INDEX one_live_meeting_per_host ON meetings (tenant_id, host_subject) WHERE state = 'live';

	-- At most one live host connection per host identity, across meetings and processes.
	CREATE TABLE host_seats (
		tenant_id     TEXT NOT NULL,
		host_subject  TEXT NOT NULL,
		connection_id TEXT NOT NULL,
		meeting_id    TEXT NOT NULL,
		taken_at      TEXT NOT NULL,
		PRIMARY KEY (tenant_id, host_subject)
	);

	-- Persons the host removed: they cannot rejoin that meeting.
	CREATE TABLE removed_persons (
		meeting_id TEXT NOT NULL,
		person     TEXT NOT NULL,
		removed_at TEXT NOT NULL,
		PRIMARY KEY (meeting_id, person)
	);

	-- Events for the audit trail (issue 4 chains them).
	CREATE TABLE events (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		at         TEXT NOT NULL,
		tenant_id  TEXT NOT NULL,
		meeting_id TEXT,
		type       TEXT NOT NULL,
		actor      TEXT,
		data       TEXT NOT NULL
	);
	CREATE INDEX events_by_meeting ON events (meeting_id, seq);
	`,
];

/**
 * Opens (creating if needed) the gateway's SQLite store. WAL mode and a busy
 * timeout let several gateway processes on one host share the file; every
 * write that must be atomic is one statement or one transaction.
 */
export function openDatabase(file: string): Database {
	if (file !== ":memory:") mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
	const db = new BetterSqlite3(file);
	db.pragma("journal_mode = WAL");
	db.pragma("busy_timeout = 5000");
	db.pragma("foreign_keys = ON");
	db.pragma("synchronous = NORMAL");
	const migrate = db.transaction(() => {
		const done = db.pragma("user_version", { simple: true }) as number;
		for (let i = done; i < MIGRATIONS.length; i++) db.exec(MIGRATIONS[i] as string);
		db.pragma(`user_version = ${MIGRATIONS.length}`);
	});
	migrate.immediate();
	return db;
}

/** True when `err` is SQLite refusing a write because of a UNIQUE/PRIMARY KEY constraint. */
export function isUniqueViolation(err: unknown): boolean {
	const code = (err as { code?: string }).code;
	return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}

import { chmodSync, closeSync, constants, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import path from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { ConfigError } from "../errors.js";

export type Database = BetterSqlite3.Database;

/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
 * Uniqueness rules that must hold across gateway processes live here as
 * constraints, never as check-then-set in code.
 */
export const MIGRATIONS: string[] = [
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
	// 2: the audit trail becomes append-only and hash-chained, one chain per tenant
	// (server/audit, docs/audit.md). The table is rebuilt keyed by its chain position
	// (fewer pages per append than a rowid table with indexes); rows written before
	// keep their order and get their hashes (and pseudonyms) once, when the gateway
	// next opens its EventLog.
	`
	CREATE TABLE events_chained (
		tenant_id         TEXT NOT NULL,
		seq               INTEGER NOT NULL,   -- position in the tenant's chain: 1, 2, 3, …
		at                TEXT NOT NULL,
		meeting_id        TEXT,
		type              TEXT NOT NULL,
		actor             TEXT,               -- a pseudonym
		data              TEXT NOT NULL,      -- canonical JSON
		prev_hash         TEXT,               -- hash of the tenant's previous entry (genesis: 64 zeros)
		meeting_prev_hash TEXT,               -- hash of the meeting's previous entry (NULL: no meeting)
		hash              TEXT,               -- SHA-256 of the entry's canonical form; NULL until sealed
		-- No fork: one entry per position per tenant, whichever process writes it.
		PRIMARY KEY (tenant_id, seq)
	) WITHOUT ROWID;
	INSERT INTO events_chained (tenant_id, seq, at, meeting_id, type, actor, data)
		SELECT tenant_id, row_number() OVER (PARTITION BY tenant_id ORDER BY seq), at, meeting_id, type, actor, data
		FROM events;
	DROP TABLE events;
	ALTER TABLE events_chained RENAME TO events;
	CREATE INDEX events_by_meeting ON events (tenant_id, meeting_id, seq);
	CREATE INDEX events_unsealed ON events (tenant_id, seq) WHERE hash IS NULL;

	-- Per-person secrets behind the pseudonyms in entries. Erasing a person deletes
	-- their row here; the entries (and the chain) are never touched.
	CREATE TABLE audit_person_secrets (
		tenant_id  TEXT NOT NULL,
		person_key TEXT NOT NULL,
		secret     BLOB NOT NULL,
		pseudonym  TEXT NOT NULL UNIQUE,
		created_at TEXT NOT NULL,
		PRIMARY KEY (tenant_id, person_key)
	);

	-- Append-only, enforced by the database as well as the code (defence in depth:
	-- whoever can write the file can drop these; verify and anchors catch that).
	CREATE TRIGGER events_no_delete BEFORE DELETE ON events
	BEGIN
		SELECT RAISE(ABORT, 'audit trail is append-only: events cannot be deleted');
	END;
	-- The one UPDATE allowed: sealing a pre-chain row, once (chain fields, pseudonyms).
	CREATE TRIGGER events_no_update BEFORE UPDATE ON events
	WHEN OLD.hash IS NOT NULL OR NEW.hash IS NULL OR NEW.prev_hash IS NULL
		OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.seq IS NOT OLD.seq OR NEW.at IS NOT OLD.at
		OR NEW.meeting_id IS NOT OLD.meeting_id OR NEW.type IS NOT OLD.type
	BEGIN
		SELECT RAISE(ABORT, 'audit trail is append-only: events cannot be changed');
	END;
	-- A new entry must link to its tenant's previous entry (and its meeting's last
	-- one); with the primary key, that means: at the head, no gap, no fork.
	CREATE TRIGGER events_chained_insert BEFORE INSERT ON events
	WHEN NEW.hash IS NULL OR NEW.prev_hash IS NULL
		OR NEW.prev_hash IS NOT CASE WHEN NEW.seq = 1
			THEN '0000000000000000000000000000000000000000000000000000000000000000'
			ELSE (SELECT hash FROM events WHERE tenant_id = NEW.tenant_id AND seq = NEW.seq - 1) END
		OR (NEW.meeting_id IS NULL AND NEW.meeting_prev_hash IS NOT NULL)
		OR (NEW.meeting_id IS NOT NULL AND NEW.meeting_prev_hash IS NOT coalesce(
			(SELECT hash FROM events INDEXED BY events_by_meeting
			 WHERE tenant_id = NEW.tenant_id AND meeting_id = NEW.meeting_id ORDER BY seq DESC LIMIT 1),
			'0000000000000000000000000000000000000000000000000000000000000000'))
	BEGIN
		SELECT RAISE(ABORT, 'audit trail: a new event must extend its tenant chain at the head');
	END;
	`,
	// 3: each tenant's storage target (server/storage): the customer's S3 bucket.
	// `config` is JSON without secrets; `secrets` (access keys, SSE-C key) is sealed
	// with AES-256-GCM under CONSENTRY_MASTER_KEY (server/storage/secretBox.ts).
	`
	CREATE TABLE storage_targets (
		tenant_id  TEXT PRIMARY KEY,
		config     TEXT NOT NULL CHECK (json_valid(config)),
		secrets    BLOB NOT NULL,
		updated_at TEXT NOT NULL
	);
	`,
	// 4: transcript links (server/transcription/TranscriptLinks.ts): /t/{id} opens a transcript in the customer's
	// bucket for the meeting's host and members, until it expires or the host revokes it.
	`
	CREATE TABLE transcript_links (
		id            TEXT PRIMARY KEY,
		tenant_id     TEXT NOT NULL,
		meeting_id    TEXT NOT NULL,
		session_id    TEXT NOT NULL,
		object_prefix TEXT NOT NULL,
		created_at    TEXT NOT NULL,
		expires_at    TEXT NOT NULL,
		revoked_at    TEXT
	);
	CREATE INDEX transcript_links_by_meeting ON transcript_links (tenant_id, meeting_id);
	`,
	// 5: webhooks (server/webhooks, docs/webhooks.md): each tenant's endpoint (signing secret sealed like storage
	// credentials; cursor_seq = the last audit entry turned into deliveries) and the durable outbox of deliveries.
	`
	CREATE TABLE webhook_settings (
		tenant_id  TEXT PRIMARY KEY,
		url        TEXT NOT NULL,
		events     TEXT NOT NULL CHECK (json_valid(events)),
		secret     BLOB NOT NULL,
		cursor_seq INTEGER NOT NULL,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	);
	CREATE TABLE webhook_deliveries (
		id              INTEGER PRIMARY KEY AUTOINCREMENT,
		tenant_id       TEXT NOT NULL,
		event_id        TEXT NOT NULL UNIQUE,
		event           TEXT NOT NULL,
		meeting_id      TEXT,
		payload         TEXT NOT NULL,
		state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
		attempts        INTEGER NOT NULL DEFAULT 0,
		created_at      INTEGER NOT NULL,  -- ms since the epoch
		next_attempt_at INTEGER,           -- ms; NULL once settled
		lease_until     INTEGER,           -- ms; a gateway process is attempting it until then
		delivered_at    INTEGER,
		last_status     INTEGER,
		last_error      TEXT,
		last_duration_ms INTEGER
	);
	CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
	CREATE INDEX webhook_deliveries_by_meeting ON webhook_deliveries (tenant_id, meeting_id, id) WHERE state = 'pending';
	CREATE INDEX webhook_deliveries_by_tenant ON webhook_deliveries (tenant_id, id);
	`,
	// 6: wrong passcodes per meeting and per address (server/meetings/PasscodeGuard.ts): backoff per address, a
	// lockout per meeting that the host lifts. In the store so the limits hold across gateway processes.
	`
	CREATE TABLE passcode_attempts (
		meeting_id TEXT NOT NULL,
		scope      TEXT NOT NULL,      -- 'meeting', or 'addr:<address key>'
		failures   INTEGER NOT NULL,   -- attempts counted (before the check; a right passcode takes its one back)
		last_at    INTEGER NOT NULL,   -- ms since the epoch
		locked_at  TEXT,               -- scope 'meeting': when guests' passcode joins were locked out
		PRIMARY KEY (meeting_id, scope)
	) WITHOUT ROWID;
	`,
	// 7 (issue #13): the operator's side (server/operator, docs/operator.md). Tenants live in the store (the tenants
	// file is a seed); people (tenant + subject) the operator suspended or terminated; meeting IDs disabled; revoked
	// tokens (jti) and "every token of this subject issued before T"; live meetings per gateway process (restart
	// hygiene); and the change feed every gateway process polls to apply an operator's change within a second.
	`
	CREATE TABLE tenants (
		id         TEXT PRIMARY KEY,
		config     TEXT NOT NULL,      -- JSON: name, keys, capture, locale, limits ('{}' once deleted)
		-- 'deleted': a tombstone, so the tenants file (a seed) can't bring a deleted tenant back at the next start
		state      TEXT NOT NULL CHECK (state IN ('active', 'suspended', 'terminated', 'deleted')),
		reason     TEXT,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	);
	CREATE TABLE subject_blocks (
		tenant_id TEXT NOT NULL,
		subject   TEXT NOT NULL,
		state     TEXT NOT NULL CHECK (state IN ('suspended', 'terminated')),
		reason    TEXT,
		at        TEXT NOT NULL,
		PRIMARY KEY (tenant_id, subject)
	);
	CREATE TABLE meeting_blocks (
		meeting_id TEXT PRIMARY KEY,
		tenant_id  TEXT NOT NULL,
		reason     TEXT,
		at         TEXT NOT NULL
	);
	CREATE TABLE token_revocations (
		tenant_id  TEXT NOT NULL,
		jti        TEXT NOT NULL,
		expires_at INTEGER NOT NULL,   -- ms since the epoch: the row is useless after the token's own expiry
		at         TEXT NOT NULL,
		PRIMARY KEY (tenant_id, jti)
	);
	CREATE TABLE subject_cutoffs (
		tenant_id     TEXT NOT NULL,
		subject       TEXT NOT NULL,
		issued_before INTEGER NOT NULL, -- seconds since the epoch: tokens with an older (or no) iat are refused
		at            TEXT NOT NULL,
		PRIMARY KEY (tenant_id, subject)
	);
	CREATE TABLE meeting_presence (
		meeting_id TEXT NOT NULL,
		gateway_id TEXT NOT NULL,
		since      TEXT NOT NULL,
		PRIMARY KEY (meeting_id, gateway_id)
	);
	CREATE TABLE operator_changes (
		seq        INTEGER PRIMARY KEY AUTOINCREMENT,
		at         INTEGER NOT NULL,   -- ms since the epoch
		kind       TEXT NOT NULL,
		tenant_id  TEXT,
		subject    TEXT,
		meeting_id TEXT,
		data       TEXT NOT NULL
	);
	-- Warnings the operator gave (a person, or a whole tenant when subject is NULL) and who acknowledged them.
	CREATE TABLE operator_warnings (
		id         TEXT PRIMARY KEY,
		tenant_id  TEXT NOT NULL,
		subject    TEXT,
		message    TEXT NOT NULL,
		created_at TEXT NOT NULL
	);
	CREATE INDEX operator_warnings_by_tenant ON operator_warnings (tenant_id, created_at);
	CREATE TABLE warning_acks (
		warning_id TEXT NOT NULL,
		person     TEXT NOT NULL,      -- tenant:subject
		at         TEXT NOT NULL,
		PRIMARY KEY (warning_id, person)
	);
	`,
	// 8 (issue 14 retention): the chain may lose a prefix, deliberately. `audit_purges` names, per tenant, the last
	// position retention (or a tenant's wipe) purged; the delete trigger now lets exactly those rows go, nothing
	// after them (so still no gap, no edit, no cut at the head). A `chain.checkpoint` entry at the head records each
	// cut (server/audit/EventLog.ts purgeBefore). `security_holds`: the operator's switch that keeps the security log
	// files past their 14 days (server/privacy/SecurityHold.ts). `job_leases`: one purge job at a time across the
	// processes sharing the store.
	`
	CREATE TABLE audit_purges (
		tenant_id    TEXT PRIMARY KEY,
		through_seq  INTEGER NOT NULL,   -- entries 1..through_seq are gone
		through_hash TEXT NOT NULL,      -- the hash of entry through_seq
		purged       INTEGER NOT NULL,   -- entries purged so far, all cuts together
		checkpoint_seq INTEGER NOT NULL, -- the chain.checkpoint entry that records the last cut
		at           TEXT NOT NULL
	);
	DROP TRIGGER events_no_delete;
	CREATE TRIGGER events_no_delete BEFORE DELETE ON events
	WHEN OLD.seq > coalesce((SELECT through_seq FROM audit_purges WHERE tenant_id = OLD.tenant_id), 0)
	BEGIN
		SELECT RAISE(ABORT, 'audit trail is append-only: events cannot be deleted');
	END;
	CREATE TABLE security_holds (
		id         TEXT PRIMARY KEY,
		reason     TEXT NOT NULL,
		set_by     TEXT NOT NULL,      -- the operator's subject
		set_at     TEXT NOT NULL,
		until      TEXT NOT NULL,      -- ISO time: the hold lapses by itself then
		ended_at   TEXT,               -- lifted early (or replaced by a new hold)
		ended_by   TEXT
	);
	CREATE TABLE job_leases (
		name   TEXT PRIMARY KEY,
		holder TEXT NOT NULL,
		until  INTEGER NOT NULL        -- ms since the epoch
	);
	`,
	// 9 (issue #14, data-subject requests): one row per erasure request (server/privacy/DataSubjectService.ts), with
	// the steps done so far, so an erasure interrupted by a crash or an unreachable bucket is finished by a retry or
	// at the next start. `person_key` is held only until the store step commits (then NULL: the row re-links nobody).
	`
	CREATE TABLE dsr_requests (
		id          TEXT PRIMARY KEY,
		tenant_id   TEXT NOT NULL,
		kind        TEXT NOT NULL CHECK (kind IN ('erase')),
		state       TEXT NOT NULL CHECK (state IN ('pending', 'done')),
		person_key  TEXT,
		pseudonym   TEXT,
		delete_objects INTEGER NOT NULL,
		steps       TEXT NOT NULL,
		requested_by TEXT NOT NULL,
		last_error  TEXT,
		created_at  TEXT NOT NULL,
		updated_at  TEXT NOT NULL
	);
	CREATE INDEX dsr_requests_pending ON dsr_requests (state, tenant_id);
	`,
	// 10 (issue 12, audit chain): nothing on SQLite (its row trigger stays); on PostgreSQL the chain check runs once per
	// INSERT statement (postgresMigrations.ts). Both engines keep the same version numbers.
	`SELECT 1;`,
	// 11 (issue 12 placement): the cluster's nodes (each gateway with a public URL writes its heartbeat and load) and
	// where each live meeting's router lives (one node per meeting: the primary key makes the first claim win; a
	// re-homing is a compare-and-set on (node_id, epoch)). server/cluster, docs/architecture.md "Cluster".
	`
	CREATE TABLE cluster_nodes (
		node_id      TEXT PRIMARY KEY,
		url          TEXT NOT NULL,
		started_at   INTEGER NOT NULL,  -- ms since the epoch
		heartbeat_at INTEGER NOT NULL,  -- ms since the epoch (the node's clock); dead after CONSENTRY_NODE_DEAD_MS
		meetings     INTEGER NOT NULL DEFAULT 0,
		peers        INTEGER NOT NULL DEFAULT 0,
		cpu          REAL NOT NULL DEFAULT 0    -- the node's mediasoup workers' CPU share over the last beat (0..workers)
	);
	CREATE TABLE meeting_placements (
		meeting_id TEXT PRIMARY KEY,
		node_id    TEXT NOT NULL,
		epoch      INTEGER NOT NULL,    -- 1 at the first placement, +1 at each re-homing
		placed_at  INTEGER NOT NULL,
		cause      TEXT NOT NULL        -- 'placed' or 'node_lost'
	);
	CREATE INDEX meeting_placements_by_node ON meeting_placements (node_id);
	`,
	// 12 (issue 12, notice fan-out): nothing on SQLite (its row trigger's lookups use the primary key); on PostgreSQL
	// the statement trigger checks rows against the statement's own rows (postgresMigrations.ts).
	`SELECT 1;`,
	// 13 (transcript links, playback): "was this person in the meeting?", asked on every request of a transcript page
	// following a running session, reads one index entry: each person's `person.joined` entries by meeting.
	`CREATE INDEX events_joins ON events (tenant_id, actor, meeting_id) WHERE type = 'person.joined';`,
];
/**
 * Opens (creating if needed) the gateway's SQLite store. WAL mode and a busy
 * timeout let several gateway processes on one host share the file; every
 * write that must be atomic is one statement or one transaction.
 */
export function openDatabase(file: string, opts: { busyTimeoutMs?: number } = {}): Database {
	if (file !== ":memory:" && file !== "") {
		mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
		ownerOnly(file);
	}
	const db = new BetterSqlite3(file);
	db.pragma("journal_mode = WAL");
	// How long a statement waits for another process's lock before it fails (SQLITE_BUSY → store_unavailable).
	db.pragma(`busy_timeout = ${Math.max(0, Math.round(opts.busyTimeoutMs ?? 5000))}`);
	db.pragma("foreign_keys = ON");
	db.pragma("synchronous = NORMAL");
	db.pragma("secure_delete = ON"); // a deleted row's bytes are overwritten (an erased person's secret, server/audit)
	const migrate = db.transaction(() => {
		const done = db.pragma("user_version", { simple: true }) as number;
		if (done > MIGRATIONS.length) {
			throw new ConfigError(
				`the database ${file} was written by a newer consentry (schema ${done}, this one knows ${MIGRATIONS.length}); upgrade this gateway`,
			);
		}
		for (let i = done; i < MIGRATIONS.length; i++) db.exec(MIGRATIONS[i] as string);
		db.pragma(`user_version = ${MIGRATIONS.length}`);
	});
	migrate.immediate();
	return db;
}

/**
 * The store holds client addresses (hashed), audit secrets and the trail: its file is its owner's only (0600).
 * Created so before SQLite opens it (SQLite would create it 0644), and SQLite gives the `-wal` and `-shm` files it
 * makes the database file's mode. A file (or `-wal`/`-shm`) this process owns with wider bits, left by an earlier
 * version, is narrowed. Anything else that goes wrong here is left for SQLite's open to report.
 */
function ownerOnly(file: string): void {
	try {
		const fd = openSync(file, constants.O_CREAT | constants.O_RDONLY, 0o600);
		closeSync(fd);
	} catch {
		return;
	}
	for (const f of [file, `${file}-wal`, `${file}-shm`]) {
		try {
			if (!existsSync(f)) continue;
			const st = statSync(f);
			if (st.mode & 0o077 && st.uid === process.getuid?.()) chmodSync(f, st.mode & 0o700);
		} catch {
			// not ours to change (another user's file): SQLite opens it as it can
		}
	}
}

/** True when `err` is the store (SQLite or PostgreSQL) refusing a write because of a UNIQUE/PRIMARY KEY constraint. */
export function isUniqueViolation(err: unknown): boolean {
	const code = (err as { code?: string }).code;
	return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "23505";
}

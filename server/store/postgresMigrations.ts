/**
 * The PostgreSQL schema: the same tables, keys and rules as the SQLite migrations in Database.ts, in
 * PostgreSQL's dialect. `consentry_schema.version` plays the part of SQLite's `PRAGMA user_version`: how many of
 * these ran. Each entry here is the SQLite schema up to the same number of migrations, so a version number means
 * the same tables on both engines.
 */
export const POSTGRES_MIGRATIONS: string[] = [
	// 1: meetings, host seats, removed persons (SQLite 1).
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
	CREATE UNIQUE INDEX one_live_meeting_per_host ON meetings (tenant_id, host_subject) WHERE state = 'live';
	CREATE TABLE host_seats (
		tenant_id     TEXT NOT NULL,
		host_subject  TEXT NOT NULL,
		connection_id TEXT NOT NULL,
		meeting_id    TEXT NOT NULL,
		taken_at      TEXT NOT NULL,
		PRIMARY KEY (tenant_id, host_subject)
	);
	CREATE TABLE removed_persons (
		meeting_id TEXT NOT NULL,
		person     TEXT NOT NULL,
		removed_at TEXT NOT NULL,
		PRIMARY KEY (meeting_id, person)
	);
	`,
	// 2: the hash-chained audit trail (SQLite 2): one entry per position per tenant; append-only and "extend the
	// head" enforced by triggers as on SQLite.
	`
	CREATE TABLE events (
		tenant_id         TEXT NOT NULL,
		seq               BIGINT NOT NULL,
		at                TEXT NOT NULL,
		meeting_id        TEXT,
		type              TEXT NOT NULL,
		actor             TEXT,
		data              TEXT NOT NULL,
		prev_hash         TEXT,
		meeting_prev_hash TEXT,
		hash              TEXT,
		PRIMARY KEY (tenant_id, seq)
	);
	CREATE INDEX events_by_meeting ON events (tenant_id, meeting_id, seq);
	CREATE TABLE audit_person_secrets (
		tenant_id  TEXT NOT NULL,
		person_key TEXT NOT NULL,
		secret     BYTEA NOT NULL,
		pseudonym  TEXT NOT NULL UNIQUE,
		created_at TEXT NOT NULL,
		PRIMARY KEY (tenant_id, person_key)
	);
	CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		RAISE EXCEPTION 'audit trail is append-only: events cannot be %', CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'changed' END;
	END $$;
	CREATE TRIGGER events_no_delete BEFORE DELETE OR UPDATE ON events FOR EACH ROW EXECUTE FUNCTION events_append_only();
	CREATE FUNCTION events_extend_head() RETURNS trigger LANGUAGE plpgsql AS $$
	DECLARE
		genesis TEXT := repeat('0', 64);
		want_prev TEXT := genesis;
		want_meeting TEXT := NULL;
	BEGIN
		IF NEW.seq <> 1 THEN
			SELECT hash INTO want_prev FROM events WHERE tenant_id = NEW.tenant_id AND seq = NEW.seq - 1;
		END IF;
		IF NEW.meeting_id IS NOT NULL THEN
			SELECT coalesce((SELECT hash FROM events WHERE tenant_id = NEW.tenant_id AND meeting_id = NEW.meeting_id
				ORDER BY seq DESC LIMIT 1), genesis) INTO want_meeting;
		END IF;
		IF NEW.hash IS NULL OR NEW.prev_hash IS NULL OR NEW.prev_hash IS DISTINCT FROM want_prev
			OR NEW.meeting_prev_hash IS DISTINCT FROM want_meeting THEN
			RAISE EXCEPTION 'audit trail: a new event must extend its tenant chain at the head';
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER events_chained_insert BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_extend_head();
	`,
	// 3: storage targets (SQLite 3).
	`
	CREATE TABLE storage_targets (
		tenant_id  TEXT PRIMARY KEY,
		config     TEXT NOT NULL CHECK (config::jsonb IS NOT NULL),
		secrets    BYTEA NOT NULL,
		updated_at TEXT NOT NULL
	);
	`,
	// 4: transcript links (SQLite 4).
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
	// 5: webhooks (SQLite 5).
	`
	CREATE TABLE webhook_settings (
		tenant_id  TEXT PRIMARY KEY,
		url        TEXT NOT NULL,
		events     TEXT NOT NULL CHECK (events::jsonb IS NOT NULL),
		secret     BYTEA NOT NULL,
		cursor_seq BIGINT NOT NULL,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	);
	CREATE TABLE webhook_deliveries (
		id               BIGSERIAL PRIMARY KEY,
		tenant_id        TEXT NOT NULL,
		event_id         TEXT NOT NULL UNIQUE,
		event            TEXT NOT NULL,
		meeting_id       TEXT,
		payload          TEXT NOT NULL,
		state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
		attempts         INTEGER NOT NULL DEFAULT 0,
		created_at       BIGINT NOT NULL,
		next_attempt_at  BIGINT,
		lease_until      BIGINT,
		delivered_at     BIGINT,
		last_status      INTEGER,
		last_error       TEXT,
		last_duration_ms INTEGER
	);
	CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
	CREATE INDEX webhook_deliveries_by_meeting ON webhook_deliveries (tenant_id, meeting_id, id) WHERE state = 'pending';
	CREATE INDEX webhook_deliveries_by_tenant ON webhook_deliveries (tenant_id, id);
	`,
	// 6: passcode attempts (SQLite 6).
	`
	CREATE TABLE passcode_attempts (
		meeting_id TEXT NOT NULL,
		scope      TEXT NOT NULL,
		failures   INTEGER NOT NULL,
		last_at    BIGINT NOT NULL,
		locked_at  TEXT,
		PRIMARY KEY (meeting_id, scope)
	);
	`,
	// 7 (SQLite 7, issue #13): the operator's side (server/operator, docs/operator.md). Tenants live in the store (the tenants
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
		expires_at BIGINT NOT NULL,   -- ms since the epoch: the row is useless after the token's own expiry
		at         TEXT NOT NULL,
		PRIMARY KEY (tenant_id, jti)
	);
	CREATE TABLE subject_cutoffs (
		tenant_id     TEXT NOT NULL,
		subject       TEXT NOT NULL,
		issued_before BIGINT NOT NULL, -- seconds since the epoch: tokens with an older (or no) iat are refused
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
		seq        BIGSERIAL PRIMARY KEY,
		at         BIGINT NOT NULL,    -- ms since the epoch
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
	// 8 (issue 14 retention): a deliberate prefix purge of a tenant's chain (audit_purges + the delete rule), the
	// operator's security hold on log files, and job leases (SQLite 8).
	`
	CREATE TABLE audit_purges (
		tenant_id    TEXT PRIMARY KEY,
		through_seq  BIGINT NOT NULL,
		through_hash TEXT NOT NULL,
		purged       BIGINT NOT NULL,
		checkpoint_seq BIGINT NOT NULL,
		at           TEXT NOT NULL
	);
	CREATE OR REPLACE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF TG_OP = 'DELETE' AND OLD.seq <= coalesce((SELECT through_seq FROM audit_purges WHERE tenant_id = OLD.tenant_id), 0) THEN
			RETURN OLD;
		END IF;
		RAISE EXCEPTION 'audit trail is append-only: events cannot be %', CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'changed' END;
	END $$;
	CREATE TABLE security_holds (
		id         TEXT PRIMARY KEY,
		reason     TEXT NOT NULL,
		set_by     TEXT NOT NULL,
		set_at     TEXT NOT NULL,
		until      TEXT NOT NULL,
		ended_at   TEXT,
		ended_by   TEXT
	);
	CREATE TABLE job_leases (
		name   TEXT PRIMARY KEY,
		holder TEXT NOT NULL,
		until  BIGINT NOT NULL
	);
	`,
	// 9 (SQLite 9, issue #14, data-subject requests): one row per erasure request (server/privacy/DataSubjectService.ts), with
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
	// 10 (SQLite 10, issue 12, audit chain): "a new entry extends its tenant's head" checked once per INSERT statement
	// (an AFTER … FOR EACH STATEMENT trigger over the inserted rows) instead of once per row; planned for each
	// statement (force_custom_plan), so the lookups stay index scans as the chain grows. A row trigger's cached plan,
	// made while the table was small, scanned the whole table per row: 7.6k rows/s at first, 1.8k/s after 20k rows.
	// The rule is the same: every inserted row's prev_hash is the hash of the entry before it (seq - 1, genesis for
	// seq 1), its meeting_prev_hash the hash of its meeting's entry before it (genesis for the first, NULL without a
	// meeting), and its hash is set; the primary key keeps one entry per position.
	`
	DROP TRIGGER events_chained_insert ON events;
	DROP FUNCTION events_extend_head();
	CREATE FUNCTION events_extend_head() RETURNS trigger LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
	BEGIN
		IF EXISTS (
			SELECT 1 FROM inserted n
			WHERE n.hash IS NULL OR n.prev_hash IS NULL
				OR n.prev_hash IS DISTINCT FROM (CASE WHEN n.seq = 1 THEN repeat('0', 64) ELSE
					(SELECT e.hash FROM events e WHERE e.tenant_id = n.tenant_id AND e.seq = n.seq - 1) END)
				OR n.meeting_prev_hash IS DISTINCT FROM (CASE WHEN n.meeting_id IS NULL THEN NULL ELSE coalesce(
					(SELECT e.hash FROM events e WHERE e.tenant_id = n.tenant_id AND e.meeting_id = n.meeting_id
						AND e.seq < n.seq ORDER BY e.seq DESC LIMIT 1), repeat('0', 64)) END)
		) THEN
			RAISE EXCEPTION 'audit trail: a new event must extend its tenant chain at the head';
		END IF;
		RETURN NULL;
	END $$;
	CREATE TRIGGER events_chained_insert AFTER INSERT ON events REFERENCING NEW TABLE AS inserted
		FOR EACH STATEMENT EXECUTE FUNCTION events_extend_head();
	`,
	// 11 (issue 12 placement): the cluster's nodes (each gateway with a public URL writes its heartbeat and load) and
	// where each live meeting's router lives (one node per meeting: the primary key makes the first claim win; a
	// re-homing is a compare-and-set on (node_id, epoch)). server/cluster, docs/architecture.md "Cluster".
	`
	CREATE TABLE cluster_nodes (
		node_id      TEXT PRIMARY KEY,
		url          TEXT NOT NULL,
		started_at   BIGINT NOT NULL,  -- ms since the epoch
		heartbeat_at BIGINT NOT NULL,  -- ms since the epoch (the node's clock); dead after CONSENTRY_NODE_DEAD_MS
		meetings     INTEGER NOT NULL DEFAULT 0,
		peers        INTEGER NOT NULL DEFAULT 0,
		cpu          DOUBLE PRECISION NOT NULL DEFAULT 0    -- the node's mediasoup workers' CPU share over the last beat (0..workers)
	);
	CREATE TABLE meeting_placements (
		meeting_id TEXT PRIMARY KEY,
		node_id    TEXT NOT NULL,
		epoch      INTEGER NOT NULL,    -- 1 at the first placement, +1 at each re-homing
		placed_at  BIGINT NOT NULL,
		cause      TEXT NOT NULL        -- 'placed' or 'node_lost'
	);
	CREATE INDEX meeting_placements_by_node ON meeting_placements (node_id);
	`,
	// 12 (issue 12, notice fan-out: the chain trigger): the same rule as 10, with one index probe per tenant and per
	// meeting in the statement instead of two per row. A row whose chain predecessor (seq - 1) is in the same statement
	// is checked against it there (lag() over the inserted rows); so is a row whose meeting's previous entry is in the
	// statement, when every position between the two is too (then no earlier entry can sit between them). Only the
	// others (the statement's first row per tenant and per meeting) look in the table. Measured: the per-row probe of
	// 10 could be planned on events_by_meeting (tenant_id leading, seq not), scanning the tenant's whole index per row
	// while the table's statistics were stale: 40-160 ms of the server's CPU per 500-row commit; docs/benchmarks.md.
	`
	CREATE OR REPLACE FUNCTION events_extend_head() RETURNS trigger LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
	BEGIN
		IF EXISTS (
			SELECT 1 FROM (
				SELECT i.*, lag(i.seq) OVER m AS m_seq, lag(i.hash) OVER m AS m_hash, lag(i.run) OVER m AS m_run
				FROM (
					SELECT n.tenant_id, n.seq, n.meeting_id, n.hash, n.prev_hash, n.meeting_prev_hash,
						lag(n.seq) OVER t AS t_seq, lag(n.hash) OVER t AS t_hash,
						-- equal for rows of one tenant whose positions in between are all in this statement
						n.seq - row_number() OVER t AS run
					FROM inserted n
					WINDOW t AS (PARTITION BY n.tenant_id ORDER BY n.seq)
				) i
				WINDOW m AS (PARTITION BY i.tenant_id, i.meeting_id ORDER BY i.seq)
			) n
			WHERE n.hash IS NULL OR n.prev_hash IS NULL
				OR n.prev_hash IS DISTINCT FROM (CASE WHEN n.seq = 1 THEN repeat('0', 64)
					WHEN n.t_seq = n.seq - 1 THEN n.t_hash
					ELSE (SELECT e.hash FROM events e WHERE e.tenant_id = n.tenant_id AND e.seq = n.seq - 1) END)
				OR n.meeting_prev_hash IS DISTINCT FROM (CASE WHEN n.meeting_id IS NULL THEN NULL
					WHEN n.m_seq IS NOT NULL AND n.m_run = n.run THEN n.m_hash
					ELSE coalesce((SELECT e.hash FROM events e WHERE e.tenant_id = n.tenant_id AND e.meeting_id = n.meeting_id
						AND e.seq < n.seq ORDER BY e.seq DESC LIMIT 1), repeat('0', 64)) END)
		) THEN
			RAISE EXCEPTION 'audit trail: a new event must extend its tenant chain at the head';
		END IF;
		RETURN NULL;
	END $$;
	`,
	// 13 (SQLite 13, transcript links, playback): each person's `person.joined` entries by meeting ("was this person in
	// the meeting?", asked on every request of a transcript page following a running session).
	`CREATE INDEX events_joins ON events (tenant_id, actor, meeting_id) WHERE type = 'person.joined';`,
];

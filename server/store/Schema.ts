import type { Generated } from "kysely";

/** The store's tables as the typed query builder sees them (server/store/Store.ts), the same on both engines. */
export interface Schema {
	meetings: MeetingsTable;
	host_seats: HostSeatsTable;
	removed_persons: RemovedPersonsTable;
	passcode_attempts: PasscodeAttemptsTable;
	webhook_settings: WebhookSettingsTable;
	webhook_deliveries: WebhookDeliveriesTable;
	tenants: TenantsTable;
	subject_blocks: SubjectBlocksTable;
	meeting_blocks: MeetingBlocksTable;
	token_revocations: TokenRevocationsTable;
	subject_cutoffs: SubjectCutoffsTable;
	meeting_presence: MeetingPresenceTable;
	operator_changes: OperatorChangesTable;
	operator_warnings: OperatorWarningsTable;
	warning_acks: WarningAcksTable;
	events: EventsTable;
	audit_person_secrets: AuditPersonSecretsTable;
	storage_targets: StorageTargetsTable;
	transcript_links: TranscriptLinksTable;
	audit_purges: AuditPurgesTable;
	security_holds: SecurityHoldsTable;
	job_leases: JobLeasesTable;
	dsr_requests: DsrRequestsTable;
	cluster_nodes: ClusterNodesTable;
	meeting_placements: MeetingPlacementsTable;
}

/** Issue 14 retention: the last chain position purged per tenant (the delete trigger lets only these rows go). */
export interface AuditPurgesTable {
	tenant_id: string;
	through_seq: Int8;
	through_hash: string;
	purged: Int8;
	checkpoint_seq: Int8;
	at: string;
}

/** The operator's security hold on log files (server/privacy/SecurityHold.ts). */
export interface SecurityHoldsTable {
	id: string;
	reason: string;
	set_by: string;
	set_at: string;
	until: string;
	ended_at: string | null;
	ended_by: string | null;
}

/** One holder at a time of a named job (the retention purge) across the processes sharing the store. */
export interface JobLeasesTable {
	name: string;
	holder: string;
	until: Int8;
}

/** A gateway node of the cluster (issue 12 placement): its public URL, heartbeat and load. */
export interface ClusterNodesTable {
	node_id: string;
	url: string;
	/** ms since the epoch (PostgreSQL BIGINT arrives as a string: convert with Number()). */
	started_at: number | string;
	heartbeat_at: number | string;
	meetings: number;
	peers: number;
	cpu: number;
}

/** Where a live meeting's router lives (issue 12 placement). */
export interface MeetingPlacementsTable {
	meeting_id: string;
	node_id: string;
	epoch: number;
	placed_at: number | string;
	cause: "placed" | "node_lost";
}

export interface OperatorWarningsTable {
	id: string;
	tenant_id: string;
	/** NULL: everyone of the tenant. */
	subject: string | null;
	message: string;
	created_at: string;
}

export interface WarningAcksTable {
	warning_id: string;
	person: string;
	at: string;
}

export interface TenantsTable {
	id: string;
	/** JSON: the tenant without its ID (name, keys, capture, locale, limits). */
	config: string;
	/** `deleted`: a tombstone (the tenants file can't seed it back). */
	state: "active" | "suspended" | "terminated" | "deleted";
	reason: string | null;
	created_at: string;
	updated_at: string;
}

export interface SubjectBlocksTable {
	tenant_id: string;
	subject: string;
	state: "suspended" | "terminated";
	reason: string | null;
	at: string;
}

export interface MeetingBlocksTable {
	meeting_id: string;
	tenant_id: string;
	reason: string | null;
	at: string;
}

export interface TokenRevocationsTable {
	tenant_id: string;
	jti: string;
	expires_at: Int8;
	at: string;
}

export interface SubjectCutoffsTable {
	tenant_id: string;
	subject: string;
	issued_before: Int8;
	at: string;
}

export interface MeetingPresenceTable {
	meeting_id: string;
	gateway_id: string;
	since: string;
}

export interface OperatorChangesTable {
	seq: Generated<Int8>;
	at: Int8;
	kind: string;
	tenant_id: string | null;
	subject: string | null;
	meeting_id: string | null;
	data: string;
}

/** The audit chain (server/store/AuditRepository.ts): one hash chain per tenant, `seq` its position. */
export interface EventsTable {
	tenant_id: string;
	seq: Int8;
	at: string;
	meeting_id: string | null;
	type: string;
	actor: string | null;
	/** Canonical JSON. */
	data: string;
	prev_hash: string | null;
	meeting_prev_hash: string | null;
	hash: string | null;
}

export interface AuditPersonSecretsTable {
	tenant_id: string;
	person_key: string;
	secret: Buffer;
	pseudonym: string;
	created_at: string;
}

export interface StorageTargetsTable {
	tenant_id: string;
	/** JSON without secrets. */
	config: string;
	/** Sealed (server/storage/secretBox.ts). */
	secrets: Buffer;
	updated_at: string;
}

export interface TranscriptLinksTable {
	id: string;
	tenant_id: string;
	meeting_id: string;
	session_id: string;
	object_prefix: string;
	created_at: string;
	expires_at: string;
	revoked_at: string | null;
}

/** BIGINT columns come back from PostgreSQL as strings: read them through Number(). */
type Int8 = number | string;

export interface WebhookSettingsTable {
	tenant_id: string;
	url: string;
	/** JSON list of event types. */
	events: string;
	secret: Buffer;
	cursor_seq: Int8;
	created_at: string;
	updated_at: string;
}

export interface WebhookDeliveriesTable {
	id: Generated<Int8>;
	tenant_id: string;
	event_id: string;
	event: string;
	meeting_id: string | null;
	payload: string;
	state: "pending" | "delivered" | "failed" | "cancelled";
	attempts: Generated<number>;
	created_at: Int8;
	next_attempt_at: Int8 | null;
	lease_until: Int8 | null;
	delivered_at: Int8 | null;
	last_status: number | null;
	last_error: string | null;
	last_duration_ms: number | null;
}

export interface PasscodeAttemptsTable {
	meeting_id: string;
	/** 'meeting', or 'addr:<address key>'. */
	scope: string;
	failures: number;
	/** ms since the epoch (BIGINT on PostgreSQL: read it through Number()). */
	last_at: number | string;
	locked_at: string | null;
}

export interface MeetingsTable {
	id: string;
	tenant_id: string;
	host_subject: string;
	title: string;
	scheduled_for: string | null;
	settings: string;
	passcode_hash: string | null;
	state: "scheduled" | "live" | "ended";
	locked: Generated<number>;
	created_at: string;
	started_at: string | null;
	ended_at: string | null;
}

export interface HostSeatsTable {
	tenant_id: string;
	host_subject: string;
	connection_id: string;
	meeting_id: string;
	taken_at: string;
}

export interface RemovedPersonsTable {
	meeting_id: string;
	person: string;
	removed_at: string;
}

/** Data-subject erasure requests (issue #14): server/store/DataSubjectRepository.ts. */
export interface DsrRequestsTable {
	id: string;
	tenant_id: string;
	kind: "erase";
	state: "pending" | "done";
	/** The person while the store step is pending; NULL once it committed. */
	person_key: string | null;
	/** Their (then unlinkable) pseudonym, for the bucket step. */
	pseudonym: string | null;
	delete_objects: number;
	/** JSON: the steps done (server/privacy/DataSubjectTypes.ts, ErasureSteps). */
	steps: string;
	/** Who asked: `admin` or `operator` (never their identity: that is in the chain's entry). */
	requested_by: string;
	last_error: string | null;
	created_at: string;
	updated_at: string;
}

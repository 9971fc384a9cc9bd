import type { Generated } from "kysely";

/** The store's tables as the typed query builder sees them (server/store/Store.ts), the same on both engines. */
export interface Schema {
	meetings: MeetingsTable;
	host_seats: HostSeatsTable;
	removed_persons: RemovedPersonsTable;
	passcode_attempts: PasscodeAttemptsTable;
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

import type { Database } from "../store/Database.js";

/** Event types the meetings core records (the notice issue adds its own and chains them). */
export type EventType =
	| "meeting.scheduled"
	| "meeting.started"
	| "meeting.ended"
	| "host_seat.taken"
	| "host_seat.refused"
	| "host_seat.taken_over"
	| "person.joined"
	| "person.left"
	| "lobby.entered"
	| "lobby.admitted"
	| "lobby.denied"
	| "host.locked"
	| "host.unlocked"
	| "host.muted"
	| "host.stopped_share"
	| "host.removed";

export interface AuditEvent {
	seq: number;
	at: string;
	tenantId: string;
	meetingId: string | null;
	type: EventType;
	actor: string | null;
	data: Record<string, unknown>;
}

/** Append-only record of what happened in meetings, for the audit trail. */
export class EventLog {
	readonly #db: Database;

	constructor(db: Database) {
		this.#db = db;
	}

	append(
		type: EventType,
		e: { tenantId: string; meetingId?: string; actor?: string; data?: Record<string, unknown> },
	): AuditEvent {
		const at = new Date().toISOString();
		const data = e.data ?? {};
		const res = this.#db
			.prepare("INSERT INTO events (at, tenant_id, meeting_id, type, actor, data) VALUES (?, ?, ?, ?, ?, ?)")
			.run(at, e.tenantId, e.meetingId ?? null, type, e.actor ?? null, JSON.stringify(data));
		return {
			seq: Number(res.lastInsertRowid),
			at,
			tenantId: e.tenantId,
			meetingId: e.meetingId ?? null,
			type,
			actor: e.actor ?? null,
			data,
		};
	}

	list(filter: { tenantId: string; meetingId?: string; type?: EventType; limit?: number }): AuditEvent[] {
		const rows = this.#db
			.prepare(
				`SELECT * FROM events WHERE tenant_id = @tenantId
				 AND (@meetingId IS NULL OR meeting_id = @meetingId) AND (@type IS NULL OR type = @type)
				 ORDER BY seq LIMIT @limit`,
			)
			.all({
				tenantId: filter.tenantId,
				meetingId: filter.meetingId ?? null,
				type: filter.type ?? null,
				limit: filter.limit ?? 10_000,
			}) as {
			seq: number;
			at: string;
			tenant_id: string;
			meeting_id: string | null;
			type: EventType;
			actor: string | null;
			data: string;
		}[];
		return rows.map((r) => ({
			seq: r.seq,
			at: r.at,
			tenantId: r.tenant_id,
			meetingId: r.meeting_id,
			type: r.type,
			actor: r.actor,
			data: JSON.parse(r.data) as Record<string, unknown>,
		}));
	}
}

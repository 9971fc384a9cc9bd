import type { Database } from "../store/Database.js";

export interface SeatHolder {
	connectionId: string;
	meetingId: string;
	takenAt: string;
}

/**
 * The host seat: at most one live host connection per host identity, across
 * all meetings and every gateway process sharing the store (the primary key
 * decides). Connection IDs are `<gatewayId>:<socketId>`, so a restarted gateway
 * can release the seats its previous run held.
 */
export class HostSeats {
	readonly #db: Database;

	constructor(db: Database) {
		this.#db = db;
	}

	/** Claims the seat; returns the current holder when someone else holds it. */
	claim(tenantId: string, subject: string, connectionId: string, meetingId: string): SeatHolder | undefined {
		const res = this.#db
			.prepare(
				`INSERT INTO host_seats (tenant_id, host_subject, connection_id, meeting_id, taken_at) VALUES (?, ?, ?, ?, ?)
				 ON CONFLICT (tenant_id, host_subject) DO NOTHING`,
			)
			.run(tenantId, subject, connectionId, meetingId, new Date().toISOString());
		if (res.changes === 1) return undefined;
		const holder = this.holder(tenantId, subject);
		if (holder?.connectionId === connectionId) return undefined;
		return holder;
	}

	/** Takes the seat over from whoever holds it; returns the previous holder. */
	takeOver(tenantId: string, subject: string, connectionId: string, meetingId: string): SeatHolder | undefined {
		return this.#db
			.transaction(() => {
				const previous = this.holder(tenantId, subject);
				this.#db
					.prepare(
						`INSERT INTO host_seats (tenant_id, host_subject, connection_id, meeting_id, taken_at) VALUES (?, ?, ?, ?, ?)
						 ON CONFLICT (tenant_id, host_subject) DO UPDATE SET connection_id = excluded.connection_id,
						   meeting_id = excluded.meeting_id, taken_at = excluded.taken_at`,
					)
					.run(tenantId, subject, connectionId, meetingId, new Date().toISOString());
				return previous?.connectionId === connectionId ? undefined : previous;
			})
			.immediate();
	}

	holder(tenantId: string, subject: string): SeatHolder | undefined {
		const row = this.#db
			.prepare("SELECT connection_id, meeting_id, taken_at FROM host_seats WHERE tenant_id = ? AND host_subject = ?")
			.get(tenantId, subject) as { connection_id: string; meeting_id: string; taken_at: string } | undefined;
		return row && { connectionId: row.connection_id, meetingId: row.meeting_id, takenAt: row.taken_at };
	}

	/** Releases the seat if (and only if) this connection still holds it. */
	release(tenantId: string, subject: string, connectionId: string): boolean {
		return (
			this.#db
				.prepare("DELETE FROM host_seats WHERE tenant_id = ? AND host_subject = ? AND connection_id = ?")
				.run(tenantId, subject, connectionId).changes === 1
		);
	}

	/** Drops every seat a previous run of this gateway left behind. */
	releaseAllOf(gatewayId: string): number {
		return this.#db
			.prepare("DELETE FROM host_seats WHERE connection_id LIKE ? ESCAPE '\\'")
			.run(`${gatewayId.replace(/[\\%_]/g, "\\$&")}:%`).changes;
	}
}

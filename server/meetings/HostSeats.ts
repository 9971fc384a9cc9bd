import { HostSeatRepository } from "../store/HostSeatRepository.js";
import type { Store } from "../store/Store.js";

export interface SeatHolder {
	connectionId: string;
	meetingId: string;
	takenAt: string;
}

/**
 * The host seat: at most one live host connection per host identity, across
 * all meetings and every gateway process sharing the store (the primary key
 * decides). Connection IDs are `<gatewayId>:<socketId>`, so a restarted gateway
 * can release the seats its previous run held. Queries: server/store/HostSeatRepository.ts.
 */
export class HostSeats {
	readonly #repo: HostSeatRepository;

	constructor(store: Store) {
		this.#repo = new HostSeatRepository(store);
	}

	/** Claims the seat; returns the current holder when someone else holds it. */
	async claim(
		tenantId: string,
		subject: string,
		connectionId: string,
		meetingId: string,
	): Promise<SeatHolder | undefined> {
		const seat = { connection_id: connectionId, meeting_id: meetingId, taken_at: new Date().toISOString() };
		if (await this.#repo.insertIfFree(tenantId, subject, seat)) return undefined;
		const holder = await this.holder(tenantId, subject);
		if (holder?.connectionId === connectionId) return undefined;
		return holder;
	}

	/**
	 * Takes the seat over from whoever holds it; returns the previous holder. A compare-and-set on the holder's
	 * connection, retried if another take-over got there in between: the holder returned is exactly the one
	 * replaced, on every engine and across processes.
	 */
	async takeOver(
		tenantId: string,
		subject: string,
		connectionId: string,
		meetingId: string,
	): Promise<SeatHolder | undefined> {
		for (;;) {
			const seat = { connection_id: connectionId, meeting_id: meetingId, taken_at: new Date().toISOString() };
			const previous = await this.holder(tenantId, subject);
			if (!previous) {
				if (await this.#repo.insertIfFree(tenantId, subject, seat)) return undefined;
				continue;
			}
			if (await this.#repo.replaceIfHeldBy(tenantId, subject, previous.connectionId, seat)) {
				return previous.connectionId === connectionId ? undefined : previous;
			}
		}
	}

	async holder(tenantId: string, subject: string): Promise<SeatHolder | undefined> {
		const row = await this.#repo.holder(tenantId, subject);
		return row && { connectionId: row.connection_id, meetingId: row.meeting_id, takenAt: row.taken_at };
	}

	/** Releases the seat if (and only if) this connection still holds it. */
	release(tenantId: string, subject: string, connectionId: string): Promise<boolean> {
		return this.#repo.deleteIfHeldBy(tenantId, subject, connectionId);
	}

	/** Drops every seat a previous run of this gateway left behind. */
	releaseAllOf(gatewayId: string): Promise<number> {
		return this.#repo.deleteByConnectionPrefix(`${gatewayId}:`);
	}
}

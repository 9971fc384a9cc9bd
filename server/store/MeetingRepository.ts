import type { Selectable } from "kysely";
import type { MeetingsTable } from "./Schema.js";
import type { Store } from "./Store.js";

export type MeetingRow = Selectable<MeetingsTable>;

/**
 * Meetings and the persons removed from them (tables `meetings`, `removed_persons`). State changes are single
 * conditional statements; "one live meeting per host" is the unique index `one_live_meeting_per_host`, so it
 * holds however many gateway processes or nodes share the store. Service logic: server/meetings/MeetingStore.ts.
 */
export class MeetingRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	/** Inserts a scheduled meeting; a duplicate ID is a unique violation (the caller draws again). */
	insert(row: Omit<MeetingRow, "state" | "locked" | "started_at" | "ended_at">): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db
				.insertInto("meetings")
				.values({ ...row, state: "scheduled" })
				.execute();
		});
	}

	find(id: string): Promise<MeetingRow | undefined> {
		return this.#s.guard(() => this.#s.db.selectFrom("meetings").selectAll().where("id", "=", id).executeTakeFirst());
	}

	listByHost(tenantId: string, hostSubject: string, limit: number): Promise<MeetingRow[]> {
		return this.#s.guard(() =>
			this.#s.db
				.selectFrom("meetings")
				.selectAll()
				.where("tenant_id", "=", tenantId)
				.where("host_subject", "=", hostSubject)
				.orderBy("created_at", "desc")
				.orderBy("id")
				.limit(limit)
				.execute(),
		);
	}

	liveOf(tenantId: string, hostSubject: string): Promise<MeetingRow | undefined> {
		return this.#s.guard(() =>
			this.#s.db
				.selectFrom("meetings")
				.selectAll()
				.where("tenant_id", "=", tenantId)
				.where("host_subject", "=", hostSubject)
				.where("state", "=", "live")
				.executeTakeFirst(),
		);
	}

	/** Makes it live unless it is; returns whether this call did. Throws a unique violation if the host has one. */
	start(id: string, at: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.updateTable("meetings")
				.set({ state: "live", started_at: at, ended_at: null, locked: 0 })
				.where("id", "=", id)
				.where("state", "!=", "live")
				.executeTakeFirst();
			return Number(r.numUpdatedRows) > 0;
		});
	}

	/** Ends it if live; returns whether this call did. */
	end(id: string, at: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.updateTable("meetings")
				.set({ state: "ended", ended_at: at })
				.where("id", "=", id)
				.where("state", "=", "live")
				.executeTakeFirst();
			return Number(r.numUpdatedRows) === 1;
		});
	}

	setLocked(id: string, locked: boolean): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db
				.updateTable("meetings")
				.set({ locked: locked ? 1 : 0 })
				.where("id", "=", id)
				.execute();
		});
	}

	passcodeHash(id: string): Promise<{ passcode_hash: string | null } | undefined> {
		return this.#s.guard(() =>
			this.#s.db.selectFrom("meetings").select("passcode_hash").where("id", "=", id).executeTakeFirst(),
		);
	}

	markRemoved(meetingId: string, person: string, at: string): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db
				.insertInto("removed_persons")
				.values({ meeting_id: meetingId, person, removed_at: at })
				.onConflict((oc) => oc.doNothing())
				.execute();
		});
	}

	isRemoved(meetingId: string, person: string): Promise<boolean> {
		return this.#s.guard(
			async () =>
				(await this.#s.db
					.selectFrom("removed_persons")
					.select("person")
					.where("meeting_id", "=", meetingId)
					.where("person", "=", person)
					.executeTakeFirst()) !== undefined,
		);
	}
}

import type { Store } from "./Store.js";

export interface TranscriptLinkRow {
	id: string;
	tenant_id: string;
	meeting_id: string;
	session_id: string;
	object_prefix: string;
	created_at: string;
	expires_at: string;
	revoked_at: string | null;
}

/** Transcript links (table `transcript_links`). Service: server/transcription/TranscriptLinks.ts. */
export class TranscriptLinkRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	insert(row: TranscriptLinkRow): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db.insertInto("transcript_links").values(row).execute();
		});
	}

	get(id: string): Promise<TranscriptLinkRow | undefined> {
		return this.#s.guard(() =>
			this.#s.db.selectFrom("transcript_links").selectAll().where("id", "=", id).executeTakeFirst(),
		);
	}

	/** Sets revoked_at unless it is set; true when this call revoked it. */
	revoke(id: string, at: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.updateTable("transcript_links")
				.set({ revoked_at: at })
				.where("id", "=", id)
				.where("revoked_at", "is", null)
				.executeTakeFirst();
			return Number(r.numUpdatedRows) === 1;
		});
	}
}

import type { Selectable } from "kysely";
import type { MeetingBlocksTable, SubjectBlocksTable } from "./Schema.js";
import type { Store } from "./Store.js";

export type SubjectBlockRow = Selectable<SubjectBlocksTable>;
export type MeetingBlockRow = Selectable<MeetingBlocksTable>;

/**
 * Who and what the operator cut off (tables `subject_blocks`, `meeting_blocks`, `token_revocations`,
 * `subject_cutoffs`): people suspended or terminated, meeting IDs disabled, tokens revoked by `jti`, and "every
 * token of this subject issued before T". Each write is one idempotent statement. Service:
 * server/operator/TenantDirectory.ts (the in-memory copy every process keeps, refreshed from the change feed).
 */
export class AccessRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	subjectBlocks(): Promise<SubjectBlockRow[]> {
		return this.#s.guard(() => this.#s.db.selectFrom("subject_blocks").selectAll().execute());
	}

	subjectBlock(tenantId: string, subject: string): Promise<SubjectBlockRow | undefined> {
		return this.#s.guard(() =>
			this.#s.db
				.selectFrom("subject_blocks")
				.selectAll()
				.where("tenant_id", "=", tenantId)
				.where("subject", "=", subject)
				.executeTakeFirst(),
		);
	}

	/** Blocks (or changes the block of) a person; a termination is final. Returns whether anything changed. */
	blockSubject(row: SubjectBlockRow): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.insertInto("subject_blocks")
				.values(row)
				.onConflict((oc) =>
					oc
						.columns(["tenant_id", "subject"])
						.doUpdateSet({ state: row.state, reason: row.reason, at: row.at })
						.where("subject_blocks.state", "=", "suspended")
						.where("subject_blocks.state", "!=", row.state),
				)
				.executeTakeFirst();
			return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
		});
	}

	/** Lifts a suspension (never a termination); returns whether this call did. */
	unblockSubject(tenantId: string, subject: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.deleteFrom("subject_blocks")
				.where("tenant_id", "=", tenantId)
				.where("subject", "=", subject)
				.where("state", "=", "suspended")
				.executeTakeFirst();
			return Number(r.numDeletedRows) === 1;
		});
	}

	meetingBlock(meetingId: string): Promise<MeetingBlockRow | undefined> {
		return this.#s.guard(() =>
			this.#s.db.selectFrom("meeting_blocks").selectAll().where("meeting_id", "=", meetingId).executeTakeFirst(),
		);
	}

	blockMeeting(row: MeetingBlockRow): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.insertInto("meeting_blocks")
				.values(row)
				.onConflict((oc) => oc.column("meeting_id").doNothing())
				.executeTakeFirst();
			return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
		});
	}

	unblockMeeting(meetingId: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db.deleteFrom("meeting_blocks").where("meeting_id", "=", meetingId).executeTakeFirst();
			return Number(r.numDeletedRows) === 1;
		});
	}

	/** Revoked tokens not yet expired on their own. */
	revokedTokens(now: number): Promise<{ tenant_id: string; jti: string; expires_at: number }[]> {
		return this.#s.guard(async () =>
			(
				await this.#s.db
					.selectFrom("token_revocations")
					.select(["tenant_id", "jti", "expires_at"])
					.where("expires_at", ">", now)
					.execute()
			).map((r) => ({ ...r, expires_at: Number(r.expires_at) })),
		);
	}

	revokeToken(tenantId: string, jti: string, expiresAt: number, at: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.insertInto("token_revocations")
				.values({ tenant_id: tenantId, jti, expires_at: expiresAt, at })
				.onConflict((oc) => oc.columns(["tenant_id", "jti"]).doNothing())
				.executeTakeFirst();
			return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
		});
	}

	cutoffs(): Promise<{ tenant_id: string; subject: string; issued_before: number }[]> {
		return this.#s.guard(async () =>
			(await this.#s.db.selectFrom("subject_cutoffs").select(["tenant_id", "subject", "issued_before"]).execute()).map(
				(r) => ({ ...r, issued_before: Number(r.issued_before) }),
			),
		);
	}

	/** Sets (or moves later) the subject's cutoff; returns whether it changed. */
	setCutoff(tenantId: string, subject: string, issuedBefore: number, at: string): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.insertInto("subject_cutoffs")
				.values({ tenant_id: tenantId, subject, issued_before: issuedBefore, at })
				.onConflict((oc) =>
					oc
						.columns(["tenant_id", "subject"])
						.doUpdateSet({ issued_before: issuedBefore, at })
						.where("subject_cutoffs.issued_before", "<", issuedBefore),
				)
				.executeTakeFirst();
			return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
		});
	}
}

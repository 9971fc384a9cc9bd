import { type Kysely, type Selectable, sql } from "kysely";
import type { DsrRequestsTable, Schema } from "./Schema.js";
import type { Store } from "./Store.js";

export type DsrRequestRow = Selectable<DsrRequestsTable>;

/** Who a data-subject request is about, as the store's tables name them. */
export interface PersonRef {
	tenantId: string;
	/** The token subject (`sub`), or null for a guest (who has no subject outside one connection). */
	subject: string | null;
	/** `tenant:subject` or `guest:<uuid>`: the key of `removed_persons`, `warning_acks` and the audit secrets. */
	personKey: string;
	/** Their pseudonym in the audit chain, when they have one. */
	pseudonym: string | null;
}

/** Every row of the store's own tables (not the audit chain) that names the person. */
export interface HeldRows {
	meetingsHosted: {
		id: string;
		title: string;
		state: string;
		scheduled_for: string | null;
		created_at: string;
		started_at: string | null;
		ended_at: string | null;
	}[];
	hostSeats: { meeting_id: string; taken_at: string }[];
	removedFrom: { meeting_id: string; removed_at: string }[];
	blocks: { state: string; reason: string | null; at: string }[];
	tokenCutoffs: { issued_before: number; at: string }[];
	operatorChanges: { seq: number; at: number; kind: string }[];
	warnings: { id: string; message: string; created_at: string; acknowledged_at: string | null }[];
	warningAcks: { warning_id: string; at: string }[];
	transcriptLinks: { id: string; meeting_id: string; session_id: string; expires_at: string; revoked: boolean }[];
	webhookDeliveries: { event_id: string; event: string; state: string; created_at: number }[];
}

/**
 * The store side of data-subject requests (issue #14; service: server/privacy/DataSubjectService.ts): finds every
 * row of the store's tables that names one person (by subject, person key or pseudonym), erases them inside the
 * caller's transaction, and keeps the erasure requests (`dsr_requests`) with their steps so an interrupted erasure
 * is resumed. The audit chain's own rows (`events`, `audit_person_secrets`) are EventLog's (server/audit).
 */
export class DataSubjectRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	#find() {
		return sql.raw(this.#s.engine === "sqlite" ? "instr" : "strpos");
	}

	/** Every row naming the person, in every table but the audit chain (`x`: on this executor, e.g. a snapshot). */
	held(p: PersonRef, x: Kysely<Schema> = this.#s.db): Promise<HeldRows> {
		return this.#s.guard(async () => {
			const db = x;
			const sub = p.subject;
			const none = <T>(): Promise<T[]> => Promise.resolve([]);
			const meetingsHosted =
				sub === null
					? await none<HeldRows["meetingsHosted"][number]>()
					: await db
							.selectFrom("meetings")
							.select(["id", "title", "state", "scheduled_for", "created_at", "started_at", "ended_at"])
							.where("tenant_id", "=", p.tenantId)
							.where("host_subject", "=", sub)
							.orderBy("created_at")
							.execute();
			const hostSeats =
				sub === null
					? await none<HeldRows["hostSeats"][number]>()
					: await db
							.selectFrom("host_seats")
							.select(["meeting_id", "taken_at"])
							.where("tenant_id", "=", p.tenantId)
							.where("host_subject", "=", sub)
							.execute();
			const removedFrom = await db
				.selectFrom("removed_persons")
				.select(["meeting_id", "removed_at"])
				.where("person", "=", p.personKey)
				.where("meeting_id", "in", db.selectFrom("meetings").select("id").where("tenant_id", "=", p.tenantId))
				.execute();
			const blocks =
				sub === null
					? await none<HeldRows["blocks"][number]>()
					: await db
							.selectFrom("subject_blocks")
							.select(["state", "reason", "at"])
							.where("tenant_id", "=", p.tenantId)
							.where("subject", "=", sub)
							.execute();
			const tokenCutoffs =
				sub === null
					? []
					: (
							await db
								.selectFrom("subject_cutoffs")
								.select(["issued_before", "at"])
								.where("tenant_id", "=", p.tenantId)
								.where("subject", "=", sub)
								.execute()
						).map((r) => ({ issued_before: Number(r.issued_before), at: r.at }));
			const operatorChanges =
				sub === null
					? []
					: (
							await db
								.selectFrom("operator_changes")
								.select(["seq", "at", "kind"])
								.where("tenant_id", "=", p.tenantId)
								.where("subject", "=", sub)
								.orderBy("seq")
								.execute()
						).map((r) => ({ seq: Number(r.seq), at: Number(r.at), kind: r.kind }));
			const warnings =
				sub === null
					? []
					: (
							await db
								.selectFrom("operator_warnings as w")
								.leftJoin("warning_acks as a", (j) =>
									j.onRef("a.warning_id", "=", "w.id").on("a.person", "=", p.personKey),
								)
								.select(["w.id", "w.message", "w.created_at", "a.at as acknowledged_at"])
								.where("w.tenant_id", "=", p.tenantId)
								.where("w.subject", "=", sub)
								.orderBy("w.created_at")
								.execute()
						).map((r) => ({ ...r, acknowledged_at: r.acknowledged_at ?? null }));
			const warningAcks = await db
				.selectFrom("warning_acks")
				.select(["warning_id", "at"])
				.where("person", "=", p.personKey)
				.execute();
			const hosted = meetingsHosted.map((m) => m.id);
			const transcriptLinks = hosted.length
				? (
						await db
							.selectFrom("transcript_links")
							.select(["id", "meeting_id", "session_id", "expires_at", "revoked_at"])
							.where("tenant_id", "=", p.tenantId)
							.where("meeting_id", "in", hosted)
							.execute()
					).map((r) => ({ ...r, revoked: r.revoked_at !== null, revoked_at: undefined }))
				: [];
			const webhookDeliveries = p.pseudonym
				? (
						await sql<{ event_id: string; event: string; state: string; created_at: number | string }>`
							SELECT event_id, event, state, created_at FROM webhook_deliveries
							WHERE tenant_id = ${p.tenantId} AND ${this.#find()}(payload, ${p.pseudonym}) > 0 ORDER BY id`.execute(db)
					).rows.map((r) => ({ ...r, created_at: Number(r.created_at) }))
				: [];
			return {
				meetingsHosted,
				hostSeats,
				removedFrom,
				blocks,
				tokenCutoffs,
				operatorChanges,
				warnings,
				warningAcks,
				transcriptLinks: transcriptLinks.map(({ revoked_at: _r, ...r }) => r),
				webhookDeliveries,
			};
		});
	}

	/** The first of these meetings of the tenant that is live now, or null. */
	async liveAmong(tenantId: string, meetingIds: readonly string[]): Promise<string | null> {
		if (meetingIds.length === 0) return null;
		return this.#s.guard(async () => {
			for (let i = 0; i < meetingIds.length; i += 500) {
				const r = await this.#s.db
					.selectFrom("meetings")
					.select("id")
					.where("tenant_id", "=", tenantId)
					.where("id", "in", meetingIds.slice(i, i + 500))
					.where("state", "=", "live")
					.executeTakeFirst();
				if (r) return r.id;
			}
			return null;
		});
	}

	/**
	 * Erases the person from every table but the audit chain, on the caller's transaction: the meetings they hosted
	 * keep existing for the others who were in them, with `host_subject` replaced by `marker`; every other row
	 * naming them is deleted (their host seats, removals, blocks and token cut-offs, the operator's warnings to them
	 * and their acknowledgements, pending or past webhook deliveries carrying their pseudonym); the operator's
	 * change feed keeps its rows (other processes read it by position) without the subject or data.
	 * Returns the rows touched per table.
	 */
	async erase(x: Kysely<Schema>, p: PersonRef, marker: string): Promise<Record<string, number>> {
		const n = (r: { numUpdatedRows?: bigint; numDeletedRows?: bigint } | undefined) =>
			Number(r?.numUpdatedRows ?? r?.numDeletedRows ?? 0);
		const out: Record<string, number> = {};
		const sub = p.subject;
		if (sub !== null) {
			out.meetings = n(
				await x
					.updateTable("meetings")
					.set({ host_subject: marker })
					.where("tenant_id", "=", p.tenantId)
					.where("host_subject", "=", sub)
					.executeTakeFirst(),
			);
			out.host_seats = n(
				await x
					.deleteFrom("host_seats")
					.where("tenant_id", "=", p.tenantId)
					.where("host_subject", "=", sub)
					.executeTakeFirst(),
			);
			out.subject_blocks = n(
				await x
					.deleteFrom("subject_blocks")
					.where("tenant_id", "=", p.tenantId)
					.where("subject", "=", sub)
					.executeTakeFirst(),
			);
			out.subject_cutoffs = n(
				await x
					.deleteFrom("subject_cutoffs")
					.where("tenant_id", "=", p.tenantId)
					.where("subject", "=", sub)
					.executeTakeFirst(),
			);
			out.operator_changes = n(
				await x
					.updateTable("operator_changes")
					.set({ subject: null, data: '{"erased":true}' })
					.where("tenant_id", "=", p.tenantId)
					.where("subject", "=", sub)
					.executeTakeFirst(),
			);
			const mine = x
				.selectFrom("operator_warnings")
				.select("id")
				.where("tenant_id", "=", p.tenantId)
				.where("subject", "=", sub);
			out.warning_acks = n(await x.deleteFrom("warning_acks").where("warning_id", "in", mine).executeTakeFirst());
			out.operator_warnings = n(
				await x
					.deleteFrom("operator_warnings")
					.where("tenant_id", "=", p.tenantId)
					.where("subject", "=", sub)
					.executeTakeFirst(),
			);
		}
		out.warning_acks =
			(out.warning_acks ?? 0) +
			n(await x.deleteFrom("warning_acks").where("person", "=", p.personKey).executeTakeFirst());
		out.removed_persons = n(
			await x
				.deleteFrom("removed_persons")
				.where("person", "=", p.personKey)
				.where("meeting_id", "in", x.selectFrom("meetings").select("id").where("tenant_id", "=", p.tenantId))
				.executeTakeFirst(),
		);
		if (p.pseudonym) {
			const r = await sql`DELETE FROM webhook_deliveries
				WHERE tenant_id = ${p.tenantId} AND ${this.#find()}(payload, ${p.pseudonym}) > 0`.execute(x);
			out.webhook_deliveries = Number(r.numAffectedRows ?? 0);
		}
		return out;
	}

	// Erasure requests ------------------------------------------------------------------------------------------------

	request(id: string): Promise<DsrRequestRow | undefined> {
		return this.#s.guard(() =>
			this.#s.db.selectFrom("dsr_requests").selectAll().where("id", "=", id).executeTakeFirst(),
		);
	}

	/**
	 * Inserts the erasure request unless one of the same person is pending, which it returns instead: the check
	 * and the insert under one lock (`dsr:<tenant>`, every process), so a burst of requests for one person makes
	 * one request, which the others join.
	 */
	insertUnlessPending(row: DsrRequestRow): Promise<DsrRequestRow | undefined> {
		return this.#s.transaction(`dsr:${row.tenant_id}`, async (trx) => {
			const pending = await this.pendingFor(row.tenant_id, row.person_key, row.pseudonym, trx);
			if (pending) return pending;
			await trx.insertInto("dsr_requests").values(row).execute();
			return undefined;
		});
	}

	/** The pending erasure of this person in this tenant, if one is under way (a repeat request resumes it). */
	pendingFor(
		tenantId: string,
		personKey: string | null,
		pseudonym: string | null,
		x: Kysely<Schema> = this.#s.db,
	): Promise<DsrRequestRow | undefined> {
		if (!personKey && !pseudonym) return Promise.resolve(undefined);
		return this.#s.guard(() =>
			x
				.selectFrom("dsr_requests")
				.selectAll()
				.where("tenant_id", "=", tenantId)
				.where("state", "=", "pending")
				.where((eb) =>
					eb.or([
						...(personKey ? [eb("person_key", "=", personKey)] : []),
						...(pseudonym ? [eb("pseudonym", "=", pseudonym)] : []),
					]),
				)
				.orderBy("created_at")
				.executeTakeFirst(),
		);
	}

	pending(limit = 100): Promise<DsrRequestRow[]> {
		return this.#s.guard(() =>
			this.#s.db
				.selectFrom("dsr_requests")
				.selectAll()
				.where("state", "=", "pending")
				.orderBy("created_at")
				.limit(limit)
				.execute(),
		);
	}

	/** Updates a request (on the caller's transaction, or on its own). */
	async updateRequest(
		id: string,
		set: Partial<Pick<DsrRequestRow, "state" | "person_key" | "pseudonym" | "steps" | "last_error" | "updated_at">>,
		x?: Kysely<Schema>,
	): Promise<void> {
		const run = (db: Kysely<Schema>) => db.updateTable("dsr_requests").set(set).where("id", "=", id).execute();
		if (x) await run(x);
		else await this.#s.guard(() => run(this.#s.db));
	}
}

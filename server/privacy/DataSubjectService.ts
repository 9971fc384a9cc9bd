import { randomBytes, randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import type { EndpointPolicy } from "../../contracts/endpointGuard.js";
import type { AuditEvent, EventLog, EventType } from "../audit/EventLog.js";
import { ConflictError, NotFoundError, StoreUnavailableError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { StorageTargetStore } from "../storage/StorageTargetStore.js";
import {
	DataSubjectRepository,
	type DsrRequestRow,
	type HeldRows,
	type PersonRef,
} from "../store/DataSubjectRepository.js";
import { RetentionRepository } from "../store/RetentionRepository.js";
import type { Schema } from "../store/Schema.js";
import type { Store } from "../store/Store.js";
import { DataSubjectBucket } from "./DataSubjectBucket.js";
import {
	type DsrExport,
	type DsrPerson,
	type DsrRequester,
	type ErasureSteps,
	type ErasureView,
	EXPORT_KIND,
	EXPORT_VERSION,
	type ExportedEntry,
} from "./DataSubjectTypes.js";

export interface DataSubjectServiceOptions {
	store: Store;
	events: EventLog;
	/** Undefined: no master key, so no tenant has a bucket (the bucket parts answer `no_storage_target`). */
	targets: StorageTargetStore | undefined;
	endpointPolicy: EndpointPolicy;
	log: Logger;
	/** This gateway process's ID (CONSENTRY_GATEWAY_ID): names the holder of the erasures it runs. */
	gatewayId?: string;
}

/** Audit entries an access or export lists at most. */
const MAX_ENTRIES = 100_000;
/** How long the process running an erasure's steps holds it (`job_leases`, renewed after each bucket session). */
const RUN_LEASE_MS = 60_000;
/** How long a request for an erasure another process is running waits for its outcome (then: 202 pending). */
const RUN_WAIT_MS = 20_000;

/** A summary of an export: what an access request answers (the export has every row and entry). */
export interface AccessView {
	kind: "consentry.dsr.access";
	version: 1;
	requestId: string;
	tenant: string;
	person: DsrExport["person"];
	held: boolean;
	counts: Record<string, number>;
	meetings: string[];
	bucket: DsrExport["bucket"];
}

/**
 * Data-subject requests (issue #14; docs/privacy.md, "Data-subject requests"): access, export and erasure of one
 * person of a tenant, asked by the tenant's admin or by the operator. Every request lands in the tenant's chain
 * (`dsr.*` for the admin, `operator.action` for the operator) naming who asked, what and the outcome, never the
 * person. An erasure is a `dsr_requests` row with steps — the store (every table and the pseudonym secret, one
 * transaction), then optionally the customer's bucket, one capture session at a time — resumed by a retry or at
 * the next start until done.
 */
export class DataSubjectService {
	readonly #repo: DataSubjectRepository;
	readonly #store: Store;
	readonly #leases: RetentionRepository;
	readonly #holder: string;
	readonly #gatewayId: string;
	readonly #events: EventLog;
	readonly #targets: StorageTargetStore | undefined;
	readonly #policy: EndpointPolicy;
	readonly #log: Logger;
	readonly #running = new Map<string, Promise<void>>();

	private constructor(o: DataSubjectServiceOptions) {
		this.#repo = new DataSubjectRepository(o.store);
		this.#store = o.store;
		this.#leases = new RetentionRepository(o.store);
		this.#gatewayId = o.gatewayId ?? "gateway";
		this.#holder = `${this.#gatewayId}:${process.pid}:${randomUUID().slice(0, 8)}`;
		this.#events = o.events;
		this.#targets = o.targets;
		this.#policy = o.endpointPolicy;
		this.#log = o.log.child({ component: "DataSubjects" });
	}

	static async create(o: DataSubjectServiceOptions): Promise<DataSubjectService> {
		return new DataSubjectService(o);
	}

	/** Finishes the erasures a previous run left pending (a crash, an unreachable bucket). */
	async resumePending(): Promise<number> {
		// The erasures this gateway's previous run (killed mid-way) was running are free again at once.
		await this.#leases.releaseHeldBy("dsr:", `${this.#gatewayId}:`);
		const rows = await this.#repo.pending();
		for (const r of rows) {
			// (One another process runs now is left to it: no wait at start-up.)
			await this.#run(r.id, undefined, false).catch(() => undefined);
			const after = await this.#repo.request(r.id);
			// In the chain too: the request's outcome now (no actor: nobody asked again).
			if (after)
				await this.#events.append("dsr.erasure", {
					tenantId: after.tenant_id,
					data: {
						requestId: after.id,
						deleteObjects: after.delete_objects === 1 || (after.delete_objects as unknown) === "1",
						outcome: after.state,
						resumed: "start-up",
					},
				});
		}
		if (rows.length) this.#log.info({ requests: rows.length }, "resumed pending erasure requests");
		return rows.length;
	}

	// Access and export -----------------------------------------------------------------------------------------------

	async export(tenantId: string, who: DsrPerson, by: DsrRequester, reason?: string): Promise<DsrExport> {
		const doc = await this.#build(tenantId, who);
		await this.#audit(tenantId, by, "dsr.export", reason, { requestId: newId(), outcome: outcome(doc) });
		return doc;
	}

	async access(tenantId: string, who: DsrPerson, by: DsrRequester, reason?: string): Promise<AccessView> {
		const doc = await this.#build(tenantId, who);
		const requestId = newId();
		await this.#audit(tenantId, by, "dsr.access", reason, { requestId, outcome: outcome(doc) });
		const counts: Record<string, number> = {};
		for (const [k, v] of Object.entries(doc.store)) counts[k] = (v as unknown[]).length;
		counts.auditEntries = doc.audit.entries.length;
		counts.bucketObjects = doc.bucket.objects.length;
		return {
			kind: "consentry.dsr.access",
			version: 1,
			requestId,
			tenant: tenantId,
			person: doc.person,
			held: doc.held,
			counts,
			meetings: doc.meetings,
			bucket: doc.bucket,
		};
	}

	async #resolve(tenantId: string, who: DsrPerson, x?: Kysely<Schema>): Promise<PersonRef | null> {
		if ("subject" in who) {
			const personKey = `${tenantId}:${who.subject}`;
			return {
				tenantId,
				subject: who.subject,
				personKey,
				pseudonym: await this.#events.pseudonym(tenantId, personKey, x),
			};
		}
		const personKey = await this.#events.resolvePseudonym(tenantId, who.pseudonym, x);
		if (!personKey) return null;
		const subject = personKey.startsWith(`${tenantId}:`) ? personKey.slice(tenantId.length + 1) : null;
		return { tenantId, subject, personKey, pseudonym: who.pseudonym };
	}

	/**
	 * The export: what the store holds, read on one snapshot (an erasure committing meanwhile is either wholly
	 * before it or wholly after), then the bucket's pointers. If the person was erased while the bucket was listed
	 * (its bucket step may have begun), the export is made again, after the erasure: never half-erased.
	 */
	async #build(tenantId: string, who: DsrPerson): Promise<DsrExport> {
		for (let attempt = 0; ; attempt++) {
			const doc = await this.#buildOnce(tenantId, who);
			const psn = doc.person.pseudonym;
			if (attempt > 0 || !psn || doc.bucket.state === "not_applicable") return doc;
			const still =
				"subject" in who
					? (await this.#events.pseudonym(tenantId, `${tenantId}:${who.subject}`)) === psn
					: (await this.#events.resolvePseudonym(tenantId, psn)) !== null;
			if (still) return doc;
		}
	}

	async #buildOnce(tenantId: string, who: DsrPerson): Promise<DsrExport> {
		await this.#events.settled(); // (what this process appended first: the snapshot must not wait for it)
		const { p, store, list } = await this.#store.snapshot(async (x) => {
			const p = await this.#resolve(tenantId, who, x);
			return {
				p,
				store: p ? await this.#repo.held(p, x) : emptyHeld(),
				list: p?.pseudonym ? await this.#events.listForPerson(tenantId, p.personKey, MAX_ENTRIES, x) : [],
			};
		});
		const entries: ExportedEntry[] = [];
		let truncated = false;
		if (p?.pseudonym) {
			truncated = list.length >= MAX_ENTRIES;
			for (const e of list) entries.push(ownPart(e, p.pseudonym));
		}
		const meetings = [
			...new Set([
				...store.meetingsHosted.map((m) => m.id),
				...entries.map((e) => e.meetingId).filter((m): m is string => m !== null),
			]),
		];
		const bucket = await this.#pointers(tenantId, meetings, p?.pseudonym ?? null);
		const held =
			Object.values(store).some((v) => (v as unknown[]).length > 0) || entries.length > 0 || bucket.objects.length > 0;
		return {
			kind: EXPORT_KIND,
			version: EXPORT_VERSION,
			tenant: tenantId,
			generatedAt: new Date().toISOString(),
			person: {
				subject: "subject" in who ? who.subject : (p?.subject ?? null),
				pseudonym: "pseudonym" in who ? who.pseudonym : (p?.pseudonym ?? null),
				guest: p?.personKey.startsWith("guest:") ?? false,
			},
			held,
			store,
			audit: { entries, truncated },
			meetings,
			bucket,
		};
	}

	async #pointers(tenantId: string, meetings: string[], psn: string | null): Promise<DsrExport["bucket"]> {
		if (!psn || meetings.length === 0) return { state: "not_applicable", bucket: null, objects: [] };
		const target = await this.#targets?.get(tenantId);
		if (!target) return { state: "no_storage_target", bucket: null, objects: [] };
		const b = new DataSubjectBucket(target, this.#policy);
		try {
			return { state: "listed", bucket: target.bucket, objects: await b.locate(meetings, psn) };
		} catch (err) {
			return { state: "unreachable", bucket: target.bucket, error: errorText(err), objects: [] };
		} finally {
			b.destroy();
		}
	}

	// Erasure ---------------------------------------------------------------------------------------------------------

	/**
	 * Erases the person: refused (409 `person_in_live_meeting`) while a meeting they host or appear in is live;
	 * resumes their pending erasure if one exists; else a new request, run to its end or to the step that fails.
	 */
	async erase(
		tenantId: string,
		body: { person: DsrPerson; deleteObjects: boolean; reason?: string | undefined },
		by: DsrRequester,
	): Promise<ErasureView> {
		const p = await this.#resolve(tenantId, body.person);
		const pseudonym = p?.pseudonym ?? ("pseudonym" in body.person ? body.person.pseudonym : null);
		const pending = await this.#repo.pendingFor(tenantId, p?.personKey ?? null, pseudonym);
		if (pending) return this.#runAndAudit(tenantId, pending.id, by, body.reason);
		const meetings = p ? await this.#meetingsOf(p) : [];
		const live = await this.#liveAmong(tenantId, meetings);
		if (live)
			throw new ConflictError(
				"person_in_live_meeting",
				"This person is in (or hosts) a meeting that is live now: end it first, then erase them.",
				{ meetingId: live },
			);
		const now = new Date().toISOString();
		const id = newId();
		const steps: ErasureSteps = {
			store: false,
			bucket: body.deleteObjects ? "pending" : "not_asked",
			sessionsDone: [],
			meetings,
		};
		// One pending erasure per person: a request made meanwhile (a burst, another gateway process) is joined.
		const joined = await this.#repo.insertUnlessPending({
			id,
			tenant_id: tenantId,
			kind: "erase",
			state: "pending",
			// Unknown person: nothing to erase, yet the same request and answer (no membership revealed).
			person_key: p?.personKey ?? null,
			pseudonym,
			delete_objects: body.deleteObjects ? 1 : 0,
			steps: JSON.stringify(steps),
			requested_by: by.role,
			last_error: null,
			created_at: now,
			updated_at: now,
		});
		return this.#runAndAudit(tenantId, joined?.id ?? id, by, body.reason);
	}

	/** The request's state (404 for another tenant's, or an unknown ID). */
	async status(tenantId: string, requestId: string): Promise<ErasureView> {
		const r = await this.#repo.request(requestId);
		if (!r || r.tenant_id !== tenantId) throw new NotFoundError("dsr_request_not_found", "No such erasure request.");
		return view(r);
	}

	/** Runs the request's remaining steps again (idempotent: a finished one stays finished). */
	async retry(tenantId: string, requestId: string, by: DsrRequester, reason?: string): Promise<ErasureView> {
		await this.status(tenantId, requestId);
		return this.#runAndAudit(tenantId, requestId, by, reason);
	}

	async #runAndAudit(tenantId: string, id: string, by: DsrRequester, reason?: string): Promise<ErasureView> {
		await this.#run(id, by);
		const v = view((await this.#repo.request(id)) as DsrRequestRow);
		await this.#audit(tenantId, by, "dsr.erasure", reason, {
			requestId: id,
			deleteObjects: v.deleteObjects,
			outcome: v.state,
			...(v.error ? { error: v.error.split(":")[0] as string } : {}),
		});
		return v;
	}

	/**
	 * One run of a request's steps at a time: in this process (a retry while it runs waits for it), and across the
	 * processes sharing the store (a lease on the request, `job_leases`): a request another process is running is
	 * waited for (`wait`, up to {@link RUN_WAIT_MS}; then it answers as it stands, pending).
	 */
	#run(id: string, by?: DsrRequester, wait = true): Promise<void> {
		const running = this.#running.get(id);
		if (running) return running;
		const p = this.#leased(id, by, wait).finally(() => this.#running.delete(id));
		this.#running.set(id, p);
		return p;
	}

	async #leased(id: string, by: DsrRequester | undefined, wait: boolean): Promise<void> {
		const name = `dsr:${id}`;
		const renew = () => this.#leases.lease(name, this.#holder, RUN_LEASE_MS, Date.now());
		const deadline = Date.now() + RUN_WAIT_MS;
		while (!(await renew())) {
			const row = await this.#repo.request(id);
			if (!row || row.state === "done" || !wait || Date.now() > deadline) return;
			await new Promise((r) => setTimeout(r, 100));
		}
		try {
			await this.#steps(id, by, renew);
		} finally {
			await this.#leases.release(name, this.#holder).catch(() => undefined);
		}
	}

	async #steps(id: string, by: DsrRequester | undefined, renew: () => Promise<boolean>): Promise<void> {
		const row = await this.#repo.request(id);
		if (!row || row.state === "done") return;
		const steps = JSON.parse(row.steps) as ErasureSteps;
		const tenantId = row.tenant_id;
		const actor = by?.role === "admin" ? `${by.tenantId}:${by.subject}` : by ? `operator:${by.subject}` : undefined;
		let psn = row.pseudonym;
		if (!steps.store) {
			const personKey = row.person_key;
			if (personKey) {
				const subject = personKey.startsWith(`${tenantId}:`) ? personKey.slice(tenantId.length + 1) : null;
				await this.#events.erasePerson(
					tenantId,
					personKey,
					{ ...(actor ? { actor } : {}), data: { requestId: id } },
					{
						locks: [`dsr:${tenantId}`],
						run: async (trx, found) => {
							psn = found ?? psn;
							steps.rows = await this.#repo.erase(
								trx,
								{ tenantId, subject, personKey, pseudonym: psn },
								`erased:${id}`,
							);
							steps.store = true;
							await this.#repo.updateRequest(
								id,
								{
									person_key: null,
									pseudonym: psn,
									steps: JSON.stringify(steps),
									updated_at: new Date().toISOString(),
								},
								trx,
							);
						},
					},
				);
			} else {
				steps.store = true;
				await this.#save(id, steps, null);
			}
		}
		if (steps.bucket === "pending") {
			const target = psn ? await this.#targets?.get(tenantId) : undefined;
			if (psn && target) {
				const b = new DataSubjectBucket(target, this.#policy);
				try {
					for (const m of steps.meetings) {
						for (const f of await b.sessions(m)) {
							const key = `${m}/${f.sessionId}`;
							if (steps.sessionsDone.includes(key)) continue;
							const r = await b.eraseSession(f, psn, {
								requestId: id,
								tenantId,
								events: this.#events,
								...(actor ? { actor } : {}),
							});
							steps.sessionsDone.push(key);
							steps.objectsRemoved = (steps.objectsRemoved ?? 0) + r.removed;
							steps.objectsRewritten = (steps.objectsRewritten ?? 0) + r.rewritten;
							await this.#save(id, steps, null);
							// Lost the lease (a stall past it): another process goes on from here.
							if (!(await renew())) return;
						}
					}
				} catch (err) {
					// The store, not the bucket: 503 store_unavailable to the caller; the request stays pending with the
					// sessions finished so far, and the next request, retry or start-up goes on (each step is idempotent).
					if (err instanceof StoreUnavailableError) throw err;
					const error = `bucket_unreachable: ${errorText(err)}`;
					this.#log.warn({ requestId: id, err: errorText(err) }, "erasure left pending: the bucket step failed");
					await this.#save(id, steps, error);
					return;
				} finally {
					b.destroy();
				}
			}
			steps.bucket = "done";
		}
		await this.#repo.updateRequest(id, {
			state: "done",
			steps: JSON.stringify(steps),
			last_error: null,
			updated_at: new Date().toISOString(),
		});
	}

	#save(id: string, steps: ErasureSteps, error: string | null): Promise<void> {
		return this.#repo.updateRequest(id, {
			steps: JSON.stringify(steps),
			last_error: error,
			updated_at: new Date().toISOString(),
		});
	}

	async #meetingsOf(p: PersonRef): Promise<string[]> {
		const held = await this.#repo.held(p);
		const entries = p.pseudonym ? await this.#events.listForPerson(p.tenantId, p.personKey, MAX_ENTRIES) : [];
		return [
			...new Set([
				...held.meetingsHosted.map((m) => m.id),
				...held.removedFrom.map((m) => m.meeting_id),
				...entries.map((e) => e.meetingId).filter((m): m is string => m !== null),
			]),
		];
	}

	#liveAmong(tenantId: string, meetings: string[]): Promise<string | null> {
		return this.#repo.liveAmong(tenantId, meetings);
	}

	async #audit(
		tenantId: string,
		by: DsrRequester,
		type: Extract<EventType, "dsr.access" | "dsr.export" | "dsr.erasure">,
		reason: string | undefined,
		data: Record<string, unknown>,
	): Promise<void> {
		if (by.role === "admin") {
			await this.#events.append(type, {
				tenantId,
				actor: `${by.tenantId}:${by.subject}`,
				data: { ...data, ...(reason ? { reason } : {}) },
			});
			return;
		}
		await this.#events.append("operator.action", {
			tenantId,
			data: { operator: by.subject, action: type, reason: reason ?? "", ...data },
		});
		this.#log.info({ security: true, operator: by.subject, action: type, tenantId }, "operator action");
	}
}

function newId(): string {
	return `dsr_${randomBytes(16).toString("hex")}`;
}

function outcome(doc: DsrExport): string {
	if (doc.bucket.state === "unreachable")
		return doc.held ? "held_bucket_unreachable" : "nothing_held_bucket_unreachable";
	return doc.held ? "held" : "nothing_held";
}

function errorText(err: unknown): string {
	const e = err as { name?: string; code?: string; message?: string };
	return String(e?.code ?? e?.name ?? "error") + (e?.message ? ` ${e.message}` : "");
}

function view(r: DsrRequestRow): ErasureView {
	return {
		requestId: r.id,
		state: r.state,
		deleteObjects: r.delete_objects === 1 || (r.delete_objects as unknown) === "1",
		steps: JSON.parse(r.steps) as ErasureSteps,
		error: r.last_error,
		createdAt: r.created_at,
		updatedAt: r.updated_at,
	};
}

function emptyHeld(): HeldRows {
	return {
		meetingsHosted: [],
		hostSeats: [],
		removedFrom: [],
		blocks: [],
		tokenCutoffs: [],
		operatorChanges: [],
		warnings: [],
		warningAcks: [],
		transcriptLinks: [],
		webhookDeliveries: [],
	};
}

/**
 * An audit entry as the person's access export holds it: whole, except that an entry naming many people at once (a
 * `notices.sent`: everyone notified at a session's start; a `notices.acknowledged`: answers committed together)
 * keeps only this person's own line, and says how many it left out. Others' pseudonyms and connections are not the
 * person's data.
 */
function ownPart(e: AuditEvent, pseudonym: string): ExportedEntry {
	const entry: ExportedEntry = {
		seq: e.seq,
		at: e.at,
		meetingId: e.meetingId,
		type: e.type,
		actor: e.actor,
		data: e.data,
		hash: e.hash,
	};
	const field = e.type === "notices.sent" ? "recipients" : e.type === "notices.acknowledged" ? "answers" : undefined;
	const all = field ? e.data[field] : undefined;
	if (!field || !Array.isArray(all)) return entry;
	const own = (all as { person?: unknown }[]).filter((r) => r?.person === pseudonym);
	return { ...entry, data: { ...e.data, [field]: own }, omitted: { [field]: all.length - own.length } };
}

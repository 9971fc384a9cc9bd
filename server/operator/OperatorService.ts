import { randomUUID } from "node:crypto";
import type { z } from "zod";
import type { EventLog } from "../audit/EventLog.js";
import type { Identity, Tenant, TenantKey } from "../auth/TenantTypes.js";
import type { CaptureService } from "../compliance/CaptureService.js";
import { ConflictError, NotFoundError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { MeetingHub } from "../meetings/MeetingHub.js";
import type { MeetingStore } from "../meetings/MeetingStore.js";
import { parseMeetingId } from "../meetings/meetingId.js";
import type { HoldView, SecurityHold } from "../privacy/SecurityHold.js";
import type { RecordingService } from "../recording/RecordingService.js";
import type { RetentionService } from "../retention/RetentionService.js";
import type { TranscriptLinks } from "../transcription/TranscriptLinks.js";
import type {
	CreateTenantSchema,
	OperatorIdentity,
	OperatorMeeting,
	RevocationSchema,
	UpdateTenantSchema,
	WarningSchema,
} from "./OperatorTypes.js";
import type { Change, TenantDirectory } from "./TenantDirectory.js";

export interface OperatorServiceOptions {
	directory: TenantDirectory;
	hub: MeetingHub;
	store: MeetingStore;
	events: EventLog;
	capture: CaptureService;
	/** Marks removed chat messages in running recordings' chat logs. */
	recording?: RecordingService;
	/** Transcript links the operator may revoke. */
	links?: TranscriptLinks;
	/** Issue 14: the security hold on log files, and retention (a terminated tenant's wipe). */
	hold?: SecurityHold;
	retention?: RetentionService;
	log: Logger;
}

/** A tenant as the operator API shows it: never a key's secret. */
export interface TenantView {
	id: string;
	name: string;
	state: "active" | "suspended" | "terminated";
	reason: string | null;
	keys: { kid?: string; alg: TenantKey["alg"] }[];
	locale?: "en" | "fr";
	capture?: Tenant["capture"];
	retention?: Tenant["retention"];
}

/** The answer of every action: what it did (`changed: false`: it was so already, nothing was done twice). */
export interface ActionResult {
	changed: boolean;
	[k: string]: unknown;
}

const SUSPENDED_CAPTURE = "account_suspended";
const ENDED_CAPTURE = "operator_ended";

/**
 * The operator's powers (terms §2.2, §3, §4; docs/operator.md): tenants as live data, meetings listed, ended,
 * disabled; people and tokens cut off. Every action is idempotent, lands as an `operator.action` entry in the
 * affected tenant's hash chain (who, what, reason, when) and reaches every gateway process sharing the store
 * through the change feed (TenantDirectory), which each process applies to the people it holds.
 */
export class OperatorService {
	readonly #d: TenantDirectory;
	readonly #hub: MeetingHub;
	readonly #store: MeetingStore;
	readonly #events: EventLog;
	readonly #capture: CaptureService;
	readonly #recording: RecordingService | undefined;
	readonly #links: TranscriptLinks | undefined;
	readonly #hold: SecurityHold | undefined;
	readonly #retention: RetentionService | undefined;
	readonly #log: Logger;

	constructor(o: OperatorServiceOptions) {
		this.#d = o.directory;
		this.#hub = o.hub;
		this.#store = o.store;
		this.#events = o.events;
		this.#capture = o.capture;
		this.#recording = o.recording;
		this.#links = o.links;
		this.#hold = o.hold;
		this.#retention = o.retention;
		this.#log = o.log.child({ component: "Operator" });
		this.#d.on("change", (c) => {
			this.#apply(c).catch((err: unknown) => this.#log.error({ err, seq: c.seq }, "operator change not applied"));
		});
	}

	// Tenants --------------------------------------------------------------------------------------------------------

	async listTenants(): Promise<TenantView[]> {
		return this.#d.registry.list().map((t) => this.#view(t));
	}

	async tenant(id: string): Promise<TenantView> {
		return this.#view(this.#tenant(id));
	}

	async createTenant(op: OperatorIdentity, body: z.infer<typeof CreateTenantSchema>): Promise<TenantView> {
		const { reason, id, ...config } = body;
		const at = new Date().toISOString();
		const row = {
			id,
			config: JSON.stringify(config),
			state: "active" as const,
			reason: null,
			created_at: at,
			updated_at: at,
		};
		if (!(await this.#d.tenants.insert(row, true))) {
			throw new ConflictError("tenant_exists", `A tenant ${id} exists already.`);
		}
		await this.#audit(op, id, "tenant.created", reason ?? "created", {});
		await this.#d.publish("tenant", { tenantId: id });
		return this.tenant(id);
	}

	async updateTenant(op: OperatorIdentity, id: string, body: z.infer<typeof UpdateTenantSchema>): Promise<TenantView> {
		const current = this.#tenant(id);
		const { reason, ...patch } = body;
		const { id: _id, ...config } = { ...current, ...patch };
		await this.#d.tenants.updateConfig(id, JSON.stringify(config), new Date().toISOString());
		await this.#audit(op, id, "tenant.updated", reason, {
			fields: Object.keys(patch).sort(),
			...(patch.keys ? { kids: patch.keys.map((k) => k.kid ?? null) } : {}),
		});
		await this.#d.publish("tenant", { tenantId: id });
		return this.tenant(id);
	}

	/** Suspend (tokens refused, sessions out, meetings ended), reinstate, or terminate (final). */
	async setTenantState(
		op: OperatorIdentity,
		id: string,
		action: "suspend" | "reinstate" | "terminate",
		reason: string,
	): Promise<ActionResult & { tenant: TenantView }> {
		this.#tenant(id);
		const now = this.#d.registry.state(id).state;
		if (now === "terminated" && action !== "terminate") {
			throw new ConflictError("tenant_terminated", "This tenant was terminated; it can't be changed, only deleted.");
		}
		const state = action === "suspend" ? "suspended" : action === "reinstate" ? "active" : "terminated";
		const changed = await this.#d.tenants.setState(
			id,
			state,
			state === "active" ? null : reason,
			new Date().toISOString(),
		);
		if (changed) {
			await this.#audit(op, id, `tenant.${action}`, reason, {});
			if (state !== "active") await this.#endTenantMeetings(op, id, reason);
			await this.#d.publish("tenant", { tenantId: id }, { reason });
		}
		return { changed, tenant: await this.tenant(id) };
	}

	/** Removes the tenant: its meetings end, its tokens stop working; its audit chain stays (the customer's record). */
	async deleteTenant(op: OperatorIdentity, id: string, reason: string): Promise<ActionResult> {
		this.#tenant(id);
		await this.#audit(op, id, "tenant.deleted", reason, {});
		await this.#endTenantMeetings(op, id, reason);
		const changed = await this.#d.tenants.delete(id, reason, new Date().toISOString());
		await this.#d.publish("tenant", { tenantId: id }, { reason });
		return { changed };
	}

	/**
	 * Issue 14: wipes a terminated tenant (or finishes the wipe of a deleted one): every row of theirs in the store
	 * goes, their chain is cut to one `tenant.wiped` entry that keeps the operator's actions on the tenant, and the
	 * checkpoint of that cut (docs/privacy.md, "Retention"). Only a terminated tenant: 409 `tenant_not_terminated`.
	 */
	async wipeTenant(op: OperatorIdentity, id: string, reason: string): Promise<ActionResult & { entries: number }> {
		if (!this.#retention) throw new ConflictError("wipe_unavailable", "Retention is not running on this gateway.");
		const row = await this.#d.tenants.find(id);
		if (!row) throw new NotFoundError("tenant_not_found", `No tenant ${id}.`);
		if (row.state !== "terminated" && row.state !== "deleted") {
			throw new ConflictError(
				"tenant_not_terminated",
				"Only a terminated tenant can be wiped: terminate it first (its meetings end, its tokens stop).",
			);
		}
		await this.#endTenantMeetings(op, id, reason);
		const { entries } = await this.#retention.wipeTenant(id, { operator: op.subject, reason });
		this.#log.info({ security: true, operator: op.subject, action: "tenant.wiped", tenantId: id }, "operator action");
		await this.#d.publish("tenant", { tenantId: id }, { reason });
		return { changed: true, entries };
	}

	// Security hold (issue 14) ---------------------------------------------------------------------------------------

	async securityHold(): Promise<{ hold: HoldView | null; history: HoldView[] }> {
		const h = this.#requireHold();
		return { hold: await h.current(), history: await h.history() };
	}

	async setSecurityHold(op: OperatorIdentity, body: { reason: string; until: string }): Promise<HoldView> {
		const hold = await this.#requireHold().set(op.subject, body);
		this.#log.warn(
			{ security: true, operator: op.subject, action: "security_hold.set", until: hold.until },
			"operator action",
		);
		return hold;
	}

	async liftSecurityHold(op: OperatorIdentity, reason: string): Promise<ActionResult> {
		const r = await this.#requireHold().lift(op.subject, reason);
		if (r.changed)
			this.#log.warn({ security: true, operator: op.subject, action: "security_hold.lift" }, "operator action");
		return r;
	}

	#requireHold(): SecurityHold {
		if (!this.#hold) throw new ConflictError("hold_unavailable", "This gateway has no security hold.");
		return this.#hold;
	}

	// Meetings -------------------------------------------------------------------------------------------------------

	/** Live meetings across tenants (or one): metadata only. */
	async liveMeetings(tenantId?: string): Promise<OperatorMeeting[]> {
		if (tenantId !== undefined) this.#tenant(tenantId);
		const rows = await this.#d.changes.liveMeetings(tenantId);
		const here = new Map(this.#hub.localMeetings().map((m) => [m.meeting.id, m]));
		return Promise.all(
			rows.map(async (r) => ({
				id: r.id,
				tenantId: r.tenant_id,
				host: await this.#events.pseudonym(r.tenant_id, `${r.tenant_id}:${r.host_subject}`),
				startedAt: r.started_at,
				size: here.get(r.id)?.members ?? 0,
				capture: this.#captureState(r.id),
				disabled: (await this.#d.access.meetingBlock(r.id)) !== undefined,
			})),
		);
	}

	async meeting(id: string): Promise<OperatorMeeting & { state: string; lobby: number; locked: boolean }> {
		const m = await this.#meeting(id);
		const here = this.#hub.localMeetings().find((x) => x.meeting.id === m.id);
		return {
			id: m.id,
			tenantId: m.tenantId,
			host: await this.#events.pseudonym(m.tenantId, `${m.tenantId}:${m.hostSubject}`),
			startedAt: m.startedAt ?? null,
			size: here?.members ?? 0,
			lobby: here?.lobby ?? 0,
			capture: this.#captureState(m.id),
			disabled: (await this.#d.access.meetingBlock(m.id)) !== undefined,
			state: m.state,
			locked: m.locked,
		};
	}

	/** Ends it now: everyone sees "ended by the service operator" and the reason; recordings close saying why. */
	async endMeeting(op: OperatorIdentity, id: string, reason: string): Promise<ActionResult> {
		const m = await this.#meeting(id);
		const changed = m.state === "live";
		if (changed) {
			await this.#audit(op, m.tenantId, "meeting.end", reason, {}, m.id);
			await this.#hub.end(m.id, operatorKey(op), "operator", reason, ENDED_CAPTURE);
			await this.#d.publish("meeting_end", { tenantId: m.tenantId, meetingId: m.id }, { reason, operator: op.subject });
		}
		return { changed };
	}

	/** Disables the meeting ID (it can't start or be joined again; a live one ends), or re-enables it. */
	async setMeetingDisabled(op: OperatorIdentity, id: string, disabled: boolean, reason: string): Promise<ActionResult> {
		const m = await this.#meeting(id);
		const changed = disabled
			? await this.#d.access.blockMeeting({
					meeting_id: m.id,
					tenant_id: m.tenantId,
					reason,
					at: new Date().toISOString(),
				})
			: await this.#d.access.unblockMeeting(m.id);
		if (changed) await this.#audit(op, m.tenantId, disabled ? "meeting.disable" : "meeting.enable", reason, {}, m.id);
		if (disabled && m.state === "live") await this.endMeeting(op, m.id, reason);
		return { changed, disabled };
	}

	// People and tokens ----------------------------------------------------------------------------------------------

	/** Suspend (until reinstated) or terminate (final) a person: sessions out, tokens refused, their meetings ended. */
	async setSubjectState(
		op: OperatorIdentity,
		tenantId: string,
		subject: string,
		action: "suspend" | "reinstate" | "terminate",
		reason: string,
	): Promise<ActionResult & { state: "active" | "suspended" | "terminated" }> {
		this.#tenant(tenantId);
		const block = await this.#d.access.subjectBlock(tenantId, subject);
		if (block?.state === "terminated" && action !== "terminate") {
			throw new ConflictError("account_terminated", "This person's account was terminated; it can't be reinstated.");
		}
		const at = new Date().toISOString();
		const changed =
			action === "reinstate"
				? await this.#d.access.unblockSubject(tenantId, subject)
				: await this.#d.access.blockSubject({
						tenant_id: tenantId,
						subject,
						state: action === "suspend" ? "suspended" : "terminated",
						reason,
						at,
					});
		if (changed) {
			await this.#audit(op, tenantId, `user.${action}`, reason, { person: `${tenantId}:${subject}` });
			if (action !== "reinstate") {
				for (const id of await this.#d.changes.liveHostedBy(tenantId, subject)) {
					await this.#hub.end(id, operatorKey(op), "operator", reason, SUSPENDED_CAPTURE);
				}
			}
			await this.#d.publish("subject", { tenantId, subject }, { reason });
		}
		const state = action === "reinstate" ? "active" : action === "suspend" ? "suspended" : "terminated";
		return { changed, state: block?.state === "terminated" ? "terminated" : state };
	}

	/** Revokes one token (jti) or every token of a subject issued before a time; their live sessions go at once. */
	async revoke(op: OperatorIdentity, tenantId: string, body: z.infer<typeof RevocationSchema>): Promise<ActionResult> {
		this.#tenant(tenantId);
		const at = new Date().toISOString();
		let changed: boolean;
		if ("jti" in body) {
			const expires = (body.exp ?? Math.floor(Date.now() / 1000) + 24 * 3600 + 60) * 1000;
			changed = await this.#d.access.revokeToken(tenantId, body.jti, expires, at);
			if (changed) await this.#audit(op, tenantId, "token.revoke", body.reason, { jti: body.jti });
		} else {
			const before = body.issuedBefore ?? Math.ceil(Date.now() / 1000);
			changed = await this.#d.access.setCutoff(tenantId, body.subject, before, at);
			if (changed) {
				await this.#audit(op, tenantId, "token.revoke_before", body.reason, {
					person: `${tenantId}:${body.subject}`,
					issuedBefore: before,
				});
			}
		}
		if (changed) await this.#d.publish("revocation", { tenantId }, { reason: body.reason });
		return { changed };
	}

	// Warnings and content -----------------------------------------------------------------------------------------

	/** Warns a person (or everyone of the tenant): shown to their live sessions now, at their next connection otherwise. */
	async warn(
		op: OperatorIdentity,
		tenantId: string,
		body: z.infer<typeof WarningSchema>,
	): Promise<ActionResult & { id: string }> {
		this.#tenant(tenantId);
		const id = randomUUID();
		const at = new Date().toISOString();
		await this.#d.warnings.insert({
			id,
			tenant_id: tenantId,
			subject: body.subject ?? null,
			message: body.message,
			created_at: at,
		});
		await this.#audit(op, tenantId, "warning.issued", body.reason, {
			warningId: id,
			message: body.message,
			...(body.subject ? { person: `${tenantId}:${body.subject}` } : { everyone: true }),
		});
		await this.#d.publish(
			"warning",
			{ tenantId, ...(body.subject ? { subject: body.subject } : {}) },
			{ warningId: id, message: body.message, at },
		);
		return { changed: true, id };
	}

	/** The warnings a person has not acknowledged. */
	async pendingWarnings(who: Identity): Promise<{ id: string; message: string; at: string }[]> {
		return (await this.#d.warnings.pendingFor(who.tenantId, who.subject)).map((w) => ({
			id: w.id,
			message: w.message,
			at: w.created_at,
		}));
	}

	/** The person acknowledged: recorded (once) in the store and in their tenant's chain. */
	async acknowledgeWarning(who: Identity, warningId: string): Promise<boolean> {
		const w = await this.#d.warnings.find(warningId);
		if (!w || w.tenant_id !== who.tenantId || (w.subject !== null && w.subject !== who.subject)) {
			throw new NotFoundError("warning_not_found", "There is no such warning for you.");
		}
		const person = `${who.tenantId}:${who.subject}`;
		const changed = await this.#d.warnings.acknowledge(warningId, person, new Date().toISOString());
		if (changed) {
			await this.#events.append("operator.action", {
				tenantId: who.tenantId,
				actor: person,
				data: { action: "warning.acknowledged", warningId, person },
			});
		}
		return changed;
	}

	/** Removes a chat message: off every screen, marked removed in the recording's chat log from now on. */
	async removeChat(op: OperatorIdentity, meetingId: string, messageId: string, reason: string): Promise<ActionResult> {
		const m = await this.#meeting(meetingId);
		await this.#audit(op, m.tenantId, "chat.remove", reason, { messageId }, m.id);
		await this.#d.publish("chat_remove", { tenantId: m.tenantId, meetingId: m.id }, { messageId, reason });
		return { changed: true };
	}

	/** Stops every screen share of a meeting, wherever it is held. */
	async stopShare(op: OperatorIdentity, meetingId: string, reason: string): Promise<ActionResult> {
		const m = await this.#meeting(meetingId);
		await this.#audit(op, m.tenantId, "share.stop", reason, {}, m.id);
		await this.#d.publish("share_stop", { tenantId: m.tenantId, meetingId: m.id }, { reason });
		return { changed: true };
	}

	/** Revokes a transcript link (`/t/{id}`): it opens nothing from now on. */
	async revokeTranscriptLink(op: OperatorIdentity, linkId: string, reason: string): Promise<ActionResult> {
		const link = await this.#links?.get(linkId);
		if (!link) throw new NotFoundError("link_not_found", "No transcript link has this ID.");
		const changed = (await this.#links?.revoke(linkId)) ?? false;
		if (changed) await this.#audit(op, link.tenantId, "transcript_link.revoke", reason, { linkId }, link.meetingId);
		return { changed };
	}

	/** The operator's actions on one tenant, from its own audit chain (what the customer's admin sees). */
	async actionsOn(tenantId: string, limit = 1000): Promise<unknown[]> {
		return (await this.#events.list({ tenantId, type: "operator.action", limit })).map((e) => ({
			seq: e.seq,
			at: e.at,
			meetingId: e.meetingId,
			...e.data,
			hash: e.hash,
		}));
	}

	// In every process: apply a change from the feed to the people held here ----------------------------------------

	async #apply(c: Change): Promise<void> {
		const reason = typeof c.data.reason === "string" ? c.data.reason : undefined;
		const actor = typeof c.data.operator === "string" ? `operator:${c.data.operator}` : "operator";
		if (c.kind === "meeting_end" && c.meetingId) {
			await this.#hub.end(c.meetingId, actor, "operator", reason, ENDED_CAPTURE);
			return;
		}
		if (c.kind === "chat_remove" && c.meetingId && typeof c.data.messageId === "string") {
			this.#hub.removeChat(c.meetingId, c.data.messageId);
			this.#recording?.removeChat(c.meetingId, c.data.messageId, reason ?? "removed by the service operator");
			return;
		}
		if (c.kind === "share_stop" && c.meetingId) {
			this.#hub.stopScreenShares(c.meetingId);
			return;
		}
		if (!c.tenantId) return;
		const tenantId = c.tenantId;
		if (c.kind === "warning" && typeof c.data.warningId === "string") {
			const w = { id: c.data.warningId, message: String(c.data.message ?? ""), at: String(c.data.at ?? "") };
			this.#hub.notifyWhere(
				(id) => id.tenantId === tenantId && id.role !== "guest" && (c.subject === null || id.subject === c.subject),
				"operatorWarning",
				w,
			);
			return;
		}
		if (c.kind === "tenant") {
			const active = this.#d.registry.has(tenantId) && this.#d.registry.state(tenantId).state === "active";
			if (active) return;
			for (const { meeting } of this.#hub.localMeetings()) {
				if (meeting.tenantId === tenantId)
					await this.#hub.end(meeting.id, actor, "operator", reason, SUSPENDED_CAPTURE);
			}
			this.#hub.ejectWhere((id) => id.tenantId === tenantId && id.role !== "guest", "account_suspended", reason);
			return;
		}
		if (c.kind === "subject" && c.subject) {
			const subject = c.subject;
			if (this.#d.cutOff({ tenantId, subject, role: "participant" }) === undefined) return; // reinstated
			for (const { meeting } of this.#hub.localMeetings()) {
				if (meeting.tenantId === tenantId && meeting.hostSubject === subject) {
					await this.#hub.end(meeting.id, actor, "operator", reason, SUSPENDED_CAPTURE);
				}
			}
			this.#hub.ejectWhere(
				(id) => id.tenantId === tenantId && id.subject === subject && id.role !== "guest",
				"account_suspended",
				reason,
			);
			return;
		}
		if (c.kind === "revocation") {
			this.#hub.ejectWhere(
				(id) => id.tenantId === tenantId && id.role !== "guest" && this.#d.cutOff(id) === "token_revoked",
				"token_revoked",
			);
		}
	}

	// ----------------------------------------------------------------------------------------------------------------

	async #endTenantMeetings(op: OperatorIdentity, tenantId: string, reason: string): Promise<void> {
		for (const r of await this.#d.changes.liveMeetings(tenantId)) {
			await this.#hub.end(r.id, operatorKey(op), "operator", reason, SUSPENDED_CAPTURE);
		}
	}

	#tenant(id: string): Tenant {
		if (!this.#d.registry.has(id)) throw new NotFoundError("tenant_not_found", `No tenant ${id}.`);
		return this.#d.registry.get(id);
	}

	async #meeting(id: string) {
		const canonical = parseMeetingId(id);
		const m = canonical ? await this.#store.find(canonical) : undefined;
		if (!m) throw new NotFoundError("meeting_not_found", "No meeting has this ID.");
		return m;
	}

	#captureState(meetingId: string): { recording: string; transcription: string } {
		const s = this.#capture.status(meetingId);
		return {
			recording: s.find((x) => x.kind === "recording")?.state ?? "off",
			transcription: s.find((x) => x.kind === "transcription")?.state ?? "off",
		};
	}

	#view(t: Tenant): TenantView {
		const s = this.#d.registry.state(t.id);
		return {
			id: t.id,
			name: t.name,
			state: s.state,
			reason: s.reason,
			keys: t.keys.map((k) => ({ ...(k.kid ? { kid: k.kid } : {}), alg: k.alg })),
			...(t.locale ? { locale: t.locale } : {}),
			...(t.capture ? { capture: t.capture } : {}),
			...(t.retention ? { retention: t.retention } : {}),
		};
	}

	/** One `operator.action` entry in the tenant's chain: who (the operator's name), what, why; the entry has when. */
	async #audit(
		op: OperatorIdentity,
		tenantId: string,
		action: string,
		reason: string,
		data: Record<string, unknown>,
		meetingId?: string,
	): Promise<void> {
		await this.#events.append("operator.action", {
			tenantId,
			...(meetingId ? { meetingId } : {}),
			data: { operator: op.subject, action, reason, ...data },
		});
		this.#log.info({ security: true, operator: op.subject, action, tenantId, meetingId }, "operator action");
	}
}

/** How the operator appears as the actor of the entries their action causes (meeting.ended…). */
function operatorKey(op: OperatorIdentity): string {
	return `operator:${op.subject}`;
}

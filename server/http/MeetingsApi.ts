import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { EventLog } from "../audit/EventLog.js";
import type { TenantRegistry } from "../auth/TenantRegistry.js";
import type { Identity } from "../auth/TenantTypes.js";
import type { TokenVerifier } from "../auth/TokenVerifier.js";
import { AuthenticationError, ForbiddenError, NotFoundError, ValidationError } from "../errors.js";
import type { MeetingHub } from "../meetings/MeetingHub.js";
import type { MeetingStore } from "../meetings/MeetingStore.js";
import {
	type Meeting,
	MeetingSettingsSchema,
	type MeetingView,
	ScheduleMeetingSchema,
} from "../meetings/MeetingTypes.js";
import { formatMeetingId, parseMeetingId } from "../meetings/meetingId.js";

export interface MeetingsApiOptions {
	store: MeetingStore;
	hub: MeetingHub;
	events: EventLog;
	verifier: TokenVerifier;
	/** Gives the public view the tenant's page language. */
	tenants?: TenantRegistry;
}

function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
	const r = schema.safeParse(value);
	if (!r.success) {
		throw new ValidationError(
			`invalid ${what}`,
			r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
		);
	}
	return r.data;
}

export const IdParams = z.object({ id: z.string().min(1).max(64) });

/**
 * The hosts' REST API: schedule, list, read, start and end meetings, and read a
 * meeting's events. Every call carries `Authorization: Bearer <host token>`; a
 * host only ever sees their own meetings. `GET /api/meetings/:id/public` is the
 * only unauthenticated route: what a join page needs to know.
 */
export function registerMeetingsApi(http: FastifyInstance, o: MeetingsApiOptions): void {
	const host = (req: FastifyRequest): Identity => {
		const h = req.headers.authorization;
		if (!h) throw new AuthenticationError("token_missing", "Send the host token as `Authorization: Bearer <token>`.");
		const m = /^Bearer\s+(\S+)$/i.exec(h);
		if (!m?.[1]) throw new AuthenticationError("token_malformed", "The Authorization header must be `Bearer <token>`.");
		const id = o.verifier.verify(m[1]);
		if (id.role !== "host") throw new ForbiddenError("host_only", "Only hosts can manage meetings.");
		return id;
	};
	const own = (req: FastifyRequest, who: Identity): Meeting => {
		const { id } = parse(IdParams, req.params, "meeting ID");
		const canonical = parseMeetingId(id);
		const m = canonical ? o.store.find(canonical) : undefined;
		// Someone else's meeting is "not found" too: IDs must not be probeable.
		if (!m || m.tenantId !== who.tenantId || m.hostSubject !== who.subject) {
			throw new NotFoundError("meeting_not_found", "You have no meeting with this ID.");
		}
		return m;
	};
	const view = (req: FastifyRequest, m: Meeting): MeetingView => {
		const origin = `${req.protocol}://${req.headers.host ?? req.hostname}`;
		return { ...m, joinCode: formatMeetingId(m.id), joinUrl: `${origin}/?m=${formatMeetingId(m.id)}` };
	};

	http.post("/api/meetings", async (req, reply) => {
		const who = host(req);
		const body = parse(ScheduleMeetingSchema, req.body ?? {}, "meeting");
		const m = o.store.create({
			tenantId: who.tenantId,
			hostSubject: who.subject,
			title: body.title,
			...(body.scheduledFor ? { scheduledFor: body.scheduledFor } : {}),
			...(body.passcode ? { passcode: body.passcode } : {}),
			settings: MeetingSettingsSchema.parse(body.settings),
		});
		o.events.append("meeting.scheduled", {
			tenantId: m.tenantId,
			meetingId: m.id,
			actor: `${who.tenantId}:${who.subject}`,
		});
		return reply.status(201).send(view(req, m));
	});

	http.get("/api/meetings", async (req) => {
		const who = host(req);
		return { meetings: o.store.listByHost(who.tenantId, who.subject).map((m) => view(req, m)) };
	});

	http.get("/api/meetings/:id", async (req) => view(req, own(req, host(req))));

	http.post("/api/meetings/:id/start", async (req) => {
		const who = host(req);
		const m = own(req, who);
		const wasLive = m.state === "live";
		const started = o.store.start(m.id); // 409 host_has_live_meeting, naming it
		if (!wasLive) {
			o.events.append("meeting.started", {
				tenantId: m.tenantId,
				meetingId: m.id,
				actor: `${who.tenantId}:${who.subject}`,
			});
		}
		return view(req, started);
	});

	http.post("/api/meetings/:id/end", async (req) => {
		const who = host(req);
		const m = own(req, who);
		o.hub.end(m.id, `${who.tenantId}:${who.subject}`);
		return view(req, o.store.get(m.id));
	});

	http.get("/api/meetings/:id/events", async (req) => {
		const who = host(req);
		const m = own(req, who);
		return { events: o.events.list({ tenantId: m.tenantId, meetingId: m.id }) };
	});

	http.get("/api/meetings/:id/public", async (req) => {
		const { id } = parse(IdParams, req.params, "meeting ID");
		const canonical = parseMeetingId(id);
		const m = canonical ? o.store.find(canonical) : undefined;
		if (!m) throw new NotFoundError("meeting_not_found", "No meeting has this ID.");
		const locale = o.tenants?.has(m.tenantId) ? o.tenants.get(m.tenantId).locale : undefined;
		return {
			joinCode: formatMeetingId(m.id),
			title: m.title,
			state: m.state,
			needsPasscode: m.hasPasscode,
			allowGuests: m.settings.allowGuests,
			lobby: m.settings.lobby,
			...(locale ? { locale } : {}),
		};
	});
}

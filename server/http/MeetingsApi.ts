import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { EventLog } from "../audit/EventLog.js";
import type { TenantRegistry } from "../auth/TenantRegistry.js";
import type { Identity } from "../auth/TenantTypes.js";
import type { TokenVerifier } from "../auth/TokenVerifier.js";
import type { Placement } from "../cluster/Placement.js";
import { ForbiddenError, NotFoundError } from "../errors.js";
import type { MeetingHub } from "../meetings/MeetingHub.js";
import type { MeetingStore } from "../meetings/MeetingStore.js";
import {
	type Meeting,
	MeetingSettingsSchema,
	type MeetingView,
	ScheduleMeetingSchema,
} from "../meetings/MeetingTypes.js";
import { formatMeetingId, parseMeetingId } from "../meetings/meetingId.js";
import { assertMeetingScope, assertUnscoped, bearerIdentity } from "./callers.js";
import { parse } from "./parseInput.js";
import type { RestLimiter } from "./RestLimiter.js";

export interface MeetingsApiOptions {
	/** The REST limits: costly requests take one from their caller's budget (docs/security.md, "REST API"). */
	limiter: RestLimiter;
	store: MeetingStore;
	hub: MeetingHub;
	events: EventLog;
	verifier: TokenVerifier;
	/** Gives the public view the tenant's page language. */
	tenants?: TenantRegistry;
	/** Meeting IDs the operator disabled can't start (`meeting_disabled`). */
	access?: { meetingBlock(meetingId: string): Promise<unknown> };
	/** Cluster (issue 12 placement): the public view names the node a live meeting lives on (the client goes there). */
	placement?: Placement;
	/** This node's public URL (cluster). */
	publicUrl?: string;
}

export const IdParams = z.object({ id: z.string().min(1).max(64) });

/**
 * The hosts' REST API: schedule, list, read, start and end meetings, and read a
 * meeting's events. Every call carries `Authorization: Bearer <host token>`; a
 * host only ever sees their own meetings, and a token limited to one meeting
 * (`meeting` claim) only that meeting (it can't create any). `GET /api/meetings/:id/public` is the
 * only unauthenticated route: what a join page needs to know.
 */
export function registerMeetingsApi(http: FastifyInstance, o: MeetingsApiOptions): void {
	const host = (req: FastifyRequest): Identity => {
		const id = bearerIdentity(req, o.verifier, "Send the host token as `Authorization: Bearer <token>`.");
		if (id.role !== "host") throw new ForbiddenError("host_only", "Only hosts can manage meetings.");
		return id;
	};
	const own = async (req: FastifyRequest, who: Identity): Promise<Meeting> => {
		const { id } = parse(IdParams, req.params, "meeting ID");
		const canonical = parseMeetingId(id);
		const m = canonical ? await o.store.find(canonical) : undefined;
		// Someone else's meeting is "not found" too: IDs must not be probeable.
		if (!m || m.tenantId !== who.tenantId || m.hostSubject !== who.subject) {
			throw new NotFoundError("meeting_not_found", "You have no meeting with this ID.");
		}
		assertMeetingScope(who, m); // a token for m1 is no key to m2, even the same host's
		return m;
	};
	const view = (req: FastifyRequest, m: Meeting): MeetingView => {
		const origin = `${req.protocol}://${req.headers.host ?? req.hostname}`;
		return { ...m, joinCode: formatMeetingId(m.id), joinUrl: `${origin}/?m=${formatMeetingId(m.id)}` };
	};

	http.post("/api/meetings", async (req, reply) => {
		const who = host(req);
		assertUnscoped(who, "create meetings");
		const body = parse(ScheduleMeetingSchema, req.body ?? {}, "meeting");
		await o.limiter.spend(req, who, "meetings");
		const m = await o.store.create({
			tenantId: who.tenantId,
			hostSubject: who.subject,
			title: body.title,
			...(body.scheduledFor ? { scheduledFor: body.scheduledFor } : {}),
			...(body.passcode ? { passcode: body.passcode } : {}),
			settings: MeetingSettingsSchema.parse(body.settings),
		});
		await o.events.append("meeting.scheduled", {
			tenantId: m.tenantId,
			meetingId: m.id,
			actor: `${who.tenantId}:${who.subject}`,
		});
		return reply.status(201).send(view(req, m));
	});

	http.get("/api/meetings", async (req) => {
		const who = host(req);
		// A token limited to one meeting lists that meeting only.
		const meetings = (await o.store.listByHost(who.tenantId, who.subject)).filter(
			(m) => who.meetingScope === undefined || m.id === who.meetingScope,
		);
		return { meetings: meetings.map((m) => view(req, m)) };
	});

	http.get("/api/meetings/:id", async (req) => view(req, await own(req, host(req))));

	http.post("/api/meetings/:id/start", async (req) => {
		const who = host(req);
		const m = await own(req, who);
		const wasLive = m.state === "live";
		if (!wasLive && (await o.access?.meetingBlock(m.id)) !== undefined) {
			throw new ForbiddenError("meeting_disabled", "The service operator disabled this meeting.");
		}
		if (!wasLive) await o.hub.assertMayStart(m.tenantId); // 409 tenant_limit_reached
		const started = await o.store.start(m.id); // 409 host_has_live_meeting, naming it
		if (!wasLive) {
			await o.events.append("meeting.started", {
				tenantId: m.tenantId,
				meetingId: m.id,
				actor: `${who.tenantId}:${who.subject}`,
			});
		}
		return view(req, started);
	});

	http.post("/api/meetings/:id/end", async (req) => {
		const who = host(req);
		const m = await own(req, who);
		await o.hub.end(m.id, `${who.tenantId}:${who.subject}`);
		return view(req, await o.store.get(m.id));
	});

	http.get("/api/meetings/:id/events", async (req) => {
		const who = host(req);
		const m = await own(req, who);
		return { events: await o.events.list({ tenantId: m.tenantId, meetingId: m.id }) };
	});

	// Guessing the passcode is limited (docs/security.md): the host sees the lockout here and lifts it.
	http.get("/api/meetings/:id/passcode-lockout", async (req) => o.hub.passcodeStatus((await own(req, host(req))).id));

	http.delete("/api/meetings/:id/passcode-lockout", async (req) => {
		const who = host(req);
		return o.hub.liftPasscodeLockout(await own(req, who), `${who.tenantId}:${who.subject}`);
	});

	http.get("/api/meetings/:id/public", async (req) => {
		const { id } = parse(IdParams, req.params, "meeting ID");
		const canonical = parseMeetingId(id);
		const [m, home] = canonical
			? await Promise.all([o.store.find(canonical), o.placement?.peek(canonical)])
			: [undefined, undefined];
		if (!m) throw new NotFoundError("meeting_not_found", "No meeting has this ID.");
		const tenant = o.tenants?.has(m.tenantId) ? o.tenants.get(m.tenantId) : undefined;
		const locale = tenant?.locale;
		const privacyNoticeUrl = tenant?.capture?.privacyNoticeUrl;
		return {
			joinCode: formatMeetingId(m.id),
			title: m.title,
			state: m.state,
			needsPasscode: m.hasPasscode,
			allowGuests: m.settings.allowGuests,
			lobby: m.settings.lobby,
			...(locale ? { locale } : {}),
			...(privacyNoticeUrl ? { privacyNoticeUrl } : {}),
			// Where its signaling goes: the client connects there first instead of being redirected after a join.
			...(home && m.state === "live" ? { node: { id: home.nodeId, url: home.local ? o.publicUrl : home.url } } : {}),
		};
	});
}

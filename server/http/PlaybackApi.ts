import type { FastifyInstance, FastifyRequest } from "fastify";
import type { EventLog } from "../audit/EventLog.js";
import type { Identity } from "../auth/TenantTypes.js";
import type { TokenVerifier } from "../auth/TokenVerifier.js";
import { ConsentryError, ForbiddenError, NotFoundError, ValidationError } from "../errors.js";
import type { MeetingStore } from "../meetings/MeetingStore.js";
import type { Playback } from "../recording/Playback.js";
import { type PlaybackSession, SessionParams } from "../recording/PlaybackTypes.js";
import { assertMeetingScope, bearerIdentity } from "./callers.js";
import { IdParams } from "./MeetingsApi.js";
import { widenedCsp } from "./securityHeaders.js";

export interface PlaybackApiOptions {
	playback: Playback;
	store: MeetingStore;
	events: EventLog;
	verifier: TokenVerifier;
	/** The tenants whose sessions `/r/{id}` may name (for the page's media origin). */
	tenantIds: () => string[];
	/** Whether the built client is served (then /r/{id} opens the playback page). */
	servesClient: boolean;
	/** Whether the gateway serves TLS itself (the page's CSP then upgrades insecure requests, as helmet's does). */
	tls: boolean;
}

/** The gateway's CSP with `media-src` widened to one more origin (the bucket the page plays from). */
export function playbackCsp(mediaOrigin: string | undefined, tls: boolean): string {
	return widenedCsp("mediaSrc", mediaOrigin, tls);
}

/**
 * The playback page: `/r/{sessionId}` is the page, `GET /api/recordings/{sessionId}` what it reads. It opens for
 * the meeting's host and the persons who were in the meeting (a `person.joined` of theirs in the trail), with their
 * own token — the same rules as transcript links: every opening audited in the tenant's chain, refused once the
 * tenant's link lifetime (counted from the session's start) is over or the host revoked it (DELETE).
 */
export function registerPlaybackApi(http: FastifyInstance, o: PlaybackApiOptions): void {
	const caller = (req: FastifyRequest): Identity =>
		bearerIdentity(req, o.verifier, "Open the recording from the meeting's link, signed in.");
	const sessionFor = async (req: FastifyRequest, who: Identity): Promise<PlaybackSession> => {
		const p = SessionParams.safeParse(req.params);
		if (!p.success) throw new ValidationError("invalid recording session ID");
		// Only the caller's own organisation is searched: another one's session is "not found", never probeable.
		const s = await o.playback.find(who.tenantId, p.data.sessionId.toLowerCase());
		if (!s) throw new NotFoundError("recording_not_found", "No recording has this ID.");
		assertMeetingScope(who, { tenantId: s.tenantId, id: s.meetingId });
		return s;
	};
	const isHost = async (who: Identity, s: PlaybackSession) =>
		who.role === "host" && (await o.store.find(s.meetingId))?.hostSubject === who.subject;

	if (o.servesClient) {
		// A meeting's recordings, each linked to its page (it calls GET /api/meetings/{id}/recordings).
		http.get("/recordings/:id", async (_req, reply) => reply.sendFile("index.html"));
		http.get("/r/:sessionId", async (req, reply) => {
			// The page plays from the organisation's bucket: its CSP allows that one origin for media (nothing else).
			const p = SessionParams.safeParse(req.params);
			let origin: string | undefined;
			if (p.success) {
				for (const tenantId of o.tenantIds()) {
					if (!(await o.playback.find(tenantId, p.data.sessionId.toLowerCase()))) continue;
					origin = await o.playback.mediaOrigin(tenantId).catch(() => undefined);
					break;
				}
			}
			reply.header("content-security-policy", playbackCsp(origin, o.tls));
			return reply.sendFile("index.html");
		});
	}

	http.get("/api/recordings/:sessionId", async (req) => {
		const who = caller(req);
		const s = await sessionFor(req, who);
		const person = `${who.tenantId}:${who.subject}`;
		const member = (await isHost(who, s)) || (await o.playback.wasMember(who.tenantId, person, s.meetingId));
		if (!member) {
			throw new ForbiddenError("not_a_member", "Only the host and the people who were in this meeting can open it.");
		}
		if (s.revoked) throw new ConsentryError("recording_revoked", "The host revoked this recording's page.", 410);
		if (Date.parse(s.expiresAt) <= Date.now()) {
			throw new ConsentryError("recording_expired", "This recording's page has expired.", 410);
		}
		await o.playback.target(s.tenantId); // no bucket / SSE-C: refused before anything is read
		const meeting = { id: s.meetingId, title: (await o.store.find(s.meetingId))?.title ?? "" };
		const view = await o.playback.open(s, person, meeting);
		await o.events.append("recording.playback_opened", {
			tenantId: s.tenantId,
			meetingId: s.meetingId,
			actor: person,
			data: { sessionId: s.sessionId },
		});
		return view;
	});

	http.get("/api/meetings/:id/recordings", async (req) => {
		const who = caller(req);
		const p = IdParams.safeParse(req.params);
		if (!p.success) throw new ValidationError("invalid meeting ID");
		const meeting = await o.store.find(p.data.id);
		if (!meeting || meeting.tenantId !== who.tenantId) {
			throw new NotFoundError("meeting_not_found", "No meeting has this ID.");
		}
		assertMeetingScope(who, meeting);
		const member =
			(who.role === "host" && meeting.hostSubject === who.subject) ||
			(await o.playback.wasMember(who.tenantId, `${who.tenantId}:${who.subject}`, meeting.id));
		if (!member) {
			throw new ForbiddenError("not_a_member", "Only the host and the people who were in this meeting can open it.");
		}
		const sessions = await o.playback.list(meeting.tenantId, meeting.id);
		return {
			recordings: sessions.map((s) => ({
				sessionId: s.sessionId,
				startedAt: s.startedAt,
				endedAt: s.endedAt,
				ready: s.manifest !== null,
				revoked: s.revoked,
				expiresAt: s.expiresAt,
				page: `/r/${s.sessionId}`,
			})),
		};
	});

	http.delete("/api/recordings/:sessionId", async (req) => {
		const who = caller(req);
		const s = await sessionFor(req, who);
		if (!(await isHost(who, s))) throw new ForbiddenError("host_only", "Only the meeting's host can revoke its pages.");
		if (!s.revoked) {
			await o.events.append("recording.playback_revoked", {
				tenantId: s.tenantId,
				meetingId: s.meetingId,
				actor: `${who.tenantId}:${who.subject}`,
				data: { sessionId: s.sessionId },
			});
		}
		return { revoked: true };
	});
}

import type { FastifyRequest } from "fastify";
import type { Identity } from "../auth/TenantTypes.js";
import { TokenVerifier } from "../auth/TokenVerifier.js";
import { AuthenticationError, ForbiddenError } from "../errors.js";

/**
 * Who calls a REST route: the verified identity of `Authorization: Bearer <token>`. Every route that acts on a
 * meeting checks the token's meeting scope with `assertMeetingScope`; every route that is not about one meeting
 * (creating or listing meetings, the tenant's storage, …) refuses a scoped token with `assertUnscoped`, so a token
 * limited to one meeting is good for that meeting only, on REST as on signaling.
 */
export function bearerIdentity(req: FastifyRequest, verifier: TokenVerifier, missing: string): Identity {
	const h = req.headers.authorization;
	if (!h) throw new AuthenticationError("token_missing", missing);
	const m = /^Bearer\s+(\S+)$/i.exec(h);
	if (!m?.[1]) throw new AuthenticationError("token_malformed", "The Authorization header must be `Bearer <token>`.");
	return verifier.verify(m[1]);
}

/** 403 `wrong_tenant` / `token_wrong_meeting` unless the identity may act on this meeting. */
export function assertMeetingScope(who: Identity, meeting: { tenantId: string; id: string }): void {
	TokenVerifier.assertScope(who, meeting.tenantId, meeting.id);
}

/** 403 `token_wrong_meeting` for a token limited to one meeting, on a route that is not about one meeting. */
export function assertUnscoped(who: Identity, what: string): void {
	if (who.meetingScope !== undefined) {
		throw new ForbiddenError("token_wrong_meeting", `This token is for one meeting only; it cannot ${what}.`);
	}
}

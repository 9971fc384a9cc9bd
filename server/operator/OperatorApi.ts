import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { TokenVerifier } from "../auth/TokenVerifier.js";
import { AuthenticationError, ConsentryError, ForbiddenError } from "../errors.js";
import { assertUnscoped, bearerIdentity } from "../http/callers.js";
import { parse } from "../http/parseInput.js";
import type { RestLimiter } from "../http/RestLimiter.js";
import type { Logger } from "../logger.js";
import type { DataSubjectService } from "../privacy/DataSubjectService.js";
import { DsrRequestParams, OperatorDsrAccessSchema, OperatorDsrErasureSchema } from "../privacy/DataSubjectTypes.js";
import { clientAddress } from "../signaling/AddressLimits.js";
import type { OperatorService } from "./OperatorService.js";
import {
	ChatParams,
	CreateTenantSchema,
	LinkIdParams,
	MeetingParams,
	type OperatorIdentity,
	ReasonSchema,
	RevocationSchema,
	SecurityHoldSchema,
	SubjectParams,
	TenantParams,
	UpdateTenantSchema,
	WarningSchema,
} from "./OperatorTypes.js";
import type { OperatorVerifier } from "./OperatorVerifier.js";

export interface OperatorApiOptions {
	/** The REST limits: costly requests take one from their caller's budget (docs/security.md, "REST API"). */
	limiter: RestLimiter;
	service: OperatorService;
	/** Undefined: no operator keys configured (CONSENTRY_OPERATOR_KEYS_FILE): every operator route answers 503. */
	verifier: OperatorVerifier | undefined;
	/** The tenants' verifier: the customer's admin lists the operator's actions on their tenant. */
	tenantVerifier: TokenVerifier;
	/** The gateway serves the browser client: `/operator` is its operator console. */
	servesClient?: boolean;
	/** Data-subject requests (issue #14): the operator's access, export and erasure routes. */
	dsr?: DataSubjectService;
	/** `CONSENTRY_TRUST_PROXY`: the security events name the client's address from `X-Forwarded-For`, as every limit does. */
	trustProxy?: boolean;
	log: Logger;
}

export const LiveMeetingsQuery = z.object({ tenant: TenantParams.shape.tenantId.optional() });
export const ActionsQuery = z.object({ limit: z.coerce.number().int().min(1).max(10_000).default(1000) });

/**
 * The operator API (`/api/operator/…`, docs/operator.md): only the operator's token (its own keys, `iss`
 * `consentry:operator`, `role: operator`) opens it; a tenant's token of any role is 403 `operator_only`, and an
 * operator token is refused on every tenant route (`operator_token_refused`). Each operator session (a token's first
 * use) and each refused operator call is a security event in the log (`security: true`).
 */
export function registerOperatorApi(http: FastifyInstance, o: OperatorApiOptions): void {
	const log = o.log.child({ component: "OperatorApi" });
	const seen = new Set<string>();
	const operator = (req: FastifyRequest): OperatorIdentity => {
		const address = clientAddress(req.raw, o.trustProxy);
		try {
			if (!o.verifier) {
				throw new ConsentryError(
					"operator_unconfigured",
					"This gateway has no operator keys (CONSENTRY_OPERATOR_KEYS_FILE).",
					503,
				);
			}
			const h = req.headers.authorization;
			if (!h)
				throw new AuthenticationError("token_missing", "Send the operator token as `Authorization: Bearer <token>`.");
			const m = /^Bearer\s+(\S+)$/i.exec(h);
			if (!m?.[1])
				throw new AuthenticationError("token_malformed", "The Authorization header must be `Bearer <token>`.");
			const who = o.verifier.verify(m[1]);
			const session = createHash("sha256").update(m[1]).digest("hex").slice(0, 16);
			if (!seen.has(session)) {
				if (seen.size > 10_000) seen.clear();
				seen.add(session);
				log.warn(
					{ security: true, event: "operator.session", operator: who.subject, session, jti: who.jti, address },
					"operator session",
				);
			}
			return who;
		} catch (err) {
			const code = err instanceof ConsentryError ? err.code : "internal_error";
			log.warn(
				{ security: true, event: "operator.login_failed", code, address, method: req.method, url: req.url },
				"operator call refused",
			);
			throw err;
		}
	};
	// The console: the client's page, which shows the console on this path and calls the API below.
	if (o.servesClient) http.get("/operator", async (_req, reply) => reply.sendFile("index.html"));

	const reason = (req: FastifyRequest) => parse(ReasonSchema, req.body ?? {}, "request").reason;
	const s = o.service;

	http.get("/api/operator/tenants", async (req) => {
		operator(req);
		return { tenants: await s.listTenants() };
	});
	http.post("/api/operator/tenants", async (req, reply) => {
		const op = operator(req);
		return reply.status(201).send(await s.createTenant(op, parse(CreateTenantSchema, req.body ?? {}, "tenant")));
	});
	http.get("/api/operator/tenants/:tenantId", async (req) => {
		operator(req);
		return s.tenant(parse(TenantParams, req.params, "tenant ID").tenantId);
	});
	http.put("/api/operator/tenants/:tenantId", async (req) => {
		const op = operator(req);
		const { tenantId } = parse(TenantParams, req.params, "tenant ID");
		return s.updateTenant(op, tenantId, parse(UpdateTenantSchema, req.body ?? {}, "tenant"));
	});
	http.delete("/api/operator/tenants/:tenantId", async (req) => {
		const op = operator(req);
		const { tenantId } = parse(TenantParams, req.params, "tenant ID");
		return s.deleteTenant(op, tenantId, reason(req));
	});
	for (const action of ["suspend", "reinstate", "terminate"] as const) {
		http.post(`/api/operator/tenants/:tenantId/${action}`, async (req) => {
			const op = operator(req);
			const { tenantId } = parse(TenantParams, req.params, "tenant ID");
			return s.setTenantState(op, tenantId, action, reason(req));
		});
		http.post(`/api/operator/tenants/:tenantId/users/:subject/${action}`, async (req) => {
			const op = operator(req);
			const { tenantId, subject } = parse(SubjectParams, req.params, "tenant ID and subject");
			return s.setSubjectState(op, tenantId, subject, action, reason(req));
		});
	}
	http.post("/api/operator/tenants/:tenantId/revocations", async (req) => {
		const op = operator(req);
		const { tenantId } = parse(TenantParams, req.params, "tenant ID");
		return s.revoke(op, tenantId, parse(RevocationSchema, req.body ?? {}, "revocation"));
	});
	http.get("/api/operator/tenants/:tenantId/actions", async (req) => {
		operator(req);
		const { tenantId } = parse(TenantParams, req.params, "tenant ID");
		await s.tenant(tenantId);
		return { actions: await s.actionsOn(tenantId, parse(ActionsQuery, req.query ?? {}, "query").limit) };
	});
	http.post("/api/operator/tenants/:tenantId/wipe", async (req) => {
		const op = operator(req);
		const { tenantId } = parse(TenantParams, req.params, "tenant ID");
		await o.limiter.spend(req, op, "changes");
		return s.wipeTenant(op, tenantId, reason(req));
	});
	// Issue 14: the security hold on log files (gateway-wide; only the operator, like every route here).
	http.get("/api/operator/security-hold", async (req) => {
		operator(req);
		return s.securityHold();
	});
	http.put("/api/operator/security-hold", async (req) => {
		const op = operator(req);
		return { hold: await s.setSecurityHold(op, parse(SecurityHoldSchema, req.body ?? {}, "security hold")) };
	});
	http.delete("/api/operator/security-hold", async (req) => {
		const op = operator(req);
		return s.liftSecurityHold(op, reason(req));
	});
	http.get("/api/operator/meetings", async (req) => {
		operator(req);
		const q = parse(LiveMeetingsQuery, req.query ?? {}, "query");
		return { meetings: await s.liveMeetings(q.tenant) };
	});
	http.get("/api/operator/meetings/:id", async (req) => {
		operator(req);
		return s.meeting(parse(MeetingParams, req.params, "meeting ID").id);
	});
	http.post("/api/operator/meetings/:id/end", async (req) => {
		const op = operator(req);
		return s.endMeeting(op, parse(MeetingParams, req.params, "meeting ID").id, reason(req));
	});
	http.post("/api/operator/meetings/:id/disable", async (req) => {
		const op = operator(req);
		return s.setMeetingDisabled(op, parse(MeetingParams, req.params, "meeting ID").id, true, reason(req));
	});
	http.post("/api/operator/meetings/:id/enable", async (req) => {
		const op = operator(req);
		return s.setMeetingDisabled(op, parse(MeetingParams, req.params, "meeting ID").id, false, reason(req));
	});

	http.post("/api/operator/tenants/:tenantId/warnings", async (req, reply) => {
		const op = operator(req);
		const { tenantId } = parse(TenantParams, req.params, "tenant ID");
		return reply.status(201).send(await s.warn(op, tenantId, parse(WarningSchema, req.body ?? {}, "warning")));
	});
	http.post("/api/operator/meetings/:id/chat/:messageId/remove", async (req) => {
		const op = operator(req);
		const { id, messageId } = parse(ChatParams, req.params, "meeting and message IDs");
		return s.removeChat(op, id, messageId, reason(req));
	});
	http.post("/api/operator/meetings/:id/stop-share", async (req) => {
		const op = operator(req);
		return s.stopShare(op, parse(MeetingParams, req.params, "meeting ID").id, reason(req));
	});
	http.post("/api/operator/transcript-links/:linkId/revoke", async (req) => {
		const op = operator(req);
		return s.revokeTranscriptLink(op, parse(LinkIdParams, req.params, "link ID").linkId, reason(req));
	});

	// Data-subject requests on a tenant's person (issue #14): each an `operator.action` in the tenant's chain.
	const dsr = o.dsr;
	if (dsr) {
		const tenantOf = async (req: FastifyRequest) => {
			const { tenantId } = parse(TenantParams, req.params, "tenant ID");
			await s.tenant(tenantId); // 404 for an unknown tenant
			return tenantId;
		};
		http.post("/api/operator/tenants/:tenantId/dsr/access", async (req) => {
			const op = operator(req);
			await o.limiter.spend(req, op, "dsr");
			const tenantId = await tenantOf(req);
			const body = parse(OperatorDsrAccessSchema, req.body ?? {}, "request");
			return dsr.access(tenantId, body.person, { role: "operator", subject: op.subject }, body.reason);
		});
		http.post("/api/operator/tenants/:tenantId/dsr/export", async (req) => {
			const op = operator(req);
			await o.limiter.spend(req, op, "dsr");
			const tenantId = await tenantOf(req);
			const body = parse(OperatorDsrAccessSchema, req.body ?? {}, "request");
			return dsr.export(tenantId, body.person, { role: "operator", subject: op.subject }, body.reason);
		});
		http.post("/api/operator/tenants/:tenantId/dsr/erasures", async (req, reply) => {
			const op = operator(req);
			await o.limiter.spend(req, op, "dsr");
			const tenantId = await tenantOf(req);
			const body = parse(OperatorDsrErasureSchema, req.body ?? {}, "request");
			const v = await dsr.erase(tenantId, body, { role: "operator", subject: op.subject });
			return reply.status(v.state === "done" ? 200 : 202).send(v);
		});
		http.get("/api/operator/tenants/:tenantId/dsr/erasures/:requestId", async (req) => {
			operator(req);
			const tenantId = await tenantOf(req);
			return dsr.status(tenantId, parse(DsrRequestParams, req.params, "request ID").requestId);
		});
		http.post("/api/operator/tenants/:tenantId/dsr/erasures/:requestId/retry", async (req, reply) => {
			const op = operator(req);
			await o.limiter.spend(req, op, "dsr");
			const tenantId = await tenantOf(req);
			const { requestId } = parse(DsrRequestParams, req.params, "request ID");
			const v = await dsr.retry(tenantId, requestId, { role: "operator", subject: op.subject }, reason(req));
			return reply.status(v.state === "done" ? 200 : 202).send(v);
		});
	}

	// The customer's side: their admin sees what the operator did to them (the same entries as in their audit export).
	http.get("/api/operator-actions", async (req) => {
		const who = bearerIdentity(req, o.tenantVerifier, "Send the admin token as `Authorization: Bearer <token>`.");
		if (who.role !== "admin") throw new ForbiddenError("admin_only", "Only the customer's admin can list these.");
		assertUnscoped(who, "list the operator's actions");
		return { actions: await s.actionsOn(who.tenantId, parse(ActionsQuery, req.query ?? {}, "query").limit) };
	});
}

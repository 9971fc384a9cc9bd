import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Identity } from "../auth/TenantTypes.js";
import type { TokenVerifier } from "../auth/TokenVerifier.js";
import { ForbiddenError } from "../errors.js";
import type { DataSubjectService } from "../privacy/DataSubjectService.js";
import { DsrAccessSchema, DsrErasureSchema, type DsrRequester, DsrRequestParams } from "../privacy/DataSubjectTypes.js";
import { assertUnscoped, bearerIdentity } from "./callers.js";
import { parse } from "./parseInput.js";
import type { RestLimiter } from "./RestLimiter.js";

export interface DataSubjectApiOptions {
	service: DataSubjectService;
	verifier: TokenVerifier;
	/** Each request takes one from its admin's `dsr` budget (docs/security.md, "REST API"). */
	limiter: RestLimiter;
}

/**
 * Data-subject requests by the customer's admin (issue #14; docs/privacy.md, "Data-subject requests"): access,
 * export and erasure of one person of the admin's own tenant (a person of another tenant is simply not held there:
 * "nothing held"). The person goes in the POST body, never in a URL. The operator's twins are in OperatorApi.
 */
export function registerDataSubjectApi(http: FastifyInstance, o: DataSubjectApiOptions): void {
	const admin = (req: FastifyRequest): Identity => {
		const id = bearerIdentity(req, o.verifier, "Send an admin token as `Authorization: Bearer <token>`.");
		if (id.role !== "admin")
			throw new ForbiddenError("admin_only", "Only the customer's administrator makes data-subject requests.");
		assertUnscoped(id, "make data-subject requests");
		return id;
	};
	const by = (id: Identity): DsrRequester => ({ role: "admin", tenantId: id.tenantId, subject: id.subject });

	http.post("/api/dsr/access", async (req) => {
		const who = admin(req);
		const body = parse(DsrAccessSchema, req.body ?? {}, "request");
		await o.limiter.spend(req, who, "dsr");
		return o.service.access(who.tenantId, body.person, by(who));
	});
	http.post("/api/dsr/export", async (req, reply) => {
		const who = admin(req);
		const body = parse(DsrAccessSchema, req.body ?? {}, "request");
		await o.limiter.spend(req, who, "dsr");
		const doc = await o.service.export(who.tenantId, body.person, by(who));
		return reply.header("content-disposition", `attachment; filename="dsr-export-${who.tenantId}.json"`).send(doc);
	});
	http.post("/api/dsr/erasures", async (req, reply) => {
		const who = admin(req);
		const body = parse(DsrErasureSchema, req.body ?? {}, "request");
		await o.limiter.spend(req, who, "dsr");
		const v = await o.service.erase(who.tenantId, body, by(who));
		return reply.status(v.state === "done" ? 200 : 202).send(v);
	});
	http.get("/api/dsr/erasures/:requestId", async (req) => {
		const who = admin(req);
		return o.service.status(who.tenantId, parse(DsrRequestParams, req.params, "request ID").requestId);
	});
	http.post("/api/dsr/erasures/:requestId/retry", async (req, reply) => {
		const who = admin(req);
		const { requestId } = parse(DsrRequestParams, req.params, "request ID");
		await o.limiter.spend(req, who, "dsr");
		const v = await o.service.retry(who.tenantId, requestId, by(who));
		return reply.status(v.state === "done" ? 200 : 202).send(v);
	});
}

import type { FastifyInstance, FastifyRequest } from "fastify";
import type { z } from "zod";
import { assertEndpointAllowed, type EndpointPolicy } from "../../contracts/endpointGuard.js";
import type { EventLog } from "../audit/EventLog.js";
import type { Identity } from "../auth/TenantTypes.js";
import type { TokenVerifier } from "../auth/TokenVerifier.js";
import { ConsentryError, ForbiddenError, NotFoundError, ValidationError } from "../errors.js";
import { assertUnscoped, bearerIdentity } from "../http/callers.js";
import type { RestLimiter } from "../http/RestLimiter.js";
import type { WebhookService } from "./WebhookService.js";
import { DeliveriesQuerySchema, WEBHOOK_EVENTS, WebhookSettingsSchema } from "./WebhookTypes.js";

export interface WebhooksApiOptions {
	/** The REST limits: costly requests take one from their caller's budget (docs/security.md, "REST API"). */
	limiter: RestLimiter;
	/** Undefined when the gateway has no master key: every call answers 503 saying so. */
	webhooks: WebhookService | undefined;
	events: EventLog;
	verifier: TokenVerifier;
	endpointPolicy: EndpointPolicy;
}

function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
	const r = schema.safeParse(value);
	if (!r.success) {
		const issues = r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
		throw new ValidationError(
			`invalid ${what}: ${issues.map((i) => `${i.path || "(root)"} ${i.message}`).join("; ")}`,
			issues,
		);
	}
	return r.data;
}

/**
 * The Customer's administrator sets the tenant's webhook endpoint: `PUT /api/webhook` (URL checked by the same
 * endpoint guard as storage; answers the signing secret once when it makes one), `GET`, `DELETE`,
 * `POST /api/webhook/ping`, and the delivery log `GET /api/webhook/deliveries`.
 */
export function registerWebhooksApi(http: FastifyInstance, o: WebhooksApiOptions): void {
	const admin = (req: FastifyRequest): Identity => {
		const id = bearerIdentity(req, o.verifier, "Send an admin token as `Authorization: Bearer <token>`.");
		if (id.role !== "admin")
			throw new ForbiddenError("admin_only", "Only the Customer's administrator manages webhooks.");
		assertUnscoped(id, "manage the customer's webhooks");
		return id;
	};
	const service = (): WebhookService => {
		if (!o.webhooks) {
			throw new ConsentryError(
				"webhooks_unconfigured",
				"This gateway cannot keep webhook secrets: its operator must set CONSENTRY_MASTER_KEY.",
				503,
			);
		}
		return o.webhooks;
	};
	const noWebhook = () => new NotFoundError("no_webhook", "No webhook endpoint is set for this customer.");

	http.put("/api/webhook", async (req) => {
		const who = admin(req);
		const webhooks = service();
		const body = parse(WebhookSettingsSchema, req.body ?? {}, "webhook");
		await o.limiter.spend(req, who, "changes");
		await assertEndpointAllowed(body.url, o.endpointPolicy); // 422 endpoint_forbidden / endpoint_unresolvable
		const events = body.events ? [...new Set(body.events)] : [...WEBHOOK_EVENTS];
		const { view, newSecret } = await webhooks.store.save(
			who.tenantId,
			{ url: body.url, events, ...(body.secret ? { secret: body.secret } : {}), rotate: body.rotateSecret === true },
			(await o.events.head(who.tenantId))?.seq ?? 0,
		);
		await o.events.append("webhook.saved", {
			tenantId: who.tenantId,
			actor: `${who.tenantId}:${who.subject}`,
			data: { url: body.url, events, secretChanged: Boolean(newSecret || body.secret) },
		});
		return { ...view, ...(newSecret ? { secret: newSecret } : {}) };
	});

	http.get("/api/webhook", async (req) => {
		const who = admin(req);
		const view = await service().store.view(who.tenantId);
		if (!view) throw noWebhook();
		return view;
	});

	http.delete("/api/webhook", async (req) => {
		const who = admin(req);
		const webhooks = service();
		await o.limiter.spend(req, who, "changes");
		if (!(await webhooks.store.remove(who.tenantId))) throw noWebhook();
		await o.events.append("webhook.removed", { tenantId: who.tenantId, actor: `${who.tenantId}:${who.subject}` });
		return { removed: true };
	});

	http.post("/api/webhook/ping", async (req, reply) => {
		const who = admin(req);
		const webhooks = service();
		await o.limiter.spend(req, who, "changes");
		if (!(await webhooks.store.view(who.tenantId))) throw noWebhook();
		return reply.status(202).send({ queued: true, deliveryId: await webhooks.ping(who.tenantId) });
	});

	http.get("/api/webhook/deliveries", async (req) => {
		const who = admin(req);
		const q = parse(DeliveriesQuerySchema, req.query ?? {}, "query");
		return { deliveries: await service().store.log(who.tenantId, q) };
	});
}

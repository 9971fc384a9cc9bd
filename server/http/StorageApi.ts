import type { FastifyInstance, FastifyRequest } from "fastify";
import { parseStorageTarget } from "../../contracts/StorageTargetTypes.js";
import type { EventLog } from "../audit/EventLog.js";
import type { Identity } from "../auth/TenantTypes.js";
import type { TokenVerifier } from "../auth/TokenVerifier.js";
import { ConsentryError, ForbiddenError, NotFoundError } from "../errors.js";
import { preflight } from "../storage/preflight.js";
import type { StorageTargetStore } from "../storage/StorageTargetStore.js";
import { assertUnscoped, bearerIdentity } from "./callers.js";
import type { RestLimiter } from "./RestLimiter.js";

export interface StorageApiOptions {
	/** The REST limits: costly requests take one from their caller's budget (docs/security.md, "REST API"). */
	limiter: RestLimiter;
	/** Undefined when the gateway has no master key: every call answers 503 saying so. */
	targets: StorageTargetStore | undefined;
	events: EventLog;
	verifier: TokenVerifier;
	allowPrivate: boolean;
	allowHttp: boolean;
}

/**
 * The Customer's administrator registers the tenant's own S3-compatible bucket:
 * `PUT /api/storage-target` validates it, refuses endpoints on metadata,
 * link-local (and, unless the operator allows them, private) addresses, runs a
 * preflight (write, read back, delete a probe object) and only then saves it,
 * credentials sealed. `GET` shows it without secrets; `DELETE` removes it.
 */
export function registerStorageApi(http: FastifyInstance, o: StorageApiOptions): void {
	const admin = (req: FastifyRequest): Identity => {
		const id = bearerIdentity(req, o.verifier, "Send an admin token as `Authorization: Bearer <token>`.");
		if (id.role !== "admin")
			throw new ForbiddenError("admin_only", "Only the Customer's administrator manages storage.");
		assertUnscoped(id, "manage the customer's storage");
		return id;
	};
	const store = (): StorageTargetStore => {
		if (!o.targets) {
			throw new ConsentryError(
				"storage_unconfigured",
				"This gateway cannot keep storage credentials: its operator must set CONSENTRY_MASTER_KEY.",
				503,
			);
		}
		return o.targets;
	};

	http.put("/api/storage-target", async (req) => {
		const who = admin(req);
		const targets = store();
		const target = parseStorageTarget(req.body ?? {}, { allowHttp: o.allowHttp });
		await o.limiter.spend(req, who, "changes");
		const result = await preflight(target, { allowPrivate: o.allowPrivate, allowHttp: o.allowHttp });
		await targets.save(who.tenantId, target);
		await o.events.append("storage.target_saved", {
			tenantId: who.tenantId,
			actor: `${who.tenantId}:${who.subject}`,
			data: {
				endpoint: target.endpoint,
				bucket: target.bucket,
				prefix: target.prefix,
				encryption: target.encryption.type,
			},
		});
		return { saved: true, preflight: { latencyMs: result.latencyMs, probeDeleted: result.probeDeleted } };
	});

	http.get("/api/storage-target", async (req) => {
		const who = admin(req);
		const config = await store().getConfig(who.tenantId);
		if (!config) throw new NotFoundError("no_storage_target", "No storage target is registered for this customer.");
		return config;
	});

	http.delete("/api/storage-target", async (req) => {
		const who = admin(req);
		const targets = store();
		await o.limiter.spend(req, who, "changes");
		if (!(await targets.remove(who.tenantId))) {
			throw new NotFoundError("no_storage_target", "No storage target is registered for this customer.");
		}
		await o.events.append("storage.target_removed", {
			tenantId: who.tenantId,
			actor: `${who.tenantId}:${who.subject}`,
		});
		return { removed: true };
	});
}

import type { FastifyInstance } from "fastify";
import type { Logger } from "../logger.js";
import { truncateAddress } from "../privacy/addresses.js";

/** Answers that serve security: failed authentication, refusals, rate limiting. Their lines keep the full address. */
const SECURITY_STATUSES = new Set([401, 403, 429]);

/**
 * One log line per HTTP request, written by the gateway itself (Fastify's own request lines, which carry the full
 * client address, are off). The client address is cut to its /24 (IPv4) or /48 (IPv6), except on answers that
 * serve security (401, 403, 429), which keep it in full (`address`) — the log collector keeps those at most 14 days
 * like every line (docs/privacy.md). The query string is never logged (it may carry a token).
 */
export function registerAccessLog(http: FastifyInstance, log: Logger, trustProxy = false): void {
	const access = log.child({ component: "http" });
	http.addHook("onResponse", async (req, reply) => {
		const status = reply.statusCode;
		// Behind the TLS proxy (CONSENTRY_TRUST_PROXY), the client is X-Forwarded-For's last hop.
		const xff = trustProxy ? req.headers["x-forwarded-for"] : undefined;
		const ip = (Array.isArray(xff) ? xff.join(",") : (xff ?? "")).split(",").at(-1)?.trim() || req.socket.remoteAddress;
		const line = {
			method: req.method,
			path: req.url.split("?")[0],
			status,
			ms: Math.round(reply.elapsedTime),
			client: truncateAddress(ip),
			// `security: true` sends the line to the security log file (server/privacy/LogFiles.ts).
			...(SECURITY_STATUSES.has(status) ? { address: ip ?? "unknown", security: true } : {}),
		};
		if (SECURITY_STATUSES.has(status)) access.warn(line, "request refused");
		else access.info(line, "request");
	});
}

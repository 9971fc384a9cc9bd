import type { FastifyInstance } from "fastify";
import type { Logger } from "../logger.js";
import { truncateAddress } from "../privacy/addresses.js";

/** Answers that serve security: failed authentication, refusals, rate limiting. Their lines keep the full address. */
const SECURITY_STATUSES = new Set([401, 403, 429]);

/**
 * One log line per HTTP request, written by the gateway itself (Fastify's own request lines, which carry the full
 * client address, are off). The client address is cut to its /24 (IPv4) or /48 (IPv6), except on answers that
 * serve security (401, 403, 429), which keep it in full (`address`) — the log collector keeps those at most 14 days
 * like every line (docs/privacy.md). The query string is never logged (it may carry a token). Rate-limited answers
 * (429) are logged at most once a second per address; the line after a quiet second carries `notLogged`, how many
 * 429s of that address went unlogged before it.
 */
export function registerAccessLog(http: FastifyInstance, log: Logger, trustProxy = false): void {
	const access = log.child({ component: "http" });
	const throttle = new RefusalThrottle();
	http.addHook("onResponse", async (req, reply) => {
		const status = reply.statusCode;
		// Behind the TLS proxy (CONSENTRY_TRUST_PROXY), the client is X-Forwarded-For's last hop.
		const xff = trustProxy ? req.headers["x-forwarded-for"] : undefined;
		const ip = (Array.isArray(xff) ? xff.join(",") : (xff ?? "")).split(",").at(-1)?.trim() || req.socket.remoteAddress;
		// A flood cut to 429 would otherwise cost a log line per request: one a second per address, with the count.
		const notLogged = status === 429 ? throttle.take(ip ?? "unknown") : 0;
		if (notLogged < 0) return;
		const line = {
			method: req.method,
			path: req.url.split("?")[0],
			status,
			ms: Math.round(reply.elapsedTime),
			client: truncateAddress(ip),
			// `security: true` sends the line to the security log file (server/privacy/LogFiles.ts).
			...(SECURITY_STATUSES.has(status) ? { address: ip ?? "unknown", security: true } : {}),
			...(notLogged > 0 ? { notLogged } : {}),
		};
		if (SECURITY_STATUSES.has(status)) access.warn(line, "request refused");
		else access.info(line, "request");
	});
}

/** How often one address's 429s are logged, ms. */
const REFUSAL_LOG_MS = 1000;
/** Addresses remembered at once; beyond, the throttle starts afresh (a line each, then throttled again). */
const REFUSAL_ADDRESSES = 10_000;

/** Which 429 answers are logged: the first of each address in each second. */
class RefusalThrottle {
	readonly #byAddress = new Map<string, { until: number; skipped: number }>();

	/** -1: don't log this one (counted); else log it, noting this many unlogged before it. */
	take(address: string): number {
		const now = performance.now();
		const s = this.#byAddress.get(address);
		if (s && now < s.until) {
			s.skipped++;
			return -1;
		}
		if (!s && this.#byAddress.size >= REFUSAL_ADDRESSES) this.#byAddress.clear();
		const skipped = s?.skipped ?? 0;
		this.#byAddress.set(address, { until: now + REFUSAL_LOG_MS, skipped: 0 });
		return skipped;
	}
}

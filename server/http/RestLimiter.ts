import type { Socket } from "node:net";
import fastifyRateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { RestLimits } from "../config.js";
import { RateLimitError } from "../errors.js";
import { addressKey, clientAddress } from "../signaling/AddressLimits.js";

/**
 * The costly kinds of REST work, each with its own budget per caller and window:
 * - `dsr`: data-subject requests (access, export, erasure, retry), the customer's admin's and the operator's;
 * - `changes`: storage-target and webhook changes, webhook pings, the operator's tenant wipes (each probes or
 *   reaches outside the gateway, or writes much);
 * - `meetings`: meeting creation.
 */
export type CostlyKind = "dsr" | "changes" | "meetings";

/** Who spends a costly budget: a tenant's person (tenant + subject) or an operator (subject). */
export type Caller = { tenantId: string; subject: string } | { role: "operator"; subject: string };

/** Addresses (and callers) the limiter remembers at once: beyond, the least recently seen are forgotten. */
const ADDRESSES_REMEMBERED = 100_000;
const CALLERS_REMEMBERED = 20_000;

const KIND_WORDS: Record<CostlyKind, string> = {
	dsr: "data-subject requests",
	changes: "storage and webhook changes",
	meetings: "new meetings",
};

/**
 * A refusal of an address that went on past twice its limit in one window, not heeding `Retry-After` (a flood, not
 * a browser): its connection is closed after this answer and, not behind a proxy, its new TCP connections are
 * dropped until the window ends.
 */
export class FloodRefusal extends RateLimitError {}

/**
 * The REST API's rate limits (docs/security.md, "REST API"), on @fastify/rate-limit's fixed windows, per gateway
 * process (a cluster's nodes each count their own):
 * - per client address (the signaling's notion: IPv4, IPv6 /64, X-Forwarded-For's last hop behind a trusted proxy),
 *   every route (assets, pages, API, /metrics, unknown paths) but `/healthz`, in the first `onRequest` hook: before
 *   the body is read, before any token is verified or the store is asked; past twice the limit in a window, a
 *   FloodRefusal (connection closed, new ones dropped until the window ends, unless behind a proxy);
 * - per authenticated caller for the costly kinds (`spend`), right after the caller's token is verified and before
 *   any work.
 * Over a limit: 429 `rate_limited` with `Retry-After` (seconds) and `retryAfterSec`, nothing done.
 */
export class RestLimiter {
	readonly #callers = new WeakMap<FastifyRequest, string>();
	/** Flooding addresses (addressKey) → until when (Date.now() ms) their new TCP connections are dropped. */
	readonly #flooding = new Map<string, number>();
	readonly #checks: Record<CostlyKind, ReturnType<FastifyInstance["createRateLimit"]>>;

	private constructor(http: FastifyInstance, limits: RestLimits, trustProxy: boolean) {
		const check = (max: number) => {
			const options: Parameters<FastifyInstance["createRateLimit"]>[0] & { cache: number } = {
				max,
				timeWindow: limits.windowMs,
				cache: CALLERS_REMEMBERED,
				keyGenerator: (req) => this.#callers.get(req) ?? "",
			};
			return http.createRateLimit(options);
		};
		// Not behind a proxy (there every connection is the proxy's): a flooding address's new connections are dropped
		// before any HTTP or TLS work, the cheapest refusal there is (as the signaling's cool-down).
		if (!trustProxy)
			http.server.on("connection", (socket: Socket) => {
				if (this.#flooding.size > 0 && this.flooding(addressKey(socket.remoteAddress))) socket.destroy();
			});
		this.#checks = {
			dsr: check(limits.dsrPerCaller),
			changes: check(limits.changesPerCaller),
			meetings: check(limits.meetingsPerCaller),
		};
	}

	/**
	 * Registers the per-address limit as the first `onRequest` hook of every request (register it before any other
	 * hook: a refused request costs no security-header, routing-hook or body work). A route with
	 * `config: { rateLimit: false }` is left out.
	 */
	static async register(http: FastifyInstance, limits: RestLimits, trustProxy: boolean): Promise<RestLimiter> {
		let limiter: RestLimiter | undefined;
		await http.register(fastifyRateLimit, {
			// Not per route: one instance-wide hook (below), ahead of the others, that also covers unknown paths.
			global: false,
			max: limits.requestsPerAddress,
			timeWindow: limits.windowMs,
			cache: ADDRESSES_REMEMBERED,
			keyGenerator: (req) => `address:${clientAddress(req.raw, trustProxy)}`,
			allowList: (req) => req.routeOptions.config?.rateLimit === false,
			// Past twice the limit in one window: a flood (FloodRefusal).
			ban: limits.requestsPerAddress,
			errorResponseBuilder: (req, context) => {
				const sec = Math.max(1, Math.ceil(context.ttl / 1000));
				const message = `Too many requests from this address; retry in ${sec} s.`;
				if (!context.ban) return new RateLimitError(message, "rate_limited", sec) as unknown as object;
				if (limiter) limiter.#flood(clientAddress(req.raw, trustProxy), Date.now() + context.ttl);
				return new FloodRefusal(message, "rate_limited", sec) as unknown as object;
			},
		});
		http.addHook("onRequest", http.rateLimit());
		limiter = new RestLimiter(http, limits, trustProxy);
		return limiter;
	}

	/** Whether this address (addressKey) flooded in the current window: its new connections are dropped. */
	flooding(key: string): boolean {
		const until = this.#flooding.get(key);
		if (until === undefined) return false;
		if (until > Date.now()) return true;
		this.#flooding.delete(key);
		return false;
	}

	#flood(key: string, until: number): void {
		if (!this.#flooding.has(key) && this.#flooding.size >= ADDRESSES_REMEMBERED) {
			const now = Date.now();
			for (const [k, u] of this.#flooding) if (u <= now) this.#flooding.delete(k);
			if (this.#flooding.size >= ADDRESSES_REMEMBERED) return;
		}
		this.#flooding.set(key, until);
	}

	/**
	 * Takes one from `caller`'s budget of `kind`; 429 `rate_limited` (with `Retry-After`) when it is spent. Call it
	 * right after the caller is known (token verified) and before any work, so a refused request does nothing.
	 */
	async spend(req: FastifyRequest, caller: Caller, kind: CostlyKind): Promise<void> {
		const key = "tenantId" in caller ? `${caller.tenantId}\u0000${caller.subject}` : `operator\u0000${caller.subject}`;
		this.#callers.set(req, `${kind}\u0000${key}`);
		const r = await this.#checks[kind](req);
		if (!r.isAllowed && r.isExceeded) {
			const sec = Math.max(1, r.ttlInSeconds);
			throw new RateLimitError(
				`Too many ${KIND_WORDS[kind]} from this caller; retry in ${sec} s.`,
				"rate_limited",
				sec,
			);
		}
	}
}

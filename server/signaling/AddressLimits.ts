import type { IncomingMessage } from "node:http";
import net from "node:net";
import type { GatewayLimits } from "../config.js";
import { RateLimiter } from "./RateLimiter.js";

/** What one client address holds and has spent. */
interface AddressState {
	/** Signaling sockets open now (engine.io connections, authenticated or not). */
	connections: number;
	/** Unauthenticated (tokenless) sockets among them. */
	guests: number;
	/** New connections (handshakes). */
	connects: RateLimiter;
	/** Signaling requests, all of the address's sockets together. */
	requests: RateLimiter;
	/** Bytes of signaling messages received, all of the address's sockets together. */
	bytes: RateLimiter;
	/** Until when (performance.now() ms) new connections are refused: the address overran its byte budget. */
	coolingUntil: number;
	/** How often it did (each cool-down twice as long as the last, up to MAX_COOL_DOWN_MS). */
	offences: number;
}

/** Why a connection or a message is refused. */
export type AddressRefusal =
	| "too_many_connections"
	| "connecting_too_fast"
	| "cooling_down"
	| "too_many_guests"
	| "guests_full";

/** How long an address that overran its byte budget may open no new connection, ms; doubled for each repeat… */
export const COOL_DOWN_MS = 10_000;
/** …up to this. */
export const MAX_COOL_DOWN_MS = 5 * 60_000;

/**
 * The key an address is limited by: an IPv4 address (IPv4-mapped IPv6 unwrapped), or the /64 an IPv6 address is
 * in (one subscriber usually holds a whole /64, so per-address limits would otherwise be 2^64 times wider).
 */
export function addressKey(address: string | undefined): string {
	const a = (address ?? "").trim();
	const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
	if (mapped?.[1]) return mapped[1];
	if (net.isIPv6(a)) {
		const groups = expandIPv6(a);
		if (groups)
			return `${groups
				.slice(0, 4)
				.map((g) => g.toString(16))
				.join(":")}::/64`;
	}
	return a || "unknown";
}

/** The eight 16-bit groups of an IPv6 address (zone dropped, embedded dotted IPv4 converted), or undefined. */
export function expandIPv6(address: string): number[] | undefined {
	let a = address.toLowerCase().split("%")[0] ?? "";
	if (!net.isIPv6(a)) return undefined;
	const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
	if (v4?.[1]) {
		const p = v4[1].split(".").map(Number);
		const hi = (((p[0] ?? 0) << 8) | (p[1] ?? 0)).toString(16);
		const lo = (((p[2] ?? 0) << 8) | (p[3] ?? 0)).toString(16);
		a = `${a.slice(0, -v4[1].length)}${hi}:${lo}`;
	}
	const [head, tail] = a.split("::") as [string, string | undefined];
	const h = head ? head.split(":") : [];
	const t = tail ? tail.split(":") : [];
	const fill = a.includes("::") ? 8 - h.length - t.length : 0;
	const groups = [...h, ...Array<string>(Math.max(fill, 0)).fill("0"), ...t].map((g) => Number.parseInt(g, 16));
	return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

/**
 * Per-address accounting shared by every socket of an address: how many sockets it holds (and how many of them
 * unauthenticated), how fast it opens them, and one request and one byte budget for all of them together — so
 * twenty sockets get one address's budget, not twenty. Forgotten once an address holds nothing and its budgets
 * are full again.
 */
export class AddressLimits {
	readonly #limits: GatewayLimits;
	readonly #byAddress = new Map<string, AddressState>();
	#guests = 0;
	readonly #now: () => number;
	#lastSweep: number;

	/** `now`: a monotonic clock in ms (tests). */
	constructor(limits: GatewayLimits, now: () => number = performance.now.bind(performance)) {
		this.#limits = limits;
		this.#now = now;
		this.#lastSweep = now();
	}

	/** Unauthenticated sockets open on the whole gateway. */
	get guests(): number {
		return this.#guests;
	}

	/** Whether `key` may open one more connection now (it takes one from its connect budget when it may). */
	mayConnect(key: string): AddressRefusal | undefined {
		const s = this.#state(key);
		if (s.coolingUntil > this.#now()) return "cooling_down";
		if (s.connections >= this.#limits.maxConnectionsPerAddress) return "too_many_connections";
		if (!s.connects.take()) return "connecting_too_fast";
		return undefined;
	}

	/** Whether the address overran its byte budget lately (new connections refused). */
	coolingDown(key: string): boolean {
		return (this.#byAddress.get(key)?.coolingUntil ?? 0) > this.#now();
	}

	opened(key: string): void {
		this.#state(key).connections++;
	}

	closed(key: string): void {
		const s = this.#byAddress.get(key);
		if (s) s.connections = Math.max(0, s.connections - 1);
	}

	/** Counts an unauthenticated socket in, or says why not. */
	addGuest(key: string): AddressRefusal | undefined {
		const s = this.#state(key);
		if (s.guests >= this.#limits.maxGuestConnectionsPerAddress) return "too_many_guests";
		if (this.#guests >= this.#limits.maxGuestConnections) return "guests_full";
		s.guests++;
		this.#guests++;
		return undefined;
	}

	removeGuest(key: string): void {
		const s = this.#byAddress.get(key);
		if (s && s.guests > 0) {
			s.guests--;
			this.#guests--;
		}
	}

	/** Takes one request from the address's budget. */
	takeRequest(key: string): boolean {
		return this.#state(key).requests.take();
	}

	/**
	 * Takes `bytes` from the address's byte budget. When it runs out, the address cools down: no new connection for
	 * COOL_DOWN_MS, twice as long for each repeat up to MAX_COOL_DOWN_MS (the caller closes the socket that overran
	 * it), so a flood can't just reconnect and go on.
	 */
	takeBytes(key: string, bytes: number): boolean {
		const s = this.#state(key);
		if (s.bytes.take(bytes)) return true;
		const now = this.#now();
		if (s.coolingUntil <= now) {
			s.offences++;
			s.coolingUntil = now + Math.min(MAX_COOL_DOWN_MS, COOL_DOWN_MS * 2 ** Math.min(s.offences - 1, 16));
		}
		return false;
	}

	#state(key: string): AddressState {
		let s = this.#byAddress.get(key);
		if (!s) {
			if (this.#now() - this.#lastSweep > 30_000) this.#forgetIdle();
			const l = this.#limits;
			s = {
				connections: 0,
				guests: 0,
				coolingUntil: 0,
				offences: 0,
				connects: new RateLimiter(
					Math.max(1, l.connectsPerAddressPerSecond * 2),
					l.connectsPerAddressPerSecond,
					this.#now,
				),
				requests: new RateLimiter(l.requestsPerAddressPerSecond * 4, l.requestsPerAddressPerSecond, this.#now),
				// One second's worth, and always room for two of the largest messages allowed.
				bytes: new RateLimiter(
					Math.max(l.bytesPerAddressPerSecond, l.maxMessageBytes * 2),
					l.bytesPerAddressPerSecond,
					this.#now,
				),
			};
			this.#byAddress.set(key, s);
		}
		return s;
	}

	#forgetIdle(): void {
		this.#lastSweep = this.#now();
		for (const [key, s] of this.#byAddress) {
			const idle = s.connects.full && s.requests.full && s.bytes.full && s.coolingUntil <= this.#now();
			if (s.connections === 0 && s.guests === 0 && idle) {
				this.#byAddress.delete(key);
			}
		}
	}
}

/** The address a request comes from: the peer, or X-Forwarded-For's last hop behind a trusted proxy. */
export function clientAddress(req: IncomingMessage, trustProxy = false): string {
	if (trustProxy) {
		const xff = req.headers["x-forwarded-for"];
		const last = (Array.isArray(xff) ? xff.join(",") : (xff ?? "")).split(",").at(-1)?.trim();
		if (last) return addressKey(last);
	}
	return addressKey(req.socket.remoteAddress);
}

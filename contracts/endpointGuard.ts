import dns from "node:dns";
import net from "node:net";
import { ConsentryError } from "./errors.js";

/**
 * Refuses storage endpoints that would let a tenant aim the gateway at the
 * operator's own network (SSRF): cloud metadata services and link-local
 * addresses always; loopback and private ranges unless `allowPrivate` (tests,
 * a MinIO on the operator's LAN by the operator's choice).
 */

export class EndpointError extends ConsentryError {
	readonly address: string | undefined;

	constructor(code: "endpoint_forbidden" | "endpoint_unresolvable", message: string, address?: string) {
		super(code, message, 422);
		this.address = address;
	}
}

export interface EndpointPolicy {
	/** Allow loopback and private ranges (10/8, 172.16/12, 192.168/16, 127/8, 100.64/10, ::1, fc00::/7). */
	allowPrivate?: boolean;
	/** Allow `http:`. */
	allowHttp?: boolean;
}

export type LookupAll = (hostname: string) => Promise<{ address: string; family: number }[]>;

const METADATA_HOSTNAMES = new Set(["metadata.google.internal", "metadata.goog", "instance-data.ec2.internal"]);

function blockList(entries: [string, number, "ipv4" | "ipv6"][]): net.BlockList {
	const list = new net.BlockList();
	for (const [net_, prefix, type] of entries) list.addSubnet(net_, prefix, type);
	return list;
}

/** Cloud metadata services: AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba. Always refused. */
const METADATA = blockList([
	["169.254.169.254", 32, "ipv4"],
	["169.254.170.2", 32, "ipv4"], // ECS task metadata
	["100.100.100.200", 32, "ipv4"],
	["fd00:ec2::254", 128, "ipv6"],
]);
/** Never a storage endpoint: link-local, unspecified, multicast, reserved. Always refused. */
const NEVER = blockList([
	["169.254.0.0", 16, "ipv4"],
	["0.0.0.0", 8, "ipv4"],
	["224.0.0.0", 4, "ipv4"],
	["240.0.0.0", 4, "ipv4"],
	["fe80::", 10, "ipv6"],
	["::", 128, "ipv6"],
	["ff00::", 8, "ipv6"],
]);
/** Loopback and private ranges: refused unless allowPrivate. */
const PRIVATE = blockList([
	["127.0.0.0", 8, "ipv4"],
	["10.0.0.0", 8, "ipv4"],
	["172.16.0.0", 12, "ipv4"],
	["192.168.0.0", 16, "ipv4"],
	["100.64.0.0", 10, "ipv4"],
	["::1", 128, "ipv6"],
	["fc00::", 7, "ipv6"],
	["64:ff9b:1::", 48, "ipv6"], // local-use NAT64: the operator's own translators
]);

/** An IPv4 address embedded in an IPv6 one, and the form that embeds it. */
interface Embedded {
	v4: string;
	form: string;
}

const v4Of = (bytes: number[]): string => bytes.map((b) => b & 0xff).join(".");

/**
 * Every IPv4 address an IPv6 address may stand for: IPv4-mapped (::ffff:0:0/96), IPv4-translated
 * (::ffff:0:0:0/96), IPv4-compatible (::/96, deprecated but still routed by some stacks), NAT64 (the well-known
 * 64:ff9b::/96, and the local-use 64:ff9b:1::/48 at each RFC 6052 prefix length), 6to4 (2002::/16) and Teredo
 * (2001::/32: its server, and its client with the bits inverted). Each is range-checked as an IPv4 address.
 */
function embeddedIPv4s(address: string): Embedded[] {
	const g = expandIPv6(address);
	if (!g) return [];
	const bytes = g.flatMap((x) => [x >> 8, x & 0xff]);
	const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
	const last32 = v4Of(bytes.slice(12, 16));
	const out: Embedded[] = [];
	if (zero(0, 5) && g[5] === 0xffff) out.push({ v4: last32, form: "IPv4-mapped" });
	if (zero(0, 4) && g[4] === 0xffff && g[5] === 0) out.push({ v4: last32, form: "IPv4-translated" });
	if (zero(0, 6) && (g[6] ?? 0) !== 0) out.push({ v4: last32, form: "IPv4-compatible" });
	if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) out.push({ v4: last32, form: "NAT64" });
	if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) {
		// RFC 6052 §2.2: where the IPv4 address sits for each prefix length (bits 64–71 are skipped).
		out.push(
			{ v4: v4Of([...bytes.slice(6, 8), ...bytes.slice(9, 11)]), form: "local-use NAT64 /48" },
			{ v4: v4Of([bytes[7] ?? 0, ...bytes.slice(9, 12)]), form: "local-use NAT64 /56" },
			{ v4: v4Of(bytes.slice(9, 13)), form: "local-use NAT64 /64" },
			{ v4: last32, form: "local-use NAT64 /96" },
		);
	}
	if (g[0] === 0x2002) out.push({ v4: v4Of(bytes.slice(2, 6)), form: "6to4" });
	if (g[0] === 0x2001 && g[1] === 0) {
		out.push(
			{ v4: v4Of(bytes.slice(4, 8)), form: "Teredo server" },
			{ v4: v4Of(bytes.slice(12, 16).map((b) => ~b)), form: "Teredo client" },
		);
	}
	return out;
}

function expandIPv6(address: string): number[] | undefined {
	let a = address.toLowerCase().split("%")[0] ?? "";
	const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
	if (v4?.[1]) {
		const parts = v4[1].split(".").map(Number);
		a = `${a.slice(0, -v4[1].length)}${(((parts[0] ?? 0) << 8) | (parts[1] ?? 0)).toString(16)}:${(((parts[2] ?? 0) << 8) | (parts[3] ?? 0)).toString(16)}`;
	}
	const [head, tail] = a.split("::") as [string, string | undefined];
	const h = head ? head.split(":") : [];
	const t = tail ? tail.split(":") : [];
	const fill = a.includes("::") ? 8 - h.length - t.length : 0;
	const groups = [...h, ...Array<string>(Math.max(fill, 0)).fill("0"), ...t].map((g) => Number.parseInt(g, 16));
	return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

/** Why `address` may not be used under `policy`, or undefined when it may. */
export function forbiddenReason(address: string, policy: EndpointPolicy): string | undefined {
	const family = net.isIP(address);
	if (family === 0) return "not an IP address";
	if (family === 4) return rangeReason(address, "ipv4", policy);
	// Every candidate is checked; the gravest reason is named (a metadata address before a merely reserved one).
	const found = embeddedIPv4s(address)
		.map(({ v4, form }) => ({ v4, form, reason: rangeReason(v4, "ipv4", policy) }))
		.filter((c) => c.reason !== undefined)
		.sort((a, b) => Number(!a.reason?.includes("metadata")) - Number(!b.reason?.includes("metadata")))[0];
	if (found) return `, through the IPv4 address ${found.v4} embedded in it (${found.form}),${found.reason}`;
	return rangeReason(address, "ipv6", policy);
}

function rangeReason(addr: string, type: "ipv4" | "ipv6", policy: EndpointPolicy): string | undefined {
	if (METADATA.check(addr, type)) return " a cloud metadata service address";
	if (NEVER.check(addr, type)) return " a link-local, unspecified, multicast or reserved address";
	if (!policy.allowPrivate && PRIVATE.check(addr, type)) return " a loopback or private-network address";
	return undefined;
}

const defaultLookup: LookupAll = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

/**
 * Checks the endpoint URL's scheme, then resolves its host (every address) and
 * refuses it if any address is forbidden. Returns the addresses it checked.
 * The S3 client re-checks at connect time (guardedLookup), so a DNS answer
 * that changes between the two checks is caught too.
 */
export async function assertEndpointAllowed(
	endpoint: string | URL,
	policy: EndpointPolicy & { lookup?: LookupAll } = {},
): Promise<string[]> {
	let url: URL;
	try {
		url = new URL(endpoint);
	} catch {
		throw new EndpointError("endpoint_forbidden", `the storage endpoint ${String(endpoint)} is not a URL`);
	}
	if (url.protocol !== "https:" && !(policy.allowHttp && url.protocol === "http:")) {
		throw new EndpointError(
			"endpoint_forbidden",
			`the storage endpoint must use https:// (got ${url.protocol}//${url.host}); http is not allowed on this gateway`,
		);
	}
	const host = url.hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
	if (METADATA_HOSTNAMES.has(host.replace(/\.$/, ""))) {
		throw new EndpointError(
			"endpoint_forbidden",
			`the storage endpoint host ${host} is a cloud metadata service; use your bucket's S3 endpoint`,
			host,
		);
	}
	let addresses: string[];
	if (net.isIP(host)) addresses = [host];
	else {
		try {
			addresses = (await (policy.lookup ?? defaultLookup)(host)).map((a) => a.address);
		} catch (err) {
			throw new EndpointError(
				"endpoint_unresolvable",
				`the storage endpoint host ${host} does not resolve (${(err as { code?: string }).code ?? "lookup failed"}); check its spelling and DNS`,
				host,
			);
		}
		if (addresses.length === 0) {
			throw new EndpointError(
				"endpoint_unresolvable",
				`the storage endpoint host ${host} resolves to no address`,
				host,
			);
		}
	}
	for (const address of addresses) refuseIfForbidden(host, address, policy);
	return addresses;
}

function refuseIfForbidden(host: string, address: string, policy: EndpointPolicy): void {
	const reason = forbiddenReason(address, policy);
	if (reason) {
		const via = host === address ? "" : ` (${host} resolves to it)`;
		throw new EndpointError(
			"endpoint_forbidden",
			`the storage endpoint address ${address}${via} is${reason}; a storage endpoint must be reachable on the public internet`,
			address,
		);
	}
}

type LookupCallback = (
	err: NodeJS.ErrnoException | null,
	address: string | dns.LookupAddress[],
	family?: number,
) => void;

/**
 * A `lookup` for http(s).Agent that applies the policy to the addresses the
 * connection will actually use (no DNS-rebinding gap between check and connect).
 */
export function guardedLookup(policy: EndpointPolicy) {
	return (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
		dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
			if (err) return callback(err, []);
			for (const { address } of addresses) {
				const reason = forbiddenReason(address, policy);
				if (reason) {
					return callback(
						new EndpointError(
							"endpoint_forbidden",
							`the storage endpoint address ${address} (${hostname} resolves to it) is${reason}`,
							address,
						) as unknown as NodeJS.ErrnoException,
						[],
					);
				}
			}
			if (options.all) return callback(null, addresses);
			const first = addresses[0];
			if (!first) return callback(Object.assign(new Error(`${hostname}: no address`), { code: "ENOTFOUND" }), []);
			callback(null, first.address, first.family);
		});
	};
}

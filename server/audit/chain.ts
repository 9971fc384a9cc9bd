import { hash } from "node:crypto";

/**
 * The audit chain's hashing rules, shared by the gateway (append, verify) and the
 * offline verifier of exports. Described for outside implementers in docs/audit.md:
 * change nothing here without a new `v`.
 */

/** Version of the entry format and hashing rules; it is part of every hashed entry. */
export const CHAIN_VERSION = 1;

/** `prev` of a tenant's first entry, and `meetingPrev` of a meeting's first entry. */
export const GENESIS = "0".repeat(64);

/** A lowercase hex SHA-256. */
export const HASH_RE = /^[0-9a-f]{64}$/;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Exactly what an entry's hash covers. `seq` is the entry's position in its
 * tenant's chain; `prev` the hash of the tenant's previous entry; `meetingPrev`
 * the hash of the same meeting's previous entry (GENESIS for its first, null
 * for entries outside meetings). Persons appear only as pseudonyms.
 */
export interface ChainEntry {
	v: typeof CHAIN_VERSION;
	seq: number;
	at: string;
	tenant: string;
	meeting: string | null;
	type: string;
	actor: string | null;
	data: { [key: string]: Json };
	prev: string;
	meetingPrev: string | null;
}

/** A chain position and the hash of the entry there. */
export interface ChainHead {
	seq: number;
	hash: string;
}

/**
 * Canonical JSON (RFC 8785, JCS, for the values JSON.parse produces): object keys
 * sorted by UTF-16 code units, no whitespace, strings and numbers as
 * ECMAScript's JSON.stringify writes them. Throws on anything that is not plain
 * JSON (undefined, functions, bigint, non-finite numbers).
 *
 * Written for the audit trail's hot path (every entry, on the event loop): one string grown in place (no
 * intermediate arrays or template pieces), keys sorted only when they are not already, and a long array of objects
 * (e.g. a start's recipients) written by the engine's own JSON.stringify with the sorted keys as its property
 * list, when that is provably the same text ({@link stringifiedSorted}). server/audit/fastPaths.test.ts compares it
 * with the original implementation over random JSON values.
 */
export function canonicalJson(value: unknown): string {
	if (typeof value === "string") return JSON.stringify(value);
	if (typeof value === "object") {
		if (value === null) return "null";
		if (Array.isArray(value)) {
			if (value.length >= SORTED_STRINGIFY_MIN && typeof value[0] === "object" && value[0] !== null) {
				const text = stringifiedSorted(value);
				if (text !== undefined) return text;
			}
			let out = "[";
			for (let i = 0; i < value.length; i++) {
				if (i) out += ",";
				// (A hole is written as nothing, as the original `value.map(canonicalJson).join(",")` did.)
				if (i in value) out += canonicalJson(value[i]);
			}
			return `${out}]`;
		}
		const obj = value as Record<string, unknown>;
		const keys = Object.keys(obj);
		for (let i = 1; i < keys.length; i++) {
			if (!((keys[i - 1] as string) < (keys[i] as string))) {
				keys.sort();
				break;
			}
		}
		let out = "{";
		for (let i = 0; i < keys.length; i++) {
			const k = keys[i] as string;
			if (i) out += ",";
			out += JSON.stringify(k);
			out += ":";
			out += canonicalJson(obj[k]);
		}
		return `${out}}`;
	}
	if (typeof value === "number") {
		if (!Number.isFinite(value)) throw new TypeError(`not JSON: ${value}`);
		return JSON.stringify(value);
	}
	if (typeof value === "boolean") return value ? "true" : "false";
	throw new TypeError(`not JSON: ${typeof value}`);
}

/** Arrays of objects at least this long are written by {@link stringifiedSorted} (measured: ~3× faster at 500). */
const SORTED_STRINGIFY_MIN = 16;

/**
 * `value`'s canonical JSON written by `JSON.stringify(value, keys)`, `keys` being every object key found in it,
 * sorted: with a property list, JSON.stringify writes each object's keys in the list's order and leaves out those
 * it lacks (whose lookup gives undefined or a function), and writes arrays, strings and numbers as canonical JSON
 * does. That is the canonical text exactly when `value` holds only strings, finite numbers, booleans, null, arrays
 * (no holes) and objects whose prototype is Object.prototype or null, no key in the list is found on
 * Object.prototype (`__proto__`, or a polluted prototype) and no `toJSON` is inherited: checked here, else
 * undefined (the caller writes it).
 */
function stringifiedSorted(value: unknown): string | undefined {
	const keys = new Set<string>();
	if (!plainJson(value, keys)) return undefined;
	const list = [...keys].sort();
	for (const k of list) if (k in Object.prototype) return undefined;
	if ("toJSON" in Object.prototype || "toJSON" in Array.prototype) return undefined;
	return JSON.stringify(value, list);
}

function plainJson(v: unknown, keys: Set<string>): boolean {
	switch (typeof v) {
		case "string":
		case "boolean":
			return true;
		case "number":
			return Number.isFinite(v);
		case "object": {
			if (v === null) return true;
			const proto = Object.getPrototypeOf(v);
			if (Array.isArray(v)) {
				if (proto !== Array.prototype) return false;
				for (let i = 0; i < v.length; i++) if (!Object.hasOwn(v, i) || !plainJson(v[i], keys)) return false;
				return true;
			}
			if (proto !== Object.prototype && proto !== null) return false;
			const obj = v as Record<string, unknown>;
			for (const k of Object.keys(obj)) {
				keys.add(k);
				if (!plainJson(obj[k], keys)) return false;
			}
			return true;
		}
		default:
			return false;
	}
}

/** `value` as the plain JSON it will be once stored (drops undefined, dates to strings, …). */
export function toJson(value: unknown): Json {
	const text = JSON.stringify(value);
	if (text === undefined) throw new TypeError("not JSON");
	return JSON.parse(text) as Json;
}

/** (One-shot `crypto.hash`: no Hash object per entry; the same UTF-8 bytes as `createHash().update(text, "utf8")`.) */
export function sha256Hex(text: string): string {
	return hash("sha256", text, "hex");
}

/** SHA-256 of the canonical JSON of the entry: what `hash` must be. */
export function entryHash(e: ChainEntry): string {
	return sha256Hex(canonicalJson(e));
}

const str = (s: string | null): string => (s === null ? "null" : JSON.stringify(s));

/**
 * The same hash as {@link entryHash}, from stored columns: `dataCanonical` is the
 * entry's data already in canonical JSON (as the events table stores it). Keys
 * are written in their sorted order: actor, at, data, meeting, meetingPrev,
 * prev, seq, tenant, type, v.
 */
export function entryHashFromColumns(
	seq: number,
	at: string,
	tenant: string,
	meeting: string | null,
	type: string,
	actor: string | null,
	dataCanonical: string,
	prev: string,
	meetingPrev: string | null,
): string {
	return chainedHash(entryHashParts(at, tenant, meeting, type, actor, dataCanonical), seq, prev, meetingPrev);
}

/**
 * The text {@link entryHashFromColumns} hashes, cut around the three fields only the chain's head decides
 * (meetingPrev, prev, seq, which sort next to each other): what comes before and after them. Built before the
 * tenant's lock is taken, so under it only {@link chainedHash} is left.
 */
export interface EntryHashParts {
	head: string;
	tail: string;
}

export function entryHashParts(
	at: string,
	tenant: string,
	meeting: string | null,
	type: string,
	actor: string | null,
	dataCanonical: string,
): EntryHashParts {
	return {
		head: `{"actor":${str(actor)},"at":${str(at)},"data":${dataCanonical},"meeting":${str(meeting)},"meetingPrev":`,
		tail: `,"tenant":${str(tenant)},"type":${str(type)},"v":${CHAIN_VERSION}}`,
	};
}

/** The entry's hash from its {@link EntryHashParts} and its place in the chain. */
export function chainedHash(parts: EntryHashParts, seq: number, prev: string, meetingPrev: string | null): string {
	return sha256Hex(`${parts.head}${str(meetingPrev)},"prev":${str(prev)},"seq":${JSON.stringify(seq)}${parts.tail}`);
}

/** First line of a meeting export (JSON Lines). */
export interface ExportHeader {
	kind: "consentry.audit.export";
	version: typeof CHAIN_VERSION;
	scope: "meeting";
	tenant: string;
	meeting: string;
	exportedAt: string;
	/** Number of entry lines that follow. */
	entries: number;
	/** The meeting's last entry at export time (null: no entries). */
	meetingHead: ChainHead | null;
	/** The tenant chain's head at export time: an anchor to compare with the gateway later. */
	chainHead: ChainHead | null;
	/**
	 * Issue 14 retention: the meeting's first entries were purged; this `chain.checkpoint` entry (with its hash)
	 * names the hash of the meeting's last purged entry (`data.meetingHeads[meeting]`): the export's new start.
	 */
	checkpoint?: ExportEntryLine;
}

/** Every other line of a meeting export. */
export interface ExportEntryLine {
	kind: "entry";
	hash: string;
	entry: ChainEntry;
}

import { createHash } from "node:crypto";

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
 */
export function canonicalJson(value: unknown): string {
	if (value === null) return "null";
	switch (typeof value) {
		case "string":
			return JSON.stringify(value);
		case "boolean":
			return value ? "true" : "false";
		case "number":
			if (!Number.isFinite(value)) throw new TypeError(`not JSON: ${value}`);
			return JSON.stringify(value);
		case "object": {
			if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
			const obj = value as Record<string, unknown>;
			const keys = Object.keys(obj).sort();
			let out = "{";
			for (let i = 0; i < keys.length; i++) {
				const k = keys[i] as string;
				out += `${i ? "," : ""}${JSON.stringify(k)}:${canonicalJson(obj[k])}`;
			}
			return `${out}}`;
		}
		default:
			throw new TypeError(`not JSON: ${typeof value}`);
	}
}

/** `value` as the plain JSON it will be once stored (drops undefined, dates to strings, …). */
export function toJson(value: unknown): Json {
	const text = JSON.stringify(value);
	if (text === undefined) throw new TypeError("not JSON");
	return JSON.parse(text) as Json;
}

export function sha256Hex(text: string): string {
	return createHash("sha256").update(text, "utf8").digest("hex");
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

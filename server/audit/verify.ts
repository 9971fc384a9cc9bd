import type { Database } from "../store/Database.js";
import {
	CHAIN_VERSION,
	type ChainEntry,
	type ChainHead,
	entryHash,
	entryHashFromColumns,
	GENESIS,
	HASH_RE,
} from "./chain.js";

/**
 * Why a chain (or an export) does not verify:
 * - `hash`: the entry's content does not match its hash (the entry was altered);
 * - `link`: the entry's `prev` is not the hash of the tenant's previous entry
 *   (the previous entry was altered and re-hashed, removed, replaced, or entries were reordered);
 * - `meeting_link`: likewise for `meetingPrev` and the meeting's previous entry;
 * - `sequence`: a position is missing or appears twice;
 * - `unchained`: a row carries no chain fields;
 * - `anchor`: the chain does not contain a head recorded earlier (rewritten or truncated);
 * - `checkpoint`: the chain starts after entry 1 (or a meeting after its first entry) and no `chain.checkpoint`
 *   entry vouches for that cut (issue 14 retention: a purge always writes one);
 * - `format`, `scope`, `count`: an export that is not well formed, mixes tenants or
 *   meetings, or does not match its header.
 */
export type BreakReason =
	| "hash"
	| "link"
	| "meeting_link"
	| "sequence"
	| "unchained"
	| "anchor"
	| "checkpoint"
	| "format"
	| "scope"
	| "count";

/** The first place where a chain stops verifying. */
export interface ChainBreak {
	/** Chain position of the first entry that fails (0: the export header). */
	seq: number;
	reason: BreakReason;
	expected: string;
	found: string;
	message: string;
}

export interface VerifyResult {
	ok: boolean;
	tenantId: string;
	/** Entries checked (up to the break). */
	entries: number;
	/** Last verified entry. */
	head: ChainHead | null;
	/** The chain was cut by retention: entries 1..throughSeq are gone, vouched for by the checkpoint at `checkpointSeq`. */
	purged?: { throughSeq: number; checkpointSeq: number };
	break?: ChainBreak;
}

export type Row = [
	seq: number,
	at: string,
	tenant: string,
	meeting: string | null,
	type: string,
	actor: string | null,
	data: string,
	prev: string | null,
	meetingPrev: string | null,
	hash: string | null,
];

/** True when the events table is the chained one (migration 2 ran). */
export function hasChain(db: Database): boolean {
	return (db.prepare("PRAGMA table_info(events)").all() as { name: string }[]).some((c) => c.name === "hash");
}

/** Tenants that have entries. */
export function tenantsOf(db: Database): string[] {
	return (db.prepare("SELECT DISTINCT tenant_id FROM events ORDER BY tenant_id").pluck().all() as string[]).filter(
		(t) => t !== null,
	);
}

/**
 * Recomputes one tenant's chain from its first entry and reports the first
 * broken link. With `anchor` (a head recorded earlier, e.g. from an export
 * header), also checks that the chain still holds that entry with that hash:
 * the only way to notice a chain rewritten from scratch or cut at its tail.
 */
export function verifyTenant(db: Database, tenantId: string, opts: { anchor?: ChainHead } = {}): VerifyResult {
	const rows = db
		.prepare(
			`SELECT seq, at, tenant_id, meeting_id, type, actor, data, prev_hash, meeting_prev_hash, hash
			 FROM events WHERE tenant_id = ? ORDER BY seq`,
		)
		.raw()
		.iterate(tenantId) as IterableIterator<Row>;
	const v = new ChainVerifier(tenantId, opts);
	for (const r of rows) {
		const broken = v.push(r);
		if (broken) {
			rows.return?.();
			return broken;
		}
	}
	return v.finish();
}

/** {@link verifyTenant} over rows read from any engine (the store reads them a page at a time). */
export async function verifyChain(
	tenantId: string,
	rows: AsyncIterable<Row>,
	opts: { anchor?: ChainHead } = {},
): Promise<VerifyResult> {
	const v = new ChainVerifier(tenantId, opts);
	for await (const r of rows) {
		const broken = v.push(r);
		if (broken) return broken;
	}
	return v.finish();
}

/**
 * Recomputes one tenant's chain from its first entry, one row at a time in chain order, and reports the first
 * broken link. With `anchor` (a head recorded earlier, e.g. from an export header), also checks that the chain
 * still holds that entry with that hash: the only way to notice a chain rewritten from scratch or cut at its tail.
 */
export class ChainVerifier {
	readonly #tenantId: string;
	readonly #anchor: ChainHead | undefined;
	#expectedSeq = 1;
	#prevHash = GENESIS;
	#anchorHash: string | undefined;
	readonly #meetings = new Map<string, string>();
	/** Issue 14 retention: where the chain starts when its first entries were purged, until a checkpoint vouches. */
	#cut: ChainHead | undefined;
	#vouched: { checkpointSeq: number; meetingHeads: Record<string, unknown> } | undefined;
	/** Meetings whose first remaining entry links to a purged one: their `meetingPrev`, to match the checkpoint. */
	readonly #pendingMeetings = new Map<string, { seq: number; hash: string }>();

	constructor(tenantId: string, opts: { anchor?: ChainHead } = {}) {
		this.#tenantId = tenantId;
		this.#anchor = opts.anchor;
	}

	#fail(b: ChainBreak): VerifyResult {
		return {
			ok: false,
			tenantId: this.#tenantId,
			entries: this.#expectedSeq - 1 - (this.#cut?.seq ?? 0),
			head: this.#expectedSeq > 1 ? { seq: this.#expectedSeq - 1, hash: this.#prevHash } : null,
			break: b,
		};
	}

	/** Checks the next row; returns the failed result at the first broken link (then stop). */
	push(r: Row): VerifyResult | undefined {
		const [seq, at, tenant, meeting, type, actor, data, prev, meetingPrev, hash] = r;
		const expectedSeq = this.#expectedSeq;
		const prevHash = this.#prevHash;
		if (prev === null || hash === null) {
			return this.#fail({
				seq,
				reason: "unchained",
				expected: "an entry with a hash and a prev hash",
				found: `hash ${hash}, prev hash ${prev}`,
				message: `entry ${seq} (${type} at ${at}) has no hash: written before the chain and not sealed yet (open the database with the gateway), or outside the audit log`,
			});
		}
		// The first entries were purged (retention): the chain starts here; a checkpoint must vouch for the cut.
		if (expectedSeq === 1 && seq > 1 && this.#cut === undefined) {
			this.#cut = { seq: seq - 1, hash: prev };
			this.#expectedSeq = seq;
			this.#prevHash = prev;
			return this.push(r);
		}
		if (seq !== expectedSeq) {
			return this.#fail({
				seq: expectedSeq,
				reason: "sequence",
				expected: String(expectedSeq),
				found: String(seq),
				message:
					seq > expectedSeq
						? `entry ${expectedSeq} is missing: after entry ${expectedSeq - 1} comes entry ${seq}`
						: `entry ${seq} is out of order where entry ${expectedSeq} should be`,
			});
		}
		if (prev !== prevHash) {
			return this.#fail({
				seq,
				reason: "link",
				expected: prevHash,
				found: prev,
				message: `entry ${seq} does not link to entry ${seq - 1}: its prev hash is not that entry's hash (entry ${seq - 1} was altered and re-hashed, or entries were removed, inserted or reordered here)`,
			});
		}
		let expectedMeetingPrev = meeting === null ? null : (this.#meetings.get(meeting) ?? GENESIS);
		if (
			meeting !== null &&
			this.#cut !== undefined &&
			!this.#meetings.has(meeting) &&
			meetingPrev !== null &&
			meetingPrev !== GENESIS
		) {
			// A meeting that went on after the cut: its previous entry was purged; the checkpoint names it.
			this.#pendingMeetings.set(meeting, { seq, hash: meetingPrev });
			expectedMeetingPrev = meetingPrev;
		}
		if (meetingPrev !== expectedMeetingPrev) {
			return this.#fail({
				seq,
				reason: "meeting_link",
				expected: String(expectedMeetingPrev),
				found: String(meetingPrev),
				message: `entry ${seq} does not link to the previous entry of meeting ${meeting}`,
			});
		}
		const computed = entryHashFromColumns(seq, at, tenant, meeting, type, actor, data, prev, meetingPrev);
		if (computed !== hash) {
			return this.#fail({
				seq,
				reason: "hash",
				expected: computed,
				found: hash,
				message: `entry ${seq} (${type}) does not match its hash: its content was altered`,
			});
		}
		if (meeting !== null) this.#meetings.set(meeting, hash);
		if (type === "chain.checkpoint" && this.#cut !== undefined) {
			const d = parseObject(data);
			if (d && d.throughSeq === this.#cut.seq && d.throughHash === this.#cut.hash) {
				this.#vouched = { checkpointSeq: seq, meetingHeads: parseObject(d.meetingHeads) ?? {} };
			}
		}
		if (this.#anchor && seq === this.#anchor.seq) this.#anchorHash = hash;
		this.#prevHash = hash;
		this.#expectedSeq++;
		return undefined;
	}

	/** The result once every row passed. */
	finish(): VerifyResult {
		const cut = this.#cut;
		const result: VerifyResult = {
			ok: true,
			tenantId: this.#tenantId,
			entries: this.#expectedSeq - 1 - (cut?.seq ?? 0),
			head: this.#expectedSeq > 1 ? { seq: this.#expectedSeq - 1, hash: this.#prevHash } : null,
		};
		if (cut) {
			const v = this.#vouched;
			if (!v)
				return this.#fail({
					seq: cut.seq + 1,
					reason: "checkpoint",
					expected: `a chain.checkpoint entry for entries 1..${cut.seq} (hash ${cut.hash})`,
					found: "none",
					message: `the chain starts at entry ${cut.seq + 1}: entries 1..${cut.seq} are gone and no chain.checkpoint entry records that cut (the chain was truncated)`,
				});
			for (const [m, p] of this.#pendingMeetings) {
				if (v.meetingHeads[m] !== p.hash)
					return this.#fail({
						seq: p.seq,
						reason: "meeting_link",
						expected: String(v.meetingHeads[m] ?? GENESIS),
						found: p.hash,
						message: `entry ${p.seq} links to an earlier entry of meeting ${m} that is gone, and the checkpoint does not name it`,
					});
			}
			result.purged = { throughSeq: cut.seq, checkpointSeq: v.checkpointSeq };
		}
		const a = this.#anchor;
		// An anchor inside the purged prefix can't be checked any more: the checkpoint is what remains of it.
		if (a && !(cut && a.seq <= cut.seq)) {
			if (this.#anchorHash === undefined)
				return this.#fail({
					seq: a.seq,
					reason: "anchor",
					expected: a.hash,
					found: "no such entry",
					message: `the chain ends at entry ${this.#expectedSeq - 1}, before the anchor's entry ${a.seq}: it was cut short`,
				});
			if (this.#anchorHash !== a.hash)
				return this.#fail({
					seq: a.seq,
					reason: "anchor",
					expected: a.hash,
					found: this.#anchorHash,
					message: `entry ${a.seq} is not the one anchored earlier: the chain was rewritten up to there`,
				});
		}
		return result;
	}
}

/** Verifies every tenant's chain (or one), each on its own. */
export function verifyDatabase(db: Database, opts: { tenantId?: string; anchor?: ChainHead } = {}): VerifyResult[] {
	const tenants = opts.tenantId !== undefined ? [opts.tenantId] : tenantsOf(db);
	return tenants.map((t) => verifyTenant(db, t, opts.anchor ? { anchor: opts.anchor } : {}));
}

function parseObject(v: unknown): Record<string, unknown> | undefined {
	let x = v;
	if (typeof v === "string") {
		try {
			x = JSON.parse(v);
		} catch {
			return undefined;
		}
	}
	return isObj(x) ? x : undefined;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isStrOrNull = (v: unknown): boolean => v === null || typeof v === "string";

function entryShapeError(e: unknown): string | undefined {
	if (!isObj(e)) return "entry is not an object";
	if (e.v !== CHAIN_VERSION) return `unknown entry version ${JSON.stringify(e.v)}`;
	if (!Number.isSafeInteger(e.seq) || (e.seq as number) < 1) return "seq is not a positive integer";
	if (typeof e.at !== "string" || typeof e.tenant !== "string" || typeof e.type !== "string")
		return "at, tenant or type is not a string";
	if (!isStrOrNull(e.meeting) || !isStrOrNull(e.actor)) return "meeting or actor is not a string or null";
	if (!isObj(e.data)) return "data is not an object";
	if (typeof e.prev !== "string" || !HASH_RE.test(e.prev)) return "prev is not a hash";
	if (!(e.meetingPrev === null || (typeof e.meetingPrev === "string" && HASH_RE.test(e.meetingPrev))))
		return "meetingPrev is not a hash or null";
	return undefined;
}

/**
 * Verifies a meeting export (JSON Lines, see docs/audit.md) with nothing but its
 * text: every entry's hash, the meeting's sub-chain from its first entry (no
 * entry of the meeting left out, added or reordered between the first and the
 * last exported), the tenant-chain links between entries that are adjacent in
 * the tenant chain, and the header's claims.
 */
export function verifyExport(text: string): VerifyResult {
	const lines = text.split("\n").filter((l) => l.trim() !== "");
	let tenantId = "";
	let checked = 0;
	let last: ChainHead | null = null;
	const fail = (b: ChainBreak): VerifyResult => ({ ok: false, tenantId, entries: checked, head: last, break: b });
	const format = (seq: number, message: string, found = ""): VerifyResult =>
		fail({ seq, reason: "format", expected: "a well-formed consentry audit export", found, message });

	let header: unknown;
	try {
		header = JSON.parse(lines[0] ?? "");
	} catch {
		return format(0, "line 1 is not JSON", (lines[0] ?? "").slice(0, 80));
	}
	if (!isObj(header) || header.kind !== "consentry.audit.export")
		return format(0, "line 1 is not a consentry audit export header");
	if (header.version !== CHAIN_VERSION) return format(0, `unknown export version ${JSON.stringify(header.version)}`);
	if (typeof header.tenant !== "string" || typeof header.meeting !== "string")
		return format(0, "the header names no tenant or meeting");
	tenantId = header.tenant;
	const meeting = header.meeting;
	// Issue 14 retention: the meeting's first entries were purged; the checkpoint (hashed, of the same tenant) names
	// the hash of its last purged entry, the export's new start.
	let meetingStart = GENESIS;
	if (header.checkpoint !== undefined) {
		const cp = header.checkpoint as Record<string, unknown>;
		const shape = isObj(cp) ? entryShapeError(cp.entry) : "not an object";
		if (shape || typeof cp.hash !== "string") return format(0, `the header's checkpoint: ${shape ?? "no hash"}`);
		const e = cp.entry as unknown as ChainEntry;
		if (e.tenant !== tenantId || e.type !== "chain.checkpoint")
			return format(0, "the header's checkpoint is not a chain.checkpoint entry of this tenant");
		const computed = entryHash(e);
		if (computed !== cp.hash)
			return fail({
				seq: e.seq,
				reason: "hash",
				expected: computed,
				found: String(cp.hash),
				message: `the checkpoint entry ${e.seq} does not match its hash: its content was altered`,
			});
		const named = parseObject(e.data.meetingHeads)?.[meeting];
		if (typeof named !== "string" || !HASH_RE.test(named))
			return format(0, `the header's checkpoint does not name meeting ${meeting}`);
		meetingStart = named;
	}

	for (let i = 1; i < lines.length; i++) {
		let line: unknown;
		try {
			line = JSON.parse(lines[i] as string);
		} catch {
			return format(last ? last.seq + 1 : 1, `line ${i + 1} is not JSON`, (lines[i] as string).slice(0, 80));
		}
		if (!isObj(line) || line.kind !== "entry" || typeof line.hash !== "string" || !HASH_RE.test(line.hash))
			return format(last ? last.seq + 1 : 1, `line ${i + 1} is not an entry line`);
		const shape = entryShapeError(line.entry);
		if (shape) return format(last ? last.seq + 1 : 1, `line ${i + 1}: ${shape}`);
		const e = line.entry as unknown as ChainEntry;
		if (e.tenant !== tenantId || e.meeting !== meeting)
			return fail({
				seq: e.seq,
				reason: "scope",
				expected: `${tenantId}/${meeting}`,
				found: `${e.tenant}/${e.meeting}`,
				message: `entry ${e.seq} belongs to another tenant or meeting`,
			});
		if (last && e.seq <= last.seq)
			return fail({
				seq: e.seq,
				reason: "sequence",
				expected: `a position after ${last.seq}`,
				found: String(e.seq),
				message: `entry ${e.seq} comes after entry ${last.seq}: entries are duplicated or out of order`,
			});
		const expectedMeetingPrev = last ? last.hash : meetingStart;
		if (e.meetingPrev !== expectedMeetingPrev)
			return fail({
				seq: e.seq,
				reason: "meeting_link",
				expected: expectedMeetingPrev,
				found: String(e.meetingPrev),
				message: last
					? `entry ${e.seq} does not link to entry ${last.seq}, the meeting's previous entry in this export: an entry of the meeting is missing between them, or entry ${last.seq} was altered and re-hashed`
					: `entry ${e.seq} is not the meeting's first entry: the export does not start at the beginning of the meeting`,
			});
		const expectedPrev = e.seq === 1 ? GENESIS : last && last.seq === e.seq - 1 ? last.hash : undefined;
		if (expectedPrev !== undefined && e.prev !== expectedPrev)
			return fail({
				seq: e.seq,
				reason: "link",
				expected: expectedPrev,
				found: e.prev,
				message: `entry ${e.seq} does not link to entry ${e.seq - 1} of the tenant chain`,
			});
		const computed = entryHash(e);
		if (computed !== line.hash)
			return fail({
				seq: e.seq,
				reason: "hash",
				expected: computed,
				found: line.hash,
				message: `entry ${e.seq} (${e.type}) does not match its hash: its content was altered`,
			});
		last = { seq: e.seq, hash: line.hash };
		checked++;
	}

	const count = (message: string, expected: string, found: string): VerifyResult =>
		fail({ seq: 0, reason: "count", expected, found, message });
	if (header.entries !== checked)
		return count(
			`the header announces ${String(header.entries)} entries, the export holds ${checked}: lines were removed or added at the end`,
			String(header.entries),
			String(checked),
		);
	const mh = header.meetingHead as ChainHead | null | undefined;
	if ((mh ?? null) === null ? last !== null : !last || mh?.seq !== last.seq || mh?.hash !== last.hash)
		return count("the header's meeting head is not the last entry", JSON.stringify(mh ?? null), JSON.stringify(last));
	const ch = header.chainHead as ChainHead | null | undefined;
	if (last && (!ch || ch.seq < last.seq || (ch.seq === last.seq && ch.hash !== last.hash)))
		return count(
			"the header's chain head does not come at or after the last entry",
			`a head at or after entry ${last.seq}`,
			JSON.stringify(ch ?? null),
		);
	return { ok: true, tenantId, entries: checked, head: last };
}

import { createHash } from "node:crypto";
import { z } from "zod";
import type { Bucket, Listed } from "./bucket.js";
import type { Findings } from "./report.js";
import { type Entry, lineOf, parseExport, safeVerifyExport, type VerifyLimits } from "./verifySession.js";

/** `erasure-<requestId>.json` and its trail `erasure-<requestId>.audit.jsonl` (server/privacy/DataSubjectBucket.ts). */
const RECORD_NAME = /^erasure-(dsr_[0-9a-f]{32})\.json$/;
const AUDIT_NAME = /^erasure-(dsr_[0-9a-f]{32})\.audit\.jsonl$/;

const Sized = z.object({ size: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });

export const ErasureRecordSchema = z.looseObject({
	kind: z.literal("consentry.dsr.erasure"),
	version: z.literal(1),
	requestId: z.string().regex(/^dsr_[0-9a-f]{32}$/),
	tenant: z.string(),
	meeting: z.string(),
	session: z.string(),
	pseudonym: z.string().regex(/^psn_[0-9a-f]{64}$/),
	at: z.iso.datetime({ offset: true }),
	removed: z.array(z.object({ key: z.string() }).extend(Sized.shape)).max(100_000),
	rewritten: z
		.array(z.object({ key: z.string(), before: Sized, after: Sized, linesRemoved: z.number().int().nonnegative() }))
		.max(100),
	audit: z.object({ key: z.string() }),
});
export type ErasureRecord = z.infer<typeof ErasureRecordSchema>;

/** A data-subject erasure the session carries, checked against its tombstone in the chain. */
export interface AcceptedErasure {
	key: string;
	record: ErasureRecord;
	/** The entries of the meeting's trail written after the erasure (the record's own audit export). */
	entries: Entry[];
}

/** Whether a key of the session's folder is an erasure record or its trail. */
export function isErasureFile(prefix: string, key: string): boolean {
	const name = key.slice(prefix.length + 1);
	return RECORD_NAME.test(name) || AUDIT_NAME.test(name);
}

/**
 * The erasure records in a session's folder (docs/privacy.md, "Data-subject requests"): each must be well formed,
 * name this session, and be anchored by its `dsr.objects_erased` entry (the record's SHA-256) in its own audit
 * export, which must verify and extend the trail the session was proven with (`anchor`: the meeting head that
 * proof names). Only then may the caller accept the deletions and rewrites it lists; any other finding fails.
 * Sorted by time: rewrites of the same object apply in order.
 */
export async function readErasures(
	bucket: Bucket,
	prefix: string,
	listed: Map<string, Listed>,
	limits: VerifyLimits,
	f: Findings,
	anchor: unknown,
): Promise<AcceptedErasure[]> {
	const parts = prefix.split("/");
	const session = parts.at(-1) ?? "";
	const meeting = parts.at(-2) ?? "";
	const out: AcceptedErasure[] = [];
	for (const o of listed.values()) {
		const name = o.key.slice(prefix.length + 1);
		const m = RECORD_NAME.exec(name);
		if (!m) {
			const a = AUDIT_NAME.exec(name);
			if (a && !listed.has(`${prefix}/erasure-${a[1]}.json`))
				f.fail("listing", o.key, "added: an erasure trail without its erasure record");
			continue;
		}
		const read = await bucket.read(o.key, limits.maxManifestBytes);
		if (!read || "tooLarge" in read) {
			f.fail("listing", o.key, "an erasure record that can't be read");
			continue;
		}
		let parsed: ErasureRecord;
		try {
			const p = ErasureRecordSchema.safeParse(JSON.parse(read.bytes.toString("utf8")));
			if (!p.success) throw new Error(p.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
			parsed = p.data;
		} catch (err) {
			f.fail("listing", o.key, `not an erasure record: ${(err as Error).message.slice(0, 300)}`);
			continue;
		}
		if (parsed.requestId !== m[1] || parsed.session !== session || parsed.meeting !== meeting) {
			f.fail("listing", o.key, "an erasure record of another request or session");
			continue;
		}
		const auditKey = `${prefix}/erasure-${parsed.requestId}.audit.jsonl`;
		if (parsed.audit.key !== auditKey || !listed.has(auditKey)) {
			f.fail("audit-chain", o.key, `its trail ${auditKey} is missing: the erasure is not anchored (still pending?)`);
			continue;
		}
		const auditRead = await bucket.read(auditKey, limits.maxAuditBytes);
		if (!auditRead || "tooLarge" in auditRead) {
			f.fail("audit-chain", auditKey, "can't be read");
			continue;
		}
		const text = auditRead.bytes.toString("utf8");
		const chain = safeVerifyExport(text);
		if (!chain.ok && chain.break) {
			f.fail(
				"audit-chain",
				`${auditKey} ${chain.break.seq ? `entry ${chain.break.seq}` : "header"}${lineOf(text, chain.break.seq)}`,
				`${chain.break.reason}: ${chain.break.message}`,
			);
			continue;
		}
		const { header, entries } = parseExport(text);
		if (header?.tenant !== parsed.tenant || header?.meeting !== meeting) {
			f.fail("audit-chain", auditKey, "the trail of another tenant or meeting");
			continue;
		}
		const a = anchor as { seq?: unknown; hash?: unknown } | null | undefined;
		if (a && typeof a.seq === "number" && !entries.some((x) => x.e.seq === a.seq && x.hash === a.hash)) {
			f.fail(
				"audit-chain",
				auditKey,
				`does not extend the session's own trail (its meeting head ${a.seq} is not in it)`,
			);
			continue;
		}
		const sha256 = createHash("sha256").update(read.bytes).digest("hex");
		const tomb = entries.find(
			(x) =>
				x.e.type === "dsr.objects_erased" &&
				x.e.data.requestId === parsed.requestId &&
				x.e.data.sessionId === session &&
				x.e.data.pseudonym === parsed.pseudonym &&
				(x.e.data.amendment as { key?: unknown; sha256?: unknown } | undefined)?.key === o.key &&
				(x.e.data.amendment as { sha256?: unknown } | undefined)?.sha256 === sha256,
		);
		if (!tomb) {
			f.fail(
				"audit-chain",
				o.key,
				"no dsr.objects_erased entry in its trail names this record and its SHA-256: changed, or not anchored",
			);
			continue;
		}
		for (const r of parsed.removed)
			if (!r.key.startsWith(`${prefix}/${parsed.pseudonym}-`))
				f.fail("listing", r.key, `the erasure record removes an object that is not ${parsed.pseudonym}'s`);
		f.warn(
			"listing",
			o.key,
			`erased by request ${parsed.requestId} (${tomb.e.type} entry ${tomb.e.seq}): ${parsed.removed.length} object(s) of ${parsed.pseudonym} removed, ${parsed.rewritten.length} rewritten without their lines`,
		);
		out.push({ key: o.key, record: parsed, entries });
	}
	return out.sort((x, y) => x.record.at.localeCompare(y.record.at));
}

/**
 * What an object must be now, given what the proof says it was (`size`/`sha256`) and the erasures: the rewrites
 * applied in order. `removed`: an erasure deleted it (its bytes must have been exactly the proof's).
 */
export function afterErasures(
	key: string,
	was: { size: number; sha256: string | null },
	erasures: readonly AcceptedErasure[],
): { size: number; sha256: string | null; removed: boolean; linesRemoved: number; mismatch?: string } {
	let cur = { ...was };
	let lines = 0;
	for (const e of erasures) {
		const gone = e.record.removed.find((r) => r.key === key);
		if (gone) {
			if (gone.size !== cur.size || (cur.sha256 !== null && gone.sha256 !== cur.sha256))
				return {
					...cur,
					removed: false,
					linesRemoved: lines,
					mismatch: `${e.key} removed other bytes than the proof's`,
				};
			return { ...cur, removed: true, linesRemoved: lines };
		}
		const rw = e.record.rewritten.find((r) => r.key === key);
		if (rw) {
			if (rw.before.size !== cur.size || rw.before.sha256 !== cur.sha256)
				return {
					...cur,
					removed: false,
					linesRemoved: lines,
					mismatch: `${e.key} rewrote other bytes than the proof's`,
				};
			cur = { size: rw.after.size, sha256: rw.after.sha256 };
			lines += rw.linesRemoved;
		}
	}
	return { ...cur, removed: false, linesRemoved: lines };
}

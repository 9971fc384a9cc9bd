import type { EventRow } from "../store/AuditRepository.js";
import type { Database } from "../store/Database.js";
import {
	CHAIN_VERSION,
	type ChainEntry,
	type ChainHead,
	type ExportEntryLine,
	type ExportHeader,
	GENESIS,
} from "./chain.js";

/**
 * One meeting's entries as JSON Lines: a header line (tenant, meeting, entry
 * count, the meeting's last entry and the tenant chain's head at export time),
 * then one line per entry with its hash and every hashed field. `chainHead` is
 * read after the rows, so it is at or after the meeting's last entry even while
 * others append. Verify with `verifyExport` or `scripts/audit.ts verify --jsonl`
 * (docs/audit.md).
 */
export function exportText(
	tenantId: string,
	meetingId: string,
	rows: readonly EventRow[],
	chainHead: ChainHead | null,
	checkpoint?: EventRow,
): string {
	const last = rows.at(-1);
	const header: ExportHeader = {
		kind: "consentry.audit.export",
		version: CHAIN_VERSION,
		scope: "meeting",
		tenant: tenantId,
		meeting: meetingId,
		exportedAt: new Date().toISOString(),
		entries: rows.length,
		meetingHead: last ? { seq: last.seq, hash: last.hash as string } : null,
		chainHead,
		...(checkpoint ? { checkpoint: entryLine(checkpoint) } : {}),
	};
	const lines = [JSON.stringify(header)];
	for (const r of rows) lines.push(JSON.stringify(entryLine(r)));
	return `${lines.join("\n")}\n`;
}

function entryLine(r: EventRow): ExportEntryLine {
	const entry: ChainEntry = {
		v: CHAIN_VERSION,
		seq: r.seq,
		at: r.at,
		tenant: r.tenant_id,
		meeting: r.meeting_id,
		type: r.type,
		actor: r.actor,
		data: JSON.parse(r.data) as ChainEntry["data"],
		prev: r.prev_hash as string,
		meetingPrev: r.meeting_prev_hash,
	};
	return { kind: "entry", hash: r.hash as string, entry };
}

/** {@link exportText} straight from a SQLite file opened read-only (the offline CLI, scripts/audit.ts). */
export function exportMeeting(db: Database, tenantId: string, meetingId: string): string {
	return db.transaction(() => {
		const rows = db
			.prepare(
				`SELECT seq, at, tenant_id, meeting_id, type, actor, data, prev_hash, meeting_prev_hash, hash
				 FROM events INDEXED BY events_by_meeting
				 WHERE tenant_id = ? AND meeting_id = ? AND hash IS NOT NULL ORDER BY seq`,
			)
			.all(tenantId, meetingId) as EventRow[];
		const chainHead =
			(db.prepare("SELECT seq, hash FROM events WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1").get(tenantId) as
				| ChainHead
				| undefined) ?? null;
		// Issue 14 retention: a meeting cut by a purge starts after the tenant's last checkpoint, which the export carries.
		let checkpoint: EventRow | undefined;
		if (rows[0] && rows[0].meeting_prev_hash !== GENESIS) {
			const hasPurges = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_purges'").get();
			const cp = hasPurges
				? (db.prepare("SELECT checkpoint_seq FROM audit_purges WHERE tenant_id = ?").get(tenantId) as
						| { checkpoint_seq: number }
						| undefined)
				: undefined;
			if (cp)
				checkpoint = db
					.prepare(
						`SELECT seq, at, tenant_id, meeting_id, type, actor, data, prev_hash, meeting_prev_hash, hash
						 FROM events WHERE tenant_id = ? AND seq = ?`,
					)
					.get(tenantId, cp.checkpoint_seq) as EventRow | undefined;
		}
		return exportText(tenantId, meetingId, rows, chainHead, checkpoint);
	})();
}

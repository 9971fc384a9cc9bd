import type { Database } from "../store/Database.js";
import { CHAIN_VERSION, type ChainEntry, type ChainHead, type ExportEntryLine, type ExportHeader } from "./chain.js";
import type { EventRow } from "./EventLog.js";

/**
 * One meeting's entries as JSON Lines: a header line (tenant, meeting, entry
 * count, the meeting's last entry and the tenant chain's head at export time),
 * then one line per entry with its hash and every hashed field. Read from one
 * snapshot, so the header and the entries agree even while others append.
 * Verify with `verifyExport` or `scripts/audit.ts verify --jsonl` (docs/audit.md).
 */
export function exportMeeting(db: Database, tenantId: string, meetingId: string): string {
	return db.transaction(() => {
		const chainHead =
			(db.prepare("SELECT seq, hash FROM events WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1").get(tenantId) as
				| ChainHead
				| undefined) ?? null;
		const rows = db
			.prepare(
				`SELECT seq, at, tenant_id, meeting_id, type, actor, data, prev_hash, meeting_prev_hash, hash
				 FROM events INDEXED BY events_by_meeting
				 WHERE tenant_id = ? AND meeting_id = ? AND hash IS NOT NULL ORDER BY seq`,
			)
			.all(tenantId, meetingId) as EventRow[];
		const last = rows.at(-1);
		const header: ExportHeader = {
			kind: "consentry.audit.export",
			version: CHAIN_VERSION,
			scope: "meeting",
			tenant: tenantId,
			meeting: meetingId,
			exportedAt: new Date().toISOString(),
			entries: rows.length,
			meetingHead: last ? { seq: last.seq, hash: last.hash } : null,
			chainHead,
		};
		const lines = [JSON.stringify(header)];
		for (const r of rows) {
			const entry: ChainEntry = {
				v: CHAIN_VERSION,
				seq: r.seq,
				at: r.at,
				tenant: r.tenant_id,
				meeting: r.meeting_id,
				type: r.type,
				actor: r.actor,
				data: JSON.parse(r.data) as ChainEntry["data"],
				prev: r.prev_hash,
				meetingPrev: r.meeting_prev_hash,
			};
			const line: ExportEntryLine = { kind: "entry", hash: r.hash, entry };
			lines.push(JSON.stringify(line));
		}
		return `${lines.join("\n")}\n`;
	})();
}

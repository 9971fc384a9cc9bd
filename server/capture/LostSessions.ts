import type { AuditEvent, EventLog } from "../audit/EventLog.js";
import type { CaptureKind } from "../compliance/CaptureTypes.js";

/** How an interrupted capture session ended: the gateway crashed (found at its restart) or its node was lost (cluster). */
export interface CrashKind {
	endReason: "gateway_crashed" | "node_lost";
	cause: "gateway_crash" | "node_lost";
}
export const CRASHED: CrashKind = { endReason: "gateway_crashed", cause: "gateway_crash" };
export const NODE_LOST: CrashKind = { endReason: "node_lost", cause: "node_lost" };

/**
 * The object that ends a session of each kind, recorded in the trail (`storage.object_written`) when it is written:
 * a session without it was interrupted (its gateway crashed, or its node was lost) and is finished from the bucket.
 */
const FINAL_OBJECT: Record<CaptureKind, string> = {
	recording: "manifest.json",
	transcription: "transcript.json",
};

/**
 * The `session.on` entries of this tenant's sessions of `kind` (in `meetingId`, when given) that never got their final
 * object (recording: manifest.json; transcription: transcript.json, as written at the session's end), are not
 * running here (`live`), and whose meeting does not live on another live node (`elsewhere`: that node's, not a
 * crash). What both capture sinks finish from the bucket after a crash or a lost node.
 */
export async function unfinishedSessions(
	events: EventLog,
	o: {
		tenantId: string;
		kind: CaptureKind;
		meetingId?: string;
		live: (sessionId: string) => boolean;
		elsewhere?: (meetingId: string) => Promise<boolean>;
	},
): Promise<AuditEvent[]> {
	const final = `/${FINAL_OBJECT[o.kind]}`;
	const done = new Set(
		(await events.list({ tenantId: o.tenantId, type: "storage.object_written", limit: 100_000 }))
			.filter((e) => e.data.kind === o.kind && typeof e.data.key === "string" && e.data.key.endsWith(final))
			.map((e) => e.data.sessionId as string),
	);
	const candidates = (await events.list({ tenantId: o.tenantId, type: "session.on", limit: 100_000 })).filter(
		(e) =>
			e.data.kind === o.kind &&
			typeof e.data.sessionId === "string" &&
			e.meetingId &&
			(o.meetingId === undefined || e.meetingId === o.meetingId) &&
			!done.has(e.data.sessionId) &&
			!o.live(e.data.sessionId),
	);
	const unfinished: AuditEvent[] = [];
	for (const e of candidates) if (!(await o.elsewhere?.(e.meetingId as string))) unfinished.push(e);
	return unfinished;
}

import { createHash } from "node:crypto";
import type { AuditEvent, EventLog } from "../audit/EventLog.js";
import type { WebhookEventType, WebhookPayload } from "./WebhookTypes.js";

/**
 * Turns the audit trail into webhook events: the trail is the one record of what happened (every gateway
 * process appends to it), so webhooks are a projection of it and never disagree with the proof.
 */

/** The webhook event an audit entry makes, if any, with its data. */
export async function toWebhookEvent(
	e: AuditEvent,
	events: EventLog,
): Promise<{ type: WebhookEventType; data: Record<string, unknown> } | undefined> {
	const d = e.data;
	const kind = d.kind;
	switch (e.type) {
		case "meeting.started":
			return { type: "meeting.started", data: {} };
		case "meeting.ended":
			return { type: "meeting.ended", data: pick(d, ["reason"]) };
		case "session.on":
			if (kind !== "recording") return undefined;
			return {
				type: "recording.started",
				data: { sessionId: d.sessionId, policy: d.policy ?? null, resumed: await resumed(e, events) },
			};
		case "session.paused":
			return kind === "recording" ? { type: "recording.paused", data: { sessionId: d.sessionId } } : undefined;
		case "session.off":
			return kind === "recording"
				? { type: "recording.stopped", data: { sessionId: d.sessionId ?? null, reason: d.reason ?? "stopped" } }
				: undefined;
		case "storage.object_written":
			if (kind === "recording" && d.manifest === true) return await recordingReady(e, events);
			if (kind === "transcription" && typeof d.key === "string" && d.key.endsWith("/transcript.vtt"))
				return await transcriptReady(e, events);
			return undefined;
		case "consent.declined":
			return { type: "consent.declined", data: { ...pick(d, ["kind", "sessionId"]), person: d.person ?? e.actor } };
		case "operator.action":
			return { type: "operator.action", data: { ...d, actor: e.actor } };
		default:
			return undefined;
	}
}

/** The payload of an audit entry's webhook event (its id is stable: the same entry always gives the same id). */
export function payloadOf(e: AuditEvent, type: WebhookEventType, data: Record<string, unknown>): WebhookPayload {
	return {
		id: `evt_${createHash("sha256").update(`${e.tenantId}\n${e.seq}\n${e.hash}\n${type}`).digest("hex").slice(0, 32)}`,
		type,
		createdAt: e.at,
		tenant: e.tenantId,
		meetingId: e.meetingId,
		data,
		audit: { seq: e.seq, hash: e.hash },
	};
}

function pick(d: Record<string, unknown>, keys: string[]): Record<string, unknown> {
	const out: Record<string, unknown> = {};
	for (const k of keys) if (d[k] !== undefined) out[k] = d[k];
	return out;
}

/** Whether the recording session before this one in the meeting ended in a pause (this one is a resume). */
async function resumed(e: AuditEvent, events: EventLog): Promise<boolean> {
	if (!e.meetingId) return false;
	const before = (await events.list({ tenantId: e.tenantId, meetingId: e.meetingId, limit: 100_000 }))
		.filter(
			(x) =>
				x.seq < e.seq &&
				x.data.kind === "recording" &&
				(x.type === "session.paused" || x.type === "session.off" || x.type === "session.on"),
		)
		.at(-1);
	return before?.type === "session.paused";
}

/** The objects of one session of one kind, as the trail lists them (keys, sizes, checksums). */
async function sessionObjects(e: AuditEvent, events: EventLog, kind: string): Promise<Record<string, unknown>[]> {
	if (!e.meetingId) return [];
	return (
		await events.list({ tenantId: e.tenantId, meetingId: e.meetingId, type: "storage.object_written", limit: 100_000 })
	)
		.filter((x) => x.seq <= e.seq && x.data.kind === kind && x.data.sessionId === e.data.sessionId)
		.map((x) => ({
			key: x.data.key,
			size: x.data.size,
			sha256: x.data.sha256 ?? null,
			...(x.data.trackId ? { trackId: x.data.trackId } : {}),
			...(x.data.manifest ? { manifest: true } : {}),
			...(x.data.truncated ? { truncated: true } : {}),
			...(x.data.recovered ? { recovered: true } : {}),
		}));
}

async function recordingReady(e: AuditEvent, events: EventLog) {
	const d = e.data;
	return {
		type: "recording.ready" as const,
		data: {
			sessionId: d.sessionId,
			bucket: d.bucket,
			manifest: { key: d.key, size: d.size, sha256: d.sha256 },
			objects: await sessionObjects(e, events, "recording"),
			// The playback page for the host and the people who were in it (their own sign-in).
			playbackPath: `/r/${d.sessionId}`,
		},
	};
}

async function transcriptReady(e: AuditEvent, events: EventLog) {
	const d = e.data;
	const link = e.meetingId
		? (
				await events.list({
					tenantId: e.tenantId,
					meetingId: e.meetingId,
					type: "transcript.link_issued",
					limit: 10_000,
				})
			).find((x) => x.data.sessionId === d.sessionId)
		: undefined;
	return {
		type: "transcript.ready" as const,
		data: {
			sessionId: d.sessionId,
			bucket: d.bucket,
			objects: await sessionObjects(e, events, "transcription"),
			...(typeof link?.data.linkId === "string" ? { linkPath: `/t/${link.data.linkId}` } : {}),
		},
	};
}

import { randomBytes } from "node:crypto";
import type { Database } from "../store/Database.js";

export interface TranscriptLink {
	id: string;
	tenantId: string;
	meetingId: string;
	sessionId: string;
	/** `{prefix}/{meetingId}/{sessionId}`: where the transcript objects are in the tenant's bucket. */
	objectPrefix: string;
	createdAt: string;
	expiresAt: string;
	revokedAt: string | null;
}

type Row = {
	id: string;
	tenant_id: string;
	meeting_id: string;
	session_id: string;
	object_prefix: string;
	created_at: string;
	expires_at: string;
	revoked_at: string | null;
};

/** Transcript links in the gateway's store: an unguessable ID per transcription session. No transcript content. */
export class TranscriptLinks {
	readonly #db: Database;

	constructor(db: Database) {
		this.#db = db;
	}

	issue(p: { tenantId: string; meetingId: string; sessionId: string; objectPrefix: string; ttlSeconds: number }) {
		const now = new Date();
		const link: TranscriptLink = {
			id: randomBytes(16).toString("base64url"),
			tenantId: p.tenantId,
			meetingId: p.meetingId,
			sessionId: p.sessionId,
			objectPrefix: p.objectPrefix,
			createdAt: now.toISOString(),
			expiresAt: new Date(now.getTime() + p.ttlSeconds * 1000).toISOString(),
			revokedAt: null,
		};
		this.#db
			.prepare(
				`INSERT INTO transcript_links (id, tenant_id, meeting_id, session_id, object_prefix, created_at, expires_at)
				 VALUES (?, ?, ?, ?, ?, ?, ?)`,
			)
			.run(link.id, link.tenantId, link.meetingId, link.sessionId, link.objectPrefix, link.createdAt, link.expiresAt);
		return link;
	}

	get(id: string): TranscriptLink | undefined {
		const r = this.#db.prepare("SELECT * FROM transcript_links WHERE id = ?").get(id) as Row | undefined;
		return r
			? {
					id: r.id,
					tenantId: r.tenant_id,
					meetingId: r.meeting_id,
					sessionId: r.session_id,
					objectPrefix: r.object_prefix,
					createdAt: r.created_at,
					expiresAt: r.expires_at,
					revokedAt: r.revoked_at,
				}
			: undefined;
	}

	/** Revokes a link; false when it was revoked already. */
	revoke(id: string): boolean {
		const r = this.#db
			.prepare("UPDATE transcript_links SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
			.run(new Date().toISOString(), id);
		return r.changes === 1;
	}
}

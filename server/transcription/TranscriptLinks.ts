import { randomBytes } from "node:crypto";
import type { Store } from "../store/Store.js";
import { TranscriptLinkRepository } from "../store/TranscriptLinkRepository.js";

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

/** Transcript links in the gateway's store: an unguessable ID per transcription session. No transcript content. */
export class TranscriptLinks {
	readonly #repo: TranscriptLinkRepository;

	constructor(store: Store) {
		this.#repo = new TranscriptLinkRepository(store);
	}

	/** A new link (its ID is chosen here); resolves once it is in the store. */
	async issue(p: {
		tenantId: string;
		meetingId: string;
		sessionId: string;
		objectPrefix: string;
		ttlSeconds: number;
	}): Promise<TranscriptLink> {
		const link = this.prepare(p);
		await this.save(link);
		return link;
	}

	/** A new link, not saved yet: its ID can be announced while {@link save} writes it. */
	prepare(p: {
		tenantId: string;
		meetingId: string;
		sessionId: string;
		objectPrefix: string;
		ttlSeconds: number;
	}): TranscriptLink {
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
		return link;
	}

	async save(link: TranscriptLink): Promise<void> {
		await this.#repo.insert({
			id: link.id,
			tenant_id: link.tenantId,
			meeting_id: link.meetingId,
			session_id: link.sessionId,
			object_prefix: link.objectPrefix,
			created_at: link.createdAt,
			expires_at: link.expiresAt,
			revoked_at: null,
		});
	}

	async get(id: string): Promise<TranscriptLink | undefined> {
		const r = await this.#repo.get(id);
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
	revoke(id: string): Promise<boolean> {
		return this.#repo.revoke(id, new Date().toISOString());
	}
}

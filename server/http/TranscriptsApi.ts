import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { EventLog } from "../audit/EventLog.js";
import type { Identity } from "../auth/TenantTypes.js";
import type { TokenVerifier } from "../auth/TokenVerifier.js";
import { DEFAULT_TEXTS } from "../compliance/noticeTexts.js";
import { ConsentryError, ForbiddenError, NotFoundError, ValidationError } from "../errors.js";
import type { MeetingStore } from "../meetings/MeetingStore.js";
import { bucketOrigin } from "../storage/bucketOrigin.js";
import { createS3Client } from "../storage/preflight.js";
import type { StorageTargetStore } from "../storage/StorageTargetStore.js";
import type { TranscriptLink, TranscriptLinks } from "../transcription/TranscriptLinks.js";
import { TRANSCRIPT_PART_NAME, transcriptPartName } from "../transcription/TranscriptTypes.js";
import { CHECKPOINT_MS } from "../transcription/TranscriptWriter.js";
import { assertMeetingScope, bearerIdentity } from "./callers.js";
import { parse } from "./parseInput.js";
import { widenedCsp } from "./securityHeaders.js";

export interface TranscriptsApiOptions {
	links: TranscriptLinks;
	store: MeetingStore;
	events: EventLog;
	targets: StorageTargetStore | undefined;
	verifier: TokenVerifier;
	endpointPolicy: { allowHttp: boolean; allowPrivate: boolean };
	/** Whether the built client is served (then /t/{id} opens its transcript page). */
	servesClient: boolean;
	/** Whether the gateway serves TLS itself (the page's CSP then upgrades insecure requests, as helmet's does). */
	tls?: boolean;
}

/** The transcript so far of a running session, a page of its checkpoint parts (`GET /api/transcripts/{id}`'s `live`). */
export interface LiveParts {
	/** The cursor asked with (0: from the first part). */
	after: number;
	/** Parts numbered above `after`, in order, each with a presigned URL; numbers skipped are parts missing from the bucket. */
	parts: { part: number; url: string }[];
	/** The cursor to ask with next: the last part listed (or `after` when none was). */
	next: number;
	/** More parts are there already: ask again at once with `next`. */
	more: boolean;
	/** Otherwise ask again after this long (a new part is written every ~2 s while people speak). */
	pollSeconds: number;
}

/** How long the presigned URLs a link opening hands out stay valid. */
const URL_SECONDS = 300;

export const LinkParams = z.object({ id: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, "not a transcript link") });

/** The highest part number a cursor names: part names are zero-padded to 6 digits, so they list in order up to it. */
export const MAX_PART_NUMBER = 999_999;
/** Parts one answer lists (and presigns) at most, and by default. */
export const MAX_PARTS_PER_ANSWER = 200;
export const DEFAULT_PARTS_PER_ANSWER = 100;
/** A page following a running session asks again this often (the gateway's checkpoint period). */
const POLL_SECONDS = Math.ceil(CHECKPOINT_MS / 1000);
/**
 * A follow-up poll (with a cursor) of a person who opened the link on this node less than this long ago is not
 * audited again: the opening covers it. An opening (no cursor) is always audited.
 */
export const FOLLOW_AUDIT_MS = 15 * 60_000;

export const LinkQuery = z.object({
	after: z.coerce
		.number()
		.int()
		.min(0)
		.max(MAX_PART_NUMBER)
		.optional()
		.describe(
			"While the session runs: list only the checkpoint parts numbered above this (the `live.next` of the previous answer). Absent: from the first part; an opening of the page.",
		),
	limit: z.coerce
		.number()
		.int()
		.min(1)
		.max(MAX_PARTS_PER_ANSWER)
		.optional()
		.describe(`At most this many parts in the answer (default ${DEFAULT_PARTS_PER_ANSWER}).`),
});

/**
 * Transcript links: `/t/{id}` is the page, `GET /api/transcripts/{id}` what it
 * reads. A link opens for the meeting's host and the persons who were in the
 * meeting (membership from the audit trail: a `person.joined` of theirs), with
 * their own token; it hands out short-lived presigned URLs to the transcript in
 * the customer's bucket (the gateway keeps no copy), records the opening, and
 * refuses once expired or revoked. The host revokes with DELETE.
 *
 * While the session runs (no transcript.json yet) the answer's `live` lists its checkpoint parts so far, a page at a
 * time after a cursor (`?after=N&limit=M`: one LIST of at most M keys and M presigned URLs, whatever the session's
 * length), and the page follows the meeting by asking again with `live.next`. Every poll is authorized as an
 * opening; only openings (no cursor) are audited each time, a poll with a cursor only when this node has not audited
 * that person's opening of the link in the last FOLLOW_AUDIT_MS.
 */
export function registerTranscriptsApi(http: FastifyInstance, o: TranscriptsApiOptions): void {
	/** `linkId person` → when this node last audited their opening of it (pruned past FOLLOW_AUDIT_MS). */
	const audited = new Map<string, number>();
	const shouldAudit = (key: string, following: boolean): boolean => {
		const now = Date.now();
		if (following && now - (audited.get(key) ?? Number.NEGATIVE_INFINITY) < FOLLOW_AUDIT_MS) return false;
		audited.delete(key);
		audited.set(key, now);
		// Insertion order is audit order: the oldest are first.
		for (const [k, at] of audited) {
			if (now - at < FOLLOW_AUDIT_MS) break;
			audited.delete(k);
		}
		return true;
	};
	const caller = (req: FastifyRequest): Identity =>
		bearerIdentity(req, o.verifier, "Open the link from the meeting, signed in.");
	const linkFor = async (req: FastifyRequest, who: Identity): Promise<TranscriptLink> => {
		const p = LinkParams.safeParse(req.params);
		if (!p.success) throw new ValidationError("invalid transcript link");
		const link = await o.links.get(p.data.id);
		// Another organisation's link is "not found": links must not be probeable across tenants.
		if (!link || link.tenantId !== who.tenantId)
			throw new NotFoundError("link_not_found", "No transcript has this link.");
		assertMeetingScope(who, { tenantId: link.tenantId, id: link.meetingId });
		return link;
	};
	const isHost = async (who: Identity, link: TranscriptLink) =>
		who.role === "host" && (await o.store.find(link.meetingId))?.hostSubject === who.subject;

	if (o.servesClient) {
		http.get("/t/:id", async (req, reply) => {
			// The page reads the transcript from the organisation's bucket: its CSP allows fetches to that one origin.
			const p = LinkParams.safeParse(req.params);
			const link = p.success ? await o.links.get(p.data.id).catch(() => undefined) : undefined;
			const origin = link
				? await o.targets
						?.get(link.tenantId)
						.then((t) => bucketOrigin(t, o.endpointPolicy))
						.catch(() => undefined)
				: undefined;
			reply.header("content-security-policy", widenedCsp("connectSrc", origin, o.tls ?? false));
			return reply.sendFile("index.html");
		});
	}

	http.get("/api/transcripts/:id", async (req) => {
		const who = caller(req);
		const link = await linkFor(req, who);
		const query = parse(LinkQuery, req.query ?? {}, "query");
		const member =
			(await isHost(who, link)) ||
			(await o.events.joined(who.tenantId, `${who.tenantId}:${who.subject}`, link.meetingId));
		if (!member) {
			throw new ForbiddenError("not_a_member", "Only the host and the people who were in this meeting can open it.");
		}
		if (link.revokedAt) throw new ConsentryError("link_revoked", "The host revoked this transcript link.", 410);
		if (Date.parse(link.expiresAt) <= Date.now()) {
			throw new ConsentryError("link_expired", "This transcript link has expired.", 410);
		}
		const target = await o.targets?.get(link.tenantId);
		if (!target) throw new ConsentryError("no_storage_target", "The organisation's storage bucket is not set up.", 409);
		if (target.encryption.type === "SSE-C") {
			throw new ConsentryError(
				"presign_unavailable",
				"The transcript is encrypted with your organisation's own key (SSE-C): open it from the bucket.",
				409,
			);
		}
		const client = createS3Client(target, o.endpointPolicy);
		try {
			const url = (name: string) =>
				getSignedUrl(client, new GetObjectCommand({ Bucket: target.bucket, Key: `${link.objectPrefix}/${name}` }), {
					expiresIn: URL_SECONDS,
				});
			const files = { json: await url("transcript.json"), vtt: await url("transcript.vtt") };
			const storageError = (err: unknown) =>
				new ConsentryError("storage_unavailable", "The organisation's bucket could not be reached.", 502, {
					cause: err,
				});
			// While the session runs its transcript is in checkpoint parts; transcript.json and .vtt are written once,
			// at its end, then the parts are deleted (server/transcription/TranscriptWriter.ts). Both are asked at once:
			// once transcript.json is there the parts are not listed (they are in it, and about to go).
			const after = query.after ?? 0;
			const limit = query.limit ?? DEFAULT_PARTS_PER_ANSWER;
			const base = `${link.objectPrefix}/`;
			const [ready, listed] = await Promise.all([
				client.send(new HeadObjectCommand({ Bucket: target.bucket, Key: `${base}transcript.json` })).then(
					() => true,
					(err: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
						if (err?.name === "NotFound" || err?.$metadata?.httpStatusCode === 404) return false;
						throw storageError(err);
					},
				),
				// One LIST of at most `limit` keys after the cursor's part: the work is bounded whatever the session's length.
				client
					.send(
						new ListObjectsV2Command({
							Bucket: target.bucket,
							Prefix: `${base}transcript.part-`,
							StartAfter: after > 0 ? `${base}${transcriptPartName(after)}` : undefined,
							MaxKeys: limit,
						}),
					)
					.catch((err: unknown) => {
						throw storageError(err);
					}),
			]);
			let live: LiveParts | null = null;
			if (!ready) {
				const parts: { part: number; url: string }[] = [];
				for (const c of listed.Contents ?? []) {
					const m = TRANSCRIPT_PART_NAME.exec((c.Key ?? "").slice(base.length));
					const n = Number(m?.[1]);
					if (m && n > after) parts.push({ part: n, url: await url(transcriptPartName(n)) });
				}
				parts.sort((a, b) => a.part - b.part);
				live = {
					after,
					parts,
					next: parts.at(-1)?.part ?? after,
					// Truncated by keys that are no part (strays under the same prefix) gives no cursor to move on: asked again
					// later, never in a loop.
					more: listed.IsTruncated === true && parts.length > 0,
					pollSeconds: POLL_SECONDS,
				};
			}
			const person = `${who.tenantId}:${who.subject}`;
			if (shouldAudit(`${link.id} ${person}`, query.after !== undefined)) {
				await o.events.append("transcript.link_opened", {
					tenantId: link.tenantId,
					meetingId: link.meetingId,
					actor: person,
					data: { linkId: link.id, sessionId: link.sessionId },
				});
			}
			return {
				meeting: { id: link.meetingId, title: (await o.store.find(link.meetingId))?.title ?? "" },
				sessionId: link.sessionId,
				expiresAt: link.expiresAt,
				disclaimer: DEFAULT_TEXTS.en.transcriptionDisclaimer,
				/** The same in each language the pages speak (the page shows the one it is in). */
				disclaimers: {
					en: DEFAULT_TEXTS.en.transcriptionDisclaimer,
					fr: DEFAULT_TEXTS.fr.transcriptionDisclaimer,
				},
				files,
				/** False while the session still runs (or before its end was written): the files are not there yet. */
				ready,
				/** While it runs: the transcript so far, as checkpoint parts after the cursor (null once ready). */
				live,
				urlsExpireInSeconds: URL_SECONDS,
			};
		} finally {
			client.destroy();
		}
	});

	http.delete("/api/transcripts/:id", async (req) => {
		const who = caller(req);
		const link = await linkFor(req, who);
		if (!(await isHost(who, link)))
			throw new ForbiddenError("host_only", "Only the meeting's host can revoke its links.");
		const revoked = await o.links.revoke(link.id);
		if (revoked) {
			await o.events.append("transcript.link_revoked", {
				tenantId: link.tenantId,
				meetingId: link.meetingId,
				actor: `${who.tenantId}:${who.subject}`,
				data: { linkId: link.id, sessionId: link.sessionId },
			});
		}
		return { revoked: true };
	});
}

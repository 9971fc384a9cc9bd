import { GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { EventLog } from "../audit/EventLog.js";
import type { Identity } from "../auth/TenantTypes.js";
import type { TokenVerifier } from "../auth/TokenVerifier.js";
import { DEFAULT_TEXTS } from "../compliance/noticeTexts.js";
import { ConsentryError, ForbiddenError, NotFoundError, ValidationError } from "../errors.js";
import type { MeetingStore } from "../meetings/MeetingStore.js";
import { createS3Client } from "../storage/preflight.js";
import type { StorageTargetStore } from "../storage/StorageTargetStore.js";
import type { TranscriptLink, TranscriptLinks } from "../transcription/TranscriptLinks.js";
import { assertMeetingScope, bearerIdentity } from "./callers.js";

export interface TranscriptsApiOptions {
	links: TranscriptLinks;
	store: MeetingStore;
	events: EventLog;
	targets: StorageTargetStore | undefined;
	verifier: TokenVerifier;
	endpointPolicy: { allowHttp: boolean; allowPrivate: boolean };
	/** Whether the built client is served (then /t/{id} opens its transcript page). */
	servesClient: boolean;
}

/** How long the presigned URLs a link opening hands out stay valid. */
const URL_SECONDS = 300;

export const LinkParams = z.object({ id: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, "not a transcript link") });

/**
 * Transcript links: `/t/{id}` is the page, `GET /api/transcripts/{id}` what it
 * reads. A link opens for the meeting's host and the persons who were in the
 * meeting (membership from the audit trail: a `person.joined` of theirs), with
 * their own token; it hands out short-lived presigned URLs to the transcript in
 * the customer's bucket (the gateway keeps no copy), records the opening, and
 * refuses once expired or revoked. The host revokes with DELETE.
 */
export function registerTranscriptsApi(http: FastifyInstance, o: TranscriptsApiOptions): void {
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
		http.get("/t/:id", async (_req, reply) => reply.sendFile("index.html"));
	}

	http.get("/api/transcripts/:id", async (req) => {
		const who = caller(req);
		const link = await linkFor(req, who);
		const person = `${who.tenantId}:${who.subject}`;
		const member =
			(await isHost(who, link)) ||
			(await o.events.listForPerson(who.tenantId, person)).some(
				(e) => e.type === "person.joined" && e.meetingId === link.meetingId,
			);
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
			// While the session runs its transcript is in checkpoint parts; transcript.json and .vtt are written once,
			// at its end (server/transcription/TranscriptWriter.ts): until then the URLs lead nowhere yet.
			const ready = await client
				.send(new HeadObjectCommand({ Bucket: target.bucket, Key: `${link.objectPrefix}/transcript.json` }))
				.then(
					() => true,
					(err: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
						if (err?.name === "NotFound" || err?.$metadata?.httpStatusCode === 404) return false;
						throw new ConsentryError("storage_unavailable", "The organisation's bucket could not be reached.", 502, {
							cause: err,
						});
					},
				);
			await o.events.append("transcript.link_opened", {
				tenantId: link.tenantId,
				meetingId: link.meetingId,
				actor: person,
				data: { linkId: link.id, sessionId: link.sessionId },
			});
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

import { GetObjectCommand, type GetObjectCommandOutput, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import type { AuditEvent, EventLog } from "../audit/EventLog.js";
import { answersIn, sentNotices } from "../audit/notices.js";
import { DEFAULT_TEXTS } from "../compliance/noticeTexts.js";
import { ConsentryError } from "../errors.js";
import { bucketOrigin } from "../storage/bucketOrigin.js";
import { createS3Client } from "../storage/preflight.js";
import type { StorageTargetStore } from "../storage/StorageTargetStore.js";
import type {
	Evidence,
	EvidencePerson,
	PlaybackSession,
	PlaybackTranscriptLine,
	PlaybackView,
} from "./PlaybackTypes.js";
import { MANIFEST_KIND, type Manifest } from "./RecordingTypes.js";

/**
 * How long the presigned URLs an opening hands out stay valid: long enough to watch the session through once (its
 * length + 1 h, at least 15 min, at most 12 h), never past the page's own expiry. Reloading the page gives new ones.
 */
export function playbackUrlSeconds(manifest: Pick<Manifest, "startedAt" | "endedAt">, expiresAt: string): number {
	const length = Math.max(0, (Date.parse(manifest.endedAt) - Date.parse(manifest.startedAt)) / 1000) || 0;
	const wanted = Math.min(12 * 3600, Math.max(900, Math.ceil(length) + 3600));
	return Math.max(60, Math.min(wanted, Math.floor((Date.parse(expiresAt) - Date.now()) / 1000)));
}
/** The largest manifest / transcript the gateway reads for a page (a hostile or broken bucket gets a clear error). */
const MAX_DOCUMENT_BYTES = 32 * 2 ** 20;
const ALL = 1_000_000;

const ANSWERS = new Set(["notice.acknowledged", "consent.given", "consent.declined", "consent.withdrawn"]);

export interface PlaybackOptions {
	events: EventLog;
	targets: StorageTargetStore | undefined;
	endpointPolicy: { allowHttp: boolean; allowPrivate: boolean };
	/** The tenant's link lifetime in seconds (the same as its transcript links). */
	linkSeconds: (tenantId: string) => number;
}

/**
 * The playback page's service (`/r/{sessionId}`): finds a recording session in the tenant's trail, tells who may
 * open it, reads its manifest (and the transcripts of the meeting's transcription sessions that overlap it) from
 * the customer's bucket for the page, presigns every object for the browser to play directly from the bucket, and
 * builds the evidence panel from the trail. The gateway keeps none of it.
 */
export class Playback {
	readonly #o: PlaybackOptions;

	constructor(o: PlaybackOptions) {
		this.#o = o;
	}

	/**
	 * Where each recording session began (`tenant/session` → its `session.on`), read from each tenant's chain from a
	 * cursor: a lookup that misses reads only the entries appended since the last one (an index range), so an
	 * unknown ID — the page's address needs no sign-in — never costs a scan of the whole trail.
	 */
	readonly #sessions = new Map<string, { meetingId: string; seq: number; at: string }>();
	readonly #cursor = new Map<string, number>();

	async #locate(
		tenantId: string,
		sessionId: string,
	): Promise<{ meetingId: string; seq: number; at: string } | undefined> {
		const key = `${tenantId}/${sessionId}`;
		const known = this.#sessions.get(key);
		if (known) return known;
		const head = (await this.#o.events.head(tenantId))?.seq ?? 0;
		const after = this.#cursor.get(tenantId) ?? 0;
		if (head <= after) return undefined;
		const ons = await this.#o.events.list({ tenantId, type: "session.on", afterSeq: after, limit: ALL });
		for (const e of ons) {
			if (e.data.kind !== "recording" || typeof e.data.sessionId !== "string" || !e.meetingId) continue;
			this.#sessions.set(`${tenantId}/${e.data.sessionId}`, { meetingId: e.meetingId, seq: e.seq, at: e.at });
		}
		this.#cursor.set(tenantId, Math.max(head, ons.at(-1)?.seq ?? 0));
		return this.#sessions.get(key);
	}

	/** The recording session `sessionId` of this tenant, or undefined. */
	async find(tenantId: string, sessionId: string): Promise<PlaybackSession | undefined> {
		const on = await this.#locate(tenantId, sessionId);
		if (!on) return undefined;
		const meeting = await this.#o.events.list({ tenantId, meetingId: on.meetingId, afterSeq: on.seq - 1, limit: ALL });
		const mine = (e: AuditEvent) => e.data.sessionId === sessionId;
		const end = meeting.find((e) => (e.type === "session.paused" || e.type === "session.off") && mine(e));
		const manifest = meeting.find((e) => e.type === "storage.object_written" && e.data.manifest === true && mine(e));
		return {
			tenantId,
			meetingId: on.meetingId,
			sessionId,
			startedAt: on.at,
			endedAt: end?.at ?? null,
			expiresAt: new Date(Date.parse(on.at) + this.#o.linkSeconds(tenantId) * 1000).toISOString(),
			revoked: meeting.some((e) => e.type === "recording.playback_revoked" && mine(e)),
			manifest: manifest ? { bucket: String(manifest.data.bucket), key: String(manifest.data.key) } : null,
		};
	}

	/** The meeting's recording sessions, oldest first (ready: its manifest is written, the page opens). */
	async list(tenantId: string, meetingId: string): Promise<PlaybackSession[]> {
		const ons = await this.#o.events.list({ tenantId, meetingId, type: "session.on", limit: ALL });
		const out: PlaybackSession[] = [];
		for (const on of ons) {
			if (on.data.kind !== "recording" || typeof on.data.sessionId !== "string") continue;
			const s = await this.find(tenantId, on.data.sessionId);
			if (s) out.push(s);
		}
		return out;
	}

	/** Whether this person (`tenant:subject`) was in the meeting: a `person.joined` of theirs. */
	wasMember(tenantId: string, personKey: string, meetingId: string): Promise<boolean> {
		return this.#o.events.joined(tenantId, personKey, meetingId);
	}

	/** The tenant's storage target, refusing what cannot be presigned (SSE-C). */
	async target(tenantId: string): Promise<StorageTarget> {
		const target = await this.#o.targets?.get(tenantId);
		if (!target) throw new ConsentryError("no_storage_target", "The organisation's storage bucket is not set up.", 409);
		if (target.encryption.type === "SSE-C") {
			throw new ConsentryError(
				"presign_unavailable",
				"The recording is encrypted with your organisation's own key (SSE-C): a browser link cannot carry that key, so it can only be played from the bucket with the key (download the objects, then play them).",
				409,
			);
		}
		return target;
	}

	/** The origin the browser fetches this tenant's objects from (for the page's Content-Security-Policy). */
	async mediaOrigin(tenantId: string): Promise<string | undefined> {
		return bucketOrigin(await this.#o.targets?.get(tenantId), this.#o.endpointPolicy);
	}

	/** Everything the page needs: the manifest, presigned URLs, the transcript lines and the evidence. */
	async open(
		s: PlaybackSession,
		viewer: string,
		meeting: { id: string; title: string },
	): Promise<Omit<PlaybackView, "meeting"> & { meeting: { id: string; title: string } }> {
		if (!s.manifest) {
			throw new ConsentryError(
				"recording_in_progress",
				"This recording is still running (or its files are still being written): open it once it has stopped.",
				409,
			);
		}
		const target = await this.target(s.tenantId);
		const client = createS3Client(target, { ...this.#o.endpointPolicy, maxAttempts: 3 });
		try {
			const manifest = parseManifest(await readText(client, s.manifest.bucket, s.manifest.key), s.sessionId);
			const expiresIn = playbackUrlSeconds(manifest, s.expiresAt);
			const presign = (key: string) =>
				getSignedUrl(client, new GetObjectCommand({ Bucket: s.manifest?.bucket, Key: key }), {
					expiresIn,
				});
			const urls: Record<string, string> = {};
			for (const track of manifest.tracks) for (const o of track.objects) urls[o.key] = await presign(o.key);
			const files = {
				manifest: await presign(s.manifest.key),
				audit: manifest.audit?.key ? await presign(manifest.audit.key) : null,
				chat: manifest.chat?.key ? await presign(manifest.chat.key) : null,
			};
			const meetingEvents = await this.#o.events.list({ tenantId: s.tenantId, meetingId: s.meetingId, limit: ALL });
			const lines = await this.#transcript(client, manifest, meetingEvents);
			const you = await this.#o.events.pseudonym(s.tenantId, viewer);
			return {
				meeting,
				sessionId: s.sessionId,
				startedAt: s.startedAt,
				endedAt: s.endedAt,
				expiresAt: s.expiresAt,
				manifest,
				urls,
				files,
				transcript: lines
					? {
							lines,
							disclaimers: {
								en: DEFAULT_TEXTS.en.transcriptionDisclaimer,
								fr: DEFAULT_TEXTS.fr.transcriptionDisclaimer,
							},
						}
					: null,
				evidence: evidence(s, manifest, meetingEvents, you, lines ?? []),
				urlsExpireInSeconds: expiresIn,
			};
		} finally {
			client.destroy();
		}
	}

	/** The lines of the meeting's transcription sessions that overlap this recording (null: none was made). */
	async #transcript(
		client: S3Client,
		manifest: Manifest,
		events: AuditEvent[],
	): Promise<PlaybackTranscriptLine[] | null> {
		const from = Date.parse(manifest.startedAt);
		const to = Date.parse(manifest.endedAt);
		const spans = new Map<string, { start: number; end: number }>();
		for (const e of events) {
			if (e.data.kind !== "transcription" || typeof e.data.sessionId !== "string") continue;
			if (e.type === "session.on")
				spans.set(e.data.sessionId, { start: Date.parse(e.at), end: Number.POSITIVE_INFINITY });
			const span = spans.get(e.data.sessionId);
			if (span && (e.type === "session.paused" || e.type === "session.off")) span.end = Date.parse(e.at);
		}
		const objects = events.filter(
			(e) =>
				e.type === "storage.object_written" &&
				e.data.kind === "transcription" &&
				typeof e.data.key === "string" &&
				e.data.key.endsWith("/transcript.json"),
		);
		let lines: PlaybackTranscriptLine[] | null = null;
		for (const o of objects) {
			const span = spans.get(String(o.data.sessionId));
			if (!span || span.start > to || span.end < from) continue;
			let doc: unknown;
			try {
				doc = JSON.parse(await readText(client, String(o.data.bucket), String(o.data.key)));
			} catch (err) {
				if (err instanceof ConsentryError && err.code !== "recording_unreadable") throw err;
				continue; // a transcript that is gone or broken: the recording still plays
			}
			const entries = (doc as { entries?: unknown })?.entries;
			if (!Array.isArray(entries)) continue;
			lines ??= [];
			for (const e of entries as Record<string, unknown>[]) {
				if (typeof e?.start !== "string" || typeof e.end !== "string" || typeof e.text !== "string") continue;
				lines.push({
					speaker: String(e.speaker ?? ""),
					displayName: String(e.displayName ?? ""),
					start: e.start,
					end: e.end,
					text: e.text,
				});
			}
		}
		lines?.sort((a, b) => a.start.localeCompare(b.start));
		return lines;
	}
}

/** An object of the bucket as text, refusing a huge one. */
async function readText(client: S3Client, bucket: string, key: string): Promise<string> {
	let res: GetObjectCommandOutput;
	try {
		res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
	} catch (err) {
		const name = (err as { name?: string }).name;
		if (name === "NoSuchKey" || name === "NotFound") {
			throw new ConsentryError("recording_missing", `${key.split("/").pop()} is no longer in the bucket.`, 409);
		}
		if (name === "AccessDenied" || name === "Forbidden") {
			throw new ConsentryError("storage_access_denied", "The bucket refused to let the gateway read the session.", 502);
		}
		throw new ConsentryError("storage_unavailable", "The organisation's bucket could not be reached.", 502, {
			cause: err,
		});
	}
	if ((res.ContentLength ?? 0) > MAX_DOCUMENT_BYTES) {
		throw new ConsentryError("recording_unreadable", `${key.split("/").pop()} is too large to open here.`, 422);
	}
	return (await res.Body?.transformToString()) ?? "";
}

/** The manifest, checked enough for the page (a hostile bucket gets a clear refusal, never a crash). */
function parseManifest(text: string, sessionId: string): Manifest {
	let m: Manifest;
	try {
		m = JSON.parse(text) as Manifest;
	} catch {
		throw new ConsentryError("recording_unreadable", "The session's manifest.json is not valid JSON.", 422);
	}
	const ok =
		m?.kind === MANIFEST_KIND &&
		m.session === sessionId &&
		Array.isArray(m.tracks) &&
		m.tracks.every((t) => t && typeof t.person === "string" && Array.isArray(t.objects) && Array.isArray(t.holes)) &&
		m.tracks.every((t) => t.objects.every((o) => o && typeof o.key === "string"));
	if (!ok)
		throw new ConsentryError("recording_unreadable", "The session's manifest.json is not one this gateway wrote.", 422);
	return m;
}

/** Who was present, notified, answered, recorded (and when), who never was, and every hole with its cause. */
function evidence(
	s: PlaybackSession,
	manifest: Manifest,
	events: AuditEvent[],
	you: string | null,
	lines: PlaybackTranscriptLine[],
): Evidence {
	const people = new Map<string, EvidencePerson>();
	const person = (psn: string): EvidencePerson => {
		let p = people.get(psn);
		if (!p) {
			p = {
				person: psn,
				displayName: lines.find((l) => l.speaker === psn && l.displayName)?.displayName ?? null,
				role: null,
				you: psn === you,
				notifiedAt: null,
				shownAt: null,
				answer: null,
				recorded: [],
				notRecorded: false,
			};
			people.set(psn, p);
		}
		return p;
	};
	const roles = new Map<string, string>();
	for (const e of events) {
		if (e.type === "person.joined" && e.actor && typeof e.data.role === "string") roles.set(e.actor, e.data.role);
		if (e.data.sessionId !== s.sessionId) continue;
		if (e.type === "notice.sent" || e.type === "notices.sent")
			for (const n of sentNotices(e)) person(n.person).notifiedAt ??= e.at;
		else if (e.type === "notice.shown" && e.actor) person(e.actor).shownAt ??= e.at;
		else if (e.type === "notices.acknowledged")
			for (const a of answersIn(e)) {
				const p = person(a.person);
				p.answer ??= { type: a.type, at: e.at };
			}
		else if (ANSWERS.has(e.type) && e.actor) {
			const p = person(e.actor);
			if (!p.answer || e.type !== "notice.acknowledged") p.answer = { type: e.type, at: e.at };
		}
	}
	for (const track of manifest.tracks) {
		const p = person(track.person);
		for (const o of track.objects) {
			const from = typeof o.firstFrameAt === "number" ? new Date(o.firstFrameAt).toISOString() : o.startedAt;
			p.recorded.push({ kind: track.kind, from, to: o.endedAt });
		}
	}
	for (const psn of manifest.notRecorded ?? []) person(psn).notRecorded = true;
	for (const p of people.values()) p.role = roles.get(p.person) ?? null;
	return {
		persons: [...people.values()],
		holes: manifest.tracks.flatMap((t) => t.holes.map((h) => ({ person: t.person, kind: t.kind, ...h }))),
		endReason: manifest.endReason,
	};
}

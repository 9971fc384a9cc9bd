import { createHash } from "node:crypto";
import {
	DeleteObjectCommand,
	GetObjectCommand,
	ListObjectsV2Command,
	PutObjectCommand,
	type S3Client,
} from "@aws-sdk/client-s3";
import type { EndpointPolicy } from "../../contracts/endpointGuard.js";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import { createS3Client, sseGetParams, ssePutParams } from "../../contracts/s3.js";
import type { EventLog } from "../audit/EventLog.js";
import { toWebVtt } from "../transcription/TranscriptionService.js";
import { TRANSCRIPT_PART_NAME } from "../transcription/TranscriptTypes.js";
import { type BucketPointer, ERASURE_RECORD_KIND, ERASURE_RECORD_VERSION } from "./DataSubjectTypes.js";

/** `{person}-{kind}-{seq}.webm`: a track's object (recorder/RecorderProtocol.ts objectKey). */
const OBJECT_NAME = /^([A-Za-z0-9_-]{1,128})-(audio|camera|screen)-([1-9]\d{0,8})\.webm$/;

/** One capture session's folder as the bucket holds it. */
interface SessionFolder {
	meetingId: string;
	sessionId: string;
	/** `{prefix}/{meetingId}/{sessionId}`. */
	base: string;
	keys: Map<string, number>;
}

interface Rewrite {
	key: string;
	before: { size: number; sha256: string };
	after: { size: number; sha256: string };
	linesRemoved: number;
	text: string;
}

/**
 * The erasure record (`erasure-<requestId>.json` in the session's folder): what an erasure removed from one
 * capture session, written before anything is removed, and anchored in the chain by a `dsr.objects_erased` entry
 * naming its SHA-256; `erasure-<requestId>.audit.jsonl` beside it is the meeting's trail with that entry. The
 * session's manifest.json and audit.jsonl stay as written: `consentry verify` reads the record to accept exactly
 * these deletions and rewrites, and fails on any other change (docs/privacy.md, "Data-subject requests").
 */
export interface ErasureRecord {
	kind: typeof ERASURE_RECORD_KIND;
	version: typeof ERASURE_RECORD_VERSION;
	requestId: string;
	tenant: string;
	meeting: string;
	session: string;
	/** The erased person's pseudonym (unlinkable: their secret was destroyed before this was written). */
	pseudonym: string;
	at: string;
	removed: { key: string; size: number; sha256: string }[];
	rewritten: {
		key: string;
		before: { size: number; sha256: string };
		after: { size: number; sha256: string };
		linesRemoved: number;
	}[];
	/** The meeting's trail after the tombstone entry. */
	audit: { key: string };
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/**
 * The customer's bucket side of data-subject requests: finds every object holding a person's media, chat lines
 * or transcript lines (under the tenant's prefix, in the folders of the meetings they appear in), and erases them
 * one capture session at a time, each resumable.
 */
export class DataSubjectBucket {
	readonly target: StorageTarget;
	readonly #s3: S3Client;

	constructor(target: StorageTarget, policy: EndpointPolicy) {
		this.target = target;
		this.#s3 = createS3Client(target, { ...policy, maxAttempts: 2, connectTimeoutMs: 3000, requestTimeoutMs: 15_000 });
	}

	destroy(): void {
		this.#s3.destroy();
	}

	#meetingBase(meetingId: string): string {
		return `${this.target.prefix ? `${this.target.prefix}/` : ""}${meetingId}`;
	}

	/** Every capture session folder of the meeting (by listing). */
	async sessions(meetingId: string): Promise<SessionFolder[]> {
		const base = this.#meetingBase(meetingId);
		const out = new Map<string, SessionFolder>();
		let token: string | undefined;
		do {
			const r = await this.#s3.send(
				new ListObjectsV2Command({ Bucket: this.target.bucket, Prefix: `${base}/`, ContinuationToken: token }),
			);
			for (const o of r.Contents ?? []) {
				const rest = (o.Key ?? "").slice(base.length + 1);
				const i = rest.indexOf("/");
				if (i <= 0) continue;
				const sessionId = rest.slice(0, i);
				const f = out.get(sessionId) ?? { meetingId, sessionId, base: `${base}/${sessionId}`, keys: new Map() };
				f.keys.set(o.Key as string, o.Size ?? 0);
				out.set(sessionId, f);
			}
			token = r.IsTruncated ? r.NextContinuationToken : undefined;
		} while (token);
		return [...out.values()];
	}

	async #get(key: string): Promise<Buffer | undefined> {
		try {
			const r = await this.#s3.send(
				new GetObjectCommand({ Bucket: this.target.bucket, Key: key, ...sseGetParams(this.target.encryption) }),
			);
			return Buffer.from(await (r.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
		} catch (err) {
			if ((err as { name?: string }).name === "NoSuchKey") return undefined;
			throw err;
		}
	}

	async #put(key: string, body: Buffer, contentType: string): Promise<void> {
		await this.#s3.send(
			new PutObjectCommand({
				Bucket: this.target.bucket,
				Key: key,
				Body: body,
				ContentLength: body.length,
				ContentType: contentType,
				...ssePutParams(this.target.encryption),
			}),
		);
	}

	async #json(key: string): Promise<Record<string, unknown> | undefined> {
		const b = await this.#get(key);
		if (!b) return undefined;
		try {
			return JSON.parse(b.toString("utf8")) as Record<string, unknown>;
		} catch {
			return undefined;
		}
	}

	/** What of the person one session folder holds: media objects, chat lines, transcript lines. */
	async #find(
		f: SessionFolder,
		psn: string,
	): Promise<{
		pointers: BucketPointer[];
		media: { key: string; size: number; sha256: string | null }[];
		rewrites: Rewrite[];
		partRewrites: { key: string; text: string }[];
		partRemovals: string[];
	}> {
		const partRewrites: { key: string; text: string }[] = [];
		const partRemovals: string[] = [];
		const pointers: BucketPointer[] = [];
		const media = new Map<
			string,
			{ key: string; size: number; sha256: string | null; foundBy: "manifest" | "listing" }
		>();
		const manifest = f.keys.has(`${f.base}/manifest.json`) ? await this.#json(`${f.base}/manifest.json`) : undefined;
		for (const t of (manifest?.tracks as {
			person?: string;
			objects?: { key: string; size: number; sha256: string | null }[];
		}[]) ?? [])
			if (t.person === psn)
				for (const o of t.objects ?? [])
					media.set(o.key, { key: o.key, size: o.size, sha256: o.sha256, foundBy: "manifest" });
		for (const [key, size] of f.keys) {
			const m = OBJECT_NAME.exec(key.slice(f.base.length + 1));
			if (m?.[1] === psn && !media.has(key)) media.set(key, { key, size, sha256: null, foundBy: "listing" });
		}
		for (const o of media.values())
			pointers.push({
				key: o.key,
				holds: "media",
				meetingId: f.meetingId,
				sessionId: f.sessionId,
				foundBy: o.foundBy,
				size: f.keys.get(o.key) ?? o.size,
			});
		const rewrites: Rewrite[] = [];
		const chatKey = `${f.base}/chat.jsonl`;
		if (f.keys.has(chatKey)) {
			const before = (await this.#get(chatKey)) ?? Buffer.alloc(0);
			const lines = before.toString("utf8").split("\n");
			const kept: string[] = [];
			const mine: number[] = [];
			lines.forEach((l, i) => {
				if (l.trim() === "") return;
				let from: unknown;
				try {
					from = (JSON.parse(l) as { from?: unknown }).from;
				} catch {
					from = undefined;
				}
				if (from === psn) mine.push(i + 1);
				else kept.push(l);
			});
			if (mine.length) {
				pointers.push({
					key: chatKey,
					holds: "chat",
					meetingId: f.meetingId,
					sessionId: f.sessionId,
					foundBy: manifest ? "manifest" : "listing",
					size: before.length,
					lines: mine.length,
					lineNumbers: mine,
				});
				const text = kept.map((l) => `${l}\n`).join("");
				rewrites.push(rewriteOf(chatKey, before, text, mine.length));
			}
		}
		const tKey = `${f.base}/transcript.json`;
		if (f.keys.has(tKey)) {
			const before = (await this.#get(tKey)) ?? Buffer.alloc(0);
			let t:
				| {
						entries?: { speaker?: string; start: string; end: string; text: string; displayName: string }[];
						startedAt?: string;
						disclaimer?: string;
				  }
				| undefined;
			try {
				t = JSON.parse(before.toString("utf8"));
			} catch {
				t = undefined;
			}
			const entries = t?.entries ?? [];
			const n = entries.filter((e) => e.speaker === psn).length;
			if (t && n) {
				pointers.push({
					key: tKey,
					holds: "transcript",
					meetingId: f.meetingId,
					sessionId: f.sessionId,
					foundBy: "manifest",
					size: before.length,
					lines: n,
				});
				const kept = entries.filter((e) => e.speaker !== psn);
				const json = `${JSON.stringify({ ...t, entries: kept }, null, 2)}\n`;
				rewrites.push(rewriteOf(tKey, before, json, n));
				const vKey = `${f.base}/transcript.vtt`;
				if (f.keys.has(vKey)) {
					const vBefore = (await this.#get(vKey)) ?? Buffer.alloc(0);
					const vtt = toWebVtt(kept as never, Date.parse(t.startedAt ?? ""), t.disclaimer ?? "");
					pointers.push({
						key: vKey,
						holds: "transcript",
						meetingId: f.meetingId,
						sessionId: f.sessionId,
						foundBy: "manifest",
						size: vBefore.length,
						lines: n,
					});
					rewrites.push(rewriteOf(vKey, vBefore, vtt, n));
				}
			}
		}
		// Transcript checkpoint parts (server/transcription/TranscriptWriter.ts). Beside a final transcript.json they are
		// copies its gateway stopped before deleting: one holding the person's lines is deleted whole. Without it (a
		// session not finished yet) they are the transcript: rewritten without the person's lines, as the session is
		// finished from them. Neither is in the erasure record (which lists the objects the trail anchors): verify
		// checks parts against the final transcript, and needs none of them.
		const finalTranscript = f.keys.has(tKey);
		for (const [key, size] of f.keys) {
			if (!TRANSCRIPT_PART_NAME.test(key.slice(f.base.length + 1))) continue;
			const before = await this.#get(key);
			let part: { entries?: { speaker?: string }[] } | undefined;
			try {
				part = before ? JSON.parse(before.toString("utf8")) : undefined;
			} catch {
				part = undefined;
			}
			const n = (part?.entries ?? []).filter((e) => e.speaker === psn).length;
			if (!before || !part || n === 0) continue;
			pointers.push({
				key,
				holds: "transcript",
				meetingId: f.meetingId,
				sessionId: f.sessionId,
				foundBy: "listing",
				size,
				lines: n,
			});
			if (finalTranscript) partRemovals.push(key);
			else
				partRewrites.push({
					key,
					text: `${JSON.stringify({ ...part, entries: (part.entries ?? []).filter((e) => e.speaker !== psn) })}\n`,
				});
		}
		return { pointers, media: [...media.values()], rewrites, partRewrites, partRemovals };
	}

	/** Pointers to every object of these meetings' sessions holding the person's data. */
	async locate(meetings: readonly string[], psn: string): Promise<BucketPointer[]> {
		const out: BucketPointer[] = [];
		for (const m of meetings) for (const f of await this.sessions(m)) out.push(...(await this.#find(f, psn)).pointers);
		return out;
	}

	/**
	 * Erases the person from one session folder: the erasure record first (kept if a previous attempt wrote it), then
	 * the rewrites and deletions (idempotent), then the chain's tombstone (once) and the meeting's trail beside the
	 * record. Returns what it removed and rewrote (zero when the session held nothing of theirs).
	 */
	async eraseSession(
		f: SessionFolder,
		psn: string,
		o: { requestId: string; tenantId: string; events: EventLog; actor?: string },
	): Promise<{ removed: number; rewritten: number }> {
		const recordKey = `${f.base}/erasure-${o.requestId}.json`;
		let record = f.keys.has(recordKey) ? ((await this.#json(recordKey)) as ErasureRecord | undefined) : undefined;
		const found = await this.#find(f, psn);
		if (!record) {
			if (
				found.media.length === 0 &&
				found.rewrites.length === 0 &&
				found.partRewrites.length === 0 &&
				found.partRemovals.length === 0
			)
				return { removed: 0, rewritten: 0 };
			record = {
				kind: ERASURE_RECORD_KIND,
				version: ERASURE_RECORD_VERSION,
				requestId: o.requestId,
				tenant: o.tenantId,
				meeting: f.meetingId,
				session: f.sessionId,
				pseudonym: psn,
				at: new Date().toISOString(),
				removed: await Promise.all(
					found.media.map(async (m) => {
						const b = m.sha256 === null ? await this.#get(m.key) : undefined;
						return { key: m.key, size: b ? b.length : m.size, sha256: m.sha256 ?? (b ? sha(b) : "") };
					}),
				),
				rewritten: found.rewrites.map(({ text: _t, ...r }) => r),
				audit: { key: `${f.base}/erasure-${o.requestId}.audit.jsonl` },
			};
			await this.#put(recordKey, Buffer.from(`${JSON.stringify(record, null, 2)}\n`), "application/json");
		}
		// The rewrites (found again from what the bucket holds now: filtering is idempotent), then the deletions.
		for (const r of found.rewrites)
			await this.#put(
				r.key,
				Buffer.from(r.text),
				r.key.endsWith(".vtt") ? "text/vtt" : r.key.endsWith(".json") ? "application/json" : "application/x-ndjson",
			);
		for (const p of found.partRewrites) await this.#put(p.key, Buffer.from(p.text), "application/json");
		for (const key of found.partRemovals)
			await this.#s3.send(new DeleteObjectCommand({ Bucket: this.target.bucket, Key: key }));
		for (const m of record.removed)
			await this.#s3.send(new DeleteObjectCommand({ Bucket: this.target.bucket, Key: m.key }));
		const recordBytes = await this.#get(recordKey);
		const recordSha = sha(recordBytes ?? Buffer.alloc(0));
		const already = (
			await o.events.list({ tenantId: o.tenantId, meetingId: f.meetingId, type: "dsr.objects_erased" })
		).some((e) => e.data.requestId === o.requestId && e.data.sessionId === f.sessionId);
		if (!already)
			await o.events.append("dsr.objects_erased", {
				tenantId: o.tenantId,
				meetingId: f.meetingId,
				...(o.actor ? { actor: o.actor } : {}),
				data: {
					requestId: o.requestId,
					sessionId: f.sessionId,
					pseudonym: psn,
					bucket: this.target.bucket,
					amendment: { key: recordKey, sha256: recordSha },
					removed: record.removed.length,
					rewritten: record.rewritten.length,
				},
			});
		await this.#put(
			record.audit.key,
			Buffer.from(await o.events.exportMeeting(o.tenantId, f.meetingId)),
			"application/x-ndjson",
		);
		return { removed: record.removed.length, rewritten: record.rewritten.length };
	}
}

function rewriteOf(key: string, before: Buffer, text: string, linesRemoved: number): Rewrite {
	const after = Buffer.from(text);
	return {
		key,
		before: { size: before.length, sha256: sha(before) },
		after: { size: after.length, sha256: sha(after) },
		linesRemoved,
		text,
	};
}

import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { EndpointPolicy } from "../../contracts/endpointGuard.js";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import { sseGetParams } from "../../contracts/s3.js";
import type { EventLog } from "../audit/EventLog.js";
import { CaptureBucket } from "../capture/CaptureBucket.js";
import type { CrashKind } from "../capture/LostSessions.js";
import type { CapturePolicy } from "../compliance/CaptureTypes.js";
import type { Logger } from "../logger.js";
import {
	TRANSCRIPT_PART_NAME,
	type TranscriptCapture,
	type TranscriptDocument,
	type TranscriptEntry,
	type TranscriptHeader,
	type TranscriptPart,
	transcriptPartName,
} from "./TranscriptTypes.js";

/**
 * While a session runs, the transcript in the bucket is brought up to date this long after a final segment (as the
 * recording's chat log): a gateway that dies, or a cluster node lost, loses at most this much of it plus an upload.
 */
export const CHECKPOINT_MS = 2000;

/** Where a session's transcript goes: `{prefix}/{meetingId}/{sessionId}/` in the tenant's bucket. */
export interface TranscriptWhere {
	tenantId: string;
	meetingId: string;
	sessionId: string;
}

export interface TranscriptWriterOptions {
	target: StorageTarget;
	endpointPolicy: EndpointPolicy;
	events: EventLog;
	where: TranscriptWhere;
	header: TranscriptHeader;
	log: Logger;
	/** Default {@link CHECKPOINT_MS}. */
	checkpointMs?: number;
}

/** What a writer (or a recovery) sent to the bucket: requests and the bytes of their bodies. */
export interface TranscriptUploads {
	puts: number;
	bytes: number;
	deletes: number;
}

/**
 * One transcription session's transcript in the customer's bucket, while it runs and at its end. Checkpoints are
 * incremental: CHECKPOINT_MS after a final segment, `transcript.part-NNNNNN.json` holds only what arrived since the
 * previous part (one PUT of a few hundred bytes, whatever the transcript's length so far). At the end the whole
 * transcript is written once as transcript.json and transcript.vtt (audited), the meeting's audit export beside
 * them, then the parts are deleted (they are in transcript.json; a crash before their deletion leaves parts that
 * `consentry verify` checks against it). A session whose gateway or node died is finished from its parts:
 * {@link finishTranscriptFromBucket}. Writes are one after the other: a checkpoint never lands after the final.
 */
export class TranscriptWriter {
	/** Every final entry so far, in arrival order. */
	readonly entries: TranscriptEntry[] = [];
	/** Per transcribed track, what the per-packet capture gate did (issue 11), from the recorder at its close. */
	readonly captures: TranscriptCapture[] = [];
	readonly uploads: TranscriptUploads = { puts: 0, bytes: 0, deletes: 0 };
	readonly #o: TranscriptWriterOptions;
	/** One client for the session's life (a checkpoint every 2 s reuses its connection). */
	readonly #bucket: CaptureBucket;
	/** Entries and captures in the parts written so far, and the last part's number. */
	#written = { entries: 0, captures: 0, parts: 0 };
	#timer?: NodeJS.Timeout;
	#writes: Promise<void> = Promise.resolve();
	#closed = false;

	constructor(o: TranscriptWriterOptions) {
		this.#o = o;
		this.#bucket = new CaptureBucket(o.target, o.endpointPolicy, o.events, { ...o.where, kind: "transcription" });
	}

	/** Checkpoint parts written so far. */
	get parts(): number {
		return this.#written.parts;
	}

	/** A final entry: in the bucket CHECKPOINT_MS from now at the latest (retried until the session ends). */
	add(entry: TranscriptEntry): void {
		this.entries.push(entry);
		this.#soon();
	}

	/** A track's capture account: written with the next part, or the final transcript. */
	addCapture(capture: TranscriptCapture): void {
		this.captures.push(capture);
	}

	#soon(): void {
		if (this.#closed || this.#timer) return;
		this.#timer = setTimeout(() => {
			this.#timer = undefined;
			if (this.#closed) return;
			void this.checkpoint().catch((err: unknown) => {
				this.#o.log.warn({ err, sessionId: this.#o.where.sessionId }, "transcript checkpoint failed; retrying");
				this.#soon();
			});
		}, this.#o.checkpointMs ?? CHECKPOINT_MS);
		this.#timer.unref();
	}

	/** Writes the next part now, after the writes before it: what is new since the last part (nothing if nothing is). */
	checkpoint(): Promise<void> {
		return this.#enqueue(() => this.#writePart());
	}

	/**
	 * The session ended: transcript.json and transcript.vtt (audited) with every entry, the meeting's audit export
	 * beside them, then the parts deleted. No write after it.
	 */
	finish(end: { endedAt: string; endReason: string }): Promise<void> {
		this.#close();
		const doc: TranscriptDocument = {
			kind: "consentry.transcript",
			version: 1,
			...headerFields(this.#o.header),
			endedAt: end.endedAt,
			endReason: end.endReason,
			engine: this.#o.header.engine,
			disclaimer: this.#o.header.disclaimer,
			entries: sortedEntries(this.entries),
			captures: this.captures,
		};
		return this.#last(async () => {
			const parts = Array.from({ length: this.#written.parts }, (_, i) => this.#bucket.key(transcriptPartName(i + 1)));
			await writeFinal(this.#bucket, this.#o.events, this.#o.where, doc, parts, this.uploads, this.#o.log);
		});
	}

	/**
	 * Cluster fencing: this node lost the store (nothing reaches the trail from here). What the parts lack goes to the
	 * bucket as a last part — written even if empty: its `checkpointedAt` says the transcript was whole up to the fence;
	 * the meeting's new home finishes the session from the parts (`node_lost`, ended then), as for a node that died.
	 * No write after it.
	 */
	finishAsCheckpoint(): Promise<void> {
		this.#close();
		return this.#last(() => this.#writePart(true));
	}

	#close(): void {
		this.#closed = true;
		clearTimeout(this.#timer);
		this.#timer = undefined;
	}

	#last(fn: () => Promise<void>): Promise<void> {
		return this.#enqueue(fn).finally(() => this.#bucket.destroy());
	}

	#enqueue(fn: () => Promise<void>): Promise<void> {
		const next = this.#writes.then(fn);
		this.#writes = next.catch(() => undefined);
		return next;
	}

	async #writePart(evenEmpty = false): Promise<void> {
		const upTo = { entries: this.entries.length, captures: this.captures.length };
		if (!evenEmpty && upTo.entries === this.#written.entries && upTo.captures === this.#written.captures) return;
		const n = this.#written.parts + 1;
		const part: TranscriptPart = {
			kind: "consentry.transcript.part",
			version: 1,
			...headerFields(this.#o.header),
			engine: this.#o.header.engine,
			disclaimer: this.#o.header.disclaimer,
			part: n,
			checkpointedAt: new Date().toISOString(),
			entries: sortedEntries(this.entries.slice(this.#written.entries, upTo.entries)),
			captures: this.captures.slice(this.#written.captures, upTo.captures),
		};
		const w = await this.#bucket.put(transcriptPartName(n), `${JSON.stringify(part)}\n`, "application/json");
		this.uploads.puts++;
		this.uploads.bytes += w.size;
		this.#written = { ...upTo, parts: n };
	}
}

function headerFields(
	h: TranscriptHeader,
): Pick<TranscriptHeader, "meeting" | "session" | "policy" | "startedAt"> & Pick<TranscriptHeader, "continues"> {
	return {
		meeting: h.meeting,
		session: h.session,
		policy: h.policy,
		startedAt: h.startedAt,
		...(h.continues ? { continues: h.continues } : {}),
	};
}

function sortedEntries(entries: TranscriptEntry[]): TranscriptEntry[] {
	return [...entries].sort((a, b) => a.start.localeCompare(b.start));
}

/**
 * The final transcript: transcript.json and transcript.vtt, each recorded in the trail, then the meeting's audit
 * export (`audit.jsonl`: the meeting's trail so far, holding this session, every speaker's answer and the transcript
 * objects just recorded) beside them, so the customer checks it from the bucket alone (`consentry verify`); then the
 * checkpoint parts (`parts`, keys), which it replaces, are deleted — a failure there is logged, not thrown: the parts
 * left agree with transcript.json, and verify accepts them.
 */
async function writeFinal(
	bucket: CaptureBucket,
	events: EventLog,
	where: TranscriptWhere,
	doc: TranscriptDocument,
	parts: string[],
	uploads: TranscriptUploads,
	log: Logger,
): Promise<void> {
	const json = `${JSON.stringify(doc, null, 2)}\n`;
	const vtt = toWebVtt(doc.entries, Date.parse(doc.startedAt), doc.disclaimer);
	for (const [name, text, type] of [
		["transcript.json", json, "application/json"],
		["transcript.vtt", vtt, "text/vtt"],
	] as const) {
		const w = await bucket.putAudited(name, text, type);
		uploads.puts++;
		uploads.bytes += w.size;
	}
	const audit = await bucket.put(
		"audit.jsonl",
		await events.exportMeeting(where.tenantId, where.meetingId),
		"application/x-ndjson",
	);
	uploads.puts++;
	uploads.bytes += audit.size;
	for (let i = 0; i < parts.length; i += 1000) {
		try {
			await bucket.client.send(
				new DeleteObjectsCommand({
					Bucket: bucket.target.bucket,
					Delete: { Objects: parts.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
				}),
			);
			uploads.deletes++;
		} catch (err) {
			log.warn({ err, sessionId: where.sessionId }, "could not delete the transcript's checkpoint parts (left)");
			return;
		}
	}
}

/** The session as the trail's `session.on` says it started. */
export interface LostTranscript {
	where: TranscriptWhere;
	startedAt: string;
	policy: CapturePolicy;
	engine: string;
	disclaimer: string;
}

/**
 * Finishes a transcription session whose gateway or node died, from what it left in the bucket: its checkpoint parts
 * (every entry in them; a part missing or unreadable becomes a `checkpoint_missing` hole), or an older gateway's
 * checkpoint transcript.json, or nothing (an empty transcript). It ends when its last checkpoint was written
 * (`endedAt`), with `endReason` and a hole from there to now (`how`); written as final like any session's end
 * (audited, audit.jsonl beside), then the parts deleted. Returns what it wrote.
 */
export async function finishTranscriptFromBucket(
	o: {
		target: StorageTarget;
		endpointPolicy: EndpointPolicy;
		events: EventLog;
		log: Logger;
		/** How many parts are read at once. */
		concurrency?: number;
	},
	lost: LostTranscript,
	how: CrashKind,
): Promise<{ doc: TranscriptDocument; parts: number; uploads: TranscriptUploads }> {
	const bucket = new CaptureBucket(o.target, o.endpointPolicy, o.events, { ...lost.where, kind: "transcription" });
	const uploads: TranscriptUploads = { puts: 0, bytes: 0, deletes: 0 };
	try {
		const get = async (key: string): Promise<string | undefined> => {
			try {
				const res = await bucket.client.send(
					new GetObjectCommand({ Bucket: o.target.bucket, Key: key, ...sseGetParams(o.target.encryption) }),
				);
				return await (res.Body as { transformToString(): Promise<string> }).transformToString();
			} catch (err) {
				if ((err as { name?: string }).name === "NoSuchKey") return undefined;
				throw err;
			}
		};
		// An older gateway's checkpoint (the whole transcript so far, overwritten every 2 s).
		const legacyText = await get(bucket.key("transcript.json"));
		const legacy = legacyText === undefined ? undefined : (JSON.parse(legacyText) as Partial<TranscriptDocument>);

		const partKeys = await listParts(bucket);
		const read = new Map<number, TranscriptPart>();
		const bad: number[] = [];
		let next = 0;
		const worker = async () => {
			while (next < partKeys.length) {
				const p = partKeys[next++] as { n: number; key: string };
				const text = await get(p.key);
				const part = text === undefined ? undefined : parsePart(text, lost.where, p.n);
				if (part) read.set(p.n, part);
				else bad.push(p.n);
			}
		};
		await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 8, partKeys.length) }, worker));
		if (bad.length)
			o.log.error(
				{ sessionId: lost.where.sessionId, parts: bad.sort((a, b) => a - b) },
				"transcript checkpoint parts unreadable: their span is a hole in the transcript",
			);

		const numbers = [...read.keys()].sort((a, b) => a - b);
		const max = Math.max(0, ...partKeys.map((p) => p.n));
		const first = numbers.length ? (read.get(numbers[0] as number) as TranscriptPart) : undefined;
		const last = numbers.length ? (read.get(numbers.at(-1) as number) as TranscriptPart) : undefined;
		// Parts missing (a gap in the numbering) or unreadable: from the part before to the part after.
		const holes: { from: string; to: string; cause: string }[] = [];
		let prevAt = legacy?.checkpointedAt ?? lost.startedAt;
		let gapFrom: string | undefined;
		for (let n = 1; n <= max; n++) {
			const p = read.get(n);
			if (!p) {
				gapFrom ??= prevAt;
				continue;
			}
			if (gapFrom !== undefined) holes.push({ from: gapFrom, to: p.checkpointedAt, cause: "checkpoint_missing" });
			gapFrom = undefined;
			prevAt = p.checkpointedAt;
		}
		const now = new Date().toISOString();
		const endedAt = last?.checkpointedAt ?? legacy?.checkpointedAt ?? legacy?.endedAt ?? lost.startedAt;
		if (gapFrom !== undefined) holes.push({ from: gapFrom, to: now, cause: "checkpoint_missing" });
		const { checkpointedAt: _c, ...rest } = legacy ?? {};
		const doc: TranscriptDocument = {
			kind: "consentry.transcript",
			version: 1,
			meeting: lost.where.meetingId,
			session: lost.where.sessionId,
			policy: lost.policy,
			startedAt: lost.startedAt,
			...(first?.continues ? { continues: first.continues } : {}),
			engine: first?.engine ?? lost.engine,
			disclaimer: first?.disclaimer ?? lost.disclaimer,
			...rest,
			endedAt,
			endReason: how.endReason,
			holes: [...(legacy?.holes ?? []), ...holes, { from: endedAt, to: now, cause: how.cause }],
			entries: sortedEntries([...(legacy?.entries ?? []), ...numbers.flatMap((n) => read.get(n)?.entries ?? [])]),
			captures: [...(legacy?.captures ?? []), ...numbers.flatMap((n) => read.get(n)?.captures ?? [])],
		};
		await writeFinal(
			bucket,
			o.events,
			lost.where,
			doc,
			partKeys.map((p) => p.key),
			uploads,
			o.log,
		);
		return { doc, parts: partKeys.length, uploads };
	} finally {
		bucket.destroy();
	}
}

/** The session's checkpoint parts in the bucket, by number. */
async function listParts(bucket: CaptureBucket): Promise<{ n: number; key: string }[]> {
	const base = bucket.key("");
	const out: { n: number; key: string }[] = [];
	let token: string | undefined;
	do {
		const page = await bucket.client.send(
			new ListObjectsV2Command({
				Bucket: bucket.target.bucket,
				Prefix: `${base}transcript.part-`,
				ContinuationToken: token,
			}),
		);
		for (const c of page.Contents ?? []) {
			const m = TRANSCRIPT_PART_NAME.exec((c.Key ?? "").slice(base.length));
			if (m) out.push({ n: Number(m[1]), key: c.Key as string });
		}
		token = page.IsTruncated ? page.NextContinuationToken : undefined;
	} while (token);
	return out.sort((a, b) => a.n - b.n);
}

/** A part as written by a gateway for this session, or undefined. */
function parsePart(text: string, where: TranscriptWhere, n: number): TranscriptPart | undefined {
	try {
		const p = JSON.parse(text) as TranscriptPart;
		const ok =
			p?.kind === "consentry.transcript.part" &&
			p.part === n &&
			p.meeting === where.meetingId &&
			p.session === where.sessionId &&
			typeof p.checkpointedAt === "string" &&
			Array.isArray(p.entries) &&
			Array.isArray(p.captures);
		return ok ? p : undefined;
	} catch {
		return undefined;
	}
}

/** transcript.vtt from transcript.json's entries (also used to rewrite it after an erasure: server/privacy). */
export function toWebVtt(entries: TranscriptEntry[], t0: number, disclaimer: string): string {
	const ts = (iso: string) => {
		const ms = Math.max(0, Date.parse(iso) - t0);
		const h = Math.floor(ms / 3_600_000);
		const m = Math.floor(ms / 60_000) % 60;
		const sec = Math.floor(ms / 1000) % 60;
		const pad = (n: number, w = 2) => String(n).padStart(w, "0");
		return `${pad(h)}:${pad(m)}:${pad(sec)}.${pad(ms % 1000, 3)}`;
	};
	const cues = entries.map(
		(e) => `${ts(e.start)} --> ${ts(e.end)}\n<v ${e.displayName.replace(/[<>]/g, "")}>${e.text}`,
	);
	return `WEBVTT\n\nNOTE ${disclaimer.replace(/-->/g, "→")}\n\n${cues.join("\n\n")}\n`;
}

import {
	AbortMultipartUploadCommand,
	CompleteMultipartUploadCommand,
	DeleteObjectsCommand,
	GetObjectCommand,
	ListMultipartUploadsCommand,
	ListObjectsV2Command,
	ListPartsCommand,
	type MultipartUpload,
	type Part,
	PutObjectCommand,
	type S3Client,
	UploadPartCommand,
} from "@aws-sdk/client-s3";
import type { Logger } from "../server/logger.js";
import { sseGetParams, ssePutParams } from "../server/storage/preflight.js";
import type { StorageTarget } from "../server/storage/StorageTargetTypes.js";
import { type ObjectWritten, parseJournalKey, parseObjectKey, type Recovered } from "./RecorderProtocol.js";

export interface RecoverOptions {
	client: S3Client;
	target: StorageTarget;
	/** The key prefix the tracks were opened with. */
	prefix: string;
	/** Uploads still being written (by this recorder or another): left alone, with their checkpoints. */
	liveUploadIds: Iterable<string>;
	/** Only these sessions' keys are touched. */
	sessions: Iterable<{ meetingId: string; sessionId: string }>;
	log: Logger;
	/** Called for each object completed. */
	onObject: (object: ObjectWritten) => void;
}

interface Checkpoint {
	key: string;
	offset: number;
	size: number;
	at: number;
	frames?: number;
}

/**
 * Finishes what a dead recorder left, session by session (its keys only):
 * each unfinished multipart upload is completed from the contiguous run of
 * parts 1…k it has, followed by the checkpoints of the tail that continue it
 * (downloaded, joined, uploaded as the last part), so the object ends at most
 * one checkpoint interval before the crash; an object whose upload never got a
 * part is written whole from its checkpoints (PutObject). The checkpoints are
 * deleted once their object is complete (also leftovers of completed ones).
 * Each completed object is reported with `recovered: true` and no sha256 (the
 * first bytes were hashed by the process that died). The result is a WebM cut
 * between two blocks: it plays, without its index.
 */
export async function recoverUploads(options: RecoverOptions): Promise<Recovered> {
	const result = { completed: 0, aborted: 0, failed: 0 };
	for (const s of options.sessions) {
		try {
			await recoverSession(options, s, result);
		} catch (err) {
			result.failed++;
			options.log.error({ err, session: s.sessionId }, "recover: could not list a session's uploads");
		}
	}
	return result;
}

async function recoverSession(
	options: RecoverOptions,
	session: { meetingId: string; sessionId: string },
	result: { completed: number; aborted: number; failed: number },
): Promise<void> {
	const { client, target, prefix, log } = options;
	const base = `${prefix ? `${prefix}/` : ""}${session.meetingId}/${session.sessionId}/`;
	const live = new Set(options.liveUploadIds);
	const uploads = await listUploads(client, target.bucket, base);
	const { completed, checkpoints } = await listObjects(client, target.bucket, base);
	const keys = new Set<string>([...uploads.keys(), ...checkpoints.keys()]);
	for (const key of keys) {
		const parsed = parseObjectKey(prefix, key);
		if (!parsed || parsed.sessionId !== session.sessionId) continue;
		const upload = uploads.get(key);
		if (upload?.UploadId && live.has(upload.UploadId)) continue;
		const cps = (checkpoints.get(key) ?? []).sort((a, b) => a.offset - b.offset);
		try {
			if (!upload?.UploadId) {
				if (!completed.has(key) && cps[0]?.offset === 0) {
					const tail = await joinCheckpoints(client, target, cps, 0);
					if (tail) {
						await client.send(
							new PutObjectCommand({
								Bucket: target.bucket,
								Key: key,
								Body: tail.bytes,
								ContentLength: tail.bytes.length,
								ContentType: parsed.kind === "audio" ? "audio/webm" : "video/webm",
								...ssePutParams(target.encryption),
							}),
						);
						result.completed++;
						log.info({ key, size: tail.bytes.length }, "recover: object written from its checkpoints");
						options.onObject({
							bucket: target.bucket,
							key,
							seq: parsed.seq,
							size: tail.bytes.length,
							startedAt: new Date(cps[0]?.at ?? Date.now()).toISOString(),
							endedAt: new Date(tail.last.at).toISOString(),
							recovered: true,
							truncated: true,
							...(tail.last.frames !== undefined ? { frames: tail.last.frames } : {}),
						});
					}
				}
				await deleteKeys(client, target.bucket, cps, log);
				continue;
			}
			const uploadId = upload.UploadId;
			const parts = await listParts(client, target.bucket, key, uploadId);
			const run: Part[] = [];
			for (const p of parts) {
				if (p.PartNumber !== run.length + 1 || !p.ETag) break;
				run.push(p);
			}
			const stored = run.reduce((n, p) => n + (p.Size ?? 0), 0);
			const tail = await joinCheckpoints(client, target, cps, stored);
			if (tail && tail.bytes.length > 0) {
				const partNumber = run.length + 1;
				const res = await client.send(
					new UploadPartCommand({
						Bucket: target.bucket,
						Key: key,
						UploadId: uploadId,
						PartNumber: partNumber,
						Body: tail.bytes,
						ContentLength: tail.bytes.length,
						...sseGetParams(target.encryption),
					}),
				);
				run.push({ PartNumber: partNumber, ETag: res.ETag, Size: tail.bytes.length });
			}
			if (run.length === 0) {
				await client.send(new AbortMultipartUploadCommand({ Bucket: target.bucket, Key: key, UploadId: uploadId }));
				await deleteKeys(client, target.bucket, cps, log);
				result.aborted++;
				log.info({ key, uploadId }, "recover: upload without parts or checkpoints aborted");
				continue;
			}
			await client.send(
				new CompleteMultipartUploadCommand({
					Bucket: target.bucket,
					Key: key,
					UploadId: uploadId,
					MultipartUpload: { Parts: run.map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag })) },
					...sseGetParams(target.encryption),
				}),
			);
			await deleteKeys(client, target.bucket, cps, log);
			result.completed++;
			const size = run.reduce((n, p) => n + (p.Size ?? 0), 0);
			const started = upload.Initiated ?? new Date();
			const partsEnded = parts.reduce<Date>(
				(d, p) => (p.LastModified && p.LastModified > d ? p.LastModified : d),
				started,
			);
			const endedAt = tail ? new Date(tail.last.at) : partsEnded;
			log.info({ key, uploadId, parts: run.length, size, tail: tail?.bytes.length ?? 0 }, "recover: upload completed");
			options.onObject({
				bucket: target.bucket,
				key,
				seq: parsed.seq,
				size,
				startedAt: started.toISOString(),
				endedAt: endedAt.toISOString(),
				recovered: true,
				truncated: true,
				...(tail?.last.frames !== undefined ? { frames: tail.last.frames } : {}),
			});
		} catch (err) {
			result.failed++;
			log.error({ err, key }, "recover: could not finish an object; left for a later recover");
		}
	}
}

/** The checkpoints that continue the object from byte `from` without a gap, joined (from `from` on). */
async function joinCheckpoints(
	client: S3Client,
	target: StorageTarget,
	cps: Checkpoint[],
	from: number,
): Promise<{ bytes: Buffer; last: Checkpoint } | undefined> {
	const chain: Checkpoint[] = [];
	let pos = from;
	for (const c of cps) {
		if (c.offset + c.size <= pos) continue; // already in the stored parts
		if (c.offset > pos) break; // a gap: what follows cannot be appended
		chain.push(c);
		pos = c.offset + c.size;
	}
	const first = chain[0];
	const last = chain.at(-1);
	if (!first || !last) return undefined;
	const bodies: Buffer[] = [];
	for (const c of chain) {
		const res = await client.send(
			new GetObjectCommand({ Bucket: target.bucket, Key: c.key, ...sseGetParams(target.encryption) }),
		);
		const bytes = Buffer.from(
			await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
		);
		if (bytes.length !== c.size) break;
		bodies.push(bytes);
	}
	if (bodies.length === 0) return undefined;
	const used = chain.slice(0, bodies.length);
	const joined = Buffer.concat(bodies);
	return { bytes: joined.subarray(from - first.offset), last: used.at(-1) as Checkpoint };
}

async function listUploads(client: S3Client, bucket: string, base: string): Promise<Map<string, MultipartUpload>> {
	const out = new Map<string, MultipartUpload>();
	let keyMarker: string | undefined;
	let uploadIdMarker: string | undefined;
	for (;;) {
		const page = await client.send(
			new ListMultipartUploadsCommand({
				Bucket: bucket,
				Prefix: base,
				...(keyMarker ? { KeyMarker: keyMarker } : {}),
				...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
			}),
		);
		for (const u of page.Uploads ?? []) if (u.Key && u.UploadId) out.set(u.Key, u);
		if (!page.IsTruncated) break;
		keyMarker = page.NextKeyMarker;
		uploadIdMarker = page.NextUploadIdMarker;
		if (!keyMarker && !uploadIdMarker) break;
	}
	return out;
}

async function listObjects(
	client: S3Client,
	bucket: string,
	base: string,
): Promise<{ completed: Set<string>; checkpoints: Map<string, Checkpoint[]> }> {
	const completed = new Set<string>();
	const checkpoints = new Map<string, Checkpoint[]>();
	let token: string | undefined;
	for (;;) {
		const page = await client.send(
			new ListObjectsV2Command({ Bucket: bucket, Prefix: base, ...(token ? { ContinuationToken: token } : {}) }),
		);
		for (const o of page.Contents ?? []) {
			if (!o.Key) continue;
			const j = parseJournalKey(o.Key);
			if (j) {
				const list = checkpoints.get(j.objectKey) ?? [];
				list.push({
					key: o.Key,
					offset: j.offset,
					size: o.Size ?? 0,
					at: j.at,
					...(j.frames !== undefined ? { frames: j.frames } : {}),
				});
				checkpoints.set(j.objectKey, list);
			} else completed.add(o.Key);
		}
		if (!page.IsTruncated || !page.NextContinuationToken) break;
		token = page.NextContinuationToken;
	}
	return { completed, checkpoints };
}

async function deleteKeys(client: S3Client, bucket: string, cps: Checkpoint[], log: Logger): Promise<void> {
	for (let i = 0; i < cps.length; i += 1000) {
		try {
			await client.send(
				new DeleteObjectsCommand({
					Bucket: bucket,
					Delete: { Objects: cps.slice(i, i + 1000).map((c) => ({ Key: c.key })), Quiet: true },
				}),
			);
		} catch (err) {
			log.warn({ err }, "recover: could not delete checkpoints");
		}
	}
}

async function listParts(client: S3Client, bucket: string, key: string, uploadId: string): Promise<Part[]> {
	const parts: Part[] = [];
	let marker: string | undefined;
	for (;;) {
		const page = await client.send(
			new ListPartsCommand({
				Bucket: bucket,
				Key: key,
				UploadId: uploadId,
				...(marker ? { PartNumberMarker: marker } : {}),
			}),
		);
		parts.push(...(page.Parts ?? []));
		if (!page.IsTruncated || !page.NextPartNumberMarker) break;
		marker = page.NextPartNumberMarker;
	}
	return parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
}

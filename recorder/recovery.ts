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
import type { Logger } from "../contracts/logger.js";
import {
	contentTypeOf,
	isCheckpointKey,
	type ObjectWritten,
	parseObjectKey,
	type Recovered,
} from "../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../contracts/StorageTargetTypes.js";
import { sseGetParams, ssePutParams } from "../contracts/s3.js";

export interface RecoverOptions {
	client: S3Client;
	target: StorageTarget;
	/** The key prefix the tracks were opened with. */
	prefix: string;
	/** Uploads still being written (by this recorder or another): left alone, with their checkpoints. */
	liveUploadIds: Iterable<string>;
	/**
	 * Objects still being written by this recorder, with or without an upload yet (an object's multipart upload is
	 * created only once its first part is full: until then its checkpoints are all there is): left alone.
	 */
	liveKeys?: Iterable<string>;
	/** Only these sessions' keys are touched. */
	sessions: Iterable<{ meetingId: string; sessionId: string }>;
	log: Logger;
	/** Called for each object completed. */
	onObject: (object: ObjectWritten) => void;
}

/** One piece of an object's tail, inside a session checkpoint object. */
interface Checkpoint {
	/** The checkpoint object, and where in it the piece's bytes are. */
	key: string;
	start: number;
	/** The piece: the object's bytes [offset, offset + size). */
	offset: number;
	size: number;
	/** When the checkpoint was cut (wall-clock ms). */
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
	const liveKeys = new Set(options.liveKeys ?? []);
	const uploads = await listUploads(client, target.bucket, base);
	const { completed, checkpoints, files } = await listObjects(client, target, base);
	const keys = new Set<string>([...uploads.keys(), ...checkpoints.keys()]);
	/** Objects finished (now or before): their pieces in the checkpoint files are of no more use. */
	const handled = new Set<string>();
	for (const key of keys) {
		const parsed = parseObjectKey(prefix, key);
		if (!parsed || parsed.sessionId !== session.sessionId) continue;
		const upload = uploads.get(key);
		if (upload?.UploadId && live.has(upload.UploadId)) continue;
		if (liveKeys.has(key)) continue;
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
								ContentType: contentTypeOf(parsed.container, parsed.kind),
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
				handled.add(key);
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
				handled.add(key);
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
			handled.add(key);
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
	for (const key of completed) handled.add(key);
	// Checkpoint files all of whose objects are finished are deleted (a live recorder's are left alone).
	const obsolete = [...files].filter(([, objects]) => [...objects].every((k) => handled.has(k))).map(([f]) => f);
	await deleteKeys(client, target.bucket, obsolete, log);
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
		const bytes = await getRange(client, target, c.key, c.start, c.size).catch(() => undefined);
		if (!bytes || bytes.length !== c.size) break;
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

async function getRange(
	client: S3Client,
	target: StorageTarget,
	key: string,
	start: number,
	size: number,
): Promise<Buffer> {
	const res = await client.send(
		new GetObjectCommand({
			Bucket: target.bucket,
			Key: key,
			Range: `bytes=${start}-${start + size - 1}`,
			...sseGetParams(target.encryption),
		}),
	);
	return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

interface CheckpointIndex {
	at: number;
	entries: { key: string; offset: number; size: number; at: number; frames: number | null }[];
}

/** The session folder: completed objects, and the checkpoint files with the pieces they hold per object. */
async function listObjects(
	client: S3Client,
	target: StorageTarget,
	base: string,
): Promise<{ completed: Set<string>; checkpoints: Map<string, Checkpoint[]>; files: Map<string, Set<string>> }> {
	const completed = new Set<string>();
	const checkpoints = new Map<string, Checkpoint[]>();
	const files = new Map<string, Set<string>>();
	const ckpts: { key: string; size: number }[] = [];
	let token: string | undefined;
	for (;;) {
		const page = await client.send(
			new ListObjectsV2Command({ Bucket: target.bucket, Prefix: base, ...(token ? { ContinuationToken: token } : {}) }),
		);
		for (const o of page.Contents ?? []) {
			if (!o.Key) continue;
			if (isCheckpointKey(o.Key)) ckpts.push({ key: o.Key, size: o.Size ?? 0 });
			else completed.add(o.Key);
		}
		if (!page.IsTruncated || !page.NextContinuationToken) break;
		token = page.NextContinuationToken;
	}
	for (const f of ckpts) {
		// The index is the first line; it is small (about 100 bytes per track).
		let head = await getRange(client, target, f.key, 0, Math.min(f.size, 65_536));
		let nl = head.indexOf(0x0a);
		if (nl < 0 && f.size > head.length) {
			head = await getRange(client, target, f.key, 0, f.size);
			nl = head.indexOf(0x0a);
		}
		if (nl < 0) continue;
		let index: CheckpointIndex;
		try {
			index = JSON.parse(head.subarray(0, nl).toString("utf8")) as CheckpointIndex;
		} catch {
			continue;
		}
		const objects = new Set<string>();
		for (const e of index.entries ?? []) {
			objects.add(e.key);
			const list = checkpoints.get(e.key) ?? [];
			list.push({
				key: f.key,
				start: nl + 1 + e.at,
				offset: e.offset,
				size: e.size,
				at: index.at,
				...(typeof e.frames === "number" ? { frames: e.frames } : {}),
			});
			checkpoints.set(e.key, list);
		}
		files.set(f.key, objects);
	}
	return { completed, checkpoints, files };
}

async function deleteKeys(client: S3Client, bucket: string, keys: string[], log: Logger): Promise<void> {
	for (let i = 0; i < keys.length; i += 1000) {
		try {
			await client.send(
				new DeleteObjectsCommand({
					Bucket: bucket,
					Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true },
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

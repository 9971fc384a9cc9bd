import {
	AbortMultipartUploadCommand,
	CompleteMultipartUploadCommand,
	ListMultipartUploadsCommand,
	ListPartsCommand,
	type Part,
	type S3Client,
} from "@aws-sdk/client-s3";
import type { Logger } from "../server/logger.js";
import { sseGetParams } from "../server/storage/preflight.js";
import type { StorageTarget } from "../server/storage/StorageTargetTypes.js";
import { type ObjectWritten, parseObjectKey, type Recovered } from "./RecorderProtocol.js";

export interface RecoverOptions {
	client: S3Client;
	target: StorageTarget;
	/** The key prefix the tracks were opened with. */
	prefix: string;
	/** Uploads still being written (by this recorder or another): left alone. */
	liveUploadIds: Iterable<string>;
	/** Only uploads whose key's sessionId is one of these are touched. */
	ownedSessionIds: Iterable<string>;
	log: Logger;
	/** Called for each object completed. */
	onObject: (object: ObjectWritten) => void;
}

/**
 * Finishes what a dead recorder left: every unfinished multipart upload under
 * the prefix whose key is a recorder key of an owned session (and not live) is
 * completed from the contiguous run of parts 1…k it already has, or aborted
 * when it has none. Each completed object is reported with `recovered: true`
 * and no sha256 (the bytes were hashed by the process that died). A WebM cut
 * like this lacks its last cluster(s) and trailer; players and ffprobe read it.
 */
export async function recoverUploads(options: RecoverOptions): Promise<Recovered> {
	const { client, target, prefix, log } = options;
	const live = new Set(options.liveUploadIds);
	const owned = new Set(options.ownedSessionIds);
	const result = { completed: 0, aborted: 0, failed: 0 };
	let keyMarker: string | undefined;
	let uploadIdMarker: string | undefined;
	for (;;) {
		const page = await client.send(
			new ListMultipartUploadsCommand({
				Bucket: target.bucket,
				...(prefix ? { Prefix: `${prefix}/` } : {}),
				...(keyMarker ? { KeyMarker: keyMarker } : {}),
				...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
			}),
		);
		for (const upload of page.Uploads ?? []) {
			const { Key: key, UploadId: uploadId } = upload;
			if (!key || !uploadId || live.has(uploadId)) continue;
			const parsed = parseObjectKey(prefix, key);
			if (!parsed || !owned.has(parsed.sessionId)) continue;
			try {
				const parts = await listParts(client, target.bucket, key, uploadId);
				const run: Part[] = [];
				for (const p of parts) {
					if (p.PartNumber !== run.length + 1 || !p.ETag) break;
					run.push(p);
				}
				if (run.length === 0) {
					await client.send(new AbortMultipartUploadCommand({ Bucket: target.bucket, Key: key, UploadId: uploadId }));
					result.aborted++;
					log.info({ key, uploadId }, "recover: upload without parts aborted");
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
				result.completed++;
				const size = run.reduce((n, p) => n + (p.Size ?? 0), 0);
				const started = upload.Initiated ?? new Date();
				const ended = run.reduce<Date>((d, p) => (p.LastModified && p.LastModified > d ? p.LastModified : d), started);
				log.info({ key, uploadId, parts: run.length, size }, "recover: upload completed");
				options.onObject({
					bucket: target.bucket,
					key,
					seq: parsed.seq,
					size,
					startedAt: started.toISOString(),
					endedAt: ended.toISOString(),
					recovered: true,
					...(run.length < parts.length ? { truncated: true } : {}),
				});
			} catch (err) {
				result.failed++;
				log.error({ err, key, uploadId }, "recover: could not finish an upload; left for a later recover");
			}
		}
		if (!page.IsTruncated) break;
		keyMarker = page.NextKeyMarker;
		uploadIdMarker = page.NextUploadIdMarker;
		if (!keyMarker && !uploadIdMarker) break;
	}
	return result;
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

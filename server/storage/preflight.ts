import { randomBytes, randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import {
	DeleteObjectCommand,
	GetObjectCommand,
	ListMultipartUploadsCommand,
	ListObjectsV2Command,
	PutObjectCommand,
} from "@aws-sdk/client-s3";
import { assertEndpointAllowed, type EndpointPolicy } from "../../contracts/endpointGuard.js";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import { classifyS3Error, createS3Client, StorageError, sseGetParams, ssePutParams } from "../../contracts/s3.js";

export {
	classifyS3Error,
	createS3Client,
	type S3ClientOptions,
	StorageError,
	type StorageErrorCode,
	sseGetParams,
	ssePutParams,
} from "../../contracts/s3.js";

export interface PreflightResult {
	ok: true;
	/** Put + get + delete of the probe, end to end. */
	latencyMs: number;
	/** False when the bucket let us write and read but not delete (e.g. a WORM policy); the probe key is then left. */
	probeDeleted: boolean;
	probeKey: string;
}

/**
 * Proves the target works before it is saved or used: writes a small probe
 * object `{prefix}/.consentry-probe-<uuid>` with the target's encryption, reads
 * it back and compares, deletes it, and lists the prefix (objects and unfinished
 * multipart uploads: what recovery after a crash needs; `list_denied` when it
 * may not). One attempt per request, short timeouts.
 * Throws EndpointError (policy) or StorageError (what to fix).
 */
export async function preflight(
	target: StorageTarget,
	options: EndpointPolicy & { timeoutMs?: number } = {},
): Promise<PreflightResult> {
	await assertEndpointAllowed(target.endpoint, options);
	const timeout = options.timeoutMs ?? 5000;
	const client = createS3Client(target, {
		...options,
		connectTimeoutMs: timeout,
		requestTimeoutMs: timeout,
		idleTimeoutMs: timeout,
		maxAttempts: 1,
	});
	const Key = `${target.prefix ? `${target.prefix}/` : ""}.consentry-probe-${randomUUID()}`;
	const body = Buffer.concat([Buffer.from("consentry storage preflight\n"), randomBytes(32)]);
	const started = performance.now();
	try {
		try {
			await client.send(
				new PutObjectCommand({
					Bucket: target.bucket,
					Key,
					Body: body,
					ContentType: "application/octet-stream",
					...ssePutParams(target.encryption),
				}),
			);
		} catch (err) {
			throw classifyS3Error(err, target, "write");
		}
		let got: Buffer;
		try {
			const res = await client.send(
				new GetObjectCommand({ Bucket: target.bucket, Key, ...sseGetParams(target.encryption) }),
			);
			got = Buffer.from((await res.Body?.transformToByteArray()) ?? new Uint8Array());
		} catch (err) {
			await client.send(new DeleteObjectCommand({ Bucket: target.bucket, Key })).catch(() => undefined);
			throw classifyS3Error(err, target, "read back");
		}
		let probeDeleted = true;
		try {
			await client.send(new DeleteObjectCommand({ Bucket: target.bucket, Key }));
		} catch (err) {
			const mapped = classifyS3Error(err, target, "delete");
			if (mapped.code !== "access_denied") throw mapped;
			probeDeleted = false;
		}
		if (!got.equals(body)) {
			throw new StorageError(
				"probe_mismatch",
				`the probe object s3://${target.bucket}/${Key} read back differs from what was written (${got.length} vs ${body.length} bytes); the endpoint is not a faithful S3 store or a proxy rewrites bodies`,
			);
		}
		// Recovery after a crash lists the session's folder (objects and unfinished uploads): without it a crash's
		// recordings stay unfinished, so a target that may not list is refused now, not discovered then.
		const Prefix = target.prefix ? `${target.prefix}/` : "";
		try {
			await client.send(new ListObjectsV2Command({ Bucket: target.bucket, Prefix, MaxKeys: 1 }));
			await client.send(new ListMultipartUploadsCommand({ Bucket: target.bucket, Prefix, MaxUploads: 1 }));
		} catch (err) {
			throw classifyS3Error(err, target, "list");
		}
		return { ok: true, latencyMs: Math.round(performance.now() - started), probeDeleted, probeKey: Key };
	} finally {
		client.destroy();
	}
}

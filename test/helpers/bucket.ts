import { randomBytes } from "node:crypto";
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import type { Gateway } from "../../server/Gateway.js";
import { api } from "./gateway.js";
import { type S3Server, startS3 } from "./moto.js";
import type { TestTenant } from "./tenants.js";

/** A customer's bucket on a local S3 API (moto), and a client to look into it as the customer would. */
export interface TestBucket {
	server: S3Server;
	s3: S3Client;
	name: string;
	/** An object's bytes. */
	bytes(key: string): Promise<Buffer>;
	/** An object parsed as JSON. */
	json<T>(key: string): Promise<T>;
	stop(): Promise<void>;
}

export async function startBucket(name: string): Promise<TestBucket> {
	const server = await startS3();
	const s3 = new S3Client({
		endpoint: server.endpoint,
		region: "us-east-1",
		forcePathStyle: true,
		credentials: { accessKeyId: "x", secretAccessKey: "x" },
	});
	await s3.send(new CreateBucketCommand({ Bucket: name }));
	const bytes = async (key: string) => {
		const r = await s3.send(new GetObjectCommand({ Bucket: name, Key: key }));
		return Buffer.from(await (r.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
	};
	return {
		server,
		s3,
		name,
		bytes,
		json: async (key) => JSON.parse((await bytes(key)).toString()),
		stop: async () => {
			s3.destroy();
			await server.stop();
		},
	};
}

/** A storage target for this bucket, as the recorder gets it (credentials decrypted). */
export function targetOf(bucket: TestBucket, prefix: string, over: Partial<StorageTarget> = {}): StorageTarget {
	return {
		endpoint: bucket.server.endpoint,
		region: "us-east-1",
		bucket: bucket.name,
		prefix,
		credentials: { accessKeyId: "AKIATEST", secretAccessKey: "secret-value" },
		forcePathStyle: true,
		encryption: { type: "none" },
		...over,
	};
}

/** Gateway settings that let tenants register a bucket on loopback over http (the local S3 API). */
export function storageEnv(): Record<string, string> {
	return {
		CONSENTRY_MASTER_KEY: randomBytes(32).toString("base64"),
		CONSENTRY_STORAGE_ALLOW_PRIVATE: "true",
		CONSENTRY_STORAGE_ALLOW_HTTP: "true",
	};
}

/** The tenant's administrator registers the bucket as its storage target (the preflight must pass). */
export async function saveStorageTarget(
	gw: Pick<Gateway, "url">,
	tenant: TestTenant,
	bucket: TestBucket,
	prefix: string,
	extra: Record<string, unknown> = {},
): Promise<void> {
	const r = await api(gw, "PUT", "/api/storage-target", tenant.token("it-admin", "admin"), {
		endpoint: bucket.server.endpoint,
		region: "us-east-1",
		bucket: bucket.name,
		prefix,
		forcePathStyle: true,
		credentials: { accessKeyId: "AKIATEST", secretAccessKey: "secret-value" },
		...extra,
	});
	if (r.status !== 200) throw new Error(`storage target refused: ${r.status} ${JSON.stringify(r.body)}`);
}

/**
 * A running transcription session's transcript as its checkpoints hold it (`transcript.part-NNNNNN.json` in its
 * folder `base`, server/transcription/TranscriptWriter.ts): every part's entries, in order; undefined before the first.
 */
export async function transcriptSoFar<E = { speaker: string; start: string; end: string; text: string }>(
	bucket: TestBucket,
	base: string,
): Promise<{ parts: number; entries: E[] } | undefined> {
	const listed = await bucket.s3.send(
		new ListObjectsV2Command({ Bucket: bucket.name, Prefix: `${base}/transcript.part-` }),
	);
	const keys = (listed.Contents ?? []).map((o) => o.Key as string).sort();
	if (keys.length === 0) return undefined;
	const parts = await Promise.all(keys.map((k) => bucket.json<{ entries: E[] }>(k).catch(() => ({ entries: [] }))));
	return { parts: keys.length, entries: parts.flatMap((p) => p.entries) };
}

import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import {
	GetObjectCommand,
	type GetObjectCommandInput,
	ListObjectsV2Command,
	S3Client,
	S3ServiceException,
} from "@aws-sdk/client-s3";

/** Where the bucket is and how to reach it: credentials come from the AWS SDK's usual chain (env, profile, …). */
export interface BucketOptions {
	bucket: string;
	endpoint?: string;
	region?: string;
	profile?: string;
	forcePathStyle?: boolean;
	/** SSE-C: the 32-byte customer key, base64. */
	sseCustomerKey?: string;
}

/** The bucket could not be reached or read at all: the verifier could not run (exit 2), nothing was proven. */
export class BucketUnreachable extends Error {
	constructor(
		readonly code: string,
		message: string,
	) {
		super(message);
	}
}

export interface Listed {
	key: string;
	size: number;
	/** When it was last written (ms since the epoch), if the listing says. */
	lastModified?: number;
}

/** Read-only access to the customer's bucket: listing, capped reads, streamed hashes. */
export class Bucket {
	readonly name: string;
	readonly #s3: S3Client;
	readonly #sse: Pick<GetObjectCommandInput, "SSECustomerAlgorithm" | "SSECustomerKey" | "SSECustomerKeyMD5">;

	constructor(o: BucketOptions) {
		this.name = o.bucket;
		this.#s3 = new S3Client({
			...(o.endpoint ? { endpoint: o.endpoint } : {}),
			region: o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1",
			...(o.profile ? { profile: o.profile } : {}),
			forcePathStyle: o.forcePathStyle ?? Boolean(o.endpoint),
			maxAttempts: 4,
		});
		if (o.sseCustomerKey) {
			const key = Buffer.from(o.sseCustomerKey, "base64");
			if (key.length !== 32) throw new BucketUnreachable("bad_sse_key", "--sse-c-key must be 32 bytes, base64");
			this.#sse = {
				SSECustomerAlgorithm: "AES256",
				SSECustomerKey: o.sseCustomerKey,
				SSECustomerKeyMD5: createHash("md5").update(key).digest("base64"),
			};
		} else this.#sse = {};
	}

	/** Every key under `prefix` (at most `max`; `truncated` when there were more). */
	async list(prefix: string, max: number): Promise<{ objects: Listed[]; truncated: boolean }> {
		const objects: Listed[] = [];
		let token: string | undefined;
		do {
			const page = await this.#send(
				() => this.#s3.send(new ListObjectsV2Command({ Bucket: this.name, Prefix: prefix, ContinuationToken: token })),
				`list ${prefix}`,
			);
			for (const o of page.Contents ?? []) {
				if (o.Key === undefined) continue;
				if (objects.length >= max) return { objects, truncated: true };
				objects.push({
					key: o.Key,
					size: o.Size ?? 0,
					...(o.LastModified ? { lastModified: o.LastModified.getTime() } : {}),
				});
			}
			token = page.IsTruncated ? page.NextContinuationToken : undefined;
		} while (token);
		return { objects, truncated: false };
	}

	/** The folders right below `prefix` (`…/x/`), at most `max`. */
	async folders(prefix: string, max: number): Promise<string[]> {
		return (await this.children(prefix, max)).folders;
	}

	/** What lies right below `prefix`: its objects (at most `max`) and its folders (`…/x/`, at most `max`). */
	async children(prefix: string, max: number): Promise<{ objects: string[]; folders: string[] }> {
		const folders: string[] = [];
		const objects: string[] = [];
		let token: string | undefined;
		do {
			const page = await this.#send(
				() =>
					this.#s3.send(
						new ListObjectsV2Command({ Bucket: this.name, Prefix: prefix, Delimiter: "/", ContinuationToken: token }),
					),
				`list ${prefix}`,
			);
			for (const p of page.CommonPrefixes ?? []) if (p.Prefix && folders.length < max) folders.push(p.Prefix);
			for (const o of page.Contents ?? []) if (o.Key && objects.length < max) objects.push(o.Key);
			token = page.IsTruncated && folders.length < max && objects.length < max ? page.NextContinuationToken : undefined;
		} while (token);
		return { objects, folders };
	}

	/**
	 * An object's bytes, refusing more than `cap` (a hostile bucket can hold a manifest of any size). Undefined when
	 * it does not exist.
	 */
	async read(key: string, cap: number): Promise<{ bytes: Buffer } | { tooLarge: number } | undefined> {
		const body = await this.#get(key);
		if (!body) return undefined;
		const chunks: Buffer[] = [];
		let n = 0;
		for await (const chunk of body.stream) {
			n += (chunk as Buffer).length;
			if (n > cap) {
				body.stream.destroy();
				return { tooLarge: Math.max(n, body.length ?? 0) };
			}
			chunks.push(chunk as Buffer);
		}
		return { bytes: Buffer.concat(chunks) };
	}

	/** Bytes [start, end) of an object (undefined when it does not exist). */
	async range(key: string, start: number, end: number): Promise<Buffer | undefined> {
		if (end <= start) return Buffer.alloc(0);
		const body = await this.#get(key, `bytes=${start}-${end - 1}`);
		if (!body) return undefined;
		const chunks: Buffer[] = [];
		let n = 0;
		for await (const chunk of body.stream) {
			n += (chunk as Buffer).length;
			if (n > end - start) {
				body.stream.destroy();
				break;
			}
			chunks.push(chunk as Buffer);
		}
		return Buffer.concat(chunks);
	}

	/** An object's size and SHA-256, streamed (nothing held in memory). Undefined when it does not exist. */
	async hash(key: string): Promise<{ size: number; sha256: string } | undefined> {
		const body = await this.#get(key);
		if (!body) return undefined;
		const h = createHash("sha256");
		let size = 0;
		for await (const chunk of body.stream) {
			size += (chunk as Buffer).length;
			h.update(chunk as Buffer);
		}
		return { size, sha256: h.digest("hex") };
	}

	destroy(): void {
		this.#s3.destroy();
	}

	async #get(key: string, range?: string): Promise<{ stream: Readable; length: number | undefined } | undefined> {
		try {
			const r = await this.#s3.send(
				new GetObjectCommand({ Bucket: this.name, Key: key, ...(range ? { Range: range } : {}), ...this.#sse }),
			);
			return { stream: r.Body as Readable, length: r.ContentLength };
		} catch (err) {
			if (err instanceof S3ServiceException && (err.name === "NoSuchKey" || err.$metadata?.httpStatusCode === 404))
				return undefined;
			throw unreachable(err, `read ${key}`);
		}
	}

	async #send<T>(fn: () => Promise<T>, what: string): Promise<T> {
		try {
			return await fn();
		} catch (err) {
			throw unreachable(err, what);
		}
	}
}

function unreachable(err: unknown, what: string): BucketUnreachable {
	if (err instanceof BucketUnreachable) return err;
	const e = err as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
	const status = e.$metadata?.httpStatusCode;
	const name = e.name ?? e.code ?? "error";
	const hint =
		name === "NoSuchBucket"
			? "no such bucket"
			: status === 403 || name === "AccessDenied" || name === "InvalidAccessKeyId" || name === "SignatureDoesNotMatch"
				? "access denied: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile) and, for SSE-C objects, --sse-c-key"
				: name === "CredentialsProviderError"
					? "no credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or pass --profile"
					: "the bucket could not be reached";
	return new BucketUnreachable(
		name,
		`could not ${what}: ${hint} (${name}${status ? ` ${status}` : ""}: ${e.message ?? ""})`,
	);
}

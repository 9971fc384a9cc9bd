import { createHash, randomBytes } from "node:crypto";
import { GetObjectCommand, ListMultipartUploadsCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { RecorderConfigSchema } from "../contracts/RecorderConfig.js";
import type { StorageTarget } from "../contracts/StorageTargetTypes.js";
import { ByteBudget } from "../recorder/ByteBudget.js";
import { SegmentUploader } from "../recorder/SegmentUploader.js";
import { createLogger } from "../server/logger.js";
import { createS3Client, sseGetParams } from "../server/storage/preflight.js";
import { startBucket, type TestBucket, targetOf } from "./helpers/bucket.js";
import { type S3Proxy, startS3Proxy } from "./helpers/s3-proxy.js";

const MiB = 1024 * 1024;

/**
 * SegmentUploader against a real S3 API (moto) behind a recording proxy:
 * what it sends on each request (SSE-C on every one), how it retries
 * transient errors and stops on permanent ones, and the exact hash of an
 * object completed from fewer parts than were read.
 */
describe("SegmentUploader", () => {
	let bucket: TestBucket;
	let proxy: S3Proxy;
	let s3: S3Client;
	let target: StorageTarget;
	const sseKey = randomBytes(32).toString("base64");
	const log = createLogger("silent");

	beforeAll(async () => {
		bucket = await startBucket("customer");
		s3 = bucket.s3;
		proxy = await startS3Proxy(bucket.server.endpoint);
		target = targetOf(bucket, "", { endpoint: proxy.endpoint, encryption: { type: "SSE-C", key: sseKey } });
	});

	beforeEach(() => {
		proxy.requests.length = 0;
		proxy.fault = undefined;
	});

	afterAll(async () => {
		await proxy?.close();
		await bucket?.stop();
	});

	function uploader(key: string, overrides: Partial<ReturnType<typeof RecorderConfigSchema.parse>> = {}) {
		const config = RecorderConfigSchema.parse({
			partSizeBytes: 5 * MiB,
			retryBaseMs: 20,
			retryMaxMs: 200,
			...overrides,
		});
		const client = createS3Client(target, { allowHttp: true, allowPrivate: true, maxAttempts: 1 });
		const budget = new ByteBudget(config.maxBufferedBytes);
		return {
			client,
			budget,
			up: new SegmentUploader({ client, target, key, contentType: "video/webm", budget, config, log }),
		};
	}

	function feed(up: SegmentUploader, data: Buffer): void {
		for (let i = 0; i < data.length; i += 64 * 1024) up.write(data.subarray(i, i + 64 * 1024));
		up.end();
	}

	async function download(key: string): Promise<Buffer> {
		const res = await s3.send(
			new GetObjectCommand({ Bucket: "customer", Key: key, ...sseGetParams(target.encryption) }),
		);
		return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
	}

	const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

	it("streams into one multipart upload with the SSE-C key on every request, and hashes while streaming", async () => {
		const data = randomBytes(12 * MiB + 12_345);
		const { up, client, budget } = uploader("a/ssec.webm");
		feed(up, data);
		const outcome = await up.finish();
		client.destroy();
		expect(outcome.error).toBeUndefined();
		expect(outcome.object).toMatchObject({ size: data.length, parts: 3, truncated: false, sha256: sha256(data) });
		expect(budget.used).toBe(0);
		const got = await download("a/ssec.webm");
		expect(sha256(got)).toBe(sha256(data));

		const md5 = createHash("md5").update(Buffer.from(sseKey, "base64")).digest("base64");
		const create = proxy.requests.filter((r) => r.method === "POST" && r.url.includes("uploads"));
		const parts = proxy.requests.filter((r) => r.method === "PUT" && r.url.includes("partNumber="));
		const complete = proxy.requests.filter((r) => r.method === "POST" && r.url.includes("uploadId="));
		expect([create.length, parts.length, complete.length]).toEqual([1, 3, 1]);
		for (const r of [...create, ...parts, ...complete]) {
			expect(r.headers["x-amz-server-side-encryption-customer-algorithm"]).toBe("AES256");
			expect(r.headers["x-amz-server-side-encryption-customer-key"]).toBe(sseKey);
			expect(r.headers["x-amz-server-side-encryption-customer-key-md5"]).toBe(md5);
		}
		// Parts of at least 5 MiB, except the last.
		const sizes = parts.map((r) => Number(r.headers["content-length"]));
		expect(sizes.slice(0, 2).every((s) => s >= 5 * MiB)).toBe(true);
		expect(sizes.reduce((a, b) => a + b, 0)).toBe(data.length);
	});

	it("an object that ends within its first part is one PutObject: no multipart upload, nothing asked before it ends", async () => {
		const data = randomBytes(3 * MiB + 17);
		const { up, client, budget } = uploader("a/small.webm");
		for (let i = 0; i < data.length; i += 64 * 1024) up.write(data.subarray(i, i + 64 * 1024));
		await new Promise((r) => setTimeout(r, 200));
		expect(proxy.requests).toHaveLength(0); // the first frames cost no request
		up.end();
		const outcome = await up.finish();
		client.destroy();
		expect(outcome.error).toBeUndefined();
		expect(outcome.object).toMatchObject({ size: data.length, parts: 1, truncated: false, sha256: sha256(data) });
		expect(outcome.object?.uploadId).toBeUndefined();
		expect(proxy.requests.map((r) => r.method)).toEqual(["PUT"]);
		expect(proxy.requests[0]?.headers["x-amz-server-side-encryption-customer-key"]).toBe(sseKey);
		expect(budget.used).toBe(0);
		expect(sha256(await download("a/small.webm"))).toBe(sha256(data));
	});

	it("retries 5xx answers and dropped connections with backoff, and loses nothing", async () => {
		let partAttempts = 0;
		proxy.fault = (req) => {
			if (req.method !== "PUT") return undefined;
			partAttempts++;
			return partAttempts === 1 ? 503 : partAttempts === 2 ? 500 : partAttempts === 3 ? "reset" : undefined;
		};
		const data = randomBytes(11 * MiB);
		const { up, client } = uploader("a/retry.webm");
		feed(up, data);
		const outcome = await up.finish();
		client.destroy();
		expect(outcome.error).toBeUndefined();
		expect(outcome.object).toMatchObject({ size: data.length, parts: 3, sha256: sha256(data) });
		expect(proxy.requests.filter((r) => r.outcome !== "forwarded").map((r) => r.outcome)).toEqual([503, 500, "reset"]);
		expect(sha256(await download("a/retry.webm"))).toBe(sha256(data));
	});

	it("stops on a permanent refusal (403) and aborts the upload when no part was stored", async () => {
		proxy.fault = (req) => (req.method === "PUT" ? 403 : undefined);
		const { up, client } = uploader("a/denied.webm");
		const rejected: string[] = [];
		up.on("rejected", (e) => rejected.push(e.code));
		up.write(randomBytes(6 * MiB));
		const outcome = await up.finish();
		client.destroy();
		expect(rejected).toEqual(["storage_rejected"]);
		expect(outcome.object).toBeUndefined();
		expect(outcome.error?.code).toBe("storage_rejected");
		expect(outcome.error?.message).toMatch(/AccessDenied|may not write/);
		expect(proxy.requests.filter((r) => r.method === "PUT")).toHaveLength(1); // not retried
		const pending = await s3.send(new ListMultipartUploadsCommand({ Bucket: "customer", Prefix: "a/denied" }));
		expect(pending.Uploads ?? []).toEqual([]);
	});

	it("completes from the parts it could store when the rest keeps failing, with the exact hash of those bytes", async () => {
		let puts = 0;
		proxy.fault = (req) => (req.method === "PUT" && ++puts > 2 ? 503 : undefined);
		const data = randomBytes(13 * MiB);
		const { up, client, budget } = uploader("a/partial.webm", { finishDeadlineMs: 1500 });
		feed(up, data);
		const outcome = await up.finish();
		client.destroy();
		expect(outcome.error?.code).toBe("storage_unavailable");
		const o = outcome.object;
		expect(o?.parts).toBe(2);
		expect(o?.truncated).toBe(true);
		const got = await download("a/partial.webm");
		expect(got.length).toBe(o?.size);
		expect(got.equals(data.subarray(0, got.length))).toBe(true);
		expect(o?.sha256).toBe(sha256(got));
		expect(budget.used).toBe(0);
	});
});

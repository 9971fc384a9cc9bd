import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import {
	CreateBucketCommand,
	HeadObjectCommand,
	ListObjectsV2Command,
	NoSuchBucket,
	PutObjectCommand,
	S3ServiceException,
} from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import { type S3Server, startS3 } from "../../test/helpers/moto.js";
import { freePort } from "../../test/helpers/ports.js";
import { classifyS3Error, createS3Client, preflight, StorageError, ssePutParams } from "./preflight.js";

const local = { allowPrivate: true, allowHttp: true };

describe("preflight against a local S3 API server (moto)", () => {
	let s3server: S3Server;
	let target: StorageTarget;

	beforeAll(async () => {
		s3server = await startS3();
		target = {
			endpoint: s3server.endpoint,
			region: "us-east-1",
			bucket: "customer",
			prefix: "consentry/acme",
			credentials: { accessKeyId: "test", secretAccessKey: "test" },
			forcePathStyle: true,
			encryption: { type: "none" },
		};
		const client = createS3Client(target, local);
		await client.send(new CreateBucketCommand({ Bucket: "customer" }));
		client.destroy();
	});

	afterAll(async () => {
		await s3server?.stop();
	});
	afterEach(() => s3server?.resume()); // even when a paused-server test times out

	async function keysUnder(prefix: string): Promise<string[]> {
		const client = createS3Client(target, local);
		const res = await client.send(new ListObjectsV2Command({ Bucket: target.bucket, Prefix: prefix }));
		client.destroy();
		return (res.Contents ?? []).map((o) => o.Key ?? "");
	}

	it("writes, reads back and deletes a probe under the prefix", async () => {
		const result = await preflight(target, local);
		expect(result).toMatchObject({ ok: true, probeDeleted: true });
		expect(result.latencyMs).toBeGreaterThanOrEqual(0);
		expect(result.probeKey).toMatch(/^consentry\/acme\/\.consentry-probe-[0-9a-f-]{36}$/);
		expect(await keysUnder("consentry/")).toEqual([]);
	});

	it("list_denied when the credentials may write but not list (recovery after a crash could not finish anything)", async () => {
		const proxy = await denyListProxy(s3server.port);
		try {
			const err = await preflight({ ...target, endpoint: proxy.endpoint }, local).catch((e: unknown) => e);
			expect(err).toMatchObject({ code: "list_denied", status: 422 });
			expect((err as Error).message).toContain("s3:ListBucket");
		} finally {
			await proxy.close();
		}
	});

	it("no_such_bucket names the bucket", async () => {
		await expect(preflight({ ...target, bucket: "not-there" }, local)).rejects.toMatchObject({
			code: "no_such_bucket",
			message: expect.stringContaining("not-there does not exist"),
		});
	});

	it("endpoint_unreachable on a closed port, at once and without retries", async () => {
		const port = await freePort();
		const started = Date.now();
		const err = await preflight({ ...target, endpoint: `http://127.0.0.1:${port}` }, local).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(StorageError);
		expect(err).toMatchObject({ code: "endpoint_unreachable", message: expect.stringContaining("ECONNREFUSED") });
		expect(Date.now() - started).toBeLessThan(3000);
	});

	it("endpoint_unreachable when the server stops answering (request timeout)", async () => {
		s3server.pause();
		try {
			const started = Date.now();
			await expect(preflight(target, { ...local, timeoutMs: 800 })).rejects.toMatchObject({
				code: "endpoint_unreachable",
			});
			expect(Date.now() - started).toBeLessThan(5000);
		} finally {
			s3server.resume();
		}
	}, 15_000);

	it("refuses a loopback endpoint unless private addresses are allowed, before any request", async () => {
		await expect(preflight(target, { allowHttp: true })).rejects.toMatchObject({ code: "endpoint_forbidden" });
		await expect(preflight(target, { allowPrivate: true })).rejects.toMatchObject({ code: "endpoint_forbidden" }); // http
	});

	it("the client re-checks the address at connect time (a name that resolves to loopback later is still refused)", async () => {
		// assertEndpointAllowed is skipped here on purpose: only the agents' guarded lookup stands in the way.
		const client = createS3Client(
			{ ...target, endpoint: `http://localhost:${s3server.port}` },
			{ allowHttp: true, maxAttempts: 1 },
		);
		const err = await client
			.send(new PutObjectCommand({ Bucket: "customer", Key: "never", Body: "x" }))
			.catch((e: unknown) => e);
		client.destroy();
		expect(classifyS3Error(err, target)).toMatchObject({
			code: "endpoint_forbidden",
			message: expect.stringContaining("localhost"),
		});
		expect(await keysUnder("never")).toEqual([]);
	});

	it("SSE-S3: the probe round-trips and the object is stored with AES256", async () => {
		const sse: StorageTarget = { ...target, encryption: { type: "SSE-S3" } };
		await expect(preflight(sse, local)).resolves.toMatchObject({ ok: true });
		const client = createS3Client(sse, local);
		await client.send(
			new PutObjectCommand({ Bucket: "customer", Key: "sse-s3", Body: "x", ...ssePutParams(sse.encryption) }),
		);
		expect((await client.send(new HeadObjectCommand({ Bucket: "customer", Key: "sse-s3" }))).ServerSideEncryption).toBe(
			"AES256",
		);
		client.destroy();
	});

	it("SSE-KMS: the probe round-trips and the object records aws:kms and the key id", async () => {
		const sse: StorageTarget = { ...target, encryption: { type: "SSE-KMS", kmsKeyId: "alias/consentry-test" } };
		await expect(preflight(sse, local)).resolves.toMatchObject({ ok: true });
		const client = createS3Client(sse, local);
		await client.send(
			new PutObjectCommand({ Bucket: "customer", Key: "sse-kms", Body: "x", ...ssePutParams(sse.encryption) }),
		);
		const head = await client.send(new HeadObjectCommand({ Bucket: "customer", Key: "sse-kms" }));
		expect(head.ServerSideEncryption).toBe("aws:kms");
		expect(head.SSEKMSKeyId).toContain("consentry-test");
		client.destroy();
	});

	it("SSE-C: the customer key, algorithm and key MD5 go on the PUT and on the GET (moto ignores SSE-C, so a recording proxy checks)", async () => {
		const key = randomBytes(32);
		const sse: StorageTarget = { ...target, encryption: { type: "SSE-C", key: key.toString("base64") } };
		const proxy = await recordingProxy(s3server.port);
		try {
			await expect(preflight({ ...sse, endpoint: proxy.endpoint }, local)).resolves.toMatchObject({ ok: true });
		} finally {
			await proxy.close();
		}
		const md5 = createHash("md5").update(key).digest("base64");
		// The first request of each method: the GET is the probe read back (the listings come after).
		const byMethod = Object.fromEntries([...proxy.seen].reverse().map((r) => [r.method, r.headers]));
		expect(Object.keys(byMethod).sort()).toEqual(["DELETE", "GET", "PUT"]);
		for (const method of ["PUT", "GET"]) {
			expect(byMethod[method], method).toMatchObject({
				"x-amz-server-side-encryption-customer-algorithm": "AES256",
				"x-amz-server-side-encryption-customer-key": key.toString("base64"),
				"x-amz-server-side-encryption-customer-key-md5": md5,
			});
		}
		expect(byMethod.PUT?.["x-amz-server-side-encryption"]).toBeUndefined();
	});

	it("SSE-KMS headers go on the PUT only", async () => {
		const proxy = await recordingProxy(s3server.port);
		try {
			await preflight({ ...target, endpoint: proxy.endpoint, encryption: { type: "SSE-KMS", kmsKeyId: "k-1" } }, local);
		} finally {
			await proxy.close();
		}
		const put = proxy.seen.find((r) => r.method === "PUT")?.headers;
		expect(put).toMatchObject({
			"x-amz-server-side-encryption": "aws:kms",
			"x-amz-server-side-encryption-aws-kms-key-id": "k-1",
		});
		expect(proxy.seen.find((r) => r.method === "GET")?.headers["x-amz-server-side-encryption"]).toBeUndefined();
	});
});

describe("classifyS3Error (SDK error objects; moto does not check signatures, so these cannot come from it)", () => {
	const target: StorageTarget = {
		endpoint: "https://s3.eu-west-1.amazonaws.com",
		region: "eu-west-1",
		bucket: "acme",
		prefix: "rec",
		credentials: { accessKeyId: "AKIAEXAMPLE", secretAccessKey: "s3cr3t-value" },
		forcePathStyle: false,
		encryption: { type: "SSE-KMS", kmsKeyId: "arn:aws:kms:eu-west-1:111:key/k1" },
	};
	const sdkError = (name: string, status: number, message = "", extra: Record<string, unknown> = {}) =>
		Object.assign(
			new S3ServiceException({ name, $fault: "client", $metadata: { httpStatusCode: status }, message }),
			extra,
		);

	it.each([
		["InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records.", "bad_credentials"],
		["SignatureDoesNotMatch", 403, "The request signature we calculated does not match", "bad_credentials"],
		["ExpiredToken", 400, "The provided token has expired.", "bad_credentials"],
		[
			"PermanentRedirect",
			301,
			"The bucket you are attempting to access must be addressed using the specified endpoint.",
			"wrong_region",
		],
		[
			"AuthorizationHeaderMalformed",
			400,
			"The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-2'",
			"wrong_region",
		],
		["AccessDenied", 403, "Access Denied", "access_denied"],
		[
			"AccessDenied",
			403,
			"User: arn:aws:iam::111:user/x is not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:…",
			"kms_denied",
		],
		["KMS.NotFoundException", 400, "Invalid keyId", "kms_denied"],
		["KMS.DisabledException", 400, "key is disabled", "kms_denied"],
		["InternalError", 500, "We encountered an internal error.", "storage_error"],
	])("%s (%i) → %s", (name, status, message, code) => {
		const err = classifyS3Error(sdkError(name, status, message), target, "write");
		expect(err.code).toBe(code);
		expect(err.message).not.toContain("s3cr3t-value");
	});

	it("uses the SDK's own NoSuchBucket class, reports the bucket's region when S3 says it", () => {
		const nsb = new NoSuchBucket({
			$metadata: { httpStatusCode: 404 },
			message: "The specified bucket does not exist",
		});
		expect(classifyS3Error(nsb, target).code).toBe("no_such_bucket");
		const redirect = sdkError("PermanentRedirect", 301, "", {
			$response: { headers: { "x-amz-bucket-region": "us-east-2" } },
		});
		expect(classifyS3Error(redirect, target).message).toMatch(/not in region eu-west-1; it is in us-east-2/);
		const malformed = sdkError(
			"AuthorizationHeaderMalformed",
			400,
			"the region 'eu-west-1' is wrong; expecting 'ap-south-1'",
		);
		expect(classifyS3Error(malformed, target).message).toContain("it is in ap-south-1");
	});

	it("maps network failures found in the cause chain", () => {
		const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
		expect(classifyS3Error(new AggregateError([refused]), target).code).toBe("endpoint_unreachable");
		expect(classifyS3Error(Object.assign(new Error("timeout"), { name: "TimeoutError" }), target).code).toBe(
			"endpoint_unreachable",
		);
		const tls = Object.assign(new Error("self-signed"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" });
		expect(classifyS3Error(tls, target).code).toBe("endpoint_tls_invalid");
	});
});

/** An HTTP proxy in front of moto that answers 403 AccessDenied to every bucket listing (a policy without ListBucket). */
async function denyListProxy(upstreamPort: number) {
	const server = http.createServer((req, res) => {
		const url = new URL(req.url ?? "/", "http://x");
		if (req.method === "GET" && (url.searchParams.has("list-type") || url.searchParams.has("uploads"))) {
			res.writeHead(403, { "content-type": "application/xml" });
			res.end(
				'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>',
			);
			return;
		}
		const up = http.request(
			{ host: "127.0.0.1", port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
			(upRes) => {
				res.writeHead(upRes.statusCode ?? 502, upRes.headers);
				upRes.pipe(res);
			},
		);
		up.on("error", () => res.destroy());
		req.pipe(up);
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	return {
		endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
		close: () => new Promise<void>((resolve) => server.close(() => resolve())),
	};
}

/** An HTTP proxy in front of moto that records each request's method and headers. */
async function recordingProxy(upstreamPort: number) {
	const seen: { method: string; headers: http.IncomingHttpHeaders }[] = [];
	const server = http.createServer((req, res) => {
		seen.push({ method: req.method ?? "", headers: req.headers });
		const up = http.request(
			{ host: "127.0.0.1", port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
			(upRes) => {
				res.writeHead(upRes.statusCode ?? 502, upRes.headers);
				upRes.pipe(res);
			},
		);
		up.on("error", () => res.destroy());
		req.pipe(up);
	});
	await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
	return {
		seen,
		endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
		close: () => new Promise<void>((resolve) => server.close(() => resolve())),
	};
}

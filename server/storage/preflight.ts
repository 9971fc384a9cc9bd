import { createHash, randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { performance } from "node:perf_hooks";
import {
	DeleteObjectCommand,
	GetObjectCommand,
	type GetObjectCommandInput,
	PutObjectCommand,
	type PutObjectCommandInput,
	S3Client,
} from "@aws-sdk/client-s3";
import { ConsentryError } from "../errors.js";
import { assertEndpointAllowed, type EndpointPolicy, guardedLookup } from "./endpointGuard.js";
import type { StorageEncryption, StorageTarget } from "./StorageTargetTypes.js";

export type StorageErrorCode =
	| "bad_credentials"
	| "no_such_bucket"
	| "wrong_region"
	| "access_denied"
	| "kms_denied"
	| "encryption_rejected"
	| "endpoint_unreachable"
	| "endpoint_tls_invalid"
	| "probe_mismatch"
	| "storage_error";

/** The customer's bucket refused or failed an operation; `code` says what to fix. */
export class StorageError extends ConsentryError {
	constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
		super(code, message, code === "endpoint_unreachable" ? 502 : 422, options);
	}
}

export interface S3ClientOptions extends EndpointPolicy {
	/** TCP/TLS connect timeout. Default 5 s. */
	connectTimeoutMs?: number;
	/** Whole-request deadline (an error, not a warning). Default none: large uploads may take long. */
	requestTimeoutMs?: number;
	/** A socket idle this long fails the request. Default 30 s. */
	idleTimeoutMs?: number;
	/** Attempts per request (1 = no retries). Default: the SDK's (3). */
	maxAttempts?: number;
}

/**
 * An S3 client for the target. Its agents apply the endpoint policy at connect
 * time. Checksums only where S3 requires them: many S3-compatible stores reject
 * the SDK's default CRC32 trailers.
 */
export function createS3Client(target: StorageTarget, options: S3ClientOptions = {}): S3Client {
	const lookup = guardedLookup(options);
	return new S3Client({
		endpoint: target.endpoint,
		region: target.region,
		forcePathStyle: target.forcePathStyle,
		credentials: { ...target.credentials },
		...(options.maxAttempts ? { maxAttempts: options.maxAttempts } : {}),
		followRegionRedirects: false,
		requestChecksumCalculation: "WHEN_REQUIRED",
		responseChecksumValidation: "WHEN_REQUIRED",
		requestHandler: {
			connectionTimeout: options.connectTimeoutMs ?? 5000,
			socketTimeout: options.idleTimeoutMs ?? 30_000,
			...(options.requestTimeoutMs ? { requestTimeout: options.requestTimeoutMs, throwOnRequestTimeout: true } : {}),
			httpAgent: new http.Agent({ keepAlive: true, lookup }),
			httpsAgent: new https.Agent({ keepAlive: true, lookup }),
		},
	});
}

/** SSE parameters for PutObject (all modes) … */
export function ssePutParams(
	encryption: StorageEncryption,
): Pick<
	PutObjectCommandInput,
	"ServerSideEncryption" | "SSEKMSKeyId" | "SSECustomerAlgorithm" | "SSECustomerKey" | "SSECustomerKeyMD5"
> {
	switch (encryption.type) {
		case "none":
			return {};
		case "SSE-S3":
			return { ServerSideEncryption: "AES256" };
		case "SSE-KMS":
			return { ServerSideEncryption: "aws:kms", SSEKMSKeyId: encryption.kmsKeyId };
		case "SSE-C":
			return sseCustomer(encryption.key);
	}
}

/** … and for GetObject/HeadObject (only SSE-C needs the key again). */
export function sseGetParams(
	encryption: StorageEncryption,
): Pick<GetObjectCommandInput, "SSECustomerAlgorithm" | "SSECustomerKey" | "SSECustomerKeyMD5"> {
	return encryption.type === "SSE-C" ? sseCustomer(encryption.key) : {};
}

function sseCustomer(keyBase64: string) {
	const md5 = createHash("md5").update(Buffer.from(keyBase64, "base64")).digest("base64");
	return { SSECustomerAlgorithm: "AES256", SSECustomerKey: keyBase64, SSECustomerKeyMD5: md5 };
}

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
 * it back and compares, deletes it. One attempt per request, short timeouts.
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
		return { ok: true, latencyMs: Math.round(performance.now() - started), probeDeleted, probeKey: Key };
	} finally {
		client.destroy();
	}
}

const CREDENTIAL_CODES = new Set([
	"InvalidAccessKeyId",
	"SignatureDoesNotMatch",
	"InvalidToken",
	"ExpiredToken",
	"TokenRefreshRequired",
	"InvalidClientTokenId",
	"CredentialsProviderError",
]);
const NETWORK_CODES = new Set([
	"ECONNREFUSED",
	"ECONNRESET",
	"ETIMEDOUT",
	"ENOTFOUND",
	"EAI_AGAIN",
	"EHOSTUNREACH",
	"ENETUNREACH",
	"EPIPE",
	"ECONNABORTED",
	"UND_ERR_CONNECT_TIMEOUT",
]);
const TLS_CODES = new Set([
	"CERT_HAS_EXPIRED",
	"DEPTH_ZERO_SELF_SIGNED_CERT",
	"SELF_SIGNED_CERT_IN_CHAIN",
	"UNABLE_TO_VERIFY_LEAF_SIGNATURE",
	"UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
	"ERR_TLS_CERT_ALTNAME_INVALID",
	"EPROTO",
]);

interface SdkErrorLike {
	name?: string;
	Code?: string;
	code?: string;
	message?: string;
	Region?: string;
	BucketRegion?: string;
	Endpoint?: string;
	cause?: unknown;
	$metadata?: { httpStatusCode?: number };
	$response?: { headers?: Record<string, string | undefined> };
}

/**
 * Maps an error from the S3 SDK (or the network below it) to a StorageError
 * whose code and message say what to fix. Secrets never appear in messages.
 */
export function classifyS3Error(err: unknown, target: StorageTarget, operation = "access"): ConsentryError {
	for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as SdkErrorLike).cause, depth++) {
		if (e instanceof ConsentryError) return e; // e.g. the endpoint guard refused at connect time
	}
	const e = (err ?? {}) as SdkErrorLike;
	const s3Code = e.Code ?? e.name ?? "";
	const status = e.$metadata?.httpStatusCode;
	const msg = e.message ?? "";
	const where = `s3://${target.bucket}${target.prefix ? `/${target.prefix}` : ""} at ${target.endpoint}`;
	const fail = (code: StorageErrorCode, message: string) => new StorageError(code, message, { cause: err });

	const netCode = networkCode(err);
	if (netCode || s3Code === "TimeoutError" || s3Code === "RequestTimeout" || s3Code === "AbortError") {
		if (netCode && TLS_CODES.has(netCode)) {
			return fail(
				"endpoint_tls_invalid",
				`the TLS certificate of ${target.endpoint} was not accepted (${netCode}); the endpoint needs a certificate valid for its host name`,
			);
		}
		return fail(
			"endpoint_unreachable",
			`could not ${operation} ${where}: the endpoint did not answer (${netCode ?? "timed out"}); check the endpoint URL and that it is reachable from the gateway`,
		);
	}
	if (CREDENTIAL_CODES.has(s3Code)) {
		return fail(
			"bad_credentials",
			`the bucket's endpoint rejected the credentials (${s3Code}); check the access key id and secret access key${target.credentials.sessionToken ? " and that the session token has not expired" : ""}`,
		);
	}
	if (s3Code === "NoSuchBucket") {
		return fail(
			"no_such_bucket",
			`the bucket ${target.bucket} does not exist at ${target.endpoint}; create it or correct the bucket name`,
		);
	}
	const regionHint = bucketRegion(e, msg);
	if (
		s3Code === "PermanentRedirect" ||
		s3Code === "IllegalLocationConstraintException" ||
		(s3Code === "AuthorizationHeaderMalformed" && /region/i.test(msg)) ||
		status === 301
	) {
		return fail(
			"wrong_region",
			`the bucket ${target.bucket} is not in region ${target.region}${regionHint ? `; it is in ${regionHint}` : ""}; set the region (and endpoint) to the bucket's`,
		);
	}
	if (s3Code.startsWith("KMS.") || (/\bkms\b/i.test(msg) && target.encryption.type === "SSE-KMS")) {
		const keyId = target.encryption.type === "SSE-KMS" ? ` ${target.encryption.kmsKeyId}` : "";
		return fail(
			"kms_denied",
			`the KMS key${keyId} refused the ${operation} (${s3Code}); the credentials need kms:GenerateDataKey and kms:Decrypt on that key, and the key must be enabled and in region ${target.region}`,
		);
	}
	if (s3Code === "AccessDenied" || s3Code === "Forbidden" || status === 403) {
		const perm = operation === "write" ? "s3:PutObject" : operation === "delete" ? "s3:DeleteObject" : "s3:GetObject";
		return fail(
			"access_denied",
			`the credentials may not ${operation} objects in ${where} (${s3Code || "403"}); grant ${perm} on arn:aws:s3:::${target.bucket}/${target.prefix ? `${target.prefix}/` : ""}*`,
		);
	}
	if (
		target.encryption.type !== "none" &&
		(s3Code === "InvalidArgument" || s3Code === "InvalidRequest" || s3Code === "NotImplemented") &&
		/encrypt|sse|customer.*key/i.test(msg)
	) {
		return fail(
			"encryption_rejected",
			`the bucket refused ${target.encryption.type} encryption (${s3Code}); choose an encryption mode the bucket supports${target.encryption.type === "SSE-C" ? " (SSE-C needs an https endpoint)" : ""}`,
		);
	}
	return fail(
		"storage_error",
		`could not ${operation} ${where}: the bucket answered ${s3Code || "an error"}${status ? ` (HTTP ${status})` : ""}`,
	);
}

function networkCode(err: unknown): string | undefined {
	for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
		const code = (e as { code?: unknown }).code;
		if (typeof code === "string" && (NETWORK_CODES.has(code) || TLS_CODES.has(code))) return code;
		const errors = (e as { errors?: unknown }).errors; // AggregateError from happy-eyeballs connects
		if (Array.isArray(errors) && errors[0]) e = errors[0];
		else e = (e as { cause?: unknown }).cause;
	}
	return undefined;
}

function bucketRegion(e: SdkErrorLike, msg: string): string | undefined {
	const header = e.$response?.headers?.["x-amz-bucket-region"];
	if (header) return header;
	if (e.Region) return e.Region;
	if (e.BucketRegion) return e.BucketRegion;
	return /expecting '([a-z0-9-]+)'/i.exec(msg)?.[1];
}

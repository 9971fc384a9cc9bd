/**
 * The S3 side both the gateway and the recorder use: a client whose sockets obey the endpoint policy, the
 * server-side-encryption parameters of a target, and the mapping of an S3 error to a code that says what to fix.
 */
import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { type GetObjectCommandInput, type PutObjectCommandInput, S3Client } from "@aws-sdk/client-s3";
import { type EndpointPolicy, guardedLookup } from "./endpointGuard.js";
import { ConsentryError } from "./errors.js";
import type { StorageEncryption, StorageTarget } from "./StorageTargetTypes.js";

export type StorageErrorCode =
	| "bad_credentials"
	| "no_such_bucket"
	| "wrong_region"
	| "access_denied"
	| "list_denied"
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
	if ((s3Code === "AccessDenied" || s3Code === "Forbidden" || status === 403) && operation === "list") {
		return fail(
			"list_denied",
			`the credentials may not list ${where} (${s3Code || "403"}); after a crash the gateway lists the interrupted session's folder to finish its recordings: grant s3:ListBucket and s3:ListBucketMultipartUploads on arn:aws:s3:::${target.bucket}${target.prefix ? ` with the condition s3:prefix like "${target.prefix}/*"` : ""}`,
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

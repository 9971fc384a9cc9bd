import { z } from "zod";
import { ValidationError } from "./errors.js";

/**
 * A tenant's storage target: the customer's own S3-compatible bucket. The
 * operator provides no storage; recordings go only here.
 */

/** A key prefix: `/`-separated segments of URL-safe characters, no `.`/`..` segments, no leading/trailing `/`. */
const PREFIX_RE = /^(?!.*(?:^|\/)\.{1,2}(?:\/|$))[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;
/** S3 bucket naming rules (lowercase, 3–63 characters, no `..`, not an IP address). */
const BUCKET_RE = /^(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const STRICT_BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** True when `s` is canonical base64 of exactly `bytes` bytes. */
export function isBase64OfLength(s: string, bytes: number): boolean {
	return STRICT_BASE64_RE.test(s) && Buffer.from(s, "base64").length === bytes;
}

export const StorageEncryptionSchema = z.discriminatedUnion("type", [
	z.object({ type: z.literal("none") }),
	z.object({ type: z.literal("SSE-S3") }),
	z.object({ type: z.literal("SSE-KMS"), kmsKeyId: z.string().min(1).max(2048) }),
	z.object({
		type: z.literal("SSE-C"),
		key: z.string().refine((k) => isBase64OfLength(k, 32), "must be the base64 encoding of exactly 32 bytes"),
	}),
]);
export type StorageEncryption = z.infer<typeof StorageEncryptionSchema>;

export const StorageCredentialsSchema = z.object({
	accessKeyId: z.string().min(1).max(256),
	secretAccessKey: z.string().min(1).max(1024),
	sessionToken: z.string().min(1).max(8192).optional(),
});
export type StorageCredentials = z.infer<typeof StorageCredentialsSchema>;

export interface StorageTargetSchemaOptions {
	/** Accept `http:` endpoints (tests, a bucket on a trusted local network). Default: https only. */
	allowHttp?: boolean;
}

function endpointSchema(allowHttp: boolean) {
	return z
		.string()
		.max(2048)
		.superRefine((value, ctx) => {
			let url: URL;
			try {
				url = new URL(value);
			} catch {
				ctx.addIssue({ code: "custom", message: "must be an absolute URL, e.g. https://s3.eu-west-1.amazonaws.com" });
				return;
			}
			if (url.protocol !== "https:" && !(allowHttp && url.protocol === "http:")) {
				ctx.addIssue({
					code: "custom",
					message: allowHttp ? "must be an http(s):// URL" : "must be an https:// URL (http is not allowed here)",
				});
			}
			if (url.username || url.password) {
				ctx.addIssue({ code: "custom", message: "must not contain credentials; use the credentials field" });
			}
			if (url.search || url.hash) ctx.addIssue({ code: "custom", message: "must not contain a query or fragment" });
		});
}

/** The schema of a tenant's storage target; `allowHttp` widens the endpoint rule. */
export function storageTargetSchema(options: StorageTargetSchemaOptions = {}) {
	return z.object({
		endpoint: endpointSchema(options.allowHttp === true),
		region: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be a region name such as eu-west-1"),
		bucket: z.string().regex(BUCKET_RE, "must be a valid S3 bucket name (lowercase, 3–63 characters)"),
		prefix: z
			.string()
			.max(512)
			.refine((p) => p === "" || PREFIX_RE.test(p), {
				message:
					"must be empty or `/`-separated segments of A-Z a-z 0-9 . _ - (no leading/trailing `/`, no `.` or `..`)",
			})
			.default(""),
		credentials: StorageCredentialsSchema,
		forcePathStyle: z.boolean().default(false),
		encryption: StorageEncryptionSchema.default({ type: "none" }),
	});
}

/** https-only schema: what tenants may configure unless the gateway allows http. */
export const StorageTargetSchema = storageTargetSchema();
export type StorageTarget = z.infer<typeof StorageTargetSchema>;

/** Validates `input` as a storage target, throwing a ValidationError that names each bad field. */
export function parseStorageTarget(input: unknown, options: StorageTargetSchemaOptions = {}): StorageTarget {
	const result = storageTargetSchema(options).safeParse(input);
	if (result.success) return result.data;
	const issues = result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
	throw new ValidationError(
		`invalid storage target: ${issues.map((i) => `${i.path || "(root)"} ${i.message}`).join("; ")}`,
		issues,
	);
}

/** The parts of a target that are secret: kept encrypted at rest, never logged. */
export interface StorageTargetSecrets {
	credentials: StorageCredentials;
	sseCustomerKey?: string;
}

/** A target without its secrets (the SSE-C key is removed, its type kept). Safe to store in clear and to show. */
export type StorageTargetConfig = Omit<StorageTarget, "credentials" | "encryption"> & {
	encryption: { type: "none" } | { type: "SSE-S3" } | { type: "SSE-KMS"; kmsKeyId: string } | { type: "SSE-C" };
};

export function splitSecrets(target: StorageTarget): { config: StorageTargetConfig; secrets: StorageTargetSecrets } {
	const { credentials, encryption, ...rest } = target;
	const secrets: StorageTargetSecrets = { credentials: { ...credentials } };
	if (encryption.type === "SSE-C") {
		secrets.sseCustomerKey = encryption.key;
		return { config: { ...rest, encryption: { type: "SSE-C" } }, secrets };
	}
	return { config: { ...rest, encryption: { ...encryption } }, secrets };
}

export function joinSecrets(config: StorageTargetConfig, secrets: StorageTargetSecrets): StorageTarget {
	const { encryption, ...rest } = config;
	if (encryption.type === "SSE-C") {
		if (!secrets.sseCustomerKey) throw new Error("storage target: SSE-C configured but no customer key stored");
		return { ...rest, credentials: secrets.credentials, encryption: { type: "SSE-C", key: secrets.sseCustomerKey } };
	}
	return { ...rest, credentials: secrets.credentials, encryption };
}

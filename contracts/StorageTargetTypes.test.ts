import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ValidationError } from "./errors.js";
import { parseStorageTarget } from "./StorageTargetTypes.js";

const base = {
	endpoint: "https://s3.eu-west-1.amazonaws.com",
	region: "eu-west-1",
	bucket: "acme-recordings",
	credentials: { accessKeyId: "AKIA", secretAccessKey: "s" },
};

describe("parseStorageTarget", () => {
	it("applies defaults and accepts the four encryption modes", () => {
		expect(parseStorageTarget(base)).toMatchObject({ prefix: "", forcePathStyle: false, encryption: { type: "none" } });
		for (const encryption of [
			{ type: "none" },
			{ type: "SSE-S3" },
			{ type: "SSE-KMS", kmsKeyId: "arn:aws:kms:eu-west-1:1:key/abc" },
			{ type: "SSE-C", key: randomBytes(32).toString("base64") },
		]) {
			expect(parseStorageTarget({ ...base, encryption }).encryption).toEqual(encryption);
		}
	});

	it("takes http only when explicitly allowed, and never credentials in the URL", () => {
		const http = { ...base, endpoint: "http://127.0.0.1:9000" };
		expect(() => parseStorageTarget(http)).toThrow(/https:\/\//);
		expect(parseStorageTarget(http, { allowHttp: true }).endpoint).toBe("http://127.0.0.1:9000");
		expect(() => parseStorageTarget({ ...base, endpoint: "ftp://x" }, { allowHttp: true })).toThrow(ValidationError);
		expect(() => parseStorageTarget({ ...base, endpoint: "https://u:p@s3.example.com" })).toThrow(/credentials/);
	});

	it("refuses unsafe prefixes, bad bucket names and an SSE-C key that is not 32 bytes", () => {
		for (const prefix of ["/abs", "a/", "a//b", "../x", "a/./b", "a b", "a\\b", "a/.."]) {
			expect(() => parseStorageTarget({ ...base, prefix }), prefix).toThrow(/prefix/);
		}
		expect(parseStorageTarget({ ...base, prefix: "rec/2026.q4/a_b-c" }).prefix).toBe("rec/2026.q4/a_b-c");
		expect(() => parseStorageTarget({ ...base, bucket: "Upper" })).toThrow(/bucket/);
		expect(() =>
			parseStorageTarget({ ...base, encryption: { type: "SSE-C", key: randomBytes(16).toString("base64") } }),
		).toThrow(/32 bytes/);
		expect(() => parseStorageTarget({ ...base, encryption: { type: "SSE-KMS" } })).toThrow(/kmsKeyId/);
	});
});

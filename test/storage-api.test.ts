import { randomBytes } from "node:crypto";
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { api, startGateway } from "./helpers/gateway.js";
import { type S3Server, startS3 } from "./helpers/moto.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * The Customer's administrator registers their own bucket over REST; the
 * gateway preflights it against a real S3 API (moto) before saving, keeps the
 * credentials sealed, and refuses what it must.
 */
describe("storage target API", () => {
	const acme = testTenant("acme");
	let s3server: S3Server;
	let gw: Gateway;
	let noKey: Gateway;
	const target = (over: Record<string, unknown> = {}) => ({
		endpoint: s3server.endpoint,
		region: "us-east-1",
		bucket: "acme-recordings",
		prefix: "consentry",
		forcePathStyle: true,
		credentials: { accessKeyId: "AKIAACME", secretAccessKey: "super-secret-key-value" },
		encryption: { type: "SSE-S3" },
		...over,
	});

	beforeAll(async () => {
		s3server = await startS3();
		const s3 = new S3Client({
			endpoint: s3server.endpoint,
			region: "us-east-1",
			forcePathStyle: true,
			credentials: { accessKeyId: "x", secretAccessKey: "x" },
		});
		await s3.send(new CreateBucketCommand({ Bucket: "acme-recordings" }));
		s3.destroy();
		const env = {
			CONSENTRY_MASTER_KEY: randomBytes(32).toString("base64"),
			CONSENTRY_STORAGE_ALLOW_PRIVATE: "true",
			CONSENTRY_STORAGE_ALLOW_HTTP: "true",
		};
		gw = await startGateway({ tenants: [acme], env });
		noKey = await startGateway({ tenants: [acme] });
	});

	afterAll(async () => {
		await gw?.close();
		await noKey?.close();
		await s3server?.stop();
	});

	it("saves a target only after a passing preflight, and never shows its secrets", async () => {
		const admin = acme.token("it-admin", "admin");
		const saved = await api(gw, "PUT", "/api/storage-target", admin, target());
		expect(saved.status).toBe(200);
		expect(saved.body).toMatchObject({ saved: true, preflight: { probeDeleted: true } });
		const shown = await api(gw, "GET", "/api/storage-target", admin);
		expect(shown.body).toMatchObject({ bucket: "acme-recordings", endpoint: s3server.endpoint });
		expect(JSON.stringify(shown.body)).not.toContain("super-secret-key-value");
		// The probe was cleaned up: nothing of the gateway's stays in the customer's bucket.
		const s3 = new S3Client({
			endpoint: s3server.endpoint,
			region: "us-east-1",
			forcePathStyle: true,
			credentials: { accessKeyId: "x", secretAccessKey: "x" },
		});
		expect((await s3.send(new ListObjectsV2Command({ Bucket: "acme-recordings" }))).KeyCount ?? 0).toBe(0);
		s3.destroy();
	});

	it("reports the exact failure and saves nothing", async () => {
		const admin = acme.token("it-admin", "admin");
		const missing = await api(
			gw,
			"PUT",
			"/api/storage-target",
			acme.token("other-admin", "admin"),
			target({ bucket: "no-such-bucket" }),
		);
		expect([missing.status, missing.body.code]).toEqual([422, "no_such_bucket"]);
		const metadata = await api(gw, "PUT", "/api/storage-target", admin, target({ endpoint: "http://169.254.169.254" }));
		expect(metadata.body.code).toBe("endpoint_forbidden");
		const bad = await api(gw, "PUT", "/api/storage-target", admin, { endpoint: "nope" });
		expect([bad.status, bad.body.code]).toEqual([400, "invalid_request"]);
		// The working target saved before is untouched by the failed attempts.
		const still = await api(gw, "GET", "/api/storage-target", admin);
		expect(still.body).toMatchObject({ bucket: "acme-recordings", endpoint: s3server.endpoint });
	});

	it("is for the Customer's administrator only, and needs the operator's master key", async () => {
		const asHost = await api(gw, "PUT", "/api/storage-target", acme.token("alice"), target());
		expect([asHost.status, asHost.body.code]).toEqual([403, "admin_only"]);
		expect((await api(gw, "GET", "/api/storage-target")).status).toBe(401);
		const unconfigured = await api(noKey, "PUT", "/api/storage-target", acme.token("a", "admin"), target());
		expect([unconfigured.status, unconfigured.body.code]).toEqual([503, "storage_unconfigured"]);
	});

	it("removes a target", async () => {
		const admin = acme.token("it-admin", "admin");
		expect((await api(gw, "DELETE", "/api/storage-target", admin)).body).toEqual({ removed: true });
		expect((await api(gw, "DELETE", "/api/storage-target", admin)).status).toBe(404);
	});
});

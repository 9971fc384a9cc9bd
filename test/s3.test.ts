import { createHash, randomBytes } from "node:crypto";
import { PassThrough } from "node:stream";
import { CreateBucketCommand, GetObjectCommand, ListMultipartUploadsCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type S3Server, startS3 } from "./helpers/moto.js";

/** The local S3 API server the suite runs against speaks multipart uploads from a stream. */
describe("local S3 API server (moto)", () => {
	let s3server: S3Server;
	let s3: S3Client;

	beforeAll(async () => {
		s3server = await startS3();
		s3 = new S3Client({
			endpoint: s3server.endpoint,
			region: "us-east-1",
			forcePathStyle: true,
			credentials: { accessKeyId: "test", secretAccessKey: "test" },
		});
		await s3.send(new CreateBucketCommand({ Bucket: "customer" }));
	});

	afterAll(async () => {
		s3?.destroy();
		await s3server?.stop();
	});

	it("streams a 12 MiB body as a multipart upload and reads it back intact", async () => {
		const data = randomBytes(12 * 1024 * 1024);
		const body = new PassThrough();
		const upload = new Upload({
			client: s3,
			params: { Bucket: "customer", Key: "probe/stream.bin", Body: body },
			partSize: 5 * 1024 * 1024,
			queueSize: 1,
		});
		const done = upload.done();
		for (let i = 0; i < data.length; i += 64 * 1024) body.write(data.subarray(i, i + 64 * 1024));
		body.end();
		await done;
		const got = await s3.send(new GetObjectCommand({ Bucket: "customer", Key: "probe/stream.bin" }));
		const bytes = Buffer.from(
			await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
		);
		expect(createHash("sha256").update(bytes).digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
		const pending = await s3.send(new ListMultipartUploadsCommand({ Bucket: "customer" }));
		expect(pending.Uploads ?? []).toHaveLength(0);
	});
});

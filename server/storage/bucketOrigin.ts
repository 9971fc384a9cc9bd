import { GetObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { EndpointPolicy } from "../../contracts/endpointGuard.js";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import { createS3Client } from "../../contracts/s3.js";

/**
 * The origin a browser fetches a tenant's presigned objects from (the playback page's media, the transcript page's
 * parts), for that page's Content-Security-Policy: the origin of a presigned URL, computed locally (no request).
 * None without a target or under SSE-C (nothing of it is presigned).
 */
export async function bucketOrigin(
	target: StorageTarget | undefined,
	policy: EndpointPolicy,
): Promise<string | undefined> {
	if (!target || target.encryption.type === "SSE-C") return undefined;
	const client = createS3Client(target, policy);
	try {
		const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: target.bucket, Key: "x" }), {
			expiresIn: 60,
		});
		return new URL(url).origin;
	} finally {
		client.destroy();
	}
}

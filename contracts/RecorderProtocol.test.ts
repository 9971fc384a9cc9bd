import { describe, expect, it } from "vitest";
import { RecorderConfigSchema } from "./RecorderConfig.js";
import { objectKey, parseChildMessage, parseObjectKey, parseParentMessage } from "./RecorderProtocol.js";

const target = {
	endpoint: "https://s3.eu-west-1.amazonaws.com",
	region: "eu-west-1",
	bucket: "customer",
	credentials: { accessKeyId: "AKIA", secretAccessKey: "very-secret" },
};

const openTrack = {
	type: "openTrack",
	requestId: "r1",
	trackId: "s1_abc-123",
	key: { prefix: "rec/x", meetingId: "m1", sessionId: "s1", person: "p-1", kind: "camera" },
	codec: { kind: "video", mimeType: "video/VP8", payloadType: 101, clockRate: 90000 },
	ssrc: 123456,
	target,
};

describe("recorder protocol", () => {
	it("accepts a well-formed openTrack and fills the target's defaults", () => {
		const r = parseParentMessage(openTrack);
		expect(r.ok).toBe(true);
		if (r.ok && r.message.type === "openTrack") expect(r.message.target.encryption).toEqual({ type: "none" });
	});

	it("names every bad field, echoes the requestId, and never echoes secrets", () => {
		const r = parseParentMessage({
			...openTrack,
			trackId: "../etc",
			key: { ...openTrack.key, person: "Jane Doe <jane@x>" },
			codec: { kind: "audio", mimeType: "video/VP8", payloadType: 200, clockRate: 90000 },
			target: { ...target, credentials: { accessKeyId: "AKIA", secretAccessKey: "" } },
		});
		expect(r.ok).toBe(false);
		if (r.ok) return;
		expect(r.requestId).toBe("r1");
		for (const field of ["trackId", "key.person", "codec.payloadType", "target.credentials.secretAccessKey"]) {
			expect(r.error).toContain(field);
		}
		expect(r.error).not.toContain("very-secret");
	});

	it("refuses unknown message types and non-objects", () => {
		expect(parseParentMessage({ type: "rm -rf" }).ok).toBe(false);
		expect(parseParentMessage(null).ok).toBe(false);
		expect(parseParentMessage("openTrack").ok).toBe(false);
		expect(parseChildMessage({ type: "objectWritten", bucket: "b" }).ok).toBe(false);
	});

	it("builds object keys and parses them back, prefix or none", () => {
		const key = { prefix: "rec/x", meetingId: "m1", sessionId: "s1", person: "p-1", kind: "camera" as const };
		expect(objectKey(key, 3)).toBe("rec/x/m1/s1/p-1-camera-3.webm");
		expect(parseObjectKey("rec/x", objectKey(key, 3))).toEqual({ ...key, seq: 3, container: "webm" });
		expect(objectKey(key, 4, "mkv")).toBe("rec/x/m1/s1/p-1-camera-4.mkv");
		expect(parseObjectKey("rec/x", objectKey(key, 4, "mkv"))).toEqual({ ...key, seq: 4, container: "mkv" });
		expect(parseObjectKey("rec/x", "rec/x/m1/s1/p-1-camera-4.mp4")).toBeUndefined();
		expect(objectKey({ ...key, prefix: "" }, 1)).toBe("m1/s1/p-1-camera-1.webm");
		expect(parseObjectKey("", "m1/s1/p-1-camera-1.webm")?.sessionId).toBe("s1");
		expect(parseObjectKey("rec/x", "rec/x/m1/s1/manifest.json")).toBeUndefined();
		expect(parseObjectKey("rec/x", "other/m1/s1/p-1-camera-1.webm")).toBeUndefined();
	});

	it("keeps the recorder config within S3's rules", () => {
		expect(RecorderConfigSchema.safeParse({ partSizeBytes: 1024 }).success).toBe(false);
		expect(RecorderConfigSchema.safeParse({ partSizeBytes: 8 << 20, maxBufferedBytes: 6 << 20 }).success).toBe(false);
		expect(RecorderConfigSchema.parse({}).partSizeBytes).toBe(8 << 20);
	});
});

import { io, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { Response } from "../shared/protocol.js";
import { startGateway } from "./helpers/gateway.js";

/** Bad input gets a clear error reply and changes nothing; no handler can take the process down. */
describe("signaling validation", () => {
	let gateway: Gateway;
	let socket: Socket;

	beforeAll(async () => {
		gateway = await startGateway();
		socket = io(gateway.url, { transports: ["websocket"], reconnection: false });
		await new Promise<void>((r) => socket.once("connect", () => r()));
	});

	afterAll(async () => {
		socket?.close();
		await gateway?.close();
	});

	const req = (name: string, data?: unknown): Promise<Response<never>> =>
		socket.timeout(5000).emitWithAck(name, data) as Promise<Response<never>>;

	it("rejects malformed bodies with the failing fields", async () => {
		const r = await req("join", { meetingId: "../../etc/passwd", displayName: "" });
		expect(r.ok).toBe(false);
		if (r.ok) return;
		expect(r.error.code).toBe("invalid_request");
		expect(r.error.issues?.map((i) => i.path).sort()).toEqual(["displayName", "meetingId"]);
		const none = await req("produce");
		expect(none.ok ? "" : none.error.code).toBe("invalid_request");
		expect(gateway.rooms.size).toBe(0);
	});

	it("refuses media requests before joining", async () => {
		const r = await req("createWebRtcTransport", { direction: "send" });
		expect(r.ok ? "" : r.error.code).toBe("not_joined");
	});

	it("answers unknown transports and consumers with not-found, then still serves the socket", async () => {
		const joined = await req("join", { meetingId: "validation", displayName: "Eve" });
		expect(joined.ok).toBe(true);
		const bad = await req("connectWebRtcTransport", {
			transportId: "nope",
			dtlsParameters: { fingerprints: [{ algorithm: "sha-256", value: "AA" }] },
		});
		expect(bad.ok ? "" : bad.error.code).toBe("transport_not_found");
		const t = await req("createWebRtcTransport", { direction: "send" });
		expect(t.ok).toBe(true);
		const badRtp = await req("produce", {
			transportId: t.ok ? (t.data as { id: string }).id : "",
			kind: "audio",
			source: "mic",
			rtpParameters: { codecs: [{ mimeType: "audio/nonsense", payloadType: 100, clockRate: 48000 }] },
		});
		expect(badRtp.ok ? "" : badRtp.error.code).toBe("invalid_request");
		const wrongSource = await req("produce", {
			transportId: t.ok ? (t.data as { id: string }).id : "",
			kind: "video",
			source: "mic",
			rtpParameters: { codecs: [{ mimeType: "video/VP8", payloadType: 100, clockRate: 90000 }] },
		});
		expect(wrongSource.ok ? "" : wrongSource.error.code).toBe("invalid_request");
		const room = gateway.rooms.get("validation");
		expect([...(room?.peers.values() ?? [])][0]?.producers.size).toBe(0);
	});

	it("rate limits a flood of requests per socket", async () => {
		const replies = await Promise.all(Array.from({ length: 120 }, () => req("leave", {})));
		expect(replies.some((r) => !r.ok && r.error.code === "rate_limited")).toBe(true);
	});
});

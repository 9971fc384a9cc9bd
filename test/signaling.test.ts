import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { api, startGateway } from "./helpers/gateway.js";
import { codeOf, connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/** Bad input gets a clear error reply and changes nothing; no handler can take the process down. */
describe("signaling validation", () => {
	const tenant = testTenant();
	let gateway: Gateway;
	let host: RawClient;
	let meetingId: string;

	beforeAll(async () => {
		gateway = await startGateway({ tenants: [tenant] });
		const m = await api(gateway, "POST", "/api/meetings", tenant.token("alice"), { title: "Validation" });
		meetingId = m.body.id as string;
		host = await connect(gateway.url, tenant.token("alice"));
	});

	afterAll(async () => {
		host?.close();
		await gateway?.close();
	});

	it("rejects malformed bodies with the failing fields", async () => {
		const r = await host.req("join", { meetingId: "../../etc/passwd", displayName: "x".repeat(65) });
		expect(codeOf(r)).toBe("invalid_request");
		if (r.ok) return;
		expect(r.error.issues?.map((i) => i.path).sort()).toEqual(["displayName", "meetingId"]);
		expect(codeOf(await host.req("produce"))).toBe("invalid_request");
		expect(codeOf(await host.req("chat", { text: "x".repeat(2001) }))).toBe("invalid_request");
		expect(codeOf(await host.req("lock", { locked: "yes" }))).toBe("invalid_request");
		expect(gateway.rooms.size).toBe(0);
	});

	it("refuses media requests and host controls before joining", async () => {
		expect(codeOf(await host.req("createWebRtcTransport", { direction: "send" }))).toBe("not_joined");
		expect(codeOf(await host.req("lock", { locked: true }))).toBe("not_joined");
	});

	it("ignores messages without an ack and unknown events, and keeps serving", async () => {
		host.socket.emit("join", { meetingId });
		host.socket.emit("definitelyNotARequest", { x: 1 }, () => undefined);
		expect(codeOf(await host.req("leave", {}))).toBe("ok");
	});

	it("answers unknown transports and bad RTP parameters with clear errors", async () => {
		expect(codeOf(await host.req("join", { meetingId, displayName: "Alice" }))).toBe("ok");
		const bad = await host.req("connectWebRtcTransport", {
			transportId: "nope",
			dtlsParameters: { fingerprints: [{ algorithm: "sha-256", value: "AA" }] },
		});
		expect(codeOf(bad)).toBe("transport_not_found");
		const t = await host.call("createWebRtcTransport", { direction: "send" });
		const badRtp = await host.req("produce", {
			transportId: t.id,
			kind: "audio",
			source: "mic",
			rtpParameters: { codecs: [{ mimeType: "audio/nonsense", payloadType: 100, clockRate: 48000 }] },
		});
		expect(codeOf(badRtp)).toBe("invalid_request");
		const wrongSource = await host.req("produce", {
			transportId: t.id,
			kind: "video",
			source: "mic",
			rtpParameters: { codecs: [{ mimeType: "video/VP8", payloadType: 100, clockRate: 90000 }] },
		});
		expect(codeOf(wrongSource)).toBe("invalid_request");
		const room = gateway.rooms.get(meetingId);
		expect([...(room?.peers.values() ?? [])][0]?.producers.size).toBe(0);
	});

	it("drops a connection that sends an oversized message; the gateway stays up", async () => {
		const c = await connect(gateway.url, tenant.token("mallory", "participant"));
		const dropped = new Promise((r) => c.socket.once("disconnect", r));
		c.socket.emit("chat", { text: "x".repeat(400 * 1024) }, () => undefined);
		await dropped;
		const again = await connect(gateway.url, tenant.token("carol", "participant"));
		expect(codeOf(await again.req("leave", {}))).toBe("ok");
		again.close();
	});

	it("rate limits a flood of requests per socket", async () => {
		const c = await connect(gateway.url);
		const replies = await Promise.all(Array.from({ length: 120 }, () => c.req("leave", {})));
		expect(replies.some((r) => codeOf(r) === "rate_limited")).toBe(true);
		c.close();
	});

	it("refuses a handshake with a bad token, with its reason code", async () => {
		await expect(connect(gateway.url, "not-a-jwt")).rejects.toMatchObject({ data: { code: "token_malformed" } });
		const other = testTenant("globex");
		await expect(connect(gateway.url, other.token("x"))).rejects.toMatchObject({ data: { code: "unknown_tenant" } });
	});
});

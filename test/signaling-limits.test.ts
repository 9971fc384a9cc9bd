import { io } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { api, startGateway } from "./helpers/gateway.js";
import { codeOf, connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * Cost before trust, against a real gateway whose clients all come from one address (loopback): connection caps
 * per address (and for unauthenticated sockets), one request and byte budget per address whatever the number of
 * sockets, and bodies refused by a bounded walk before any schema runs, with bounded replies.
 */
describe("signaling limits per address", () => {
	const acme = testTenant("acme");
	let gw: Gateway;
	let open: RawClient[] = [];
	const client = async (token?: string) => {
		const c = await connect(gw.url, token);
		open.push(c);
		return c;
	};
	const refusal = (token?: string) =>
		connect(gw.url, token).then(
			(c) => {
				open.push(c);
				return "connected";
			},
			(err: Error & { data?: { code: string } }) => err.data?.code ?? err.message,
		);

	beforeAll(async () => {
		gw = await startGateway({
			tenants: [acme],
			env: {
				CONSENTRY_MAX_CONNECTIONS_PER_ADDRESS: "6",
				CONSENTRY_CONNECTS_PER_ADDRESS_PER_SECOND: "1000",
				CONSENTRY_MAX_GUEST_CONNECTIONS_PER_ADDRESS: "3",
				CONSENTRY_MAX_GUEST_CONNECTIONS: "1000",
				CONSENTRY_REQUESTS_PER_ADDRESS_PER_SECOND: "10",
				CONSENTRY_SIGNALING_KIB_PER_ADDRESS_PER_SECOND: "32",
			},
		});
	});
	afterEach(async () => {
		for (const c of open) c.close();
		open = [];
		await new Promise((r) => setTimeout(r, 2000)); // sockets gone, budgets refilled
	});
	afterAll(async () => {
		await gw?.close();
	});

	it("caps the sockets of one address, and its unauthenticated ones lower", async () => {
		const guests = [await refusal(), await refusal(), await refusal(), await refusal()];
		expect(guests).toEqual(["connected", "connected", "connected", "too_many_guests"]);
		await new Promise((r) => setTimeout(r, 300)); // the refused one's connection closes
		// Signed-in people from the same address still get in, up to the address's cap…
		const members = [];
		for (let i = 0; i < 4; i++) members.push(await refusal(acme.token(`p${i}`, "participant")));
		expect(members).toEqual(["connected", "connected", "connected", "websocket error"]);
		// …and a closed socket frees its place.
		open[0]?.close();
		await new Promise((r) => setTimeout(r, 300));
		expect(await refusal(acme.token("p9", "participant"))).toBe("connected");
	});

	it("gives all the sockets of an address one request budget", async () => {
		const sockets = [await client(), await client(), await client()];
		const replies = await Promise.all(
			sockets.flatMap((s) => Array.from({ length: 30 }, () => s.req("lock", { locked: true }))),
		);
		const codes = replies.map(codeOf);
		const limited = codes.filter((c) => c === "rate_limited").length;
		// 90 requests, a burst of 40 for the address (not 3 × 60 for three sockets).
		expect(90 - limited).toBeGreaterThanOrEqual(40);
		expect(90 - limited).toBeLessThanOrEqual(44);
		expect(codes.filter((c) => c !== "rate_limited").every((c) => c === "not_joined")).toBe(true);
	});

	it("refuses a huge loose object after a bounded walk, with a bounded reply, while others stay fast", async () => {
		const guest = await client();
		// ~60 KB: under the message cap, 5,000 codec parameters.
		const parameters = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i]));
		const body = {
			rtpCapabilities: { codecs: [{ kind: "audio", mimeType: "audio/opus", clockRate: 48000, parameters }] },
		};
		const size = JSON.stringify(body).length;
		expect(size).toBeGreaterThan(50_000);
		expect(size).toBeLessThan(64 * 1024);
		const r = await guest.req("setRtpCapabilities", body);
		expect(codeOf(r)).toBe("invalid_request");
		expect(JSON.stringify(r).length).toBeLessThan(1000);
		expect(!r.ok && r.error.message).toMatch(/more than 64 keys/);

		// A schema error list is bounded too: the first five issues and a count.
		const many = await guest.req("setRtpCapabilities", {
			rtpCapabilities: { codecs: Array.from({ length: 50 }, () => ({ kind: "x", mimeType: 1, clockRate: -1 })) },
		});
		expect(!many.ok && many.error.issues?.length).toBe(5);
		expect(!many.ok && many.error.issueCount).toBeGreaterThan(100);

		// An address sending such bodies fast runs out of byte budget: its socket is closed, and it may not reconnect
		// for a while; other addresses are unaffected.
		const fromFlooder = { transports: ["websocket"], reconnection: false, localAddress: "127.0.0.3" } as object;
		const flooder = io(gw.url, fromFlooder);
		open.push({ socket: flooder, close: () => flooder.close() } as unknown as RawClient);
		await new Promise((resolve) => flooder.once("connect", () => resolve(undefined)));
		const closed = new Promise<void>((resolve) => flooder.once("disconnect", () => resolve()));
		for (let i = 0; i < 6; i++) flooder.emit("setRtpCapabilities", body, () => undefined);
		await closed;
		const again = io(gw.url, fromFlooder);
		const refused = await new Promise((resolve) => {
			again.once("connect", () => resolve("connected"));
			again.once("connect_error", (e) => resolve(e.message));
		});
		again.close();
		expect(refused).toBe("websocket error");
		expect((await client()).socket.connected).toBe(true); // 127.0.0.1 still welcome
		const t0 = performance.now();
		const health = await fetch(`${gw.url}/healthz`);
		expect(health.status).toBe(200);
		expect(performance.now() - t0).toBeLessThan(1000);
	});

	it("refuses binary attachments where JSON is expected, and a second connect of a transport, with 4xx codes", async () => {
		const host = await client(acme.token("host-bin"));
		const m = await api(gw, "POST", "/api/meetings", acme.token("host-bin"), {
			title: "binary",
			settings: { lobby: false },
		});
		await host.call("join", { meetingId: m.body.id, displayName: "Hana" });
		const t = await host.call("createWebRtcTransport", { direction: "send" });
		const r = await host.req("produce", {
			transportId: t.id,
			kind: "audio",
			source: "mic",
			rtpParameters: {
				codecs: [{ mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 }],
				encodings: [{ ssrc: 1111, blob: Buffer.from("not json") }],
			},
		});
		expect(codeOf(r)).toBe("invalid_request");
		expect(!r.ok && r.error.message).toMatch(/binary/);
		const dtls = { role: "client", fingerprints: [{ algorithm: "sha-256", value: "AB:CD" }] };
		expect(codeOf(await host.req("connectWebRtcTransport", { transportId: t.id, dtlsParameters: dtls }))).toBe("ok");
		expect(codeOf(await host.req("connectWebRtcTransport", { transportId: t.id, dtlsParameters: dtls }))).toBe(
			"transport_already_connected",
		);
	});
});

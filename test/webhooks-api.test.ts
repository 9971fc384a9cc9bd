import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { verifySignature } from "../server/webhooks/signature.js";
import { storageEnv } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";
import { startWebhookReceiver, type WebhookReceiver } from "./helpers/webhook-receiver.js";

/**
 * The webhook endpoint as the Customer's administrator sets it over REST on a real gateway, and the events a
 * meeting's host causes reaching it, signed, while an endpoint that hangs does not slow the host down.
 */
const acme = testTenant("acme");
const other = testTenant("other");
let gw: Gateway;
let receiver: WebhookReceiver;
const admin = acme.token("it", "admin");

beforeAll(async () => {
	receiver = await startWebhookReceiver();
	gw = await startGateway({ tenants: [acme, other], env: storageEnv() });
});

afterAll(async () => {
	await gw?.close();
	await receiver?.stop();
});

describe("webhooks over REST", () => {
	it("only the admin sets it; bad URLs are refused with what is wrong; forbidden addresses by the endpoint guard", async () => {
		expect((await api(gw, "PUT", "/api/webhook", acme.token("h"), { url: receiver.url })).status).toBe(403);
		expect((await api(gw, "PUT", "/api/webhook", undefined, { url: receiver.url })).status).toBe(401);
		const bad = await api(gw, "PUT", "/api/webhook", admin, { url: "ftp://example.com/x" });
		expect(bad).toMatchObject({ status: 400, body: { code: "invalid_request" } });
		const creds = await api(gw, "PUT", "/api/webhook", admin, { url: "https://u:p@example.com/x" });
		expect(creds.status).toBe(400);
		const extra = await api(gw, "PUT", "/api/webhook", admin, { url: receiver.url, events: ["nope"] });
		expect(extra.status).toBe(400);
		const metadata = await api(gw, "PUT", "/api/webhook", admin, { url: "http://169.254.169.254/latest" });
		expect(metadata).toMatchObject({ status: 422, body: { code: "endpoint_forbidden" } });
		expect((await api(gw, "GET", "/api/webhook", admin)).status).toBe(404);
	});

	it("delivers the host's meeting events signed with the secret answered once, and logs each delivery", async () => {
		const put = await api(gw, "PUT", "/api/webhook", admin, { url: receiver.url });
		expect(put.status).toBe(200);
		const secret = put.body.secret as string;
		expect(secret).toMatch(/^whsec_/);
		const shown = await api(gw, "GET", "/api/webhook", admin);
		expect(shown.body).toMatchObject({ url: receiver.url });
		expect(JSON.stringify(shown.body)).not.toContain(secret);
		// Changing the URL keeps the secret (not answered again).
		const again = await api(gw, "PUT", "/api/webhook", admin, {
			url: receiver.url,
			events: ["meeting.started", "meeting.ended", "ping"],
		});
		expect(again.body.secret).toBeUndefined();

		const host = acme.token("hana");
		const m = await api(gw, "POST", "/api/meetings", host, { title: "Hooked" });
		const id = m.body.id as string;
		await api(gw, "POST", `/api/meetings/${id}/start`, host);
		await api(gw, "POST", `/api/meetings/${id}/end`, host);
		await waitFor(() => receiver.accepted.length >= 2, 10_000, "two deliveries");
		expect(receiver.accepted.map((h) => [h.payload.type, h.payload.meetingId])).toEqual([
			["meeting.started", id],
			["meeting.ended", id],
		]);
		for (const h of receiver.accepted)
			expect(verifySignature(secret, h.body, h.headers["consentry-signature"] as string)).toBeUndefined();

		const ping = await api(gw, "POST", "/api/webhook/ping", admin);
		expect(ping.status).toBe(202);
		await waitFor(() => receiver.accepted.some((h) => h.payload.type === "ping"), 10_000, "the ping");
		const log = await api(gw, "GET", "/api/webhook/deliveries?limit=10", admin);
		const deliveries = log.body.deliveries as { event: string; state: string }[];
		expect(deliveries.map((d) => [d.event, d.state])).toEqual([
			["ping", "delivered"],
			["meeting.ended", "delivered"],
			["meeting.started", "delivered"],
		]);
		expect((await api(gw, "GET", "/api/webhook/deliveries?state=nope", admin)).status).toBe(400);
		// Rotating the secret answers a new one, which signs from then on.
		const rotated = await api(gw, "PUT", "/api/webhook", admin, { url: receiver.url, rotateSecret: true });
		const fresh = rotated.body.secret as string;
		expect(fresh).toMatch(/^whsec_/);
		expect(fresh).not.toBe(secret);
		await api(gw, "POST", "/api/webhook/ping", admin);
		await waitFor(
			() => receiver.accepted.filter((h) => h.payload.type === "ping").length === 2,
			10_000,
			"a second ping",
		);
		const last = receiver.accepted.at(-1);
		expect(verifySignature(fresh, last?.body ?? "", last?.headers["consentry-signature"] as string)).toBeUndefined();
		expect(verifySignature(secret, last?.body ?? "", last?.headers["consentry-signature"] as string)).toBe("mismatch");
		// Another tenant sees none of it.
		expect((await api(gw, "GET", "/api/webhook/deliveries", other.token("x", "admin"))).body).toEqual({
			deliveries: [],
		});
	});

	it("an endpoint that never answers does not slow the host's calls; removing it cancels what is pending", async () => {
		receiver.behave(() => "hang");
		const host = acme.token("hugo");
		const times: number[] = [];
		for (let i = 0; i < 5; i++) {
			const t0 = performance.now();
			const m = await api(gw, "POST", "/api/meetings", host, { title: `Slow ${i}` });
			await api(gw, "POST", `/api/meetings/${m.body.id}/start`, host);
			await api(gw, "POST", `/api/meetings/${m.body.id}/end`, host);
			times.push(performance.now() - t0);
		}
		expect(Math.max(...times)).toBeLessThan(1000);
		await waitFor(() => receiver.received.length >= 3, 10_000, "attempts reaching the hanging endpoint");
		expect((await api(gw, "DELETE", "/api/webhook", admin)).body).toEqual({ removed: true });
		const log = await api(gw, "GET", "/api/webhook/deliveries?state=pending", admin);
		expect(log.body.deliveries).toEqual([]);
		expect((await api(gw, "DELETE", "/api/webhook", admin)).status).toBe(404);
	});
});

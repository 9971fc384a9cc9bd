import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { waitFor } from "../../test/helpers/wait.js";
import { startWebhookReceiver, type WebhookReceiver } from "../../test/helpers/webhook-receiver.js";
import { EventLog } from "../audit/EventLog.js";
import { createLogger } from "../logger.js";
import { SecretBox } from "../storage/secretBox.js";
import { Store } from "../store/Store.js";
import { verifySignature } from "./signature.js";
import { WebhookService, type WebhookServiceOptions } from "./WebhookService.js";
import { WebhookStore } from "./WebhookStore.js";
import { WEBHOOK_EVENTS } from "./WebhookTypes.js";

/**
 * The webhook outbox against a real SQLite store, the real audit trail and a real HTTP receiver on loopback:
 * signatures, order per meeting through retries, endpoints that hang or redirect, giving up, and deliveries
 * that survive a restart.
 */
const key = randomBytes(32);
const log = createLogger("silent");
const policy = { allowHttp: true, allowPrivate: true };
let dir: string;
let cluster: Store;
let events: EventLog;
let store: WebhookStore;
let receiver: WebhookReceiver;
const services: WebhookService[] = [];

function service(over: Partial<WebhookServiceOptions> = {}): WebhookService {
	const s = new WebhookService({
		store,
		events,
		endpointPolicy: policy,
		retry: { firstDelayMs: 40, maxDelayMs: 200, timeoutMs: 400 },
		pollMs: 50,
		log,
		...over,
	});
	services.push(s);
	return s;
}

async function setEndpoint(url = receiver.url): Promise<string> {
	return (await store.save("acme", { url, events: [...WEBHOOK_EVENTS] }, (await events.head("acme"))?.seq ?? 0))
		.newSecret as string;
}

beforeEach(async () => {
	dir = mkdtempSync(path.join(os.tmpdir(), "consentry-webhooks-"));
	cluster = await Store.open({ file: path.join(dir, "store.sqlite") });
	events = await EventLog.open(cluster);
	store = new WebhookStore(cluster, new SecretBox(key));
	receiver = await startWebhookReceiver();
	await events.append("meeting.started", { tenantId: "acme", meetingId: "before" }); // before the endpoint: never sent
});

afterEach(async () => {
	await Promise.all(services.splice(0).map((s) => s.close()));
	await receiver.stop();
	await cluster.close();
	rmSync(dir, { recursive: true, force: true });
});

describe("webhooks", () => {
	it("signs every event with a timestamp; the receiver's check refuses a changed body, another secret or an old timestamp", async () => {
		const secret = await setEndpoint();
		expect(secret).toMatch(/^whsec_/);
		service();
		await events.append("meeting.started", { tenantId: "acme", meetingId: "m1", actor: "acme:host" });
		const [hook] = await waitFor(() => (receiver.accepted.length ? receiver.accepted : undefined), 5000, "a delivery");
		if (!hook) throw new Error("no hook");
		expect(hook.payload).toMatchObject({ type: "meeting.started", meetingId: "m1", tenant: "acme" });
		expect(hook.headers["consentry-event"]).toBe("meeting.started");
		expect(hook.headers["consentry-event-id"]).toBe(hook.payload.id);
		const sig = hook.headers["consentry-signature"] as string;
		expect(verifySignature(secret, hook.body, sig)).toBeUndefined();
		expect(verifySignature(secret, hook.body.replace("m1", "m2"), sig)).toBe("mismatch");
		expect(verifySignature(`${secret}x`, hook.body, sig)).toBe("mismatch");
		const t = Number(/t=(\d+)/.exec(sig)?.[1]);
		expect(verifySignature(secret, hook.body, sig, { nowSeconds: t + 301 })).toBe("stale");
		expect(verifySignature(secret, hook.body, "v1=abc")).toBe("malformed");
		// Nothing from before the endpoint was set.
		expect(receiver.received.some((h) => h.payload.meetingId === "before")).toBe(false);
		// The secret is sealed in the store, never in clear.
		const row = (await cluster.db.selectFrom("webhook_settings").select("secret").executeTakeFirstOrThrow()) as {
			secret: Buffer;
		};
		expect(row.secret.includes(Buffer.from(secret))).toBe(false);
	});

	it("keeps each meeting's events in order through retries, without holding up other meetings", async () => {
		await setEndpoint();
		let failures = 0;
		receiver.behave((h) =>
			h.payload.meetingId === "m1" && h.payload.type === "meeting.started" && failures++ < 2 ? 500 : 200,
		);
		service();
		await events.append("meeting.started", { tenantId: "acme", meetingId: "m1" });
		await events.append("session.on", {
			tenantId: "acme",
			meetingId: "m1",
			data: { kind: "recording", sessionId: "s1" },
		});
		await events.append("session.paused", {
			tenantId: "acme",
			meetingId: "m1",
			data: { kind: "recording", sessionId: "s1" },
		});
		await events.append("session.on", {
			tenantId: "acme",
			meetingId: "m1",
			data: { kind: "recording", sessionId: "s2" },
		});
		await events.append("meeting.ended", { tenantId: "acme", meetingId: "m1" });
		await events.append("meeting.started", { tenantId: "acme", meetingId: "m2" });
		await events.append("notice.sent", { tenantId: "acme", meetingId: "m1" }); // not a webhook event
		await waitFor(() => receiver.accepted.length === 6, 10_000, "6 deliveries");
		const m1 = receiver.accepted.filter((h) => h.payload.meetingId === "m1");
		expect(m1.map((h) => h.payload.type)).toEqual([
			"meeting.started",
			"recording.started",
			"recording.paused",
			"recording.started",
			"meeting.ended",
		]);
		expect(m1[1]?.payload.data).toMatchObject({ sessionId: "s1", resumed: false });
		expect(m1[3]?.payload.data).toMatchObject({ sessionId: "s2", resumed: true });
		// m2 did not wait for m1's retries.
		const m2 = receiver.accepted.find((h) => h.payload.meetingId === "m2");
		expect(m2 && m1[0] && m2.at < m1[0].at).toBe(true);
		// Retries carry the same event id; the log shows the attempts.
		const first = receiver.received.filter((h) => h.payload.meetingId === "m1" && h.payload.type === "meeting.started");
		expect(first).toHaveLength(3);
		expect(new Set(first.map((h) => h.payload.id)).size).toBe(1);
		const logged = await store.log("acme", { limit: 100 });
		expect(logged.find((d) => d.eventId === first[0]?.payload.id)).toMatchObject({
			state: "delivered",
			attempts: 3,
			lastStatus: 200,
		});
	});

	it("an endpoint that hangs or redirects costs an attempt each time, never a wait on the trail, and nothing follows a redirect", async () => {
		await setEndpoint();
		const target = await startWebhookReceiver();
		try {
			receiver.behave((h) => (h.payload.meetingId === "hang" ? "hang" : { redirect: target.url }));
			service();
			const t0 = performance.now();
			for (let i = 0; i < 50; i++)
				await events.append("meeting.started", { tenantId: "acme", meetingId: i % 2 ? "hang" : "redir" });
			const appendMs = performance.now() - t0;
			expect(appendMs).toBeLessThan(1000);
			await waitFor(
				async () => {
					const l = await store.log("acme", { limit: 100 });
					return (
						l.some((d) => d.lastError === "timed out") && l.some((d) => d.lastError?.startsWith("redirect refused"))
					);
				},
				10_000,
				"a timeout and a refused redirect in the log",
			);
			expect(target.received).toHaveLength(0);
			// Pending, to be retried (in order: only the first of each meeting is being attempted).
			const pending = await store.log("acme", { state: "pending", limit: 100 });
			expect(pending.length).toBe(50);
			expect(
				pending
					.filter((d) => d.attempts > 0)
					.map((d) => d.meetingId)
					.sort(),
			).toEqual(["hang", "redir"]);
		} finally {
			await target.stop();
		}
	});

	it("gives up once an event is older than the retry window, then goes on with the next", async () => {
		await setEndpoint();
		receiver.behave((h) => (h.payload.type === "meeting.started" ? 503 : 200));
		service({ retry: { firstDelayMs: 30, maxDelayMs: 60, timeoutMs: 400, giveUpAfterMs: 800 } });
		await events.append("meeting.started", { tenantId: "acme", meetingId: "m1" });
		await events.append("meeting.ended", { tenantId: "acme", meetingId: "m1" });
		await waitFor(() => receiver.accepted.length === 1, 10_000, "the next event delivered");
		// The receiver has it; the delivery is marked in the store once its answer is read.
		await waitFor(
			async () => (await store.log("acme", { limit: 10 }))[0]?.state === "delivered",
			5_000,
			"the delivery marked delivered",
		);
		const [ended, started] = await store.log("acme", { limit: 10 });
		expect(started).toMatchObject({ event: "meeting.started", state: "failed", lastStatus: 503 });
		expect(started?.attempts).toBeGreaterThan(1);
		expect(ended).toMatchObject({ event: "meeting.ended", state: "delivered" });
	});

	it("what is pending survives a restart of the gateway: the next one delivers it, same event id", async () => {
		const secret = await setEndpoint(`http://127.0.0.1:${receiver.port}/hooks`);
		const port = receiver.port;
		await receiver.stop(); // the endpoint is down
		const first = service();
		await events.append("meeting.started", { tenantId: "acme", meetingId: "m1" });
		await events.append("consent.declined", {
			tenantId: "acme",
			meetingId: "m1",
			actor: "acme:bob",
			data: { kind: "recording", sessionId: "s1", person: "acme:bob" },
		});
		await waitFor(
			async () => (await store.log("acme", { limit: 10 })).some((d) => d.attempts > 0),
			5000,
			"a failed attempt",
		);
		await first.close();
		await cluster.close();

		// A new process on the same store file, the endpoint back.
		cluster = await Store.open({ file: path.join(dir, "store.sqlite") });
		events = await EventLog.open(cluster);
		store = new WebhookStore(cluster, new SecretBox(key));
		receiver = await startWebhookReceiver(port);
		service();
		await waitFor(() => receiver.accepted.length === 2, 10_000, "both delivered after the restart");
		expect(receiver.accepted.map((h) => h.payload.type)).toEqual(["meeting.started", "consent.declined"]);
		const declined = receiver.accepted[1];
		expect(declined?.payload.data.person).toMatch(/^psn_/); // a pseudonym, as in the trail
		expect(
			verifySignature(secret, declined?.body ?? "", declined?.headers["consentry-signature"] as string),
		).toBeUndefined();
		expect(await store.log("acme", { state: "delivered", limit: 10 })).toHaveLength(2);
	});

	it("recording.ready and transcript.ready list the session's objects (keys, sizes, checksums) from the trail", async () => {
		await setEndpoint();
		service();
		const obj = async (kind: string, key: string, extra: Record<string, unknown> = {}) =>
			await events.append("storage.object_written", {
				tenantId: "acme",
				meetingId: "m1",
				data: { kind, sessionId: "s1", bucket: "b", key, size: key.length, sha256: "a".repeat(64), ...extra },
			});
		await obj("recording", "rec/m1/s1/psn_x-audio-1.webm", { trackId: "s1_p1" });
		await obj("recording", "rec/m1/s2/psn_x-audio-1.webm", { trackId: "s2_p1", sessionId: "s2" }); // another session
		await obj("recording", "rec/m1/s1/manifest.json", { manifest: true });
		await events.append("transcript.link_issued", {
			tenantId: "acme",
			meetingId: "m1",
			data: { linkId: "L1nk_abcdefghijkl", sessionId: "s1" },
		});
		await obj("transcription", "rec/m1/s1/transcript.json");
		await obj("transcription", "rec/m1/s1/transcript.vtt");
		await waitFor(() => receiver.accepted.length === 2, 5000, "two deliveries");
		const [recording, transcript] = receiver.accepted.map((h) => h.payload);
		expect(recording).toMatchObject({
			type: "recording.ready",
			data: {
				sessionId: "s1",
				bucket: "b",
				manifest: { key: "rec/m1/s1/manifest.json", size: 23 },
				objects: [
					{ key: "rec/m1/s1/psn_x-audio-1.webm", size: 28, sha256: "a".repeat(64), trackId: "s1_p1" },
					{ key: "rec/m1/s1/manifest.json", size: 23, sha256: "a".repeat(64), manifest: true },
				],
			},
		});
		expect(transcript).toMatchObject({
			type: "transcript.ready",
			data: {
				sessionId: "s1",
				linkPath: "/t/L1nk_abcdefghijkl",
				objects: [{ key: "rec/m1/s1/transcript.json" }, { key: "rec/m1/s1/transcript.vtt" }],
			},
		});
	});

	it("refuses an endpoint the guard forbids at delivery time too (loopback when private addresses are not allowed)", async () => {
		await setEndpoint();
		service({ endpointPolicy: { allowHttp: true, allowPrivate: false } });
		await events.append("meeting.started", { tenantId: "acme", meetingId: "m1" });
		await waitFor(
			async () => (await store.log("acme", { limit: 1 }))[0]?.lastError?.includes("loopback"),
			5000,
			"a refused attempt",
		);
		expect(receiver.received).toHaveLength(0);
	});
});

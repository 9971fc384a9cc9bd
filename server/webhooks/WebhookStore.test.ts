import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ENGINES, openTestStore } from "../../test/helpers/stores.js";
import { SecretBox } from "../storage/secretBox.js";
import { WebhookStore } from "./WebhookStore.js";
import type { WebhookPayload } from "./WebhookTypes.js";

const payload = (id: string, meetingId: string | null): WebhookPayload => ({
	id,
	type: "meeting.started",
	createdAt: new Date().toISOString(),
	tenant: "acme",
	meetingId,
	data: {},
	audit: null,
});

describe.each(ENGINES)("WebhookStore on %s", (engine) => {
	it("keeps the endpoint sealed, queues each event once, in order per meeting, leases each attempt once", async () => {
		const db = await openTestStore(engine);
		const store = new WebhookStore(db, new SecretBox(randomBytes(32)));
		const { view, newSecret } = await store.save(
			"acme",
			{ url: "https://hooks.example/x", events: ["meeting.started"] },
			7,
		);
		expect(newSecret).toMatch(/^whsec_/);
		expect(view).toMatchObject({ url: "https://hooks.example/x", events: ["meeting.started"] });
		const again = await store.save("acme", { url: "https://hooks.example/y", events: ["meeting.started"] }, 99);
		expect(again.newSecret).toBeUndefined(); // the secret is kept, the cursor too
		expect((await store.endpoint("acme"))?.secret).toBe(newSecret);
		expect(await store.cursors()).toEqual([{ tenantId: "acme", cursorSeq: 7 }]);
		const now = Date.now();
		// Two projections of the same entries at once: each event queued once, the cursor moved once.
		const build = (cursor: number) => ({
			upTo: 10,
			payloads: cursor < 10 ? [payload("e1", "m1"), payload("e2", "m1"), payload("e3", "m2")] : [],
		});
		const queued = await Promise.all([store.project("acme", build, now), store.project("acme", build, now)]);
		expect(queued.sort()).toEqual([0, 3]);
		expect(await store.cursors()).toEqual([{ tenantId: "acme", cursorSeq: 10 }]);
		expect(await store.pendingCount()).toBe(3);
		// First in line per meeting only: e1 (m1) and e3 (m2), not e2.
		const due = await store.due(now, 10);
		expect(due.map((d) => d.event_id).sort()).toEqual(["e1", "e3"]);
		const e1 = due.find((d) => d.event_id === "e1");
		if (!e1) throw new Error("e1 due");
		expect(typeof e1.id).toBe("number");
		expect(await store.lease(e1.id, now, now + 1000)).toBe(true);
		expect(await store.lease(e1.id, now, now + 1000)).toBe(false); // another process can't have it too
		expect(await store.nextDueAt()).toBe(now);
		await store.attemptFailed(e1.id, { status: 503, error: "HTTP 503", durationMs: 5, retryAt: now + 500 }, now);
		await store.delivered(e1.id, 200, 4, now + 600);
		const log = await store.log("acme", { limit: 10 });
		expect(log.map((d) => d.eventId)).toEqual(["e3", "e2", "e1"]);
		expect(log[2]).toMatchObject({ state: "delivered", attempts: 2, lastStatus: 200, lastError: null });
		expect((await store.due(now + 1000, 10)).map((d) => d.event_id).sort()).toEqual(["e2", "e3"]);
		const ping = await store.enqueue("acme", payload("p1", null), now);
		expect(typeof ping).toBe("number");
		expect(await store.remove("acme")).toBe(true);
		expect(await store.pendingCount()).toBe(0); // cancelled with it
		expect(await store.view("acme")).toBeUndefined();
		await db.close();
	});
});

import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Store } from "../store/Store.js";
import { EventLog, PSEUDONYM_RE } from "./EventLog.js";
import { sentNotices } from "./notices.js";

const dirs: string[] = [];
const stores: Store[] = [];
afterEach(async () => {
	for (const s of stores.splice(0)) await s.close();
	for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function log(): Promise<EventLog> {
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-notices-"));
	dirs.push(dir);
	const store = await Store.open({ file: path.join(dir, "store.sqlite") });
	stores.push(store);
	return EventLog.open(store);
}

describe("the notices an entry records as sent", () => {
	it("reads a join's notice.sent and a start's notices.sent alike, persons stored as pseudonyms", async () => {
		const events = await log();
		await events.appendMany([
			{
				type: "notices.sent",
				tenantId: "acme",
				meetingId: "m1",
				data: {
					kind: "recording",
					sessionId: "s1",
					via: "session_start",
					consentRequired: false,
					texts: { en: "a".repeat(64), fr: "b".repeat(64) },
					recipients: [
						{ person: "acme:hana", peerId: "p1", noticeId: "n1", locale: "en" },
						{ person: "guest:g2", peerId: "p2", noticeId: "n2", locale: "fr" },
					],
				},
			},
			{
				type: "notice.sent",
				tenantId: "acme",
				meetingId: "m1",
				data: {
					kind: "recording",
					sessionId: "s1",
					noticeId: "n3",
					person: "acme:bob",
					peerId: "p3",
					via: "join",
					locale: "en",
					textSha256: "a".repeat(64),
					consentRequired: false,
				},
			},
		]);
		const stored = await events.list({ tenantId: "acme", meetingId: "m1" });
		expect(JSON.stringify(stored)).not.toMatch(/acme:hana|guest:g2|acme:bob/);
		const sent = stored.flatMap(sentNotices);
		const hana = await events.pseudonym("acme", "acme:hana");
		const g2 = await events.pseudonym("acme", "guest:g2");
		const bob = await events.pseudonym("acme", "acme:bob");
		for (const p of [hana, g2, bob]) expect(p).toMatch(PSEUDONYM_RE);
		expect(sent).toEqual([
			{
				noticeId: "n1",
				person: hana,
				peerId: "p1",
				kind: "recording",
				sessionId: "s1",
				via: "session_start",
				locale: "en",
				textSha256: "a".repeat(64),
				consentRequired: false,
			},
			expect.objectContaining({ noticeId: "n2", person: g2, locale: "fr", textSha256: "b".repeat(64) }),
			expect.objectContaining({ noticeId: "n3", person: bob, via: "join", textSha256: "a".repeat(64) }),
		]);
		// Each recipient finds the start's entry among their own (access requests), and loses it with their secret.
		expect((await events.listForPerson("acme", "guest:g2")).map((e) => e.type)).toEqual(["notices.sent"]);
		await events.erasePerson("acme", "guest:g2");
		expect(await events.listForPerson("acme", "guest:g2")).toEqual([]);
		expect((await events.listForPerson("acme", "acme:hana")).map((e) => e.type)).toEqual(["notices.sent"]);
	});

	it("names nothing for other entries or malformed recipients", () => {
		expect(sentNotices({ type: "notice.shown", data: { noticeId: "n1", person: "x" } })).toEqual([]);
		expect(sentNotices({ type: "notices.sent", data: { recipients: [null, 3, { person: "x" }] } })).toEqual([]);
		expect(sentNotices({ type: "notices.sent", data: {} })).toEqual([]);
	});
});

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { type Database, openDatabase } from "../store/Database.js";
import { Store } from "../store/Store.js";
import { entryHash, entryHashFromColumns, GENESIS } from "./chain.js";
import { EventLog, type EventRow, PSEUDONYM_RE } from "./EventLog.js";
import { verifyDatabase, verifyExport, verifyTenant } from "./verify.js";

const dirs: string[] = [];
afterEach(() => {
	for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const stores: Store[] = [];
afterEach(async () => {
	for (const s of stores.splice(0)) await s.close().catch(() => undefined);
});

/**
 * An EventLog on a store in a file, and a second, raw connection to the same file (what an attacker with the file
 * uses to tamper: it sees the log's commits and the log sees its writes).
 */
async function opened(file = tempFile()): Promise<{ db: Database; log: EventLog; store: Store }> {
	const store = await Store.open({ file });
	stores.push(store);
	return { store, log: await EventLog.open(store), db: openDatabase(file) };
}

function tempFile(name = "audit.db"): string {
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-audit-"));
	dirs.push(dir);
	return path.join(dir, name);
}

/** 20 entries for acme over meetings m1, m2 and none, interleaved; 5 for globex. */
async function seeded(): Promise<{ db: Database; log: EventLog }> {
	const { db, log } = await opened();
	for (let i = 1; i <= 20; i++) {
		const meetingId = i % 5 === 0 ? undefined : i % 2 ? "m1" : "m2";
		await log.append(i % 3 ? "person.joined" : "lobby.admitted", {
			tenantId: "acme",
			...(meetingId ? { meetingId } : {}),
			actor: `acme:user${i % 4}`,
			data: { i, peerId: `peer-${i}`, ...(i % 3 ? {} : { person: `guest:g${i}` }) },
		});
		if (i % 4 === 0) await log.append("meeting.started", { tenantId: "globex", meetingId: "g1", actor: "globex:z" });
	}
	return { db, log };
}

const row = (db: Database, tenant: string, seq: number) =>
	db.prepare("SELECT * FROM events WHERE tenant_id = ? AND seq = ?").get(tenant, seq) as EventRow & {
		prev_hash: string;
		hash: string;
	};

/** What an attacker with the file does first. */
function dropDefences(db: Database): void {
	db.exec(`DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; DROP TRIGGER events_chained_insert;`);
}

function rehash(db: Database, tenant: string, seq: number): string {
	const r = row(db, tenant, seq);
	const h = entryHashFromColumns(
		r.seq,
		r.at,
		r.tenant_id,
		r.meeting_id,
		r.type,
		r.actor,
		r.data,
		r.prev_hash,
		r.meeting_prev_hash,
	);
	db.prepare("UPDATE events SET hash = ? WHERE tenant_id = ? AND seq = ?").run(h, tenant, seq);
	return h;
}

describe("EventLog: append-only hash chain", () => {
	it("chains each tenant's entries from genesis, each meeting's too, and verifies them", async () => {
		const { log } = await seeded();
		const acme = await log.list({ tenantId: "acme" });
		expect(acme.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
		expect(acme[0]?.prevHash).toBe(GENESIS);
		for (let i = 1; i < acme.length; i++) expect(acme[i]?.prevHash).toBe(acme[i - 1]?.hash);
		const m1 = await log.list({ tenantId: "acme", meetingId: "m1" });
		expect(m1[0]?.meetingPrevHash).toBe(GENESIS);
		for (let i = 1; i < m1.length; i++) expect(m1[i]?.meetingPrevHash).toBe(m1[i - 1]?.hash);
		expect(await log.list({ tenantId: "acme", type: "lobby.admitted" })).toHaveLength(6);
		expect(acme.find((e) => e.meetingId === null)?.meetingPrevHash).toBeNull();
		// The hash is the documented one: SHA-256 of the canonical entry.
		const e = acme[4] as (typeof acme)[number];
		expect(
			entryHash({
				v: 1,
				seq: e.seq,
				at: e.at,
				tenant: e.tenantId,
				meeting: e.meetingId,
				type: e.type,
				actor: e.actor,
				data: e.data as never,
				prev: e.prevHash,
				meetingPrev: e.meetingPrevHash,
			}),
		).toBe(e.hash);
		expect((await log.list({ tenantId: "globex" })).map((x) => x.seq)).toEqual([1, 2, 3, 4, 5]);
		const results = await log.verify();
		expect(results).toEqual([
			{ ok: true, tenantId: "acme", entries: 20, head: await log.head("acme") },
			{ ok: true, tenantId: "globex", entries: 5, head: await log.head("globex") },
		]);
		expect(await log.head("acme")).toEqual({ seq: 20, hash: acme[19]?.hash });
		expect(await log.head("nobody")).toBeNull();
		expect(await log.verify({ tenantId: "nobody" })).toEqual([
			{ ok: true, tenantId: "nobody", entries: 0, head: null },
		]);
	});

	it("appends a batch in order, in one transaction", async () => {
		const { log } = await opened();
		await log.append("meeting.scheduled", { tenantId: "acme", meetingId: "m1", actor: "acme:h" });
		const batch = await log.appendMany(
			Array.from({ length: 50 }, (_, i) => ({
				type: "gate.opened" as const,
				tenantId: "acme",
				meetingId: "m1",
				data: { i },
			})),
		);
		expect(batch.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 2));
		expect(await log.appendMany([])).toEqual([]);
		// All or none: a bad item rolls the whole batch back.
		await expect(
			log.appendMany([
				{ type: "gate.closed", tenantId: "acme", data: { ok: 1 } },
				{ type: "gate.closed", tenantId: "acme", data: { bad: 1n } },
			]),
		).rejects.toThrow();
		expect((await log.head("acme"))?.seq).toBe(51);
		expect((await log.verify())[0]).toMatchObject({ ok: true, entries: 51 });
	});

	it("refuses UPDATE, DELETE and any insert that does not extend the head", async () => {
		const { db, log } = await seeded();
		expect(() => db.prepare("UPDATE events SET data = '{}' WHERE seq = 3").run()).toThrow(/append-only/);
		expect(() => db.prepare("UPDATE events SET hash = hash").run()).toThrow(/append-only/);
		expect(() => db.prepare("DELETE FROM events WHERE seq = 20").run()).toThrow(/append-only/);
		const head = await log.head("acme");
		const insert = db.prepare(
			`INSERT INTO events (at, tenant_id, meeting_id, type, actor, data, seq, prev_hash, meeting_prev_hash, hash)
			 VALUES ('2026-01-01T00:00:00.000Z', 'acme', NULL, 'operator.action', NULL, '{}', ?, ?, NULL, ?)`,
		);
		expect(() =>
			db.prepare("INSERT INTO events (at, tenant_id, seq, type, data) VALUES ('x', 'acme', 21, 'x', '{}')").run(),
		).toThrow(/extend its tenant chain/);
		expect(() => insert.run(5, row(db, "acme", 4).hash, GENESIS)).toThrow(/UNIQUE|PRIMARY/); // a fork at 5
		expect(() => insert.run(21, GENESIS, GENESIS)).toThrow(/extend/); // wrong prev
		expect(() => insert.run(22, head?.hash, GENESIS)).toThrow(/extend/); // a gap
		const meetingInsert = db.prepare(
			`INSERT INTO events (at, tenant_id, meeting_id, type, actor, data, seq, prev_hash, meeting_prev_hash, hash)
			 VALUES ('2026-01-01T00:00:00.000Z', 'acme', 'm1', 'operator.action', NULL, '{}', 21, ?, ?, ?)`,
		);
		expect(() => meetingInsert.run(head?.hash, GENESIS, GENESIS)).toThrow(/extend/); // not the meeting's last
		expect(() => insert.run(21, head?.hash, GENESIS)).not.toThrow(); // (only the hash is not checked by SQL)
		expect((await log.verify())[0]).toMatchObject({ ok: false, break: { seq: 21, reason: "hash" } });
	});

	it("finds a meeting's last entry through its index, not by scanning the tenant chain", async () => {
		const { db } = await seeded();
		const plan = (sql: string) =>
			(db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all("acme", "m1") as { detail: string }[]).map((r) => r.detail).join();
		expect(
			plan(
				"SELECT hash FROM events INDEXED BY events_by_meeting WHERE tenant_id = ? AND meeting_id = ? ORDER BY seq DESC LIMIT 1",
			),
		).toContain("USING INDEX events_by_meeting (tenant_id=? AND meeting_id=?)");
		const trigger = db.prepare("SELECT sql FROM sqlite_master WHERE name = 'events_chained_insert'").pluck().get();
		expect(trigger).toContain("INDEXED BY events_by_meeting");
	});

	describe("verify reports the first broken link", () => {
		it("a changed data field: the entry's hash", async () => {
			const { db, log } = await seeded();
			dropDefences(db);
			const before = row(db, "acme", 7);
			db.prepare("UPDATE events SET data = ? WHERE tenant_id = 'acme' AND seq = 7").run(
				'{"i":7,"peerId":"someone-else"}',
			);
			const [r] = await log.verify({ tenantId: "acme" });
			expect(r).toMatchObject({ ok: false, entries: 6, break: { seq: 7, reason: "hash", found: before.hash } });
			expect(r?.break?.expected).not.toBe(before.hash);
			expect(r?.break?.message).toContain("entry 7");
			// The other tenant's chain is its own and still verifies.
			expect((await log.verify({ tenantId: "globex" }))[0]?.ok).toBe(true);
		});

		it("a changed entry re-hashed by the attacker: the next entry's link", async () => {
			const { db, log } = await seeded();
			dropDefences(db);
			const old7 = row(db, "acme", 7);
			db.prepare("UPDATE events SET actor = NULL WHERE tenant_id = 'acme' AND seq = 7").run();
			const new7 = rehash(db, "acme", 7);
			expect((await log.verify({ tenantId: "acme" }))[0]).toMatchObject({
				ok: false,
				entries: 7,
				break: { seq: 8, reason: "link", expected: new7, found: old7.hash },
			});
		});

		it("a deleted row: the missing position", async () => {
			const { db, log } = await seeded();
			dropDefences(db);
			db.prepare("DELETE FROM events WHERE tenant_id = 'acme' AND seq = 12").run();
			const [r] = await log.verify({ tenantId: "acme" });
			expect(r).toMatchObject({
				ok: false,
				entries: 11,
				break: { seq: 12, reason: "sequence", expected: "12", found: "13" },
			});
			expect(r?.break?.message).toBe("entry 12 is missing: after entry 11 comes entry 13");
		});

		it("two entries swapped: the link at the first of them", async () => {
			const { db, log } = await seeded();
			dropDefences(db);
			const a = row(db, "acme", 9);
			const set = db.prepare("UPDATE events SET seq = ? WHERE tenant_id = 'acme' AND seq = ?");
			set.run(-1, 9);
			set.run(9, 10);
			set.run(10, -1);
			expect((await log.verify({ tenantId: "acme" }))[0]).toMatchObject({
				ok: false,
				entries: 8,
				break: { seq: 9, reason: "link", expected: row(db, "acme", 8).hash, found: a.hash },
			});
		});

		it("a forged row inserted in the middle, correctly hashed: the link of the entry after it", async () => {
			const { db, log } = await seeded();
			dropDefences(db);
			// Make room at 5 (renumber 5..20 to 6..21), then insert a well-formed entry there.
			db.exec("UPDATE events SET seq = seq + 1000 WHERE tenant_id = 'acme' AND seq >= 5");
			db.exec("UPDATE events SET seq = seq - 999 WHERE tenant_id = 'acme' AND seq > 1000");
			const prev = row(db, "acme", 4).hash;
			const at = "2026-01-01T00:00:00.000Z";
			const data = '{"action":"nothing to see"}';
			const forged = entryHashFromColumns(5, at, "acme", null, "operator.action", null, data, prev, null);
			db.prepare(
				`INSERT INTO events (at, tenant_id, meeting_id, type, actor, data, seq, prev_hash, meeting_prev_hash, hash)
				 VALUES (?, 'acme', NULL, 'operator.action', NULL, ?, 5, ?, NULL, ?)`,
			).run(at, data, prev, forged);
			expect((await log.verify({ tenantId: "acme" }))[0]).toMatchObject({
				ok: false,
				entries: 5,
				break: { seq: 6, reason: "link", expected: forged, found: prev },
			});
		});

		it("a forged row at the head with a made-up hash; a row without a hash", async () => {
			const forgedHead = await seeded();
			dropDefences(forgedHead.db);
			const head = await forgedHead.log.head("acme");
			forgedHead.db
				.prepare(
					`INSERT INTO events (at, tenant_id, type, data, seq, prev_hash, hash)
					 VALUES ('2026-01-01T00:00:00.000Z', 'acme', 'operator.action', '{}', 21, ?, ?)`,
				)
				.run(head?.hash, "f".repeat(64));
			expect((await forgedHead.log.verify({ tenantId: "acme" }))[0]).toMatchObject({
				ok: false,
				entries: 20,
				break: { seq: 21, reason: "hash", found: "f".repeat(64) },
			});

			const loose = await seeded();
			dropDefences(loose.db);
			loose.db.exec(
				"INSERT INTO events (at, tenant_id, seq, type, data) VALUES ('x', 'acme', 21, 'operator.action', '{}')",
			);
			expect((await loose.log.verify({ tenantId: "acme" }))[0]).toMatchObject({
				ok: false,
				entries: 20,
				break: { seq: 21, reason: "unchained" },
			});
		});

		it("a meeting link changed: the meeting's sub-chain", async () => {
			const { db, log } = await seeded();
			dropDefences(db);
			db.prepare("UPDATE events SET meeting_prev_hash = ? WHERE tenant_id = 'acme' AND seq = 3").run(GENESIS);
			rehash(db, "acme", 3);
			expect((await log.verify({ tenantId: "acme" }))[0]).toMatchObject({
				ok: false,
				break: { seq: 3, reason: "meeting_link", expected: row(db, "acme", 1).hash, found: GENESIS },
			});
		});

		it("a chain rewritten from the tampered entry on, or cut at its tail: only an anchor tells", async () => {
			const { db, log } = await seeded();
			const anchor = await log.head("acme");
			if (!anchor) throw new Error("no head");
			dropDefences(db);
			// Rewrite entry 3 and re-hash everything after it, links included.
			db.prepare("UPDATE events SET data = '{}' WHERE tenant_id = 'acme' AND seq = 3").run();
			const meetings = new Map<string, string>();
			let prev = GENESIS;
			for (let s = 1; s <= 20; s++) {
				const r = row(db, "acme", s);
				const mp = r.meeting_id === null ? null : (meetings.get(r.meeting_id) ?? GENESIS);
				db.prepare("UPDATE events SET prev_hash = ?, meeting_prev_hash = ? WHERE tenant_id = 'acme' AND seq = ?").run(
					prev,
					mp,
					s,
				);
				prev = rehash(db, "acme", s);
				if (r.meeting_id !== null) meetings.set(r.meeting_id, prev);
			}
			expect((await log.verify({ tenantId: "acme" }))[0]?.ok).toBe(true);
			expect((await log.verify({ tenantId: "acme", anchor }))[0]).toMatchObject({
				ok: false,
				break: { seq: 20, reason: "anchor", expected: anchor.hash, found: prev },
			});

			const cut = await seeded();
			const cutAnchor = await cut.log.head("acme");
			if (!cutAnchor) throw new Error("no head");
			dropDefences(cut.db);
			cut.db.exec("DELETE FROM events WHERE tenant_id = 'acme' AND seq > 17");
			expect(verifyTenant(cut.db, "acme").ok).toBe(true);
			expect(verifyTenant(cut.db, "acme", { anchor: cutAnchor })).toMatchObject({
				ok: false,
				break: { seq: 20, reason: "anchor", found: "no such entry" },
			});
			expect(verifyTenant(cut.db, "acme", { anchor: { seq: 10, hash: row(cut.db, "acme", 10).hash } }).ok).toBe(true);
		});
	});
});

describe("meeting export (JSON Lines)", () => {
	const lines = (text: string) => text.trimEnd().split("\n");
	const parse = (l: string) => JSON.parse(l) as { kind: string; hash: string; entry: Record<string, unknown> };

	it("holds the meeting's entries with hashes and the heads, and verifies offline", async () => {
		const { log } = await seeded();
		const text = await log.exportMeeting("acme", "m1");
		const [header, ...entries] = lines(text).map((l) => JSON.parse(l));
		const m1 = await log.list({ tenantId: "acme", meetingId: "m1" });
		expect(header).toMatchObject({
			kind: "consentry.audit.export",
			version: 1,
			tenant: "acme",
			meeting: "m1",
			entries: m1.length,
			meetingHead: { seq: m1.at(-1)?.seq, hash: m1.at(-1)?.hash },
			chainHead: await log.head("acme"),
		});
		expect(entries.map((e) => e.entry.seq)).toEqual(m1.map((e) => e.seq));
		expect(entries.map((e) => e.hash)).toEqual(m1.map((e) => e.hash));
		expect(verifyExport(text)).toEqual({ ok: true, tenantId: "acme", entries: m1.length, head: header.meetingHead });
		// A meeting without entries exports (and verifies) as an empty export.
		expect(verifyExport(await log.exportMeeting("acme", "nope"))).toMatchObject({ ok: true, entries: 0 });
	});

	it("catches a tampered export: field, re-hashed entry, removed, reordered or foreign lines, header", async () => {
		const { log } = await seeded();
		const text = await log.exportMeeting("acme", "m1");
		const [header, ...entries] = lines(text);
		const join = (ls: string[]) => `${ls.join("\n")}\n`;
		const e = entries.map(parse);
		const seqOf = (i: number) => e[i]?.entry.seq as number;

		const changed = parse(entries[2] as string);
		(changed.entry.data as Record<string, unknown>).peerId = "someone-else";
		const altered = [...entries];
		altered[2] = JSON.stringify(changed);
		expect(verifyExport(join([header as string, ...altered]))).toMatchObject({
			ok: false,
			entries: 2,
			break: { seq: seqOf(2), reason: "hash", found: e[2]?.hash },
		});

		changed.hash = entryHash(changed.entry as never);
		altered[2] = JSON.stringify(changed);
		expect(verifyExport(join([header as string, ...altered]))).toMatchObject({
			ok: false,
			break: { seq: seqOf(3), reason: "meeting_link", expected: changed.hash, found: e[2]?.hash },
		});

		const removed = entries.filter((_, i) => i !== 3);
		expect(verifyExport(join([header as string, ...removed]))).toMatchObject({
			ok: false,
			break: { seq: seqOf(4), reason: "meeting_link", expected: e[2]?.hash, found: e[3]?.hash },
		});
		expect(verifyExport(join([header as string, ...entries.slice(1)]))).toMatchObject({
			ok: false,
			break: { seq: seqOf(1), reason: "meeting_link", expected: GENESIS },
		});
		expect(verifyExport(join([header as string, ...entries.slice(0, -1)]))).toMatchObject({
			ok: false,
			break: { reason: "count", expected: String(entries.length), found: String(entries.length - 1) },
		});

		const swapped = [...entries];
		[swapped[1], swapped[2]] = [swapped[2] as string, swapped[1] as string];
		expect(verifyExport(join([header as string, ...swapped]))).toMatchObject({
			ok: false,
			break: { seq: seqOf(2), reason: "meeting_link", expected: e[0]?.hash, found: e[1]?.hash },
		});
		const duplicated = [entries[0] as string, ...entries];
		expect(verifyExport(join([header as string, ...duplicated]))).toMatchObject({
			ok: false,
			break: { seq: seqOf(0), reason: "sequence" },
		});

		const foreign = lines(await log.exportMeeting("acme", "m2"))[1] as string;
		expect(verifyExport(join([header as string, foreign, ...entries]))).toMatchObject({
			ok: false,
			break: { reason: "scope", expected: "acme/m1", found: "acme/m2" },
		});

		expect(verifyExport(join([header?.replace('"entries":', '"entries":1') as string, ...entries]))).toMatchObject({
			ok: false,
			break: { reason: "count" },
		});
		expect(verifyExport("hello\n")).toMatchObject({ ok: false, break: { seq: 0, reason: "format" } });
		expect(verifyExport(join([header as string, "{}"]))).toMatchObject({ ok: false, break: { reason: "format" } });
	});

	it("checks tenant-chain links between entries adjacent in the chain", async () => {
		const { log } = await opened();
		for (let i = 0; i < 4; i++) await log.append("gate.opened", { tenantId: "acme", meetingId: "m", data: { i } });
		const [header, ...entries] = lines(await log.exportMeeting("acme", "m"));
		const e = parse(entries[2] as string);
		e.entry.prev = GENESIS;
		e.hash = entryHash(e.entry as never);
		entries[2] = JSON.stringify(e);
		expect(verifyExport(`${[header, ...entries].join("\n")}\n`)).toMatchObject({
			ok: false,
			break: { seq: 3, reason: "link", found: GENESIS },
		});
	});
});

describe("persons as pseudonyms, and erasure", () => {
	it("stores actors and data.person(s) as pseudonyms a person can look up while their secret exists", async () => {
		const { db, log } = await seeded();
		await log.append("notice.sent", {
			tenantId: "acme",
			meetingId: "m1",
			data: { persons: ["acme:user1", "guest:g3"] },
		});
		const dump = JSON.stringify(db.prepare("SELECT * FROM events").all());
		expect(dump).not.toContain("acme:user");
		expect(dump).not.toContain("guest:g");
		const psn = await log.pseudonym("acme", "acme:user1");
		expect(psn).toMatch(PSEUDONYM_RE);
		expect(await log.resolvePseudonym("acme", psn as string)).toBe("acme:user1");
		expect(await log.pseudonym("globex", "acme:user1")).toBeNull(); // per tenant
		const mine = await log.listForPerson("acme", "acme:user1");
		expect(mine.length).toBe(6); // actor of i = 1, 5, 9, 13, 17, and named in notice.sent
		expect(mine.at(-1)?.data.persons).toEqual([psn, await log.pseudonym("acme", "guest:g3")]);
		const g3 = await log.pseudonym("acme", "guest:g3");
		expect((await log.listForPerson("acme", "guest:g3")).map((e) => e.data.person ?? e.data.persons)).toEqual([
			g3,
			[psn, g3],
		]);
		expect(await log.listForPerson("acme", "acme:nobody")).toEqual([]);
	});

	it("erasing a person makes their pseudonym unresolvable and keeps every chain and export valid", async () => {
		const file = tempFile();
		const { db, log, store } = await opened(file);
		await log.append("person.joined", {
			tenantId: "acme",
			meetingId: "m1",
			actor: "acme:alice",
			data: { peerId: "p1" },
		});
		await log.append("lobby.admitted", {
			tenantId: "acme",
			meetingId: "m1",
			actor: "acme:host",
			data: { person: "acme:alice" },
		});
		await log.append("person.left", { tenantId: "acme", meetingId: "m1", actor: "acme:alice" });
		const exported = await log.exportMeeting("acme", "m1");
		const psn = (await log.pseudonym("acme", "acme:alice")) as string;
		const secret = (
			db.prepare("SELECT secret FROM audit_person_secrets WHERE person_key = 'acme:alice'").get() as { secret: Buffer }
		).secret;

		const onDisk = () =>
			[file, `${file}-wal`].map((f) => {
				try {
					return readFileSync(f);
				} catch {
					return Buffer.alloc(0);
				}
			});
		expect(onDisk().some((b) => b.includes(secret))).toBe(true); // (so the check below means something)

		expect(await log.erasePerson("acme", "acme:alice", { actor: "acme:dpo", reason: "GDPR art. 17 request" })).toEqual({
			erased: true,
			pseudonym: psn,
		});
		expect(await log.pseudonym("acme", "acme:alice")).toBeNull();
		expect(await log.resolvePseudonym("acme", psn)).toBeNull();
		expect(await log.listForPerson("acme", "acme:alice")).toEqual([]);
		expect((await log.list({ tenantId: "acme", meetingId: "m1" })).map((e) => e.actor)).toContain(psn); // entries untouched
		expect((await log.list({ tenantId: "acme", type: "person.erased" }))[0]).toMatchObject({
			seq: 4,
			actor: await log.pseudonym("acme", "acme:dpo"),
			data: { pseudonym: psn, reason: "GDPR art. 17 request" },
		});
		expect(await log.verify()).toMatchObject([{ ok: true, entries: 4 }]);
		expect(verifyExport(exported).ok).toBe(true);
		expect(await log.erasePerson("acme", "acme:alice")).toEqual({ erased: false, pseudonym: null });
		// The secret's bytes are gone from the database file and its WAL.
		db.close();
		await store.close();
		expect(onDisk().some((b) => b.includes(secret))).toBe(false);
		// Appearing again, the same key gets a new, unrelated pseudonym.
		const { log: again } = await opened(file);
		expect((await again.append("person.joined", { tenantId: "acme", actor: "acme:alice" })).actor).not.toBe(psn);
		expect((await again.verify())[0]?.ok).toBe(true);
	});
});

describe("rows written before the chain existed", () => {
	it("join their tenant's chain once, in order and pseudonymized, when the gateway opens its EventLog", async () => {
		const file = tempFile();
		const v1 = new BetterSqlite3(file);
		v1.exec(`CREATE TABLE events (
			seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, tenant_id TEXT NOT NULL, meeting_id TEXT,
			type TEXT NOT NULL, actor TEXT, data TEXT NOT NULL);
			CREATE INDEX events_by_meeting ON events (meeting_id, seq);`);
		const ins = v1.prepare(
			"INSERT INTO events (at, tenant_id, meeting_id, type, actor, data) VALUES (?, ?, ?, ?, ?, ?)",
		);
		ins.run("2026-01-01T00:00:00.000Z", "acme", "m1", "meeting.scheduled", "acme:host", "{}");
		ins.run("2026-01-01T00:00:01.000Z", "globex", "g1", "meeting.scheduled", "globex:h", "{}");
		ins.run(
			"2026-01-01T00:00:02.000Z",
			"acme",
			"m1",
			"lobby.admitted",
			"acme:host",
			'{"peerId":"p","person":"guest:x"}',
		);
		ins.run("2026-01-01T00:00:03.000Z", "acme", null, "host.locked", null, "{ }");
		v1.pragma("user_version = 1");
		v1.close();

		const db = openDatabase(file); // runs migration 2
		expect(verifyDatabase(db)[0]).toMatchObject({ ok: false, break: { seq: 1, reason: "unchained" } });
		expect(db.prepare("SELECT tenant_id, seq, type FROM events ORDER BY tenant_id, seq").raw().all()).toEqual([
			["acme", 1, "meeting.scheduled"],
			["acme", 2, "lobby.admitted"],
			["acme", 3, "host.locked"],
			["globex", 1, "meeting.scheduled"],
		]);
		const { log } = await opened(file);
		const acme = await log.list({ tenantId: "acme" });
		expect(acme.map((e) => [e.seq, e.type])).toEqual([
			[1, "meeting.scheduled"],
			[2, "lobby.admitted"],
			[3, "host.locked"],
		]);
		expect(acme[0]?.actor).toBe(await log.pseudonym("acme", "acme:host"));
		expect(acme[1]?.data).toEqual({ peerId: "p", person: await log.pseudonym("acme", "guest:x") });
		expect(acme[1]?.meetingPrevHash).toBe(acme[0]?.hash);
		expect((await log.append("host.unlocked", { tenantId: "acme", actor: "acme:host" })).seq).toBe(4);
		expect((await log.verify()).map((r) => [r.tenantId, r.ok, r.entries])).toEqual([
			["acme", true, 4],
			["globex", true, 1],
		]);
		await opened(file); // a second start has nothing left to seal
		expect((await log.verify()).every((r) => r.ok)).toBe(true);
	});
});

import { afterEach, describe, expect, it } from "vitest";
import { ENGINES, openTestStore, postgresServer } from "../../test/helpers/stores.js";
import { Store } from "../store/Store.js";
import { EventLog } from "./EventLog.js";

const stores: Store[] = [];
afterEach(async () => {
	for (const s of stores.splice(0)) await s.close();
});

/**
 * The group commit on both engines (on PostgreSQL it is two round trips, values sent as escaped literals in simple
 * queries: AuditRepository.appendLocked): what goes in comes back byte for byte, several tenants share one commit,
 * an erased person gets a new pseudonym, and a bad append fails only its own caller.
 */
describe.each(ENGINES)("EventLog group commit (%s)", (engine) => {
	it("keeps awkward text, chains several tenants in one commit, re-pseudonymizes after an erasure", async () => {
		const store = await openTestStore(engine);
		stores.push(store);
		const log = await EventLog.open(store);
		const odd = [
			"it's",
			"back\\slash \\x00 E'\\''",
			"ünïcödé ✓ 🎥",
			"line\nbreak\ttab",
			"$$ dollar $q$ ; COMMIT;",
			"--",
		];
		const commits0 = log.commits;
		const appended = await Promise.all([
			...odd.map((s, i) =>
				log.append("gate.opened", {
					tenantId: i % 2 ? "t'b" : "ta",
					meetingId: `m'${i % 3}`,
					actor: `ta:${s}`,
					data: { text: s, person: `ta:${s}`, n: i },
				}),
			),
			log.append("operator.action", { tenantId: "tc", data: { action: "x" } }),
		]);
		expect(log.commits - commits0).toBe(1); // one turn of the event loop: one commit for all three tenants
		for (const [i, s] of odd.entries()) {
			const e = appended[i];
			expect(e?.data.text).toBe(s);
			expect(e?.actor).toMatch(/^psn_[0-9a-f]{64}$/);
			expect(e?.data.person).toBe(e?.actor);
		}
		const listed = await log.list({ tenantId: "ta" });
		expect(listed.map((e) => e.data.text)).toEqual(odd.filter((_, i) => i % 2 === 0));
		expect(listed.map((e) => e.hash)).toEqual(appended.filter((e) => e.tenantId === "ta").map((e) => e.hash));
		for (const v of await log.verify()) expect(v.ok).toBe(true);

		const before = await log.pseudonym("ta", `ta:${odd[0]}`);
		expect(await log.erasePerson("ta", `ta:${odd[0]}`)).toMatchObject({ erased: true, pseudonym: before });
		const again = await log.append("gate.closed", { tenantId: "ta", meetingId: "m'0", actor: `ta:${odd[0]}` });
		expect(again.actor).toMatch(/^psn_/);
		expect(again.actor).not.toBe(before);

		// A bad append (data that is not JSON) fails alone; the others of its turn land.
		const results = await Promise.allSettled([
			log.append("gate.opened", { tenantId: "ta", meetingId: "m'1", data: { ok: 1 } }),
			log.append("gate.opened", { tenantId: "ta", data: { bad: 1n as unknown as number } }),
			log.append("gate.opened", { tenantId: "tc", data: { ok: 2 } }),
		]);
		expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
		for (const v of await log.verify()) expect(v.ok).toBe(true);
	});
});

/**
 * PostgreSQL builds a batch before taking the tenant's lock, with the pseudonyms its process last saw (or read
 * without the lock), and checks them under it: two gateway nodes (two stores on one database) must never write an
 * erased person's old pseudonym, nor two pseudonyms for one person.
 */
describe("EventLog group commit across nodes: pseudonyms made before the lock (postgres)", () => {
	const twoNodes = async (): Promise<[EventLog, EventLog, EventLog]> => {
		const url = await (await postgresServer()).createDatabase(`gc_${process.pid}_${Date.now()}`);
		const [a, b] = [await Store.open({ url }), await Store.open({ url })];
		stores.push(a, b);
		const logA = await EventLog.open(a);
		return [logA, await EventLog.open(b), logA];
	};

	it("an erasure on another node: the next entry gets a new pseudonym, also when it waits for the lock", async () => {
		const [a, b] = await twoNodes();
		const first = await a.append("person.joined", { tenantId: "t", meetingId: "m", actor: "t:alice" });
		// Node B erases alice: node A still remembers her old pseudonym.
		expect(await b.erasePerson("t", "t:alice")).toMatchObject({ erased: true, pseudonym: first.actor });
		const second = await a.append("person.joined", { tenantId: "t", meetingId: "m", actor: "t:alice" });
		expect(second.actor).toMatch(/^psn_/);
		expect(second.actor).not.toBe(first.actor);
		expect(await b.pseudonym("t", "t:alice")).toBe(second.actor);

		// Node A builds its batch (alice's pseudonym as it knows it) while node B's erasure holds the tenant's lock;
		// the batch commits after the erasure: alice's entry must not carry the erased pseudonym.
		let during: Promise<unknown> | undefined;
		await b.erasePerson("t", "t:alice", undefined, {
			run: async () => {
				during = Promise.all([
					a.append("gate.opened", { tenantId: "t", meetingId: "m", actor: "t:alice", data: { person: "t:bob" } }),
					a.append("gate.opened", { tenantId: "t", meetingId: "m", actor: "t:bob" }),
				]);
				await new Promise((r) => setTimeout(r, 300)); // A's batch is built and waits for the lock
			},
		});
		const [onAlice, onBob] = (await during) as [{ actor: string; data: { person: string } }, { actor: string }];
		expect(onAlice.actor).not.toBe(second.actor);
		expect(onAlice.actor).toBe(await b.pseudonym("t", "t:alice"));
		expect(onAlice.data.person).toBe(onBob.actor);
		const erased = (await b.list({ tenantId: "t", type: "person.erased" })).map((e) => e.data.pseudonym);
		expect(erased).toEqual([first.actor, second.actor]);
		// No entry after an erasure names the pseudonym it erased.
		const all = await a.list({ tenantId: "t" });
		for (const e of all.filter((x) => x.type === "person.erased")) {
			expect(all.filter((x) => x.seq > e.seq).some((x) => x.actor === e.data.pseudonym)).toBe(false);
		}
		for (const v of await a.verify()) expect(v.ok).toBe(true);
	});

	it("a person first seen on two nodes at once gets one pseudonym", async () => {
		const [a, b] = await twoNodes();
		const made = await Promise.all(
			Array.from({ length: 6 }, (_, i) =>
				(i % 2 ? a : b).append("person.joined", { tenantId: "t", meetingId: "m", actor: "t:carol", data: { i } }),
			),
		);
		expect(new Set(made.map((e) => e.actor)).size).toBe(1);
		expect(made[0]?.actor).toBe(await a.pseudonym("t", "t:carol"));
		for (const v of await b.verify()) expect(v.ok).toBe(true);
	});
});

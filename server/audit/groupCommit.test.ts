import { afterEach, describe, expect, it } from "vitest";
import { ENGINES, openTestStore } from "../../test/helpers/stores.js";
import type { Store } from "../store/Store.js";
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

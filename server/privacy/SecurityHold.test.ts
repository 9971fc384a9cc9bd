import { describe, expect, it } from "vitest";
import { ENGINES, openTestStore } from "../../test/helpers/stores.js";
import { EventLog } from "../audit/EventLog.js";
import { RetentionRepository } from "../store/RetentionRepository.js";
import { GATEWAY_CHAIN, SecurityHold } from "./SecurityHold.js";

/** The security hold and its audit entry are one transaction (issue 14 faults): never one without the other. */
describe.each(ENGINES)("the security hold on %s", (engine) => {
	it("sets and lifts with its entry; a failure midway leaves neither", async () => {
		const store = await openTestStore(engine);
		try {
			const events = await EventLog.open(store);
			const repo = new RetentionRepository(store);
			const hold = new SecurityHold({ repo, events });
			const until = new Date(Date.now() + 86_400_000).toISOString();
			const actions = async () => (await events.list({ tenantId: GATEWAY_CHAIN })).map((e) => e.data.action as string);

			// A failure after the hold's row is written, before the commit: rolled back, no entry either.
			const row = { id: "h0", reason: "r", set_by: "op", set_at: new Date().toISOString(), until };
			await expect(
				events.appendWith([GATEWAY_CHAIN], async (trx) => {
					await repo.setHold({ ...row, ended_at: null, ended_by: null }, trx);
					throw new Error("crash before the commit");
				}),
			).rejects.toThrow("crash");
			// An entry of a chain whose lock was not taken is refused, with the rows.
			await expect(
				events.appendWith([GATEWAY_CHAIN], async (trx) => {
					await repo.setHold({ ...row, ended_at: null, ended_by: null }, trx);
					return { result: 0, entries: [{ type: "operator.action", tenantId: "acme", data: {} }] };
				}),
			).rejects.toThrow(/not among the locked/);
			expect(await hold.current()).toBeNull();
			expect(await actions()).toEqual([]);

			const set = await hold.set("op", { reason: "incident", until });
			expect((await hold.current())?.id).toBe(set.id);
			expect(await hold.lift("op", "over")).toEqual({ changed: true });
			expect(await hold.lift("op", "again")).toEqual({ changed: false });
			expect(await actions()).toEqual(["security_hold.set", "security_hold.lift"]);
			expect((await events.verify({ tenantId: GATEWAY_CHAIN }))[0]?.ok).toBe(true);
		} finally {
			await store.close();
		}
	});
});

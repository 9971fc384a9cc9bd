import { describe, expect, it } from "vitest";
import { ENGINES, openTestStore } from "../../test/helpers/stores.js";
import { HostSeats } from "./HostSeats.js";

describe.each(ENGINES)("HostSeats on %s", (engine) => {
	it("gives one connection the seat, refuses others, and lets a new device take it over", async () => {
		const store = await openTestStore(engine);
		const seats = new HostSeats(store);
		expect(await seats.claim("acme", "alice", "gw1:a", "m1")).toBeUndefined();
		expect(await seats.claim("acme", "alice", "gw1:a", "m1")).toBeUndefined(); // idempotent for the holder
		expect(await seats.claim("acme", "alice", "gw2:b", "m2")).toMatchObject({ connectionId: "gw1:a", meetingId: "m1" });
		expect(await seats.claim("acme", "bob", "gw2:b", "m2")).toBeUndefined(); // another host, another seat
		expect(await seats.claim("globex", "alice", "gw2:c", "m3")).toBeUndefined(); // same sub, other tenant
		expect(await seats.takeOver("acme", "alice", "gw2:d", "m1")).toMatchObject({ connectionId: "gw1:a" });
		expect((await seats.holder("acme", "alice"))?.connectionId).toBe("gw2:d");
		expect(await seats.release("acme", "alice", "gw1:a")).toBe(false); // the old device can't release the new seat
		expect(await seats.release("acme", "alice", "gw2:d")).toBe(true);
		expect(await seats.holder("acme", "alice")).toBeUndefined();
		expect(await seats.takeOver("acme", "alice", "gw2:e", "m1")).toBeUndefined(); // a free seat: taken
		await store.close();
	});

	it("releases the seats a previous run of one gateway left, and only those", async () => {
		const store = await openTestStore(engine);
		const seats = new HostSeats(store);
		await seats.claim("acme", "a", "gw_1:x", "m1");
		await seats.claim("acme", "b", "gw_1:y", "m2");
		await seats.claim("acme", "c", "gwX1:z", "m3"); // `_` must not act as a LIKE wildcard
		await seats.claim("acme", "d", "GW_1:w", "m4"); // nor case be ignored
		expect(await seats.releaseAllOf("gw_1")).toBe(2);
		expect((await seats.holder("acme", "c"))?.connectionId).toBe("gwX1:z");
		expect((await seats.holder("acme", "d"))?.connectionId).toBe("GW_1:w");
		await store.close();
	});

	it("concurrent take-overs each report exactly the holder they replaced: one chain of hand-overs", async () => {
		const store = await openTestStore(engine);
		const seats = new HostSeats(store);
		await seats.claim("acme", "alice", "c0", "m1");
		const previous = await Promise.all(
			Array.from({ length: 20 }, (_, i) => seats.takeOver("acme", "alice", `c${i + 1}`, "m1")),
		);
		// Every connection is replaced at most once, and exactly one (the final holder) never is.
		const replaced = previous.map((p) => p?.connectionId);
		expect(new Set(replaced).size).toBe(20);
		const final = (await seats.holder("acme", "alice"))?.connectionId;
		expect(replaced).not.toContain(final);
		await store.close();
	});
});

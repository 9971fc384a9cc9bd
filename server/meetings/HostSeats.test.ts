import { describe, expect, it } from "vitest";
import { openDatabase } from "../store/Database.js";
import { HostSeats } from "./HostSeats.js";

describe("HostSeats", () => {
	it("gives one connection the seat, refuses others, and lets a new device take it over", () => {
		const seats = new HostSeats(openDatabase(":memory:"));
		expect(seats.claim("acme", "alice", "gw1:a", "m1")).toBeUndefined();
		expect(seats.claim("acme", "alice", "gw1:a", "m1")).toBeUndefined(); // idempotent for the holder
		expect(seats.claim("acme", "alice", "gw2:b", "m2")).toMatchObject({ connectionId: "gw1:a", meetingId: "m1" });
		expect(seats.claim("acme", "bob", "gw2:b", "m2")).toBeUndefined(); // another host, another seat
		expect(seats.claim("globex", "alice", "gw2:c", "m3")).toBeUndefined(); // same sub, other tenant
		expect(seats.takeOver("acme", "alice", "gw2:d", "m1")).toMatchObject({ connectionId: "gw1:a" });
		expect(seats.holder("acme", "alice")?.connectionId).toBe("gw2:d");
		expect(seats.release("acme", "alice", "gw1:a")).toBe(false); // the old device can't release the new seat
		expect(seats.release("acme", "alice", "gw2:d")).toBe(true);
		expect(seats.holder("acme", "alice")).toBeUndefined();
	});

	it("releases the seats a previous run of one gateway left, and only those", () => {
		const seats = new HostSeats(openDatabase(":memory:"));
		seats.claim("acme", "a", "gw_1:x", "m1");
		seats.claim("acme", "b", "gw_1:y", "m2");
		seats.claim("acme", "c", "gwX1:z", "m3"); // `_` must not act as a LIKE wildcard
		expect(seats.releaseAllOf("gw_1")).toBe(2);
		expect(seats.holder("acme", "c")?.connectionId).toBe("gwX1:z");
	});
});

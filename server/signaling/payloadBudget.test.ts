import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../config.js";
import { AddressLimits, addressKey } from "./AddressLimits.js";
import { overBudget } from "./payloadBudget.js";

describe("overBudget", () => {
	it("passes real request bodies and refuses wide, deep, huge or binary ones early", () => {
		const codec = { kind: "video", mimeType: "video/VP8", clockRate: 90000, rtcpFeedback: [{ type: "nack" }] };
		expect(overBudget({ rtpCapabilities: { codecs: Array.from({ length: 60 }, () => codec) } })).toBeUndefined();
		expect(overBudget({ p: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])) })).toMatch(
			/more than 64 keys/,
		);
		let deep: unknown = 1;
		for (let i = 0; i < 11; i++) deep = [deep];
		expect(overBudget(deep)).toMatch(/deeper than 10/);
		expect(overBudget({ a: Array.from({ length: 5000 }, () => 0) })).toMatch(/more than 4000 values/);
		expect(overBudget({ a: { b: Buffer.from("x") } })).toMatch(/binary/);
		expect(overBudget({ a: new Uint8Array(2).buffer })).toMatch(/binary/);
		expect(overBudget({ a: new Date() })).toMatch(/not JSON/);
	});
});

describe("addressKey", () => {
	it("unwraps IPv4-mapped addresses and groups IPv6 by /64", () => {
		expect(addressKey("::ffff:203.0.113.7")).toBe("203.0.113.7");
		expect(addressKey("203.0.113.7")).toBe("203.0.113.7");
		expect(addressKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
		expect(addressKey("2001:db8:1:2:bbbb::9")).toBe("2001:db8:1:2::/64");
		expect(addressKey(undefined)).toBe("unknown");
	});
});

describe("AddressLimits", () => {
	it("shares budgets among an address's sockets, caps guests, and cools an overrunning address down, longer each time", () => {
		let now = 0;
		const limits = new AddressLimits(
			{
				...DEFAULT_LIMITS,
				maxConnectionsPerAddress: 3,
				maxGuestConnectionsPerAddress: 2,
				maxGuestConnections: 3,
				bytesPerAddressPerSecond: 64 * 1024,
			},
			() => now,
		);
		for (let i = 0; i < 3; i++) {
			expect(limits.mayConnect("a")).toBeUndefined();
			limits.opened("a");
		}
		expect(limits.mayConnect("a")).toBe("too_many_connections");
		expect(limits.mayConnect("b")).toBeUndefined();
		expect([limits.addGuest("a"), limits.addGuest("a"), limits.addGuest("a")]).toEqual([
			undefined,
			undefined,
			"too_many_guests",
		]);
		expect([limits.addGuest("b"), limits.addGuest("c")]).toEqual([undefined, "guests_full"]);
		limits.removeGuest("a");
		expect(limits.addGuest("c")).toBeUndefined();

		// The byte burst is 128 KiB (two of the largest messages); past it, 10 s of cool-down, then 20 s, then 40 s.
		expect(limits.takeBytes("x", 128 * 1024)).toBe(true);
		expect(limits.takeBytes("x", 1)).toBe(false);
		expect(limits.coolingDown("x")).toBe(true);
		expect(limits.mayConnect("x")).toBe("cooling_down");
		now += 10_001;
		expect(limits.mayConnect("x")).toBeUndefined();
		expect(limits.takeBytes("x", 200 * 1024)).toBe(false);
		now += 19_000;
		expect(limits.coolingDown("x")).toBe(true);
		now += 1_001;
		expect(limits.coolingDown("x")).toBe(false);
		expect(limits.takeBytes("x", 200 * 1024)).toBe(false);
		now += 39_000;
		expect(limits.coolingDown("x")).toBe(true);
		now += 1_001;
		expect(limits.coolingDown("x")).toBe(false);
	});
});

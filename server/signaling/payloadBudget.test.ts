import { describe, expect, it } from "vitest";
import { addressKey } from "./AddressLimits.js";
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

import { describe, expect, it } from "vitest";
import { RateLimiter } from "./RateLimiter.js";

describe("RateLimiter", () => {
	it("allows a burst of `capacity`, then refills at the given rate", () => {
		let now = 0;
		const rl = new RateLimiter(3, 2, () => now);
		expect([rl.take(), rl.take(), rl.take(), rl.take()]).toEqual([true, true, true, false]);
		now += 500; // one token back at 2/s
		expect([rl.take(), rl.take()]).toEqual([true, false]);
		now += 10_000; // never above capacity
		expect([rl.take(), rl.take(), rl.take(), rl.take()]).toEqual([true, true, true, false]);
	});
});

import { describe, expect, it } from "vitest";
import { ENGINES, openTestStore } from "../../test/helpers/stores.js";
import { BackoffError, PasscodeGuard, PasscodeLockedError } from "./PasscodeGuard.js";

describe.each(ENGINES)("PasscodeGuard on %s", (engine) => {
	it("counts before the check, backs an address off, and locks the meeting once, however many guess at once", async () => {
		const store = await openTestStore(engine);
		let now = 1_000_000;
		const guard = new PasscodeGuard(store, { lockoutAfter: 10, freePerAddress: 2, backoffMs: 1000 }, () => now);
		// One address: two free failures, then it must wait.
		await guard.reserve("m1", "a");
		await guard.failed("m1");
		await guard.reserve("m1", "a");
		await guard.failed("m1");
		const backoff = await guard.reserve("m1", "a").catch((e: unknown) => e);
		expect(backoff).toBeInstanceOf(BackoffError);
		now += 2_000;
		await guard.reserve("m1", "a"); // waited long enough
		// A right passcode takes its count back and the address starts afresh.
		await guard.succeeded("m1", "a");
		expect(await guard.status("m1")).toEqual({ locked: false, failures: 2 });
		// 40 guesses at once from 40 addresses: exactly 8 more are let through to the check (10 in all), the 11th
		// tips the lockout over (once), every other is refused.
		const results = await Promise.all(
			Array.from({ length: 40 }, (_, i) =>
				guard.reserve("m1", `x${i}`).then(
					() => "checked",
					(e: unknown) => (e instanceof PasscodeLockedError ? (e.lockedNow ? "lockedNow" : "locked") : String(e)),
				),
			),
		);
		expect(results.filter((r) => r === "checked")).toHaveLength(8);
		expect(results.filter((r) => r === "lockedNow")).toHaveLength(1);
		expect(results.filter((r) => r === "locked")).toHaveLength(31);
		const status = await guard.status("m1");
		expect(status).toMatchObject({ locked: true, failures: 10 });
		expect(await guard.lift("m1")).toBe(true);
		expect(await guard.status("m1")).toEqual({ locked: false, failures: 0 });
		await guard.reserve("m1", "y"); // open again
		await store.close();
	});
});

import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { PasscodeGuard } from "../meetings/PasscodeGuard.js";
import { Store } from "../store/Store.js";
import { AddressKey, truncateAddress } from "./addresses.js";

const DAY = 86_400_000;

function keyFile(): string {
	return path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-addrkey-")), "address-key.json");
}

describe("truncateAddress", () => {
	it("cuts IPv4 to /24 and IPv6 to /48, IPv4-mapped as IPv4", () => {
		expect(truncateAddress("203.0.113.77")).toBe("203.0.113.0/24");
		expect(truncateAddress("::ffff:198.51.100.9")).toBe("198.51.100.0/24");
		expect(truncateAddress("2001:db8:abcd:12:1:2:3:4")).toBe("2001:db8:abcd::/48");
		expect(truncateAddress("2001:db8::1")).toBe("2001:db8:0::/48");
		expect(truncateAddress("::1")).toBe("0:0:0::/48");
		expect(truncateAddress("fe80::1%eth0")).toBe("fe80:0:0::/48");
		expect(truncateAddress("::ffff:c000:280")).toBe("0:0:0::/48");
		expect(truncateAddress(undefined)).toBe("unknown");
		expect(truncateAddress("not an address")).toBe("unknown");
	});
});

describe("AddressKey: a keyed hash whose key rotates and is destroyed", () => {
	it("is stable within a period, changes at rotation, and keeps only the current key on disk", () => {
		let now = Date.UTC(2026, 11, 1);
		const file = keyFile();
		const k = new AddressKey({ file, periodDays: 7, now: () => now });
		const h1 = k.hash("203.0.113.7");
		expect(h1).toMatch(/^h_[0-9a-f]{32}$/);
		expect(k.hash("203.0.113.7")).toBe(h1);
		expect(k.hash("203.0.113.8")).not.toBe(h1);
		const first = readFileSync(file, "utf8");

		// Another gateway sharing the key file hashes alike.
		expect(new AddressKey({ file, periodDays: 7, now: () => now }).hash("203.0.113.7")).toBe(h1);

		now += 7 * DAY;
		const h2 = k.hash("203.0.113.7");
		expect(h2).not.toBe(h1);
		const second = readFileSync(file, "utf8");
		expect(second).not.toBe(first);
		const stored = JSON.parse(second) as { key: string; epoch: number };
		expect(first).not.toContain(stored.key);
		// Only the current key file remains (no leftover temp file or older key).
		expect(readdirSync(path.dirname(file))).toEqual(["address-key.json"]);
		// A gateway started now from the file hashes like the one that ratcheted in memory…
		expect(new AddressKey({ file, periodDays: 7, now: () => now }).hash("203.0.113.7")).toBe(h2);
		// …and no key it can read reproduces last period's hash, for any address of the /24.
		const fresh = new AddressKey({ file, periodDays: 7, now: () => now });
		for (let i = 0; i < 256; i++) expect(fresh.hash(`203.0.113.${i}`)).not.toBe(h1);
	});

	it("refuses a period longer than 14 days", () => {
		expect(() => new AddressKey({ file: keyFile(), periodDays: 15 })).toThrow(RangeError);
		expect(() => new AddressKey({ file: keyFile(), periodDays: 0 })).toThrow(RangeError);
	});
});

describe("PasscodeGuard with an address key", () => {
	it("stores no address in passcode_attempts, only its rotating hash", async () => {
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-addrdb-"));
		const store = await Store.open({ file: path.join(dir, "store.sqlite") });
		const file = path.join(dir, "address-key.json");
		const key = new AddressKey({ file, periodDays: 14 });
		const guard = new PasscodeGuard(store, {}, Date.now, key);
		await guard.reserve("mtg1", "203.0.113.7");
		await guard.reserve("mtg1", "2001:db8::5");
		const scopes = (await store.db.selectFrom("passcode_attempts").select("scope").execute()).map((r) => r.scope);
		expect(scopes.sort()).toEqual(
			[`addr:${key.hash("2001:db8::5")}`, `addr:${key.hash("203.0.113.7")}`, "meeting"].sort(),
		);
		expect(scopes.join(" ")).not.toMatch(/203\.0\.113|2001:db8/);
		expect(existsSync(file)).toBe(true);
		await store.close();
	});
});

import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors.js";
import { parseMasterKey, SecretBox, SecretBoxError } from "./secretBox.js";

const key = () => randomBytes(32);

describe("parseMasterKey", () => {
	it("refuses a missing, non-base64 or wrong-length key with a ConfigError naming the variable", () => {
		expect(() => parseMasterKey(undefined)).toThrow(ConfigError);
		expect(() => parseMasterKey(undefined)).toThrow(/CONSENTRY_MASTER_KEY is not set/);
		expect(() => parseMasterKey("  ")).toThrow(/not set/);
		expect(() => parseMasterKey(randomBytes(16).toString("base64"))).toThrow(/decodes to 16 bytes/);
		expect(() => parseMasterKey("not base64!!")).toThrow(/not base64/);
		const k = randomBytes(32);
		expect(parseMasterKey(`${k.toString("base64")}\n`).equals(k)).toBe(true);
	});
});

describe("SecretBox", () => {
	it("round-trips, with a fresh IV per seal (same plaintext → different blobs)", () => {
		const box = new SecretBox(key());
		const a = box.seal("hunter2", "ctx");
		const b = box.seal("hunter2", "ctx");
		expect(a.equals(b)).toBe(false);
		expect(a[0]).toBe(1); // version byte
		expect(a.includes(Buffer.from("hunter2"))).toBe(false);
		expect(box.open(a, "ctx").toString()).toBe("hunter2");
	});

	it("detects any flipped bit (tampering) and a blob moved to another context", () => {
		const box = new SecretBox(key());
		const sealed = box.seal("secret value", "storage_targets/t1");
		for (const i of [9, 20, 30, sealed.length - 1]) {
			const bad = Buffer.from(sealed);
			bad[i] = (bad[i] ?? 0) ^ 1;
			expect(() => box.open(bad, "storage_targets/t1")).toThrow(expect.objectContaining({ code: "secret_tampered" }));
		}
		expect(() => box.open(sealed, "storage_targets/t2")).toThrow(/altered, or copied from another record/);
	});

	it("says clearly when the master key is not the one that sealed the secret", () => {
		const sealed = new SecretBox(key()).seal("x", "c");
		const other = new SecretBox(key());
		expect(() => other.open(sealed, "c")).toThrow(SecretBoxError);
		expect(() => other.open(sealed, "c")).toThrow(/sealed under another master key/);
	});

	it("refuses an unknown format version", () => {
		const box = new SecretBox(key());
		const sealed = box.seal("x", "c");
		sealed[0] = 2;
		expect(() => box.open(sealed, "c")).toThrow(expect.objectContaining({ code: "secret_unknown_format" }));
		expect(() => box.open(Buffer.alloc(3), "c")).toThrow(expect.objectContaining({ code: "secret_unknown_format" }));
	});
});

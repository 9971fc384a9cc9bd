import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors.js";
import { openDatabase } from "./Database.js";

describe("openDatabase", () => {
	it("migrates once, and refuses a database written by a newer gateway instead of rewinding it", () => {
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-db-"));
		try {
			const file = path.join(dir, "store.sqlite");
			const db = openDatabase(file);
			const version = db.pragma("user_version", { simple: true }) as number;
			expect(version).toBeGreaterThan(0);
			db.close();
			const again = openDatabase(file); // idempotent
			expect(again.pragma("user_version", { simple: true })).toBe(version);
			again.pragma(`user_version = ${version + 5}`);
			again.close();
			expect(() => openDatabase(file)).toThrow(ConfigError);
			expect(() => openDatabase(file)).toThrow(/newer consentry/);
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}
	});
});

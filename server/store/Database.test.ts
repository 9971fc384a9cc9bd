import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
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

	it("creates the store file, its -wal and -shm owner-only (0600), and narrows an older 0644 file", () => {
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-db-"));
		const umask = process.umask(0o022); // the usual umask: SQLite alone would make these 0644
		try {
			const file = path.join(dir, "store.sqlite");
			const db = openDatabase(file);
			db.exec("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('203.0.113.9')"); // the WAL and its index in use
			const mode = (f: string) => statSync(f).mode & 0o777;
			for (const f of [file, `${file}-wal`, `${file}-shm`]) expect(mode(f), f).toBe(0o600);
			db.close();
			// A store an earlier version left world-readable is narrowed at the next open.
			const old = path.join(dir, "old.sqlite");
			writeFileSync(old, "");
			chmodSync(old, 0o644);
			openDatabase(old).close();
			expect(mode(old)).toBe(0o600);
		} finally {
			process.umask(umask);
			rmSync(dir, { recursive: true, force: true });
		}
	});
});

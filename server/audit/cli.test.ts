import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../store/Database.js";
import { Store } from "../store/Store.js";
import { EventLog } from "./EventLog.js";

const script = fileURLToPath(new URL("../../scripts/audit.ts", import.meta.url));

/** Runs `node --import tsx scripts/audit.ts …`: exit code and output. */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
	return new Promise((resolve) => {
		execFile(process.execPath, ["--import", "tsx", script, ...args], (err, stdout, stderr) => {
			resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
		});
	});
}

describe("scripts/audit.ts", () => {
	let dir: string;
	let db: string;
	beforeAll(async () => {
		dir = mkdtempSync(path.join(os.tmpdir(), "consentry-audit-cli-"));
		db = path.join(dir, "gateway.db");
		const store = await Store.open({ file: db });
		const log = await EventLog.open(store);
		for (let i = 0; i < 10; i++)
			await log.append("person.joined", {
				tenantId: i % 2 ? "acme" : "globex",
				meetingId: `m${i % 3}`,
				actor: `x:${i}`,
			});
		await store.close();
	});
	afterAll(() => rmSync(dir, { recursive: true, force: true }));

	it("verifies a database (exit 0), exports a meeting, verifies the export offline, prints a head", async () => {
		const ok = await cli("verify", "--db", db);
		expect(ok).toMatchObject({ code: 0 });
		expect(ok.stdout).toMatch(
			/^OK {6}tenant acme: 5 entries verified, last 5 [0-9a-f]{64}\nOK {6}tenant globex: 5 entries/,
		);
		const out = path.join(dir, "m1.jsonl");
		expect((await cli("export", "--db", db, "--tenant", "acme", "--meeting", "m1", "--out", out)).code).toBe(0);
		const exported = await cli("verify", "--jsonl", out);
		expect(exported).toMatchObject({ code: 0 });
		expect(exported.stdout).toContain("OK      export");
		const head = await cli("head", "--db", db, "--tenant", "acme");
		expect(head.stdout).toMatch(/^5:[0-9a-f]{64}\n$/);
		expect((await cli("verify", "--db", db, "--tenant", "acme", "--anchor", head.stdout.trim())).code).toBe(0);
		const json = await cli("verify", "--db", db, "--tenant", "acme", "--json");
		expect(JSON.parse(json.stdout)).toMatchObject([{ ok: true, tenantId: "acme", entries: 5 }]);

		// A tampered export: exit 1, naming the entry.
		const lines = readFileSync(out, "utf8").split("\n");
		lines[1] = (lines[1] as string).replace('"data":{}', '"data":{"x":1}');
		writeFileSync(out, lines.join("\n"));
		const bad = await cli("verify", "--jsonl", out);
		expect(bad.code).toBe(1);
		expect(bad.stdout).toMatch(/BROKEN {2}export .*: first broken link at entry \d+ \(hash\)/);
		expect(bad.stdout).toMatch(/expected: [0-9a-f]{64}\n\s+found: {4}[0-9a-f]{64}/);
	});

	it("exits 1 on a tampered database with the first broken link, 2 on bad usage", async () => {
		const tampered = path.join(dir, "tampered.db");
		const store = await Store.open({ file: tampered });
		const log = await EventLog.open(store);
		for (let i = 0; i < 6; i++) await log.append("gate.opened", { tenantId: "acme", data: { i } });
		await store.close();
		const t = openDatabase(tampered);
		t.exec("DROP TRIGGER events_no_update");
		t.exec(`UPDATE events SET data = '{"i":99}' WHERE seq = 4`);
		t.close();
		const res = await cli("verify", "--db", tampered, "--tenant", "acme");
		expect(res.code).toBe(1);
		expect(res.stdout).toContain("BROKEN  tenant acme: first broken link at entry 4 (hash) after 3 good entries");
		expect(res.stdout).toContain("entry 4 (gate.opened) does not match its hash: its content was altered");

		expect((await cli("verify")).code).toBe(2);
		expect((await cli("frobnicate")).stderr).toContain("usage:");
		expect((await cli("verify", "--db", path.join(dir, "missing.db"))).code).toBe(2);
		expect((await cli("verify", "--db", db, "--anchor", "nope")).code).toBe(2);
	});
});

import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { LogFiles } from "./LogFiles.js";

const DAY = 86_400_000;

describe("LogFiles (issue 14: the gateway's own log files)", () => {
	it("one pair of files per UTC day, security lines apart; deleted by age, never later than the window", () => {
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-logfiles-"));
		const clock = { t: Date.parse("2026-03-01T23:59:00Z") };
		const f = new LogFiles({ dir, retentionDays: 3, prefix: "consentry-gw1", sweepMs: 60_000, now: () => clock.t });
		f.write('{"msg":"request","client":"203.0.113.0/24"}\n');
		f.write('{"msg":"request refused","address":"203.0.113.7","security":true}\n');
		clock.t += 2 * 60_000; // past midnight: a new pair
		f.write('{"msg":"request","client":"203.0.113.0/24"}\n');
		expect(f.files()).toEqual([
			"consentry-gw1-2026-03-01.log",
			"consentry-gw1-2026-03-02.log",
			"consentry-gw1-security-2026-03-01.log",
			"consentry-gw1-security-2026-03-02.log",
		]);
		expect(readFileSync(path.join(dir, "consentry-gw1-security-2026-03-01.log"), "utf8")).toContain("203.0.113.7");
		expect(readFileSync(path.join(dir, "consentry-gw1-2026-03-01.log"), "utf8")).not.toContain("203.0.113.7");
		// Another process's file in the same directory, and a file that is not a log: swept, and left alone.
		writeFileSync(path.join(dir, "consentry-gw2-2026-03-01.log"), "{}\n");
		writeFileSync(path.join(dir, "notes.txt"), "keep");
		// Day 1 began 2026-03-01T00:00: its lines are 3 days old at 03-04T00:00; it goes one sweep before.
		clock.t = Date.parse("2026-03-04T00:00:00Z") - 2 * 60_000;
		expect(f.sweep()).toEqual([]);
		clock.t = Date.parse("2026-03-04T00:00:00Z") - 60_000;
		expect(f.sweep().sort()).toEqual([
			"consentry-gw1-2026-03-01.log",
			"consentry-gw1-security-2026-03-01.log",
			"consentry-gw2-2026-03-01.log",
		]);
		// A hold keeps the security files only; the open file deleted under the writer is reopened on the next line.
		f.setHold(clock.t + 10 * DAY);
		clock.t = Date.parse("2026-03-05T00:00:00Z");
		expect(f.sweep()).toEqual(["consentry-gw1-2026-03-02.log"]);
		f.write('{"msg":"request","client":"203.0.113.0/24"}\n');
		expect(f.files()).toContain("consentry-gw1-2026-03-05.log");
		f.setHold(null);
		expect(f.sweep()).toEqual(["consentry-gw1-security-2026-03-02.log"]);
		expect(readFileSync(path.join(dir, "notes.txt"), "utf8")).toBe("keep");
		f.close();
	});

	it("refuses a window over 14 days", () => {
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-logfiles-"));
		expect(() => new LogFiles({ dir, retentionDays: 15, prefix: "x" })).toThrow(/1 to 14 days/);
	});
});

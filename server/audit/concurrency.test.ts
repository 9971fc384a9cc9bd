import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { openDatabase } from "../store/Database.js";
import { EventLog } from "./EventLog.js";

const dirs: string[] = [];
afterEach(() => {
	for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("EventLog across processes", () => {
	it("4 processes appending at once to one file build one linear chain per tenant", async () => {
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-audit-race-"));
		dirs.push(dir);
		const file = path.join(dir, "race.db");
		const log = new EventLog(openDatabase(file)); // migrated before the race
		const perWorker = 300;
		const startAt = Date.now() + 2500; // after the children's start-up
		const workers = ["w0", "w1", "w2", "w3"];
		const results = await Promise.all(
			workers.map((w) =>
				promisify(execFile)(process.execPath, [
					"--import",
					"tsx",
					fileURLToPath(new URL("./appendRace.child.ts", import.meta.url)),
					file,
					w,
					String(perWorker),
					String(startAt),
				]).then(({ stdout }) => JSON.parse(stdout) as { appended: number }),
			),
		);
		expect(results.map((r) => r.appended)).toEqual(workers.map(() => perWorker));

		const verified = log.verify();
		expect(verified.map((r) => [r.tenantId, r.ok, r.break])).toEqual([
			["acme", true, undefined],
			["globex", true, undefined],
		]);
		const acme = log.list({ tenantId: "acme", limit: 100_000 });
		const globex = log.list({ tenantId: "globex", limit: 100_000 });
		expect(acme.length + globex.length).toBe(4 * perWorker);
		expect(globex.length).toBe(4 * (perWorker / 4));
		// One linear chain: positions 1..n, each linking to the one before, no fork.
		expect(acme.map((e) => e.seq)).toEqual(acme.map((_, i) => i + 1));
		// Every worker's entries appear in the order it wrote them, interleaved with the others'.
		for (const w of workers) {
			const mine = acme.filter((e) => e.data.worker === w).map((e) => e.data.i as number);
			expect(mine).toEqual([...mine].sort((a, b) => a - b));
		}
		let switches = 0;
		for (let i = 1; i < acme.length; i++) if (acme[i]?.data.worker !== acme[i - 1]?.data.worker) switches++;
		expect(switches).toBeGreaterThan(workers.length); // they really raced (one after the other would be 3)
	});
});

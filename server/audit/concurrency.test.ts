import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { ENGINES, postgresServer } from "../../test/helpers/stores.js";
import { Store } from "../store/Store.js";
import { EventLog } from "./EventLog.js";

const dirs: string[] = [];
afterEach(() => {
	for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Where the processes meet: a SQLite file, or a fresh PostgreSQL database. */
async function shared(engine: (typeof ENGINES)[number]): Promise<string> {
	if (engine === "postgres") return (await postgresServer()).createDatabase(`race_${process.pid}_${Date.now()}`);
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-audit-race-"));
	dirs.push(dir);
	return path.join(dir, "race.db");
}

describe.each(ENGINES)("EventLog across processes (%s)", (engine) => {
	it("3 processes appending at once build one linear chain per tenant: one order, no fork", async () => {
		const where = await shared(engine);
		const store = await Store.open(engine === "postgres" ? { url: where } : { file: where }); // migrated first
		const log = await EventLog.open(store);
		const perWorker = 150;
		const startAt = Date.now() + 3000; // after the children's start-up
		const workers = ["w0", "w1", "w2"];
		const results = await Promise.all(
			workers.map((w, k) =>
				promisify(execFile)(process.execPath, [
					"--import",
					"tsx",
					fileURLToPath(new URL("./appendRace.child.ts", import.meta.url)),
					where,
					w,
					String(perWorker),
					String(startAt),
					"10",
					// One awaits each append; the others keep 8 in flight (group commits racing single appends).
					k === 0 ? "1" : "8",
				]).then(({ stdout }) => JSON.parse(stdout) as { appended: number; commits: number }),
			),
		);
		expect(results.map((r) => r.appended)).toEqual(workers.map(() => perWorker));
		expect(results[1]?.commits).toBeLessThan(perWorker); // the appends in flight shared commits

		const verified = await log.verify();
		expect(verified.map((r) => [r.tenantId, r.ok, r.break])).toEqual([
			["acme", true, undefined],
			["globex", true, undefined],
		]);
		const acme = await log.list({ tenantId: "acme", limit: 100_000 });
		const globex = await log.list({ tenantId: "globex", limit: 100_000 });
		expect(acme.length + globex.length).toBe(3 * perWorker);
		// One linear chain: positions 1..n, each linking to the one before, no fork.
		expect(acme.map((e) => e.seq)).toEqual(acme.map((_, i) => i + 1));
		for (let i = 1; i < acme.length; i++) expect(acme[i]?.prevHash).toBe(acme[i - 1]?.hash);
		// The worker that awaited each append sees its entries in the order it wrote them.
		const mine = acme.filter((e) => e.data.worker === "w0").map((e) => e.data.i as number);
		expect(mine).toEqual([...mine].sort((a, b) => a - b));
		let switches = 0;
		for (let i = 1; i < acme.length; i++) if (acme[i]?.data.worker !== acme[i - 1]?.data.worker) switches++;
		// All three wrote into the one chain (they usually interleave dozens of times; a starved process on a busy
		// machine may run nearly alone: the invariants above hold either way).
		expect(switches).toBeGreaterThanOrEqual(workers.length - 1);
		await store.close();
	}, 60_000);
});

import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ENGINES, postgresServer } from "../../test/helpers/stores.js";
import { TenantRegistry } from "../auth/TenantRegistry.js";
import { createLogger } from "../logger.js";
import { type Engine, Store } from "../store/Store.js";
import { type Change, TenantDirectory } from "./TenantDirectory.js";

const log = createLogger("silent");
const tenant = (id: string) => ({ id, name: id, keys: [{ alg: "HS256" as const, secret: "s".repeat(32) }] });

/** Two stores on one database, as two gateway processes have. */
async function twoStores(engine: Engine): Promise<[Store, Store]> {
	if (engine === "sqlite") {
		const file = path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-dir-")), "s.sqlite");
		return [await Store.open({ file }), await Store.open({ file })];
	}
	const url = await (await postgresServer()).createDatabase(`dir_${process.pid}`);
	return [await Store.open({ url }), await Store.open({ url })];
}

/**
 * The tenants and blocks every process keeps, on both engines: the file seeds the store once (the store wins
 * afterwards), a change published by one process reaches another's copy within a poll, and its listeners hear it once.
 */
describe.each(ENGINES)("TenantDirectory on %s", (engine) => {
	it("seeds once, propagates changes and blocks to another process within a poll, and tells listeners once", async () => {
		const [s1, s2] = await twoStores(engine);
		const d1 = await TenantDirectory.open({
			store: s1,
			registry: new TenantRegistry(),
			log,
			pollMs: 50,
			seed: [tenant("acme")],
		});
		const d2 = await TenantDirectory.open({
			store: s2,
			registry: new TenantRegistry(),
			log,
			pollMs: 50,
			seed: [{ ...tenant("acme"), name: "stale file" }, tenant("globex")],
		});
		try {
			expect(d2.registry.get("acme").name).toBe("acme"); // the store won over the file
			expect(d2.registry.ids().sort()).toEqual(["acme", "globex"]);
			const heard: Change[] = [];
			d2.on("change", (c) => heard.push(c));

			const at = new Date().toISOString();
			expect(await d1.tenants.setState("acme", "suspended", "unpaid", at)).toBe(true);
			expect(await d1.tenants.setState("acme", "suspended", "unpaid", at)).toBe(false); // idempotent
			const t0 = performance.now();
			await d1.publish("tenant", { tenantId: "acme" }, { reason: "unpaid" });
			expect(d1.registry.state("acme").state).toBe("suspended"); // the publisher applies it at once
			while (d2.registry.state("acme").state !== "suspended") await new Promise((r) => setTimeout(r, 5));
			expect(performance.now() - t0).toBeLessThan(1000);
			expect(d2.cutOff({ tenantId: "acme", subject: "a", role: "host" })).toBe("account_suspended");
			await new Promise((r) => setTimeout(r, 120));
			expect(heard.map((c) => [c.kind, c.tenantId, c.data.reason])).toEqual([["tenant", "acme", "unpaid"]]);

			// People, tokens and cutoffs.
			expect(
				await d1.access.blockSubject({ tenant_id: "globex", subject: "eve", state: "suspended", reason: "r", at }),
			).toBe(true);
			expect(
				await d1.access.blockSubject({ tenant_id: "globex", subject: "eve", state: "suspended", reason: "r", at }),
			).toBe(false);
			expect(await d1.access.revokeToken("globex", "j1", Date.now() + 60_000, at)).toBe(true);
			expect(await d1.access.setCutoff("globex", "bob", 2000, at)).toBe(true);
			expect(await d1.access.setCutoff("globex", "bob", 1000, at)).toBe(false); // never moves earlier
			await d1.publish("subject", { tenantId: "globex", subject: "eve" });
			while (heard.length < 2) await new Promise((r) => setTimeout(r, 5));
			expect(d2.cutOff({ tenantId: "globex", subject: "eve", role: "participant" })).toBe("account_suspended");
			expect(d2.cutOff({ tenantId: "globex", subject: "dan", role: "participant", jti: "j1" })).toBe("token_revoked");
			expect(d2.cutOff({ tenantId: "globex", subject: "bob", role: "participant", issuedAt: 1999 })).toBe(
				"token_revoked",
			);
			expect(d2.cutOff({ tenantId: "globex", subject: "bob", role: "participant" })).toBe("token_revoked");
			expect(d2.cutOff({ tenantId: "globex", subject: "bob", role: "participant", issuedAt: 2000 })).toBeUndefined();
			expect(
				await d1.access.blockSubject({ tenant_id: "globex", subject: "eve", state: "terminated", reason: "r", at }),
			).toBe(true);
			expect(await d1.access.unblockSubject("globex", "eve")).toBe(false); // a termination is final

			// Restart hygiene: presence of a previous run, unless another process holds the meeting too.
			for (const id of ["m1", "m2"]) {
				await s1.db
					.insertInto("meetings")
					.values({
						id,
						tenant_id: "globex",
						host_subject: id,
						title: "x",
						scheduled_for: null,
						settings: "{}",
						passcode_hash: null,
						state: "live",
						created_at: at,
						started_at: at,
						ended_at: null,
					})
					.execute();
				await d1.changes.present(id, "gw-1", at);
			}
			await d1.changes.present("m2", "gw-2", at);
			expect(await d1.changes.orphanedBy("gw-1")).toEqual(["m1"]);
			expect(await d1.changes.orphanedBy("gw-1")).toEqual([]);

			// A deleted tenant stays deleted, whatever the tenants file (the seed) still says; the API may reuse the ID.
			expect(await d1.tenants.delete("globex", "contract ended", at)).toBe(true);
			const d3 = await TenantDirectory.open({
				store: s2,
				registry: new TenantRegistry(),
				log,
				seed: [tenant("globex")],
			});
			d3.close();
			expect(d3.registry.has("globex")).toBe(false);
			const row = {
				id: "globex",
				config: JSON.stringify({ name: "g2", keys: tenant("g").keys }),
				state: "active" as const,
				reason: null,
				created_at: at,
				updated_at: at,
			};
			expect(await d1.tenants.insert(row)).toBe(false);
			expect(await d1.tenants.insert(row, true)).toBe(true);
			expect(await d1.tenants.insert(row, true)).toBe(false);
		} finally {
			d1.close();
			d2.close();
			await s1.close();
			await s2.close();
		}
	});
});

import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { ENGINES, openTestStore, postgresServer } from "../../test/helpers/stores.js";
import { ConflictError } from "../errors.js";
import { Store } from "../store/Store.js";
import { MeetingStore } from "./MeetingStore.js";
import { MeetingSettingsSchema } from "./MeetingTypes.js";
import { formatMeetingId, newMeetingId, parseMeetingId } from "./meetingId.js";

const settings = MeetingSettingsSchema.parse({});
const dirs: string[] = [];
afterEach(() => {
	for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("meeting IDs", () => {
	it("are 12 base32 characters, typed back in any human form", () => {
		const ids = new Set(Array.from({ length: 1000 }, newMeetingId));
		expect(ids.size).toBe(1000);
		const id = [...ids][0] as string;
		expect(id).toMatch(/^[0-9a-hjkmnp-tv-z]{12}$/);
		expect(parseMeetingId(formatMeetingId(id).toUpperCase())).toBe(id);
		expect(parseMeetingId("abcd efgh jkmn")).toBe("abcdefghjkmn");
		expect(parseMeetingId("O0Il-1111-1111")).toBe("001111111111");
		expect(parseMeetingId("short")).toBeUndefined();
		expect(parseMeetingId("uuuu-uuuu-uuuu")).toBeUndefined();
	});
});

describe.each(ENGINES)("MeetingStore on %s", (engine) => {
	it("schedules, starts, ends and restarts; a passcode is checked, never stored in clear", async () => {
		const db = await openTestStore(engine);
		const store = new MeetingStore(db);
		const m = await store.create({
			tenantId: "acme",
			hostSubject: "alice",
			title: "Standup",
			passcode: "s3cret!",
			settings,
		});
		expect(m).toMatchObject({ state: "scheduled", hasPasscode: true, locked: false });
		expect(JSON.stringify(await db.db.selectFrom("meetings").selectAll().execute())).not.toContain("s3cret!");
		expect(await store.checkPasscode(m.id, "s3cret!")).toBe(true);
		expect(await store.checkPasscode(m.id, "wrong")).toBe(false);
		expect(await store.checkPasscode(m.id, undefined)).toBe(false);
		expect((await store.start(m.id)).state).toBe("live");
		expect(await store.end(m.id)).toBe(true);
		expect(await store.end(m.id)).toBe(false);
		expect((await store.start(m.id)).state).toBe("live");
		await store.setLocked(m.id, true);
		expect((await store.get(m.id)).locked).toBe(true);
		await store.markRemoved(m.id, "acme:bob");
		await store.markRemoved(m.id, "acme:bob"); // idempotent
		expect(await store.isRemoved(m.id, "acme:bob")).toBe(true);
		expect(await store.isRemoved(m.id, "acme:carol")).toBe(false);
		expect((await store.listByHost("acme", "alice")).map((x) => x.id)).toEqual([m.id]);
		await db.close();
	});

	it("refuses a second live meeting for the same host, naming the live one", async () => {
		const db = await openTestStore(engine);
		const store = new MeetingStore(db);
		const a = await store.create({ tenantId: "acme", hostSubject: "alice", title: "A", settings });
		const b = await store.create({ tenantId: "acme", hostSubject: "alice", title: "B", settings });
		const other = await store.create({ tenantId: "acme", hostSubject: "bob", title: "C", settings });
		await store.start(a.id);
		const err = await store.start(b.id).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(ConflictError);
		expect((err as ConflictError).toJSON()).toMatchObject({ code: "host_has_live_meeting", liveMeetingId: a.id });
		expect((await store.start(other.id)).state).toBe("live"); // another host is unaffected
		await store.end(a.id);
		expect((await store.start(b.id)).state).toBe("live");
		await db.close();
	});

	it("keeps one live meeting per host with 3 processes racing 100 starts on one store", async () => {
		let where: string;
		if (engine === "sqlite") {
			const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-db-"));
			dirs.push(dir);
			where = path.join(dir, "store.sqlite");
		} else {
			where = await (await postgresServer()).createDatabase(`race${process.pid}`);
		}
		const db = await Store.open(where.startsWith("postgres") ? { url: where } : { file: where });
		const store = new MeetingStore(db);
		const ids: string[] = [];
		for (let i = 0; i < 100; i++)
			ids.push((await store.create({ tenantId: "acme", hostSubject: "alice", title: `M${i}`, settings })).id);
		const chunks = [0, 1, 2].map((k) => ids.filter((_, i) => i % 3 === k));
		const results = await Promise.all(
			chunks.map((chunk) =>
				promisify(execFile)(process.execPath, [
					"--import",
					"tsx",
					fileURLToPath(new URL("./startRace.child.ts", import.meta.url)),
					where,
					chunk.join(","),
				]).then(({ stdout }) => JSON.parse(stdout) as { started: number; refused: number }),
			),
		);
		const started = results.reduce((n, r) => n + r.started, 0);
		const refused = results.reduce((n, r) => n + r.refused, 0);
		expect(started).toBe(1);
		expect(refused).toBe(99);
		const live = await db.db
			.selectFrom("meetings")
			.select((eb) => eb.fn.countAll<number>().as("n"))
			.where("state", "=", "live")
			.executeTakeFirstOrThrow();
		expect(Number(live.n)).toBe(1);
		await db.close();
	});
});

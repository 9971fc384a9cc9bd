import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { ConflictError } from "../errors.js";
import { openDatabase } from "../store/Database.js";
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

describe("MeetingStore", () => {
	it("schedules, starts, ends and restarts; a passcode is checked, never stored in clear", async () => {
		const db = openDatabase(":memory:");
		const store = new MeetingStore(db);
		const m = store.create({ tenantId: "acme", hostSubject: "alice", title: "Standup", passcode: "s3cret!", settings });
		expect(m).toMatchObject({ state: "scheduled", hasPasscode: true, locked: false });
		expect(JSON.stringify(db.prepare("SELECT * FROM meetings").all())).not.toContain("s3cret!");
		expect(await store.checkPasscode(m.id, "s3cret!")).toBe(true);
		expect(await store.checkPasscode(m.id, "wrong")).toBe(false);
		expect(await store.checkPasscode(m.id, undefined)).toBe(false);
		expect(store.start(m.id).state).toBe("live");
		expect(store.end(m.id)).toBe(true);
		expect(store.end(m.id)).toBe(false);
		expect(store.start(m.id).state).toBe("live");
	});

	it("refuses a second live meeting for the same host, naming the live one", () => {
		const store = new MeetingStore(openDatabase(":memory:"));
		const a = store.create({ tenantId: "acme", hostSubject: "alice", title: "A", settings });
		const b = store.create({ tenantId: "acme", hostSubject: "alice", title: "B", settings });
		const other = store.create({ tenantId: "acme", hostSubject: "bob", title: "C", settings });
		store.start(a.id);
		expect(() => store.start(b.id)).toThrow(ConflictError);
		try {
			store.start(b.id);
		} catch (err) {
			expect((err as ConflictError).toJSON()).toMatchObject({ code: "host_has_live_meeting", liveMeetingId: a.id });
		}
		expect(store.start(other.id).state).toBe("live"); // another host is unaffected
		store.end(a.id);
		expect(store.start(b.id).state).toBe("live");
	});

	it("keeps one live meeting per host with 4 processes racing 100 starts on one database file", async () => {
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-db-"));
		dirs.push(dir);
		const file = path.join(dir, "store.sqlite");
		const store = new MeetingStore(openDatabase(file));
		const ids = Array.from(
			{ length: 100 },
			(_, i) => store.create({ tenantId: "acme", hostSubject: "alice", title: `M${i}`, settings }).id,
		);
		const chunks = [0, 1, 2, 3].map((k) => ids.filter((_, i) => i % 4 === k));
		const results = await Promise.all(
			chunks.map((chunk) =>
				promisify(execFile)(process.execPath, [
					"--import",
					"tsx",
					fileURLToPath(new URL("./startRace.child.ts", import.meta.url)),
					file,
					chunk.join(","),
				]).then(({ stdout }) => JSON.parse(stdout) as { started: number; refused: number }),
			),
		);
		const started = results.reduce((n, r) => n + r.started, 0);
		const refused = results.reduce((n, r) => n + r.refused, 0);
		expect(started).toBe(1);
		expect(refused).toBe(99);
		const live = openDatabase(file).prepare("SELECT count(*) AS n FROM meetings WHERE state = 'live'").get() as {
			n: number;
		};
		expect(live.n).toBe(1);
	});
});

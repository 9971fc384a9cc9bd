import { randomBytes, scrypt, scryptSync, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import { ConflictError, NotFoundError } from "../errors.js";
import { type Database, isUniqueViolation } from "../store/Database.js";
import { type Meeting, type MeetingSettings, MeetingSettingsSchema, type MeetingState } from "./MeetingTypes.js";
import { newMeetingId } from "./meetingId.js";

interface Row {
	id: string;
	tenant_id: string;
	host_subject: string;
	title: string;
	scheduled_for: string | null;
	settings: string;
	passcode_hash: string | null;
	state: MeetingState;
	locked: number;
	created_at: string;
	started_at: string | null;
	ended_at: string | null;
}

function toMeeting(r: Row): Meeting {
	return {
		id: r.id,
		tenantId: r.tenant_id,
		hostSubject: r.host_subject,
		title: r.title,
		scheduledFor: r.scheduled_for,
		settings: MeetingSettingsSchema.parse(JSON.parse(r.settings)),
		hasPasscode: r.passcode_hash !== null,
		state: r.state,
		locked: r.locked === 1,
		createdAt: r.created_at,
		startedAt: r.started_at,
		endedAt: r.ended_at,
	};
}

function hashPasscode(passcode: string): string {
	const salt = randomBytes(16);
	return `scrypt$${salt.toString("base64")}$${scryptSync(passcode, salt, 32).toString("base64")}`;
}

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>;

/** Checked off the event loop (libuv's thread pool): guesses must not stall every meeting's signaling. */
async function passcodeMatches(hash: string, passcode: string): Promise<boolean> {
	const [, salt, want] = hash.split("$");
	if (!salt || !want) return false;
	const got = await scryptAsync(passcode, Buffer.from(salt, "base64"), 32);
	const wantBuf = Buffer.from(want, "base64");
	return got.length === wantBuf.length && timingSafeEqual(got, wantBuf);
}

/**
 * Meetings in the gateway's store. State changes are single conditional
 * statements; "one live meeting per host" is the store's unique index, so it
 * holds however many gateway processes share the database.
 */
export class MeetingStore {
	readonly #db: Database;

	constructor(db: Database) {
		this.#db = db;
	}

	create(input: {
		tenantId: string;
		hostSubject: string;
		title: string;
		scheduledFor?: string;
		passcode?: string;
		settings: MeetingSettings;
	}): Meeting {
		const now = new Date().toISOString();
		for (let attempt = 0; ; attempt++) {
			const id = newMeetingId();
			try {
				this.#db
					.prepare(
						`INSERT INTO meetings (id, tenant_id, host_subject, title, scheduled_for, settings, passcode_hash, state, created_at)
						 VALUES (?, ?, ?, ?, ?, ?, ?, 'scheduled', ?)`,
					)
					.run(
						id,
						input.tenantId,
						input.hostSubject,
						input.title,
						input.scheduledFor ?? null,
						JSON.stringify(input.settings),
						input.passcode ? hashPasscode(input.passcode) : null,
						now,
					);
				return this.get(id);
			} catch (err) {
				if (!isUniqueViolation(err) || attempt > 3) throw err; // an ID collision: draw again
			}
		}
	}

	find(id: string): Meeting | undefined {
		const row = this.#db.prepare("SELECT * FROM meetings WHERE id = ?").get(id) as Row | undefined;
		return row && toMeeting(row);
	}

	get(id: string): Meeting {
		const m = this.find(id);
		if (!m) throw new NotFoundError("meeting_not_found", "No meeting has this ID.");
		return m;
	}

	listByHost(tenantId: string, hostSubject: string, limit = 100): Meeting[] {
		const rows = this.#db
			.prepare("SELECT * FROM meetings WHERE tenant_id = ? AND host_subject = ? ORDER BY created_at DESC, id LIMIT ?")
			.all(tenantId, hostSubject, limit) as Row[];
		return rows.map(toMeeting);
	}

	liveMeetingOf(tenantId: string, hostSubject: string): Meeting | undefined {
		const row = this.#db
			.prepare("SELECT * FROM meetings WHERE tenant_id = ? AND host_subject = ? AND state = 'live'")
			.get(tenantId, hostSubject) as Row | undefined;
		return row && toMeeting(row);
	}

	/**
	 * Makes the meeting live. Refused with 409 `host_has_live_meeting` (naming the
	 * live meeting) when the host already holds one: the unique index decides.
	 */
	start(id: string): Meeting {
		const m = this.get(id);
		if (m.state === "live") return m;
		try {
			const res = this.#db
				.prepare(
					"UPDATE meetings SET state = 'live', started_at = ?, ended_at = NULL, locked = 0 WHERE id = ? AND state != 'live'",
				)
				.run(new Date().toISOString(), id);
			if (res.changes === 0) return this.get(id); // someone else started this very meeting
		} catch (err) {
			if (!isUniqueViolation(err)) throw err;
			const live = this.liveMeetingOf(m.tenantId, m.hostSubject);
			throw new ConflictError(
				"host_has_live_meeting",
				`You already have a live meeting${live ? ` ("${live.title}")` : ""}. A host can hold only one meeting at a time: end it first.`,
				live ? { liveMeetingId: live.id, liveMeetingTitle: live.title, endUrl: `/api/meetings/${live.id}/end` } : {},
			);
		}
		return this.get(id);
	}

	/** Ends the meeting; returns whether this call ended it. */
	end(id: string): boolean {
		const res = this.#db
			.prepare("UPDATE meetings SET state = 'ended', ended_at = ? WHERE id = ? AND state = 'live'")
			.run(new Date().toISOString(), id);
		return res.changes === 1;
	}

	setLocked(id: string, locked: boolean): void {
		this.#db.prepare("UPDATE meetings SET locked = ? WHERE id = ?").run(locked ? 1 : 0, id);
	}

	async checkPasscode(id: string, passcode: string | undefined): Promise<boolean> {
		const row = this.#db.prepare("SELECT passcode_hash FROM meetings WHERE id = ?").get(id) as
			| { passcode_hash: string | null }
			| undefined;
		if (!row) return false;
		if (row.passcode_hash === null) return true;
		return passcode !== undefined && passcodeMatches(row.passcode_hash, passcode);
	}

	markRemoved(meetingId: string, person: string): void {
		this.#db
			.prepare("INSERT OR IGNORE INTO removed_persons (meeting_id, person, removed_at) VALUES (?, ?, ?)")
			.run(meetingId, person, new Date().toISOString());
	}

	isRemoved(meetingId: string, person: string): boolean {
		return (
			this.#db.prepare("SELECT 1 FROM removed_persons WHERE meeting_id = ? AND person = ?").get(meetingId, person) !==
			undefined
		);
	}
}

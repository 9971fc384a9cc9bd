import { randomBytes, scrypt, scryptSync, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import { ConflictError, NotFoundError } from "../errors.js";
import { isUniqueViolation } from "../store/Database.js";
import { MeetingRepository, type MeetingRow } from "../store/MeetingRepository.js";
import type { Store } from "../store/Store.js";
import { type Meeting, type MeetingSettings, MeetingSettingsSchema } from "./MeetingTypes.js";
import { newMeetingId } from "./meetingId.js";

function toMeeting(r: MeetingRow): Meeting {
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
 * holds however many gateway processes share the database. Queries:
 * server/store/MeetingRepository.ts.
 */
export class MeetingStore {
	readonly #repo: MeetingRepository;

	constructor(store: Store) {
		this.#repo = new MeetingRepository(store);
	}

	async create(input: {
		tenantId: string;
		hostSubject: string;
		title: string;
		scheduledFor?: string;
		passcode?: string;
		settings: MeetingSettings;
	}): Promise<Meeting> {
		const now = new Date().toISOString();
		for (let attempt = 0; ; attempt++) {
			const id = newMeetingId();
			try {
				await this.#repo.insert({
					id,
					tenant_id: input.tenantId,
					host_subject: input.hostSubject,
					title: input.title,
					scheduled_for: input.scheduledFor ?? null,
					settings: JSON.stringify(input.settings),
					passcode_hash: input.passcode ? hashPasscode(input.passcode) : null,
					created_at: now,
				});
				return this.get(id);
			} catch (err) {
				if (!isUniqueViolation(err) || attempt > 3) throw err; // an ID collision: draw again
			}
		}
	}

	async find(id: string): Promise<Meeting | undefined> {
		const row = await this.#repo.find(id);
		return row && toMeeting(row);
	}

	async get(id: string): Promise<Meeting> {
		const m = await this.find(id);
		if (!m) throw new NotFoundError("meeting_not_found", "No meeting has this ID.");
		return m;
	}

	async listByHost(tenantId: string, hostSubject: string, limit = 100): Promise<Meeting[]> {
		return (await this.#repo.listByHost(tenantId, hostSubject, limit)).map(toMeeting);
	}

	async liveMeetingOf(tenantId: string, hostSubject: string): Promise<Meeting | undefined> {
		const row = await this.#repo.liveOf(tenantId, hostSubject);
		return row && toMeeting(row);
	}

	/**
	 * Makes the meeting live. Refused with 409 `host_has_live_meeting` (naming the
	 * live meeting) when the host already holds one: the unique index decides.
	 */
	async start(id: string): Promise<Meeting> {
		const m = await this.get(id);
		if (m.state === "live") return m;
		try {
			if (!(await this.#repo.start(id, new Date().toISOString()))) return this.get(id); // someone else started it
		} catch (err) {
			if (!isUniqueViolation(err)) throw err;
			const live = await this.liveMeetingOf(m.tenantId, m.hostSubject);
			throw new ConflictError(
				"host_has_live_meeting",
				`You already have a live meeting${live ? ` ("${live.title}")` : ""}. A host can hold only one meeting at a time: end it first.`,
				live ? { liveMeetingId: live.id, liveMeetingTitle: live.title, endUrl: `/api/meetings/${live.id}/end` } : {},
			);
		}
		return this.get(id);
	}

	/** Ends the meeting; returns whether this call ended it. */
	end(id: string): Promise<boolean> {
		return this.#repo.end(id, new Date().toISOString());
	}

	setLocked(id: string, locked: boolean): Promise<void> {
		return this.#repo.setLocked(id, locked);
	}

	async checkPasscode(id: string, passcode: string | undefined): Promise<boolean> {
		const row = await this.#repo.passcodeHash(id);
		if (!row) return false;
		if (row.passcode_hash === null) return true;
		return passcode !== undefined && passcodeMatches(row.passcode_hash, passcode);
	}

	markRemoved(meetingId: string, person: string): Promise<void> {
		return this.#repo.markRemoved(meetingId, person, new Date().toISOString());
	}

	isRemoved(meetingId: string, person: string): Promise<boolean> {
		return this.#repo.isRemoved(meetingId, person);
	}
}

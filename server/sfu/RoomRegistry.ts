import type { Logger } from "../logger.js";
import { Room } from "./Room.js";
import type { RtcListenOptions } from "./RoomTypes.js";
import type { WorkerPool } from "./WorkerPool.js";

/** The live rooms of this gateway process, one per meeting with someone in it. */
export class RoomRegistry {
	readonly #rooms = new Map<string, Promise<Room>>();
	readonly #live = new Map<string, Room>();
	readonly #pool: WorkerPool;
	readonly #rtc: RtcListenOptions;
	readonly #log: Logger;

	constructor(pool: WorkerPool, rtc: RtcListenOptions, log: Logger) {
		this.#pool = pool;
		this.#rtc = rtc;
		this.#log = log;
	}

	/** The meeting's room, created on first use. Concurrent callers share one creation. */
	async getOrCreate(meetingId: string): Promise<Room> {
		const existing = this.#rooms.get(meetingId);
		if (existing) {
			const room = await existing;
			if (!room.closed) return room;
		}
		const creating = Room.create({ meetingId, pool: this.#pool, rtc: this.#rtc, log: this.#log });
		this.#rooms.set(meetingId, creating);
		try {
			const room = await creating;
			this.#live.set(meetingId, room);
			room.once("close", () => {
				if (this.#rooms.get(meetingId) === creating) this.#rooms.delete(meetingId);
				if (this.#live.get(meetingId) === room) this.#live.delete(meetingId);
			});
			return room;
		} catch (err) {
			this.#rooms.delete(meetingId);
			throw err;
		}
	}

	/** The meeting's live room, if anyone is in it. */
	get(meetingId: string): Room | undefined {
		return this.#live.get(meetingId);
	}

	get size(): number {
		return this.#rooms.size;
	}

	/** The live rooms (metrics). */
	live(): Room[] {
		return [...this.#live.values()];
	}

	async closeAll(): Promise<void> {
		const rooms = await Promise.allSettled(this.#rooms.values());
		for (const r of rooms) if (r.status === "fulfilled") r.value.close();
		this.#rooms.clear();
	}
}

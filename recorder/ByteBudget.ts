import { EventEmitter } from "node:events";

export type ByteBudgetEvents = {
	/** Some bytes were given back; a paused reader may go on. */
	released: [];
};

/**
 * The memory a track may hold: bytes read from ffmpeg and not yet stored in
 * the bucket, across the track's segments (during a rollover the old segment
 * drains while the new one fills).
 */
export class ByteBudget extends EventEmitter<ByteBudgetEvents> {
	readonly limit: number;
	#used = 0;

	constructor(limit: number) {
		super();
		this.limit = limit;
		this.setMaxListeners(64);
	}

	get used(): number {
		return this.#used;
	}

	get full(): boolean {
		return this.#used >= this.limit;
	}

	take(bytes: number): void {
		this.#used += bytes;
	}

	release(bytes: number): void {
		if (bytes <= 0) return;
		this.#used = Math.max(0, this.#used - bytes);
		this.emit("released");
	}
}

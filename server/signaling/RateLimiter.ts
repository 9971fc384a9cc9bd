/** A token bucket: `capacity` requests at once, refilled at `perSecond`. */
export class RateLimiter {
	readonly #capacity: number;
	readonly #perSecond: number;
	readonly #now: () => number;
	#tokens: number;
	#last: number;

	constructor(capacity: number, perSecond: number, now: () => number = performance.now.bind(performance)) {
		this.#capacity = capacity;
		this.#perSecond = perSecond;
		this.#tokens = capacity;
		this.#now = now;
		this.#last = now();
	}

	/** Takes one token; false when the bucket is empty. */
	take(): boolean {
		const t = this.#now();
		this.#tokens = Math.min(this.#capacity, this.#tokens + ((t - this.#last) / 1000) * this.#perSecond);
		this.#last = t;
		if (this.#tokens < 1) return false;
		this.#tokens -= 1;
		return true;
	}
}

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

	/** Takes `cost` tokens (default one); false (and nothing taken) when the bucket holds fewer. */
	take(cost = 1): boolean {
		this.#refill();
		if (this.#tokens < cost) return false;
		this.#tokens -= cost;
		return true;
	}

	/** Whether the bucket is full again (nothing spent recently): its state may be forgotten. */
	get full(): boolean {
		this.#refill();
		return this.#tokens >= this.#capacity;
	}

	#refill(): void {
		const t = this.#now();
		this.#tokens = Math.min(this.#capacity, this.#tokens + ((t - this.#last) / 1000) * this.#perSecond);
		this.#last = t;
	}
}

import { EventEmitter } from "node:events";
import type { types as ms } from "mediasoup";
import * as mediasoup from "mediasoup";
import { ConsentryError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { WorkerPoolEvents, WorkerPoolOptions } from "./WorkerPoolTypes.js";

const SHUTDOWN_SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM"];

/**
 * A fixed set of mediasoup workers (one per core). Routers are placed on the
 * least loaded worker. A worker that dies is replaced after a short delay and
 * the pool emits `workerdied` so the rooms it hosted can move their peers.
 */
export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
	readonly #options: Required<WorkerPoolOptions>;
	readonly #log: Logger;
	readonly #slots: (ms.Worker | undefined)[];
	#closed = false;

	private constructor(options: WorkerPoolOptions, log: Logger) {
		super();
		this.#options = { logLevel: "warn", restartDelayMs: 1000, ...options };
		this.#log = log.child({ component: "WorkerPool" });
		this.#slots = new Array(options.numWorkers).fill(undefined);
	}

	static async create(options: WorkerPoolOptions, log: Logger): Promise<WorkerPool> {
		const pool = new WorkerPool(options, log);
		await Promise.all(pool.#slots.map((_, i) => pool.#spawn(i)));
		return pool;
	}

	get size(): number {
		return this.#slots.filter(Boolean).length;
	}

	get workers(): readonly ms.Worker[] {
		return this.#slots.filter((w): w is ms.Worker => w !== undefined);
	}

	/** The live worker hosting the fewest routers. */
	leastLoaded(): ms.Worker {
		let best: ms.Worker | undefined;
		let bestLoad = Number.POSITIVE_INFINITY;
		for (const w of this.#slots) {
			if (!w || w.closed) continue;
			const load = (w.appData.routers as number | undefined) ?? 0;
			if (load < bestLoad) {
				best = w;
				bestLoad = load;
			}
		}
		if (!best)
			throw new ConsentryError("media_unavailable", "No media worker is available right now; try again shortly.", 503);
		return best;
	}

	/** Creates a router on the least loaded worker and keeps the load count right. */
	async createRouter(options: ms.RouterOptions): Promise<ms.Router> {
		const worker = this.leastLoaded();
		const router = await worker.createRouter(options);
		worker.appData.routers = ((worker.appData.routers as number | undefined) ?? 0) + 1;
		router.observer.once("close", () => {
			worker.appData.routers = Math.max(0, ((worker.appData.routers as number | undefined) ?? 1) - 1);
		});
		return router;
	}

	close(): void {
		this.#closed = true;
		for (const w of this.#slots) w?.close();
		this.#slots.fill(undefined);
	}

	async #spawn(index: number): Promise<void> {
		// mediasoup's worker adds SIGINT and SIGTERM listeners that close it the moment the process gets either: every
		// room would then tell its people the worker died before the gateway's own shutdown (Gateway.close: what is
		// being recorded first, the workers last) had begun. The gateway closes its workers itself: those listeners go.
		const before = new Set(SHUTDOWN_SIGNALS.flatMap((s) => process.listeners(s)));
		const creating = mediasoup.createWorker({
			workerBin: this.#options.workerBin,
			logLevel: this.#options.logLevel,
			appData: { index, routers: 0 },
		});
		// Added by the worker's constructor, which createWorker runs before its first await.
		for (const signal of SHUTDOWN_SIGNALS)
			for (const listener of process.listeners(signal)) if (!before.has(listener)) process.off(signal, listener);
		const worker = await creating;
		this.#slots[index] = worker;
		this.#log.info({ pid: worker.pid, index }, "mediasoup worker started");
		worker.on("died", (error) => {
			this.#slots[index] = undefined;
			this.#log.error({ pid: worker.pid, index, err: error }, "mediasoup worker died");
			this.emit("workerdied", { pid: worker.pid, index, error });
			if (this.#closed) return;
			setTimeout(() => {
				if (this.#closed) return;
				this.#spawn(index).then(
					() => this.emit("workerrestarted", { pid: this.#slots[index]?.pid ?? -1, index }),
					(err: unknown) => this.#log.fatal({ err, index }, "could not restart mediasoup worker"),
				);
			}, this.#options.restartDelayMs).unref();
		});
	}
}

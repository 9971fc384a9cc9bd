import type { types as ms } from "mediasoup";

export interface WorkerPoolOptions {
	/** How many mediasoup workers to run; one per core is the norm. */
	numWorkers: number;
	/** Absolute path of the mediasoup-worker binary. */
	workerBin: string;
	logLevel?: ms.WorkerLogLevel;
	/** Delay before a dead worker is replaced (ms). */
	restartDelayMs?: number;
}

export type WorkerPoolEvents = {
	/** A worker died; every router on it is gone. `routerIds` lets rooms tell their peers to reconnect. */
	workerdied: [info: { pid: number; index: number; error: Error }];
	/** A replacement worker is up in slot `index`. */
	workerrestarted: [info: { pid: number; index: number }];
};

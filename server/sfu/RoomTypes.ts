import type { Logger } from "../logger.js";
import type { WorkerPool } from "./WorkerPool.js";

export interface RtcListenOptions {
	listenIp: string;
	announcedAddress?: string;
	minPort: number;
	maxPort: number;
}

export interface RoomOptions {
	meetingId: string;
	pool: WorkerPool;
	rtc: RtcListenOptions;
	log: Logger;
}

export type RoomEvents = {
	/** The room closed (last peer left, its worker died, or it was closed explicitly). */
	close: [];
};

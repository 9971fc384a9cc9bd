import type { types as ms } from "mediasoup";
import type { MediaSource } from "../../shared/protocol.js";
import type { Logger } from "../logger.js";
import type { WorkerPool } from "./WorkerPool.js";

export interface RtcListenOptions {
	listenIp: string;
	announcedAddress?: string;
	minPort: number;
	maxPort: number;
	/** The video codec browsers send when they can (first in the router's list): VP8 unless configured. */
	preferredVideoCodec?: "vp8" | "h264";
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
	/** One of this room's peers started sending (a cascade pipe offers it to the meeting's other node). */
	producer: [producer: ms.Producer<{ source: MediaSource; peerId: string }>];
};

import type { types as ms } from "mediasoup";
import type { MediaSource } from "../../shared/protocol.js";

/** Where one side of a cascade pipe listens, and its SRTP key: what the other node needs to connect (JSON-safe). */
export interface PipeEndpoint {
	ip: string;
	port: number;
	srtpParameters: ms.SrtpParameters;
}

/** One producer offered through a pipe: enough for the other node to `produce()` it under the same ID (JSON-safe). */
export interface PipedProducer {
	id: string;
	kind: ms.MediaKind;
	rtpParameters: ms.RtpParameters;
	paused: boolean;
	appData: { source: MediaSource; peerId: string };
}

/** What one side tells the other after the offer: the origin producer paused, resumed or closed. */
export type PipeChange = { t: "paused" | "resumed" | "closed"; id: string };

export interface CascadeLinkOptions {
	/** The address the pipe's UDP socket binds to: loopback or this node's configured RTC address, never 0.0.0.0. */
	listenIp: string;
	/** The address the other node sends to, if it differs from `listenIp` (NAT). */
	announcedAddress?: string;
	/** The node's RTC port range. */
	portRange: { min: number; max: number };
	/** The address the other node's pipe must send from (its announced or listen IP): `connect()` refuses another. */
	peerIp: string;
}

export type CascadeLinkEvents = {
	/** A change the other node must apply (send it over the control channel). */
	change: [change: PipeChange];
	/** A producer of this room to offer the other node (send it over the control channel). */
	offer: [producer: PipedProducer];
	close: [];
};

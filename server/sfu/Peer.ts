import type { types as ms } from "mediasoup";
import type { ConnectionQuality, MediaSource, PeerInfo, PeerRole } from "../../shared/protocol.js";
import { NotFoundError } from "../errors.js";
import type { Notify, PeerOptions } from "./PeerTypes.js";

/**
 * One person's media connection to a room: their transports, what they send
 * (producers) and what they receive (consumers). Closing a peer closes every
 * mediasoup object it owns.
 */
export class Peer {
	readonly id: string;
	readonly displayName: string;
	readonly role: PeerRole;
	readonly notify: Notify;
	readonly transports = new Map<string, ms.WebRtcTransport>();
	readonly producers = new Map<string, ms.Producer<{ source: MediaSource; peerId: string }>>();
	readonly consumers = new Map<string, ms.Consumer>();
	/** How well this peer's media reaches the gateway (Room, from producer scores). */
	quality: ConnectionQuality | undefined;
	/** Producers already forwarded to this peer (one consumer per producer). */
	readonly forwarded = new Set<string>();
	rtpCapabilities: ms.RtpCapabilities | undefined;
	#closed = false;

	constructor(options: PeerOptions) {
		this.id = options.id;
		this.displayName = options.displayName;
		this.role = options.role;
		this.notify = options.notify;
	}

	get closed(): boolean {
		return this.#closed;
	}

	info(): PeerInfo {
		return {
			id: this.id,
			displayName: this.displayName,
			role: this.role,
			producers: [...this.producers.values()].map((p) => ({
				id: p.id,
				kind: p.kind,
				source: p.appData.source,
				paused: p.paused,
			})),
			...(this.quality ? { quality: this.quality } : {}),
		};
	}

	transport(id: string): ms.WebRtcTransport {
		const t = this.transports.get(id);
		if (!t) throw new NotFoundError("transport_not_found", `No transport ${id} for this peer.`);
		return t;
	}

	producer(id: string): ms.Producer<{ source: MediaSource; peerId: string }> {
		const p = this.producers.get(id);
		if (!p) throw new NotFoundError("producer_not_found", `No producer ${id} for this peer.`);
		return p;
	}

	consumer(id: string): ms.Consumer {
		const c = this.consumers.get(id);
		if (!c) throw new NotFoundError("consumer_not_found", `No consumer ${id} for this peer.`);
		return c;
	}

	/** The transport this peer receives on (the last `recv` one it created). */
	recvTransport(): ms.WebRtcTransport | undefined {
		let found: ms.WebRtcTransport | undefined;
		for (const t of this.transports.values()) if (t.appData.direction === "recv") found = t;
		return found;
	}

	/** Closes every transport (which closes their producers and consumers). Idempotent. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const t of this.transports.values()) t.close();
		this.transports.clear();
		this.producers.clear();
		this.consumers.clear();
		this.forwarded.clear();
	}
}

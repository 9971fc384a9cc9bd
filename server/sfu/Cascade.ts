import { EventEmitter } from "node:events";
import type { types as ms } from "mediasoup";
import { MediaSource } from "../../shared/protocol.js";
import { ConflictError, ForbiddenError, ValidationError } from "../errors.js";
import type { CascadeLinkEvents, CascadeLinkOptions, PipeChange, PipedProducer, PipeEndpoint } from "./CascadeTypes.js";
import type { Room } from "./Room.js";

/**
 * One end of a cascade between two nodes carrying the same meeting (what Jitsi does with relays): a mediasoup
 * PipeTransport on this node's router for the meeting, connected to the PipeTransport the other node opened on its
 * router. Each side offers its own peers' producers through the pipe (`offer` events: a pipe consumer here) and
 * accepts the other side's (`accept`: a pipe producer there, under the origin's producer ID, forwarded to the local
 * peers by `Room.addPipedProducer`). Pause, resume and close of an origin producer travel as `change` events.
 *
 * The control messages (endpoint, offers, changes) are plain JSON: the caller carries them between the nodes.
 * Media crosses as SRTP (each side's key is in its endpoint) over UDP between the two configured addresses only: the
 * socket binds to `listenIp`, `connect` refuses any address but the configured peer's, and the worker drops every
 * packet that does not come from the connected address and port (mediasoup's PipeTransport tuple check).
 */
export class CascadeLink extends EventEmitter<CascadeLinkEvents> {
	readonly room: Room;
	readonly transport: ms.PipeTransport;
	readonly #options: CascadeLinkOptions;
	/** Origin producer ID → the pipe consumer sending it to the other node. */
	readonly #offered = new Map<string, ms.Consumer>();
	/** Origin producer ID (on the other node) → the pipe producer receiving it here. */
	readonly #accepted = new Map<string, ms.Producer<{ source: PipedProducer["appData"]["source"]; peerId: string }>>();
	#connected = false;
	readonly #onProducer = (producer: ms.Producer): void => {
		this.#offer(producer).catch(() => undefined);
	};

	private constructor(room: Room, transport: ms.PipeTransport, options: CascadeLinkOptions) {
		super();
		this.room = room;
		this.transport = transport;
		this.#options = options;
		room.on("producer", this.#onProducer);
		room.once("close", () => this.close());
		transport.observer.once("close", () => {
			room.off("producer", this.#onProducer);
			this.emit("close");
		});
	}

	/** Opens this node's end of the pipe on the meeting's router (not connected yet: send `local` to the other node). */
	static async open(room: Room, options: CascadeLinkOptions): Promise<CascadeLink> {
		if (options.listenIp === "0.0.0.0" || options.listenIp === "::") {
			throw new ValidationError("a cascade pipe binds to one address (loopback or the node's RTC address)");
		}
		const transport = await room.router.createPipeTransport({
			listenInfo: {
				protocol: "udp",
				ip: options.listenIp,
				...(options.announcedAddress ? { announcedAddress: options.announcedAddress } : {}),
				portRange: options.portRange,
			},
			// Two hosts: lost packets are retransmitted over the pipe; the media is encrypted between the nodes.
			enableRtx: true,
			enableSrtp: true,
			appData: { cascadePeer: options.peerIp },
		});
		return new CascadeLink(room, transport, options);
	}

	get closed(): boolean {
		return this.transport.closed;
	}

	/** This end's address, port and SRTP key, for the other node's `connect`. */
	get local(): PipeEndpoint {
		const srtpParameters = this.transport.srtpParameters;
		if (!srtpParameters) throw new Error("cascade pipe without SRTP");
		return {
			ip: this.#options.announcedAddress ?? this.transport.tuple.localAddress,
			port: this.transport.tuple.localPort,
			srtpParameters,
		};
	}

	/** Producers offered to / accepted from the other node (origin producer IDs). */
	get offered(): ReadonlySet<string> {
		return new Set(this.#offered.keys());
	}
	get accepted(): ReadonlySet<string> {
		return new Set(this.#accepted.keys());
	}

	/**
	 * Connects to the other node's end (once), then offers every producer this room has now and will have: each
	 * becomes an `offer` event.
	 */
	async connect(remote: PipeEndpoint): Promise<void> {
		if (this.#connected) throw new ConflictError("cascade_connected", "This cascade pipe is connected already.");
		if (remote.ip !== this.#options.peerIp) {
			throw new ForbiddenError("cascade_peer_refused", `A cascade pipe connects only to ${this.#options.peerIp}.`);
		}
		if (!Number.isInteger(remote.port) || remote.port < 1 || remote.port > 65535) {
			throw new ValidationError("a cascade endpoint's port is 1–65535");
		}
		this.#connected = true;
		await this.transport.connect({ ip: remote.ip, port: remote.port, srtpParameters: remote.srtpParameters });
		await Promise.all(this.room.localProducers().map((p) => this.#offer(p)));
	}

	/** The other node offered one of its producers: receive it here and forward it to this room's peers. */
	async accept(offer: PipedProducer): Promise<void> {
		const source = MediaSource.safeParse(offer.appData?.source);
		if (
			!source.success ||
			typeof offer.appData.peerId !== "string" ||
			(offer.kind !== "audio" && offer.kind !== "video")
		) {
			throw new ValidationError("a piped producer names its kind, source and person");
		}
		if (this.#accepted.has(offer.id)) return;
		const producer = await this.transport.produce({
			id: offer.id,
			kind: offer.kind,
			rtpParameters: offer.rtpParameters,
			paused: offer.paused,
			appData: { source: source.data, peerId: offer.appData.peerId },
		});
		this.#accepted.set(offer.id, producer);
		producer.observer.once("close", () => this.#accepted.delete(offer.id));
		await this.room.addPipedProducer(producer);
	}

	/** The other node's producer paused, resumed or closed. An unknown ID is ignored (it closed meanwhile). */
	async apply(change: PipeChange): Promise<void> {
		const producer = this.#accepted.get(change.id);
		if (!producer) return;
		if (change.t === "closed") producer.close();
		else if (change.t === "paused") await producer.pause();
		else await producer.resume();
	}

	close(): void {
		this.transport.close();
	}

	async #offer(producer: ms.Producer): Promise<void> {
		if (!this.#connected || this.closed || this.#offered.has(producer.id) || producer.closed) return;
		const appData = producer.appData as PipedProducer["appData"];
		const consumer = await this.transport.consume({ producerId: producer.id });
		if (producer.closed) {
			consumer.close();
			return;
		}
		this.#offered.set(producer.id, consumer);
		consumer.observer.on("pause", () => this.emit("change", { t: "paused", id: producer.id }));
		consumer.observer.on("resume", () => this.emit("change", { t: "resumed", id: producer.id }));
		consumer.observer.once("close", () => {
			this.#offered.delete(producer.id);
			if (!this.closed) this.emit("change", { t: "closed", id: producer.id });
		});
		this.emit("offer", {
			id: producer.id,
			kind: consumer.kind,
			rtpParameters: consumer.rtpParameters,
			paused: consumer.producerPaused,
			appData: { source: appData.source, peerId: appData.peerId },
		});
	}
}

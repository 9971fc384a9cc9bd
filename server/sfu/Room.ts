import { EventEmitter } from "node:events";
import { errors as mediasoupErrors, type types as ms } from "mediasoup";
import type { ConnectionQuality, MediaSource, ServerEvents, TransportInfo } from "../../shared/protocol.js";
import { ConflictError, ForbiddenError, ValidationError } from "../errors.js";
import type { Logger } from "../logger.js";
import { mediaCodecsFor } from "./mediaCodecs.js";
import type { Peer } from "./Peer.js";
import type { RoomEvents, RoomOptions, RtcListenOptions } from "./RoomTypes.js";

/**
 * The media side of one meeting: a mediasoup router and the peers connected to
 * it. Every producer is forwarded to every other peer that can receive it.
 */
export class Room extends EventEmitter<RoomEvents> {
	readonly meetingId: string;
	readonly router: ms.Router;
	readonly #rtc: RtcListenOptions;
	readonly #log: Logger;
	readonly #peers = new Map<string, Peer>();
	/** Transports whose connect() was called (mediasoup allows one). */
	readonly #connected = new WeakSet<ms.WebRtcTransport>();
	readonly #speakerObserver: ms.ActiveSpeakerObserver;
	#closed = false;
	readonly #qualityTimers = new Map<Peer, ReturnType<typeof setTimeout>>();
	/** Producers of people on another node of this meeting, arriving through a cascade pipe (server/sfu/Cascade.ts). */
	readonly #piped = new Map<string, ms.Producer<{ source: MediaSource; peerId: string }>>();

	private constructor(options: RoomOptions, router: ms.Router, speakerObserver: ms.ActiveSpeakerObserver) {
		super();
		this.meetingId = options.meetingId;
		this.router = router;
		this.#rtc = options.rtc;
		this.#log = options.log.child({ component: "Room", meetingId: options.meetingId });
		this.#speakerObserver = speakerObserver;
		this.setMaxListeners(0); // one "close" listener per member connection, removed when they leave
		router.on("workerclose", () => {
			this.#log.error("media worker died; asking peers to reconnect");
			this.broadcast("reconnect", { reason: "media_worker_restarted" });
			this.close();
		});
		router.observer.once("close", () => this.close());
		speakerObserver.on("dominantspeaker", ({ producer }) => {
			const peerId = (producer.appData as { peerId?: string }).peerId ?? null;
			this.broadcast("activeSpeaker", { peerId });
		});
	}

	static async create(options: RoomOptions): Promise<Room> {
		const mediaCodecs = mediaCodecsFor(options.rtc.preferredVideoCodec);
		const router = await options.pool.createRouter({ mediaCodecs, appData: { meetingId: options.meetingId } });
		const observer = await router.createActiveSpeakerObserver({ interval: 300 });
		return new Room(options, router, observer);
	}

	get closed(): boolean {
		return this.#closed;
	}

	get peers(): ReadonlyMap<string, Peer> {
		return this.#peers;
	}

	addPeer(peer: Peer): void {
		if (this.#closed) throw new ConflictError("meeting_closed", "This meeting's media session has closed; rejoin.");
		if (this.#peers.has(peer.id)) throw new ConflictError("already_joined", "This connection already joined.");
		this.#peers.set(peer.id, peer);
		this.broadcast("peerJoined", peer.info(), peer.id);
		this.#log.debug({ peerId: peer.id }, "peer joined");
	}

	removePeer(peerId: string): void {
		const peer = this.#peers.get(peerId);
		if (!peer) return;
		this.#peers.delete(peerId);
		clearTimeout(this.#qualityTimers.get(peer));
		this.#qualityTimers.delete(peer);
		peer.close();
		this.broadcast("peerLeft", { peerId });
		this.#log.debug({ peerId }, "peer left");
		if (this.#peers.size === 0) this.close();
	}

	async createWebRtcTransport(peer: Peer, direction: "send" | "recv"): Promise<TransportInfo> {
		if (peer.transports.size >= 4)
			throw new ConflictError("too_many_transports", "A peer may hold at most 4 transports.");
		const portRange = { min: this.#rtc.minPort, max: this.#rtc.maxPort };
		const listen = (protocol: "udp" | "tcp"): ms.TransportListenInfo => ({
			protocol,
			ip: this.#rtc.listenIp,
			...(this.#rtc.announcedAddress ? { announcedAddress: this.#rtc.announcedAddress } : {}),
			portRange,
		});
		const transport = await this.router.createWebRtcTransport({
			listenInfos: [listen("udp"), listen("tcp")],
			enableUdp: true,
			enableTcp: true,
			preferUdp: true,
			initialAvailableOutgoingBitrate: 1_000_000,
			appData: { peerId: peer.id, direction },
		});
		peer.transports.set(transport.id, transport);
		transport.observer.once("close", () => peer.transports.delete(transport.id));
		transport.on("dtlsstatechange", (state) => {
			if (state === "failed") this.#log.warn({ peerId: peer.id, state }, "transport DTLS failed");
			else if (state === "closed") this.#log.debug({ peerId: peer.id, state }, "transport DTLS closed");
		});
		return {
			id: transport.id,
			iceParameters: transport.iceParameters,
			iceCandidates: transport.iceCandidates,
			dtlsParameters: transport.dtlsParameters,
		};
	}

	async connectWebRtcTransport(peer: Peer, transportId: string, dtlsParameters: ms.DtlsParameters): Promise<void> {
		const transport = peer.transport(transportId);
		// mediasoup refuses a second connect() with a plain Error: a client's mistake, answered as one.
		if (this.#connected.has(transport)) {
			throw new ConflictError("transport_already_connected", "This transport is connected already.");
		}
		this.#connected.add(transport);
		await transport.connect({ dtlsParameters });
	}

	/** Records what this peer can receive and starts forwarding every existing producer to it. */
	async setRtpCapabilities(peer: Peer, rtpCapabilities: ms.RtpCapabilities): Promise<void> {
		peer.rtpCapabilities = rtpCapabilities;
		for (const other of this.#peers.values()) {
			if (other === peer) continue;
			for (const producer of other.producers.values()) await this.#consume(peer, producer);
		}
		for (const producer of this.#piped.values()) await this.#consume(peer, producer);
	}

	/** Every producer of this room's own peers (what a cascade pipe offers the other node). */
	localProducers(): ms.Producer<{ source: MediaSource; peerId: string }>[] {
		return [...this.#peers.values()].flatMap((p) => [...p.producers.values()]);
	}

	/**
	 * A producer piped in from another node of this meeting (its `appData` names the remote person): forwarded to
	 * every peer here like a local one, until it closes.
	 */
	async addPipedProducer(producer: ms.Producer<{ source: MediaSource; peerId: string }>): Promise<void> {
		if (this.#closed) throw new ConflictError("meeting_closed", "This meeting's media session has closed.");
		this.#piped.set(producer.id, producer);
		producer.observer.once("close", () => this.#piped.delete(producer.id));
		if (producer.kind === "audio")
			await this.#speakerObserver.addProducer({ producerId: producer.id }).catch(() => undefined);
		await Promise.all(
			[...this.#peers.values()].map((peer) =>
				this.#consume(peer, producer).catch((err: unknown) =>
					this.#log.warn({ err, peerId: peer.id, producerId: producer.id }, "could not forward a piped producer"),
				),
			),
		);
	}

	async produce(
		peer: Peer,
		transportId: string,
		kind: ms.MediaKind,
		rtpParameters: ms.RtpParameters,
		source: MediaSource,
	): Promise<string> {
		const transport = peer.transport(transportId);
		if (transport.appData.direction !== "send")
			throw new ForbiddenError("wrong_transport", "Produce on a send transport.");
		if ((source === "mic") !== (kind === "audio")) {
			throw new ValidationError(`a ${source} source cannot carry ${kind}`);
		}
		for (const p of peer.producers.values()) {
			if (p.appData.source === source) throw new ConflictError("source_busy", `This peer already sends its ${source}.`);
		}
		let producer: ms.Producer<{ source: MediaSource; peerId: string }>;
		try {
			producer = await transport.produce({ kind, rtpParameters, appData: { source, peerId: peer.id } });
		} catch (err) {
			if (err instanceof TypeError || err instanceof mediasoupErrors.UnsupportedError) {
				throw new ValidationError(`rejected RTP parameters: ${err.message}`);
			}
			// The worker refuses an SSRC, MID or RID another stream on this transport (or this very request) uses.
			if (err instanceof Error && /already exists in RTP listener/.test(err.message)) {
				throw new ConflictError(
					"rtp_parameters_conflict",
					`These RTP parameters clash with another stream: ${err.message}.`,
				);
			}
			throw err;
		}
		peer.producers.set(producer.id, producer);
		producer.on("score", () => this.#scored(peer));
		producer.observer.once("close", () => peer.producers.delete(producer.id));
		if (kind === "audio") await this.#speakerObserver.addProducer({ producerId: producer.id }).catch(() => undefined);
		this.emit("producer", producer);
		// One receiver's failure (e.g. its transport closing right now) must not fail the sender's produce.
		await Promise.all(
			[...this.#peers.values()]
				.filter((other) => other !== peer)
				.map((other) =>
					this.#consume(other, producer).catch((err: unknown) =>
						this.#log.warn({ err, peerId: other.id, producerId: producer.id }, "could not forward a producer"),
					),
				),
		);
		return producer.id;
	}

	async resumeConsumer(peer: Peer, consumerId: string): Promise<void> {
		await peer.consumer(consumerId).resume();
	}

	/** The receiver shows this video off screen (paused: nothing forwarded) or on screen at a spatial layer. */
	async viewConsumer(peer: Peer, consumerId: string, visible: boolean, spatialLayer?: number): Promise<void> {
		const consumer = peer.consumer(consumerId);
		if (!visible) {
			await consumer.pause();
			return;
		}
		if (spatialLayer !== undefined && consumer.type === "simulcast") {
			await consumer.setPreferredLayers({ spatialLayer, temporalLayer: 2 });
		}
		await consumer.resume();
	}

	/**
	 * A producer's score changed (0–10 per RTP stream: loss and jitter of what the gateway receives): the
	 * peer's quality is its worst sending producer's best stream — good ≥ 7, fair ≥ 4, else poor. A new level
	 * must hold for 2 s before everyone is told (a score hovering at a threshold sends nothing). Paused
	 * producers send nothing and don't count.
	 */
	#scored(peer: Peer): void {
		const level = this.#quality(peer);
		if (!level || level === peer.quality) {
			clearTimeout(this.#qualityTimers.get(peer));
			this.#qualityTimers.delete(peer);
			return;
		}
		if (this.#qualityTimers.has(peer)) return;
		this.#qualityTimers.set(
			peer,
			setTimeout(() => {
				this.#qualityTimers.delete(peer);
				const now = this.#quality(peer);
				if (!now || now === peer.quality || peer.closed || this.#closed) return;
				peer.quality = now;
				this.broadcast("connectionQuality", { peerId: peer.id, quality: now });
			}, 2000),
		);
	}

	#quality(peer: Peer): ConnectionQuality | undefined {
		const scores = [...peer.producers.values()]
			.filter((p) => !p.paused && !p.closed && p.score.length > 0)
			.map((p) => Math.max(...p.score.map((s) => s.score)));
		if (scores.length === 0 || peer.closed) return undefined;
		const worst = Math.min(...scores);
		return worst >= 7 ? "good" : worst >= 4 ? "fair" : "poor";
	}

	/** Sends an event to every peer in the room, except `exceptPeerId`. */
	broadcast<E extends keyof ServerEvents>(
		event: E,
		payload: Parameters<ServerEvents[E]>[0],
		exceptPeerId?: string,
	): void {
		for (const peer of this.#peers.values()) {
			if (peer.id !== exceptPeerId) peer.notify(event, ...([payload] as Parameters<ServerEvents[E]>));
		}
	}

	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const t of this.#qualityTimers.values()) clearTimeout(t);
		this.#qualityTimers.clear();
		for (const peer of this.#peers.values()) peer.close();
		this.#peers.clear();
		this.router.close();
		this.emit("close");
	}

	async #consume(peer: Peer, producer: ms.Producer<{ source: MediaSource; peerId: string }>): Promise<void> {
		const transport = peer.recvTransport();
		if (!peer.rtpCapabilities || !transport || peer.closed) return;
		if (!this.router.canConsume({ producerId: producer.id, rtpCapabilities: peer.rtpCapabilities })) return;
		// A join (setRtpCapabilities) and a produce can race to forward the same producer: one consumer per pair.
		if (peer.forwarded.has(producer.id)) return;
		peer.forwarded.add(producer.id);
		producer.observer.once("close", () => peer.forwarded.delete(producer.id));
		let consumer: ms.Consumer;
		try {
			consumer = await transport.consume({
				producerId: producer.id,
				rtpCapabilities: peer.rtpCapabilities,
				paused: true,
				appData: { peerId: peer.id },
			});
		} catch (err) {
			peer.forwarded.delete(producer.id);
			throw err;
		}
		peer.consumers.set(consumer.id, consumer);
		const gone = () => {
			if (peer.consumers.delete(consumer.id)) peer.notify("consumerClosed", { consumerId: consumer.id });
		};
		consumer.on("transportclose", () => peer.consumers.delete(consumer.id));
		consumer.on("producerclose", gone);
		consumer.on("producerpause", () => peer.notify("consumerPaused", { consumerId: consumer.id }));
		consumer.on("producerresume", () => peer.notify("consumerResumed", { consumerId: consumer.id }));
		peer.notify("newConsumer", {
			peerId: producer.appData.peerId,
			producerId: producer.id,
			consumerId: consumer.id,
			kind: consumer.kind,
			source: producer.appData.source,
			rtpParameters: consumer.rtpParameters,
			producerPaused: consumer.producerPaused,
		});
		if (consumer.kind === "video")
			await consumer.setPreferredLayers({ spatialLayer: 2, temporalLayer: 2 }).catch(() => undefined);
	}
}

import type { types as msc } from "mediasoup-client";
import { Device } from "mediasoup-client";
import type { MediaSource } from "../../shared/protocol.js";
import { t } from "./i18n/index.js";
import type { Signaling } from "./Signaling.js";

/** A remote person's track, as this browser receives it. */
export interface RemoteTrack {
	peerId: string;
	consumerId: string;
	kind: "audio" | "video";
	source: MediaSource;
	track: MediaStreamTrack;
	/** The sender paused it (muted mic, camera off, or muted by the host). */
	paused: boolean;
}

export interface MediaEvents {
	trackAdded(t: RemoteTrack): void;
	trackRemoved(t: RemoteTrack): void;
	/** `t.paused` changed. */
	trackPaused(t: RemoteTrack): void;
	/** A transport's ICE/DTLS connection state changed. */
	connectionState(direction: "send" | "recv", state: RTCPeerConnectionState): void;
}

/**
 * The media side of one membership of a meeting: the mediasoup-client Device,
 * a send and a receive transport, local producers (one per source) and the
 * consumers of everyone else's producers. Signaling (join, lobby, host controls)
 * stays with the caller; this class only moves media.
 */
export class MeetingSession {
	readonly device = new Device();
	readonly #signaling: Signaling;
	readonly #on: MediaEvents;
	#send?: msc.Transport;
	#recv?: msc.Transport;
	readonly #producers = new Map<MediaSource, msc.Producer>();
	readonly #consumers = new Map<string, { consumer: msc.Consumer; remote: RemoteTrack }>();
	readonly #unsubscribe: (() => void)[] = [];
	/** How the page shows each received video (`view`), and what the gateway was last told. */
	readonly #views = new Map<string, { visible: boolean; layer: number }>();
	readonly #told = new Map<string, string>();
	/** Consumers resumed once after their creation: from then on `view` goes to the gateway. */
	readonly #started = new Set<string>();
	/** Consumer events are applied in arrival order, each after the previous finished. */
	#queue: Promise<void> = Promise.resolve();
	#closed = false;

	private constructor(signaling: Signaling, on: MediaEvents) {
		this.#signaling = signaling;
		this.#on = on;
	}

	/** Loads the device for the meeting's router, opens both transports and starts receiving. */
	static async start(signaling: Signaling, routerRtpCapabilities: unknown, on: MediaEvents): Promise<MeetingSession> {
		const session = new MeetingSession(signaling, on);
		session.#wireEvents();
		try {
			await session.device.load({ routerRtpCapabilities: routerRtpCapabilities as msc.RtpCapabilities });
			if (session.device.canProduce("audio") || session.device.canProduce("video")) {
				session.#send = await session.#createTransport("send");
			}
			session.#recv = await session.#createTransport("recv");
			await signaling.request("setRtpCapabilities", { rtpCapabilities: session.device.rtpCapabilities as never });
		} catch (err) {
			session.close();
			throw err;
		}
		return session;
	}

	get closed(): boolean {
		return this.#closed;
	}

	canSend(kind: "audio" | "video"): boolean {
		return !!this.#send && this.device.canProduce(kind);
	}

	producer(source: MediaSource): msc.Producer | undefined {
		return this.#producers.get(source);
	}

	/** Publishes a local track (mic, camera or screen). Camera video is sent as three simulcast layers. */
	async publish(source: MediaSource, track: MediaStreamTrack): Promise<msc.Producer> {
		if (!this.#send) throw new Error(t("notice.cannotSend"));
		const existing = this.#producers.get(source);
		if (existing) {
			await existing.replaceTrack({ track });
			return existing;
		}
		const producer = await this.#send.produce({
			track,
			stopTracks: false, // the page owns its tracks (the preview shows them too)
			appData: { source },
			...(source === "camera"
				? {
						encodings: [
							{ scaleResolutionDownBy: 4, maxBitrate: 150_000 },
							{ scaleResolutionDownBy: 2, maxBitrate: 500_000 },
							{ scaleResolutionDownBy: 1, maxBitrate: 1_200_000 },
						],
						codecOptions: { videoGoogleStartBitrate: 1000 },
					}
				: {}),
		});
		this.#producers.set(source, producer);
		producer.observer.once("close", () => {
			if (this.#producers.get(source) === producer) this.#producers.delete(source);
		});
		return producer;
	}

	/** Stops sending a source for everyone (the server pauses its consumers too). */
	async pause(source: MediaSource): Promise<void> {
		const p = this.#producers.get(source);
		if (!p) return;
		p.pause();
		await this.#signaling.request("pauseProducer", { producerId: p.id });
	}

	async resume(source: MediaSource): Promise<void> {
		const p = this.#producers.get(source);
		if (!p) return;
		await this.#signaling.request("resumeProducer", { producerId: p.id });
		p.resume();
	}

	/** The server already paused this producer (the host muted us): pause it here too. */
	pausedByServer(producerId: string): MediaSource | undefined {
		for (const [source, p] of this.#producers) {
			if (p.id === producerId) {
				p.pause();
				return source;
			}
		}
		return undefined;
	}

	async replaceTrack(source: MediaSource, track: MediaStreamTrack | null): Promise<void> {
		await this.#producers.get(source)?.replaceTrack({ track });
	}

	/** Stops sending a source and closes its producer on the server. */
	/** Which of our sources a producer ID carries, if it is ours. */
	producerSource(producerId: string): MediaSource | undefined {
		for (const [source, p] of this.#producers) if (p.id === producerId) return source;
		return undefined;
	}

	async unpublish(source: MediaSource): Promise<void> {
		const p = this.#producers.get(source);
		if (!p) return;
		this.#producers.delete(source);
		p.close();
		if (this.#signaling.open)
			await this.#signaling.request("closeProducer", { producerId: p.id }).catch(() => undefined);
	}

	/**
	 * The page shows this received video off screen (the gateway stops forwarding it) or on screen at a
	 * simulcast layer (0 small … 2 full size). Only changes reach the gateway.
	 */
	view(consumerId: string, visible: boolean, layer: number): void {
		this.#views.set(consumerId, { visible, layer });
		if (this.#started.has(consumerId)) this.#enqueue(() => this.#tellView(consumerId));
	}

	async #tellView(consumerId: string): Promise<void> {
		const v = this.#views.get(consumerId);
		if (!v || this.#closed || !this.#consumers.has(consumerId)) return;
		const said = v.visible ? `on:${v.layer}` : "off";
		if (this.#told.get(consumerId) === said) return;
		this.#told.set(consumerId, said);
		await this.#signaling.request("viewConsumer", {
			consumerId,
			visible: v.visible,
			...(v.visible ? { spatialLayer: v.layer } : {}),
		});
	}

	remoteTracks(): RemoteTrack[] {
		return [...this.#consumers.values()].map((c) => c.remote);
	}

	/** Closes every local media object (the server closes its side when we leave or disconnect). */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const off of this.#unsubscribe) off();
		for (const p of this.#producers.values()) p.close();
		this.#producers.clear();
		for (const { consumer } of this.#consumers.values()) consumer.close();
		this.#consumers.clear();
		this.#send?.close();
		this.#recv?.close();
	}

	async #createTransport(direction: "send" | "recv"): Promise<msc.Transport> {
		const info = await this.#signaling.request("createWebRtcTransport", { direction });
		const options = {
			id: info.id,
			iceParameters: info.iceParameters as msc.IceParameters,
			iceCandidates: info.iceCandidates as msc.IceCandidate[],
			dtlsParameters: info.dtlsParameters as msc.DtlsParameters,
		};
		const transport =
			direction === "send" ? this.device.createSendTransport(options) : this.device.createRecvTransport(options);
		transport.on("connectionstatechange", (state) => this.#on.connectionState(direction, state));
		transport.on("connect", ({ dtlsParameters }, ok, fail) => {
			this.#signaling
				.request("connectWebRtcTransport", { transportId: transport.id, dtlsParameters: dtlsParameters as never })
				.then(() => ok(), fail);
		});
		if (direction === "send") {
			transport.on("produce", ({ kind, rtpParameters, appData }, ok, fail) => {
				this.#signaling
					.request("produce", {
						transportId: transport.id,
						kind,
						rtpParameters: rtpParameters as never,
						source: (appData as { source: MediaSource }).source,
					})
					.then(({ producerId }) => ok({ id: producerId }), fail);
			});
		}
		return transport;
	}

	#enqueue(fn: () => Promise<void> | void): void {
		this.#queue = this.#queue.then(fn).catch((err: unknown) => console.warn("media event failed", err));
	}

	#wireEvents(): void {
		const s = this.#signaling;
		this.#unsubscribe.push(
			s.on("newConsumer", (e) =>
				this.#enqueue(async () => {
					if (this.#closed || !this.#recv) return;
					// One consumer per producer is enough. The gateway may offer a second one for the same
					// producer (a race between setRtpCapabilities and another person's produce); it stays
					// paused on the server because we never resume it.
					if (this.#receiving(e.producerId)) {
						console.warn("ignoring a second consumer for producer", e.producerId);
						return;
					}
					const consumer = await this.#recv.consume({
						id: e.consumerId,
						producerId: e.producerId,
						kind: e.kind,
						rtpParameters: e.rtpParameters as msc.RtpParameters,
					});
					if (this.#closed) {
						consumer.close();
						return;
					}
					const remote: RemoteTrack = {
						peerId: e.peerId,
						consumerId: consumer.id,
						kind: e.kind,
						source: e.source,
						track: consumer.track,
						paused: e.producerPaused,
					};
					this.#consumers.set(consumer.id, { consumer, remote });
					this.#on.trackAdded(remote);
					// A video placed off screen stays paused on the gateway (consumers start paused there).
					const v = this.#views.get(consumer.id);
					if (v && !v.visible) this.#told.set(consumer.id, "off");
					else {
						await s.request("resumeConsumer", { consumerId: consumer.id });
						this.#told.set(consumer.id, "on:2");
					}
					this.#started.add(consumer.id);
					await this.#tellView(consumer.id);
				}),
			),
			s.on("consumerClosed", ({ consumerId }) =>
				this.#enqueue(() => {
					const c = this.#consumers.get(consumerId);
					if (!c) return;
					this.#consumers.delete(consumerId);
					this.#views.delete(consumerId);
					this.#told.delete(consumerId);
					this.#started.delete(consumerId);
					c.consumer.close();
					this.#on.trackRemoved(c.remote);
				}),
			),
			s.on("consumerPaused", ({ consumerId }) => this.#enqueue(() => this.#setPaused(consumerId, true))),
			s.on("consumerResumed", ({ consumerId }) => this.#enqueue(() => this.#setPaused(consumerId, false))),
		);
	}

	#receiving(producerId: string): boolean {
		for (const { consumer } of this.#consumers.values()) if (consumer.producerId === producerId) return true;
		return false;
	}

	#setPaused(consumerId: string, paused: boolean): void {
		const c = this.#consumers.get(consumerId);
		if (!c || c.remote.paused === paused) return;
		c.remote.paused = paused;
		this.#on.trackPaused(c.remote);
	}
}

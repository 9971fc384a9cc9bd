import type { types as msc } from "mediasoup-client";
import { Device } from "mediasoup-client";
import type { MediaSource, PeerInfo } from "../../shared/protocol.js";
import { Signaling } from "./Signaling.js";

export interface RemoteTrack {
	peerId: string;
	consumerId: string;
	source: MediaSource;
	track: MediaStreamTrack;
}

export interface MeetingSessionEvents {
	peerJoined(peer: PeerInfo): void;
	peerLeft(peerId: string): void;
	trackAdded(t: RemoteTrack): void;
	trackRemoved(consumerId: string): void;
	activeSpeaker(peerId: string | null): void;
	disconnected(reason: string): void;
}

/**
 * One browser's membership of a meeting: the mediasoup-client Device, a send
 * and a receive transport, local producers and remote consumers.
 */
export class MeetingSession {
	readonly signaling: Signaling;
	readonly device = new Device();
	peerId = "";
	#send?: msc.Transport;
	#recv?: msc.Transport;
	readonly #producers = new Map<MediaSource, msc.Producer>();
	readonly #consumers = new Map<string, msc.Consumer>();
	readonly #on: Partial<MeetingSessionEvents>;

	private constructor(signaling: Signaling, on: Partial<MeetingSessionEvents>) {
		this.signaling = signaling;
		this.#on = on;
	}

	static async join(
		meetingId: string,
		displayName: string,
		on: Partial<MeetingSessionEvents>,
	): Promise<{ session: MeetingSession; peers: PeerInfo[] }> {
		const signaling = new Signaling();
		const session = new MeetingSession(signaling, on);
		session.#wireEvents();
		const joined = await signaling.request("join", { meetingId, displayName });
		session.peerId = joined.peerId;
		await session.device.load({ routerRtpCapabilities: joined.routerRtpCapabilities as msc.RtpCapabilities });
		session.#send = await session.#createTransport("send");
		session.#recv = await session.#createTransport("recv");
		await signaling.request("setRtpCapabilities", { rtpCapabilities: session.device.rtpCapabilities as never });
		return { session, peers: joined.peers };
	}

	/** Publishes a local track (mic, camera or screen). Camera video is sent as three simulcast layers. */
	async publish(source: MediaSource, track: MediaStreamTrack): Promise<msc.Producer> {
		if (!this.#send) throw new Error("not joined");
		const producer = await this.#send.produce({
			track,
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
		return producer;
	}

	async leave(): Promise<void> {
		try {
			await this.signaling.request("leave", {}, 2000);
		} catch {
			// leaving anyway
		}
		for (const p of this.#producers.values()) p.close();
		this.#send?.close();
		this.#recv?.close();
		this.signaling.close();
	}

	async #createTransport(direction: "send" | "recv"): Promise<msc.Transport> {
		const info = await this.signaling.request("createWebRtcTransport", { direction });
		const options = {
			id: info.id,
			iceParameters: info.iceParameters as msc.IceParameters,
			iceCandidates: info.iceCandidates as msc.IceCandidate[],
			dtlsParameters: info.dtlsParameters as msc.DtlsParameters,
		};
		const transport =
			direction === "send" ? this.device.createSendTransport(options) : this.device.createRecvTransport(options);
		transport.on("connect", ({ dtlsParameters }, ok, fail) => {
			this.signaling
				.request("connectWebRtcTransport", { transportId: transport.id, dtlsParameters: dtlsParameters as never })
				.then(() => ok(), fail);
		});
		if (direction === "send") {
			transport.on("produce", ({ kind, rtpParameters, appData }, ok, fail) => {
				this.signaling
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

	#wireEvents(): void {
		const s = this.signaling;
		s.on("peerJoined", (peer) => this.#on.peerJoined?.(peer));
		s.on("peerLeft", ({ peerId }) => this.#on.peerLeft?.(peerId));
		s.on("activeSpeaker", ({ peerId }) => this.#on.activeSpeaker?.(peerId));
		s.on("reconnect", ({ reason }) => this.#on.disconnected?.(reason));
		s.socket.on("disconnect", (reason) => this.#on.disconnected?.(reason));
		s.on("newConsumer", async (e) => {
			if (!this.#recv) return;
			const consumer = await this.#recv.consume({
				id: e.consumerId,
				producerId: e.producerId,
				kind: e.kind,
				rtpParameters: e.rtpParameters as msc.RtpParameters,
			});
			this.#consumers.set(consumer.id, consumer);
			this.#on.trackAdded?.({ peerId: e.peerId, consumerId: consumer.id, source: e.source, track: consumer.track });
			await s.request("resumeConsumer", { consumerId: consumer.id });
		});
		s.on("consumerClosed", ({ consumerId }) => {
			this.#consumers.get(consumerId)?.close();
			this.#consumers.delete(consumerId);
			this.#on.trackRemoved?.(consumerId);
		});
	}
}

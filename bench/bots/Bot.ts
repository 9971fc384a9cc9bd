/**
 * A headless meeting participant: mediasoup-client on wrtc, doing what the
 * browser client (client/src/MeetingSession.ts) does over any `Signal`: join,
 * load the device, open a send and/or a receive transport, tell the server its
 * RTP capabilities, publish tracks, and consume + resume whatever the server
 * offers. Each remote video track gets an RTCVideoSink until its first decoded
 * frame (then the sink is stopped, so steady-state frames cost no JavaScript).
 */
import type { types as msc } from "mediasoup-client";
import type { MediaSource } from "../../shared/protocol.js";
import type { SyntheticMedia } from "./media.js";
import type { NewConsumer, Signal } from "./signal.js";
import { newDevice, nonstandard, peerConnectionSettings } from "./wrtc.js";

export interface BotTimings {
	/** performance.now() when the join request was sent / answered. */
	joinSent: number;
	joined: number;
	/** After device.load, after each transport was created, after setRtpCapabilities was answered. */
	deviceLoaded?: number;
	sendCreated?: number;
	recvCreated?: number;
	capsAcked?: number;
	/** The first `newConsumer` for a video producer arrived. */
	firstVideoConsumer?: number;
	/** The first decoded frame of a remote video track (RTCVideoSink `onframe`). */
	firstFrame?: number;
}

export class Bot {
	readonly signal: Signal;
	readonly device = newDevice();
	readonly timings: BotTimings;
	send?: msc.Transport;
	recv?: msc.Transport;
	readonly consumers = new Map<string, msc.Consumer>();
	readonly producers: msc.Producer[] = [];
	/** Remote video tracks that decoded at least one frame; remote audio tracks that delivered samples. */
	videoFramesSeen = 0;
	audioSeen = 0;
	/** Consumers the server offered that this bot left alone (`consume: false`). */
	offered = 0;
	errors: string[] = [];
	#onFirstFrame?: () => void;
	readonly #sinks = new Set<{ stop(): void }>();
	#closed = false;

	private constructor(signal: Signal, joinSent: number) {
		this.signal = signal;
		this.timings = { joinSent, joined: 0 };
	}

	/**
	 * Joins a meeting; opens a send transport if `send`, a receive transport if `recv`. With `consume: false` the
	 * bot still tells the server its RTP capabilities (so the server creates a paused consumer for every remote
	 * track) but never consumes or resumes them: nothing is forwarded to it or decoded.
	 */
	static async join(
		signal: Signal,
		meetingId: string,
		o: { displayName: string; send: boolean; recv: boolean; consume?: boolean },
	): Promise<Bot> {
		const bot = new Bot(signal, performance.now());
		signal.onNewConsumer((e) => {
			if (o.consume === false) {
				bot.offered++;
				return;
			}
			bot.#consume(e).catch((err: unknown) => bot.errors.push(`consume: ${String(err)}`));
		});
		const joined = await signal.request("join", { meetingId, displayName: o.displayName });
		if (joined.status !== "joined") throw new Error(`join: ${joined.status}`);
		bot.timings.joined = performance.now();
		await bot.device.load({ routerRtpCapabilities: joined.routerRtpCapabilities as msc.RtpCapabilities });
		bot.timings.deviceLoaded = performance.now();
		if (o.send) {
			bot.send = await bot.#transport("send");
			bot.timings.sendCreated = performance.now();
		}
		if (o.recv) {
			bot.recv = await bot.#transport("recv");
			bot.timings.recvCreated = performance.now();
			await signal.request("setRtpCapabilities", { rtpCapabilities: bot.device.rtpCapabilities as never });
			bot.timings.capsAcked = performance.now();
		}
		return bot;
	}

	/** Resolves at the first decoded remote video frame (performance.now()). */
	firstFrame(timeoutMs = 20_000): Promise<number> {
		if (this.timings.firstFrame !== undefined) return Promise.resolve(this.timings.firstFrame);
		return new Promise((resolve, reject) => {
			const t = setTimeout(() => reject(new Error(`no remote video frame within ${timeoutMs} ms`)), timeoutMs);
			this.#onFirstFrame = () => {
				clearTimeout(t);
				resolve(this.timings.firstFrame as number);
			};
		});
	}

	/** Publishes the synthetic microphone and/or camera (one low-resolution layer). */
	async publish(
		media: SyntheticMedia,
		what: { audio: boolean; video: boolean; maxVideoBitrate: number },
	): Promise<void> {
		if (!this.send) throw new Error("no send transport");
		if (what.audio)
			this.producers.push(await this.send.produce({ track: media.audioTrack(), appData: { source: "mic" } }));
		if (what.video) {
			this.producers.push(
				await this.send.produce({
					track: media.videoTrack(),
					encodings: [{ maxBitrate: what.maxVideoBitrate }],
					appData: { source: "camera" },
				}),
			);
		}
	}

	/** RTP packets received on the receive transport and sent on the send transport so far (from getStats). */
	async packets(): Promise<{ received: number; sent: number }> {
		let received = 0;
		let sent = 0;
		for (const t of [this.recv, this.send]) {
			if (!t || t.closed) continue;
			const report = await t.getStats();
			report.forEach((s: { type: string; packetsReceived?: number; packetsSent?: number }) => {
				if (s.type === "inbound-rtp") received += s.packetsReceived ?? 0;
				if (s.type === "outbound-rtp") sent += s.packetsSent ?? 0;
			});
		}
		return { received, sent };
	}

	/** consumers/offers left alone/video tracks decoded/audio tracks heard, transport states, first error: for timeouts. */
	describe(): string {
		return `[${this.consumers.size}c ${this.offered}o ${this.videoFramesSeen}v ${this.audioSeen}a send:${this.send?.connectionState ?? "-"} recv:${this.recv?.connectionState ?? "-"}${this.errors[0] ? ` ${this.errors[0]}` : ""}]`;
	}

	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const s of this.#sinks) s.stop();
		this.#sinks.clear();
		this.signal.close();
		this.send?.close();
		this.recv?.close();
	}

	async #transport(direction: "send" | "recv"): Promise<msc.Transport> {
		const info = await this.signal.request("createWebRtcTransport", { direction });
		const options = {
			id: info.id,
			iceParameters: info.iceParameters as msc.IceParameters,
			iceCandidates: info.iceCandidates as msc.IceCandidate[],
			dtlsParameters: info.dtlsParameters as msc.DtlsParameters,
			additionalSettings: peerConnectionSettings,
		};
		const transport =
			direction === "send" ? this.device.createSendTransport(options) : this.device.createRecvTransport(options);
		transport.on("connect", ({ dtlsParameters }, ok, fail) => {
			this.signal
				.request("connectWebRtcTransport", { transportId: transport.id, dtlsParameters: dtlsParameters as never })
				.then(() => ok(), fail);
		});
		if (direction === "send") {
			transport.on("produce", ({ kind, rtpParameters, appData }, ok, fail) => {
				this.signal
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

	async #consume(e: NewConsumer): Promise<void> {
		if (!this.recv || this.#closed) return;
		if (e.kind === "video") this.timings.firstVideoConsumer ??= performance.now();
		const consumer = await this.recv.consume({
			id: e.consumerId,
			producerId: e.producerId,
			kind: e.kind,
			rtpParameters: e.rtpParameters as msc.RtpParameters,
		});
		this.consumers.set(consumer.id, consumer);
		if (consumer.kind === "video") {
			const sink = new nonstandard.RTCVideoSink(consumer.track as never);
			this.#sinks.add(sink);
			sink.onframe = () => {
				sink.stop();
				this.#sinks.delete(sink);
				sink.onframe = null;
				this.videoFramesSeen++;
				if (this.timings.firstFrame === undefined) {
					this.timings.firstFrame = performance.now();
					this.#onFirstFrame?.();
				}
			};
		} else {
			const sink = new nonstandard.RTCAudioSink(consumer.track as never);
			this.#sinks.add(sink);
			sink.ondata = () => {
				sink.stop();
				this.#sinks.delete(sink);
				sink.ondata = null;
				this.audioSeen++;
			};
		}
		await this.signal.request("resumeConsumer", { consumerId: consumer.id });
	}
}

import type { types as ms } from "mediasoup";

/** What the recorder process needs to know to receive a tap's RTP. */
export interface TapCodec {
	kind: "audio" | "video";
	mimeType: "audio/opus" | "video/VP8" | "video/H264";
	payloadType: number;
	clockRate: number;
	channels?: number;
	/** H.264: the producer's `sprop-parameter-sets`, when its SDP had them (browsers send SPS/PPS in band). */
	spropParameterSets?: string;
}

/**
 * One producer's media leaving the SFU for the recorder process: a
 * PlainTransport on loopback (RTCP on its own port: ffmpeg's way) and a
 * consumer on it, created paused. Nothing flows until `start()` points it at
 * the recorder's ports; `close()` stops it at once. The recording and the
 * transcription services both tap media only through this, and only for taps
 * the notice gate opened.
 */
export class PlainTap {
	readonly transport: ms.PlainTransport;
	readonly consumer: ms.Consumer;

	private constructor(transport: ms.PlainTransport, consumer: ms.Consumer) {
		this.transport = transport;
		this.consumer = consumer;
	}

	static async create(router: ms.Router, producerId: string, label: string): Promise<PlainTap> {
		const transport = await router.createPlainTransport({
			listenInfo: { protocol: "udp", ip: "127.0.0.1" },
			rtcpMux: false,
			comedia: false,
			appData: { tap: label },
		});
		try {
			const consumer = await transport.consume({ producerId, rtpCapabilities: router.rtpCapabilities, paused: true });
			return new PlainTap(transport, consumer);
		} catch (err) {
			transport.close();
			throw err;
		}
	}

	get codec(): TapCodec {
		const c = this.consumer.rtpParameters.codecs[0] as ms.RtpCodecParameters;
		const h264 = c.mimeType.toLowerCase() === "video/h264";
		const sprop = h264 ? c.parameters?.["sprop-parameter-sets"] : undefined;
		return {
			kind: this.consumer.kind,
			mimeType: this.consumer.kind === "audio" ? "audio/opus" : h264 ? "video/H264" : "video/VP8",
			payloadType: c.payloadType,
			clockRate: c.clockRate,
			...(c.channels ? { channels: c.channels } : {}),
			...(typeof sprop === "string" && sprop ? { spropParameterSets: sprop } : {}),
		};
	}

	get ssrc(): number {
		return this.consumer.rtpParameters.encodings?.[0]?.ssrc as number;
	}

	get closed(): boolean {
		return this.consumer.closed;
	}

	/** Sends the RTP to the recorder's ports and lets it flow (a key frame first, for video). */
	async start(ports: { rtpPort: number; rtcpPort: number }): Promise<void> {
		await this.transport.connect({ ip: "127.0.0.1", port: ports.rtpPort, rtcpPort: ports.rtcpPort });
		await this.consumer.resume();
		if (this.consumer.kind === "video") await this.consumer.requestKeyFrame();
	}

	requestKeyFrame(): void {
		if (!this.consumer.closed) void this.consumer.requestKeyFrame().catch(() => undefined);
	}

	close(): void {
		this.consumer.close();
		this.transport.close();
	}
}

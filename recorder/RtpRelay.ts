import dgram from "node:dgram";
import type { Logger } from "../contracts/logger.js";
import { isRtcp, parseRtp, type RtpHeader } from "./rtp.js";

export interface RtpRelayOptions {
	payloadType: number;
	ssrc: number;
	log: Logger;
	/** A well-formed RTP packet of the track (its parsed header). */
	onRtp: (packet: Buffer, header: RtpHeader) => void;
	onRtcp: (packet: Buffer) => void;
}

export interface RtpRelayStats {
	received: number;
	dropped: number;
	forwarded: number;
	/** Packets read at close only to be counted (the recorder lagged more than its close drain). */
	discarded: number;
}

/**
 * The track's fixed UDP ports, bound on 127.0.0.1 only (what the gateway's
 * PlainTransport sends to): each RTP packet of the expected payload type and
 * SSRC is handed on (to the recorder's depacketizer, or relayed to a
 * transcription's decoder); packets of another payload type or SSRC, or not
 * RTP at all, are dropped. RTCP (the sender reports) comes on its own port.
 */
export class RtpRelay {
	readonly rtpPort: number;
	readonly rtcpPort: number;
	readonly stats: RtpRelayStats = { received: 0, dropped: 0, forwarded: 0, discarded: 0 };
	readonly #rtp: dgram.Socket;
	readonly #rtcp: dgram.Socket;
	readonly #opts: RtpRelayOptions;
	#closed = false;
	#warnedSsrc = false;
	/** Counting only: the RTP timestamps of the first and last packet counted. */
	#discarding: { firstTs?: number; lastTs?: number } | undefined;

	private constructor(rtp: dgram.Socket, rtcp: dgram.Socket, options: RtpRelayOptions) {
		this.#rtp = rtp;
		this.#rtcp = rtcp;
		this.#opts = options;
		this.rtpPort = rtp.address().port;
		this.rtcpPort = rtcp.address().port;
		rtp.on("message", (msg) => this.#onRtp(msg));
		rtcp.on("message", (msg) => {
			if (!this.#closed && isRtcp(msg)) options.onRtcp(msg);
		});
		for (const s of [rtp, rtcp]) s.on("error", (err) => options.log.warn({ err }, "relay socket error"));
	}

	static async create(options: RtpRelayOptions): Promise<RtpRelay> {
		const open = async () => {
			// 4 MiB asked (the kernel caps it at net.core.rmem_max): a stalled event loop must not drop a burst of RTP.
			const s = dgram.createSocket({ type: "udp4", recvBufferSize: 4 << 20 });
			await new Promise<void>((resolve, reject) => {
				s.once("error", reject);
				s.bind(0, "127.0.0.1", () => {
					s.off("error", reject);
					resolve();
				});
			});
			return s;
		};
		const rtp = await open();
		const rtcp = await open().catch((err: unknown) => {
			rtp.close();
			throw err;
		});
		return new RtpRelay(rtp, rtcp, options);
	}

	sendRtp(packet: Buffer, port: number): void {
		if (this.#closed) return;
		this.stats.forwarded++;
		this.#rtp.send(packet, port, "127.0.0.1");
	}

	sendRtcp(packet: Buffer, port: number): void {
		if (this.#closed) return;
		this.#rtcp.send(packet, port, "127.0.0.1");
	}

	/**
	 * Reads what is already queued in the RTP socket before it closes: resolves once two turns of the event loop
	 * brought no packet (the socket is empty: a readable socket is read in every turn), or after `maxMs`.
	 */
	async drain(maxMs: number): Promise<boolean> {
		const until = Date.now() + maxMs;
		for (let seen = -1; !this.#closed; ) {
			if (seen === this.stats.received) return true;
			if (Date.now() >= until) return false;
			seen = this.stats.received;
			await new Promise((r) => setImmediate(r));
			await new Promise((r) => setImmediate(r));
		}
		return true;
	}

	/**
	 * After a drain that ran out of time: reads the rest only to count it (a few µs a packet), until the socket is
	 * quiet or `maxMs`. Resolves to how many packets of the track were thrown away and the RTP time they spanned.
	 */
	async discardRest(maxMs: number): Promise<{ packets: number; firstTs?: number; lastTs?: number }> {
		const before = this.stats.discarded;
		this.#discarding = {};
		await this.drain(maxMs);
		const d = this.#discarding;
		this.#discarding = undefined;
		return { packets: this.stats.discarded - before, ...d };
	}

	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		this.#rtp.close();
		this.#rtcp.close();
	}

	#onRtp(packet: Buffer): void {
		if (this.#closed) return;
		this.stats.received++;
		const header = isRtcp(packet) ? undefined : parseRtp(packet);
		if (!header || header.payloadType !== this.#opts.payloadType) {
			this.stats.dropped++;
			return;
		}
		if (this.#discarding && header.ssrc === this.#opts.ssrc) {
			this.stats.discarded++;
			this.#discarding.firstTs ??= header.timestamp;
			this.#discarding.lastTs = header.timestamp;
			return;
		}
		if (header.ssrc !== this.#opts.ssrc) {
			this.stats.dropped++;
			if (!this.#warnedSsrc) {
				this.#warnedSsrc = true;
				this.#opts.log.warn({ got: header.ssrc, expected: this.#opts.ssrc }, "RTP of another SSRC dropped");
			}
			return;
		}
		this.#opts.onRtp(packet, header);
	}
}

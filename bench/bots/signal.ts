/**
 * What a bot needs from a signaling channel: the subset of shared/protocol.ts
 * requests a browser client sends to publish and receive, and the
 * `newConsumer` event. The gateway implements it over socket.io (the real
 * protocol); the bare mediasoup server of bench/bots/bare-sfu.ts over Node IPC.
 */
import { io } from "socket.io-client";
import type { ErrorBody, RequestData, Response, ResponseMap, ServerEvents } from "../../shared/protocol.js";

export type BotRequest =
	| "join"
	| "createWebRtcTransport"
	| "connectWebRtcTransport"
	| "setRtpCapabilities"
	| "produce"
	| "resumeConsumer"
	| "leave";

export type NewConsumer = Parameters<ServerEvents["newConsumer"]>[0];

export interface Signal {
	request<N extends BotRequest>(name: N, data: RequestData<N>): Promise<ResponseMap[N]>;
	onNewConsumer(fn: (e: NewConsumer) => void): void;
	close(): void;
}

/**
 * Connects to the gateway's socket.io signaling with a tenant token (and any other handshake `auth` fields, e.g. the
 * cluster's `meetingId`); rejects with the handshake error, its `data` kept (a cluster node's redirect).
 */
export async function gatewaySignal(url: string, token: string, auth: Record<string, unknown> = {}): Promise<Signal> {
	const socket = io(url, { transports: ["websocket"], reconnection: false, auth: { token, ...auth } });
	await new Promise<void>((resolve, reject) => {
		socket.once("connect", () => resolve());
		socket.once("connect_error", (err: Error & { data?: ErrorBody }) => {
			socket.close();
			reject(Object.assign(new Error(`signaling connect failed: ${err.message}`), { data: err.data }));
		});
	});
	return {
		async request(name, data) {
			const r = (await socket.timeout(20_000).emitWithAck(name, data)) as Response<typeof name>;
			if (!r.ok) throw new Error(`${name}: ${r.error.code}: ${r.error.message}`);
			return r.data as never;
		},
		onNewConsumer(fn) {
			socket.on("newConsumer", fn);
		},
		close() {
			socket.close();
		},
	};
}

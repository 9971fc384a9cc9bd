import { io, type Socket } from "socket.io-client";
import type { Signal } from "../../bench/bots/signal.js";
import type { ErrorBody, JoinResult, RequestName, Response, ResponseMap, ServerEvents } from "../../shared/protocol.js";

/**
 * What `call` resolves with: a join is joined or in the lobby (a cluster's redirect is a failure for `call`: tests of
 * placement read it with `req`).
 */
type CallData<N extends RequestName> = N extends "join" ? JoinResult : ResponseMap[N];

/** A raw signaling client: what a browser's socket sends, without the browser. */
export interface RawClient {
	socket: Socket;
	/** Sends a request; resolves with the whole reply (ok or error). */
	req<N extends RequestName>(name: N, data?: unknown): Promise<Response<N>>;
	/** Sends a request; resolves with data, rejects with the error body. */
	call<N extends RequestName>(name: N, data?: unknown): Promise<CallData<N>>;
	/** Resolves with the next `event` the server sends. */
	next<E extends keyof ServerEvents>(event: E, timeoutMs?: number): Promise<Parameters<ServerEvents[E]>[0]>;
	close(): void;
}

/** Connects to the gateway, with a token or as a guest; rejects with the handshake's error body. */
export async function connect(url: string, token?: string, auth: Record<string, unknown> = {}): Promise<RawClient> {
	const socket = io(url, {
		transports: ["websocket"],
		reconnection: false,
		auth: { ...(token ? { token } : {}), ...auth },
	});
	await new Promise<void>((resolve, reject) => {
		socket.once("connect", () => resolve());
		socket.once("connect_error", (err: Error & { data?: ErrorBody }) => {
			socket.close();
			reject(Object.assign(new Error(err.message), { data: err.data }));
		});
	});
	const req = <N extends RequestName>(name: N, data?: unknown) =>
		socket.timeout(5000).emitWithAck(name, data) as Promise<Response<N>>;
	return {
		socket,
		req,
		call: async (name, data) => {
			const r = await req(name, data);
			if (!r.ok) throw Object.assign(new Error(r.error.message), { body: r.error });
			if (name === "join" && (r.data as { status?: string }).status === "redirect")
				throw Object.assign(new Error("redirected to another node"), { body: r.data });
			return r.data as CallData<typeof name>;
		},
		next: (event, timeoutMs = 5000) =>
			new Promise((resolve, reject) => {
				const t = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
				socket.once(event as string, (payload: Parameters<ServerEvents[typeof event]>[0]) => {
					clearTimeout(t);
					resolve(payload);
				});
			}),
		close: () => socket.close(),
	};
}

/** The error code of a reply (or "ok"). */
export function codeOf(r: Response<RequestName>): string {
	return r.ok ? "ok" : r.error.code;
}

/** A raw client as a media bot's signaling (bench/bots/Bot.ts): its requests, its new consumers, its close. */
export function signalOf(c: RawClient): Signal {
	return {
		request: (name, data) => c.call(name, data) as never,
		onNewConsumer: (fn) => c.socket.on("newConsumer", fn),
		close: () => c.close(),
	};
}

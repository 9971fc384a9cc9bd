import { io, type Socket } from "socket.io-client";
import {
	type ClientEvents,
	ConnectRedirectSchema,
	type ErrorBody,
	type RequestData,
	type RequestName,
	type Response,
	type ResponseMap,
	type ServerEvents,
} from "../../shared/protocol.js";
import { t } from "./i18n/index.js";

/** An error answer from the gateway (or a connection failure), with its stable code. */
export class SignalingError extends Error {
	readonly code: string;
	/** Extra fields some errors carry (e.g. `heldSince` on `host_seat_taken`). */
	readonly details: Record<string, unknown>;
	constructor(body: ErrorBody & Record<string, unknown>) {
		super(body.message);
		this.name = "SignalingError";
		this.code = body.code;
		const { code: _c, message: _m, ...details } = body;
		this.details = details;
	}
}

/**
 * Typed request/response over socket.io. The token (if any) goes in the
 * handshake's `auth`; without one the gateway treats this connection as a guest.
 */
export class Signaling {
	readonly socket: Socket<ServerEvents, ClientEvents>;
	#closedByUs = false;

	/**
	 * `meetingId`: the meeting this connection is for (cluster): a node where it does not live refuses the handshake
	 * with a redirect (`connected()` rejects with code `redirect`, details `{ meetingId, redirect }`, zod-checked).
	 */
	constructor(options: { token?: string | undefined; url?: string; meetingId?: string | undefined } = {}) {
		this.socket = io(options.url ?? location.origin, {
			transports: ["websocket"],
			reconnection: false,
			auth: {
				...(options.token ? { token: options.token } : {}),
				...(options.meetingId ? { meetingId: options.meetingId } : {}),
			},
		});
	}

	/** Resolves once connected; rejects with the handshake's error code (`token_expired`, …). */
	connected(timeoutMs = 10_000): Promise<void> {
		if (this.socket.connected) return Promise.resolve();
		return new Promise((resolve, reject) => {
			const done = () => {
				clearTimeout(timer);
				this.socket.off("connect", onConnect);
				this.socket.off("connect_error", onError);
			};
			const onConnect = () => {
				done();
				resolve();
			};
			const onError = (err: Error & { data?: unknown }) => {
				done();
				this.close();
				const redirect = ConnectRedirectSchema.safeParse(err.data);
				if (redirect.success) {
					reject(new SignalingError(redirect.data));
					return;
				}
				const data = err.data as Partial<ErrorBody> | undefined;
				reject(
					new SignalingError(
						data && typeof data.code === "string"
							? { code: data.code, message: String(data.message ?? err.message) }
							: { code: "connection_failed", message: t("error.connection_failed") },
					),
				);
			};
			const timer = setTimeout(() => onError(Object.assign(new Error("timeout"), { data: undefined })), timeoutMs);
			this.socket.on("connect", onConnect);
			this.socket.on("connect_error", onError);
		});
	}

	get open(): boolean {
		return this.socket.connected && !this.#closedByUs;
	}

	async request<N extends RequestName>(name: N, data: RequestData<N>, timeoutMs = 10_000): Promise<ResponseMap[N]> {
		const s = this.socket.timeout(timeoutMs);
		const emit = s.emitWithAck as unknown as (n: N, d: RequestData<N>) => Promise<Response<N>>;
		let res: Response<N>;
		try {
			res = await emit.call(s, name, data);
		} catch {
			throw new SignalingError({ code: "timeout", message: t("error.timeout") });
		}
		if (!res.ok) throw new SignalingError(res.error as ErrorBody & Record<string, unknown>);
		return res.data;
	}

	/** Listens to a server event; returns a function that stops listening. */
	on<E extends keyof ServerEvents>(event: E, listener: ServerEvents[E]): () => void {
		const on = this.socket.on as (e: E, l: ServerEvents[E]) => void;
		const off = this.socket.off as (e: E, l: ServerEvents[E]) => void;
		on.call(this.socket, event, listener);
		return () => off.call(this.socket, event, listener);
	}

	/** Called when the connection drops without us closing it (not after `close()`). */
	onLost(listener: (reason: string) => void): void {
		this.socket.on("disconnect", (reason) => {
			if (!this.#closedByUs) listener(reason);
		});
	}

	close(): void {
		this.#closedByUs = true;
		this.socket.close();
	}
}

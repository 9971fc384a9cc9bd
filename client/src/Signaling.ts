import { io, type Socket } from "socket.io-client";
import type {
	ClientEvents,
	ErrorBody,
	RequestData,
	RequestName,
	Response,
	ResponseMap,
	ServerEvents,
} from "../../shared/protocol.js";

/** An error answer from the gateway, with its stable code. */
export class SignalingError extends Error {
	readonly code: string;
	constructor(body: ErrorBody) {
		super(body.message);
		this.name = "SignalingError";
		this.code = body.code;
	}
}

/** Typed request/response over socket.io. */
export class Signaling {
	readonly socket: Socket<ServerEvents, ClientEvents>;

	constructor(url: string = location.origin) {
		this.socket = io(url, { transports: ["websocket"], reconnection: false });
	}

	async request<N extends RequestName>(name: N, data: RequestData<N>, timeoutMs = 10_000): Promise<ResponseMap[N]> {
		const emit = this.socket.timeout(timeoutMs).emitWithAck as unknown as (
			n: N,
			d: RequestData<N>,
		) => Promise<Response<N>>;
		let res: Response<N>;
		try {
			res = await emit.call(this.socket.timeout(timeoutMs), name, data);
		} catch {
			throw new SignalingError({ code: "timeout", message: `The gateway did not answer ${name} in time.` });
		}
		if (!res.ok) throw new SignalingError(res.error);
		return res.data;
	}

	on<E extends keyof ServerEvents>(event: E, listener: ServerEvents[E]): void {
		(this.socket.on as (e: E, l: ServerEvents[E]) => void)(event, listener);
	}

	close(): void {
		this.socket.close();
	}
}

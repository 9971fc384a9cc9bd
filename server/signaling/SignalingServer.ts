import { randomUUID } from "node:crypto";
import { errors as mediasoupErrors, type types as ms } from "mediasoup";
import type { Server as IoServer, Socket } from "socket.io";
import type { z } from "zod";
import {
	type ClientEvents,
	type RequestName,
	RequestSchemas,
	type Response,
	type ResponseMap,
	type ServerEvents,
} from "../../shared/protocol.js";
import type { Identity } from "../auth/TenantTypes.js";
import type { TokenVerifier } from "../auth/TokenVerifier.js";
import { ConsentryError, RateLimitError, toPublicError, ValidationError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Connection } from "../meetings/Connection.js";
import type { MeetingHub } from "../meetings/MeetingHub.js";
import { RateLimiter } from "./RateLimiter.js";

type IoSocket = Socket<ClientEvents, ServerEvents, Record<string, never>, { identity: Identity }>;
const MEDIA_GONE = {
	code: "media_unavailable",
	message: "The media connection for this meeting closed while handling the request; rejoin the meeting.",
};

type Parsed<N extends RequestName> = z.infer<(typeof RequestSchemas)[N]>;

export interface SignalingServerOptions {
	io: IoServer<ClientEvents, ServerEvents>;
	hub: MeetingHub;
	verifier: TokenVerifier;
	/** Prefix of connection IDs, unique per gateway process sharing the store. */
	gatewayId: string;
	log: Logger;
}

/**
 * Signaling over socket.io. The handshake's token (if any) is verified once per
 * connection; without one the person is a guest. Every request is rate limited,
 * validated against its zod schema, dispatched through one exhaustive switch,
 * and answered through the ack with `{ ok, data }` or `{ ok: false, error }`.
 * A handler failure never escapes: it becomes an error reply.
 */
export class SignalingServer {
	readonly #hub: MeetingHub;
	readonly #log: Logger;

	constructor(options: SignalingServerOptions) {
		this.#hub = options.hub;
		this.#log = options.log.child({ component: "Signaling" });
		const io = options.io as unknown as IoServer<
			ClientEvents,
			ServerEvents,
			Record<string, never>,
			{ identity: Identity }
		>;
		io.use((socket, next) => {
			const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
			try {
				if (token === undefined || token === null || token === "") {
					socket.data.identity = { tenantId: "", subject: randomUUID(), role: "guest" };
				} else {
					if (typeof token !== "string") throw new ValidationError("the handshake token must be a string");
					socket.data.identity = options.verifier.verify(token);
				}
				next();
			} catch (err) {
				const e = new Error(err instanceof ConsentryError ? err.message : "Connection refused.") as Error & {
					data: unknown;
				};
				e.data = toPublicError(err);
				next(e);
			}
		});
		io.on("connection", (socket) => this.#onConnection(socket, options.gatewayId));
	}

	#onConnection(socket: IoSocket, gatewayId: string): void {
		const conn: Connection = {
			id: `${gatewayId}:${socket.id}`,
			peerId: randomUUID(),
			identity: socket.data.identity,
			state: "idle",
			notify: (event, ...args) => socket.emit(event, ...args),
			disconnect: () => setImmediate(() => socket.disconnect(true)),
		};
		this.#hub.connected(conn);
		const limiter = new RateLimiter(60, 30);
		const chatLimiter = new RateLimiter(5, 1);
		for (const name of Object.keys(RequestSchemas) as RequestName[]) {
			socket.on(name, (...args: unknown[]) => {
				const ack = args.at(-1);
				if (typeof ack !== "function") return; // requests must carry an ack; ignore anything else
				const reply = ack as (r: Response<RequestName>) => void;
				if (!limiter.take() || (name === "chat" && !chatLimiter.take())) {
					reply({ ok: false, error: new RateLimitError().toJSON() });
					return;
				}
				const parsed = RequestSchemas[name].safeParse(args.length > 1 ? args[0] : undefined);
				if (!parsed.success) {
					const issues = parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
					reply({ ok: false, error: new ValidationError(`invalid ${name} request`, issues).toJSON() });
					return;
				}
				this.#handle(conn, name, parsed.data).then(
					(data) => reply({ ok: true, data }),
					(err: unknown) => {
						if (err instanceof mediasoupErrors.WorkerClosedError) {
							// The media side closed under this request (worker died, peer left): the client is told how to go on.
							reply({ ok: false, error: MEDIA_GONE });
							return;
						}
						if (!(err instanceof ConsentryError)) this.#log.error({ err, request: name }, "request failed");
						reply({ ok: false, error: toPublicError(err) });
					},
				);
			});
		}
		socket.on("disconnect", () => this.#hub.disconnected(conn));
	}

	async #handle(conn: Connection, name: RequestName, data: unknown): Promise<ResponseMap[RequestName]> {
		const hub = this.#hub;
		switch (name) {
			case "join":
				return hub.join(conn, data as Parsed<"join">);
			case "createWebRtcTransport": {
				const { peer, room } = joined(conn);
				return room.createWebRtcTransport(peer, (data as Parsed<"createWebRtcTransport">).direction);
			}
			case "connectWebRtcTransport": {
				const { peer, room } = joined(conn);
				const d = data as Parsed<"connectWebRtcTransport">;
				await room.connectWebRtcTransport(peer, d.transportId, d.dtlsParameters as ms.DtlsParameters);
				return {};
			}
			case "setRtpCapabilities": {
				const { peer, room } = joined(conn);
				await room.setRtpCapabilities(
					peer,
					(data as Parsed<"setRtpCapabilities">).rtpCapabilities as ms.RtpCapabilities,
				);
				return {};
			}
			case "produce": {
				const d = data as Parsed<"produce">;
				return hub.produce(conn, { ...d, rtpParameters: d.rtpParameters as unknown as ms.RtpParameters });
			}
			case "closeProducer":
				joined(conn)
					.peer.producer((data as Parsed<"closeProducer">).producerId)
					.close();
				return {};
			case "pauseProducer":
				await hub.pauseProducer(conn, (data as Parsed<"pauseProducer">).producerId);
				return {};
			case "resumeProducer":
				await hub.resumeProducer(conn, (data as Parsed<"resumeProducer">).producerId);
				return {};
			case "resumeConsumer": {
				const { peer, room } = joined(conn);
				await room.resumeConsumer(peer, (data as Parsed<"resumeConsumer">).consumerId);
				return {};
			}
			case "viewConsumer": {
				const { peer, room } = joined(conn);
				const v = data as Parsed<"viewConsumer">;
				await room.viewConsumer(peer, v.consumerId, v.visible, v.spatialLayer);
				return {};
			}
			case "chat":
				return hub.chat(conn, (data as Parsed<"chat">).text);
			case "admit":
				hub.admit(conn, (data as Parsed<"admit">).peerId);
				return {};
			case "deny":
				hub.deny(conn, (data as Parsed<"deny">).peerId);
				return {};
			case "lock":
				hub.lock(conn, (data as Parsed<"lock">).locked);
				return {};
			case "mute": {
				const d = data as Parsed<"mute">;
				await hub.mute(conn, d.peerId, d.kind);
				return {};
			}
			case "stopScreenShare":
				hub.stopScreenShare(conn, (data as Parsed<"stopScreenShare">).peerId);
				return {};
			case "remove":
				hub.remove(conn, (data as Parsed<"remove">).peerId);
				return {};
			case "setCoHost": {
				const d = data as Parsed<"setCoHost">;
				hub.setCoHost(conn, d.peerId, d.coHost);
				return {};
			}
			case "raiseHand":
				hub.raiseHand(conn, (data as Parsed<"raiseHand">).raised);
				return {};
			case "lowerHand":
				hub.lowerHand(conn, (data as Parsed<"lowerHand">).peerId);
				return {};
			case "endMeeting":
				hub.endMeeting(conn);
				return {};
			case "leave":
				hub.leave(conn);
				return {};
			case "startCapture":
				return hub.startCapture(conn, (data as Parsed<"startCapture">).kind);
			case "pauseCapture":
				return hub.pauseCapture(conn, (data as Parsed<"pauseCapture">).kind);
			case "stopCapture":
				return hub.stopCapture(conn, (data as Parsed<"stopCapture">).kind);
			case "noticeShown":
				hub.noticeShown(conn, (data as Parsed<"noticeShown">).noticeId);
				return {};
			case "acknowledgeNotice":
				return hub.acknowledgeNotice(conn, (data as Parsed<"acknowledgeNotice">).noticeId);
			case "consent":
				return hub.consent(conn, (data as Parsed<"consent">).noticeId);
			case "decline":
				hub.decline(conn, (data as Parsed<"decline">).noticeId);
				return {};
			default: {
				const unreachable: never = name;
				throw new Error(`unhandled request ${String(unreachable)}`);
			}
		}
	}
}

function joined(conn: Connection): { peer: NonNullable<Connection["peer"]>; room: NonNullable<Connection["room"]> } {
	if (conn.state !== "joined" || !conn.peer || !conn.room || conn.room.closed) {
		throw new ConsentryError("not_joined", "Join a meeting first.", 409);
	}
	return { peer: conn.peer, room: conn.room };
}

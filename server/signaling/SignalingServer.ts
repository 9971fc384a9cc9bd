import { randomUUID } from "node:crypto";
import type { types as ms } from "mediasoup";
import type { Server as IoServer, Socket } from "socket.io";
import {
	type ClientEvents,
	type RequestName,
	RequestSchemas,
	type Response,
	type ResponseMap,
	type ServerEvents,
} from "../../shared/protocol.js";
import { ConflictError, ConsentryError, RateLimitError, toPublicError, ValidationError } from "../errors.js";
import type { Logger } from "../logger.js";
import { Peer } from "../sfu/Peer.js";
import type { Room } from "../sfu/Room.js";
import type { RoomRegistry } from "../sfu/RoomRegistry.js";
import { RateLimiter } from "./RateLimiter.js";

type IoSocket = Socket<ClientEvents, ServerEvents>;

/** Per-connection state. */
interface Session {
	peer?: Peer;
	room?: Room;
}

/**
 * Signaling over socket.io. Every request is validated against its zod schema,
 * rate limited per socket, dispatched through one exhaustive switch, and
 * answered through the ack with `{ ok, data }` or `{ ok: false, error }`.
 * A handler failure never escapes: it becomes an error reply.
 */
export class SignalingServer {
	readonly #rooms: RoomRegistry;
	readonly #log: Logger;

	constructor(io: IoServer<ClientEvents, ServerEvents>, rooms: RoomRegistry, log: Logger) {
		this.#rooms = rooms;
		this.#log = log.child({ component: "Signaling" });
		io.on("connection", (socket) => this.#onConnection(socket));
	}

	#onConnection(socket: IoSocket): void {
		const session: Session = {};
		const limiter = new RateLimiter(60, 30);
		for (const name of Object.keys(RequestSchemas) as RequestName[]) {
			socket.on(name, (...args: unknown[]) => {
				const ack = args.at(-1);
				if (typeof ack !== "function") return; // requests must carry an ack; ignore anything else
				const reply = ack as (r: Response<RequestName>) => void;
				if (!limiter.take()) {
					reply({ ok: false, error: new RateLimitError().toJSON() });
					return;
				}
				const parsed = RequestSchemas[name].safeParse(args.length > 1 ? args[0] : undefined);
				if (!parsed.success) {
					const issues = parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
					reply({ ok: false, error: new ValidationError(`invalid ${name} request`, issues).toJSON() });
					return;
				}
				this.#handle(socket, session, name, parsed.data).then(
					(data) => reply({ ok: true, data }),
					(err: unknown) => {
						if (!(err instanceof ConsentryError)) this.#log.error({ err, request: name }, "request failed");
						reply({ ok: false, error: toPublicError(err) });
					},
				);
			});
		}
		socket.on("disconnect", () => {
			if (session.peer && session.room) session.room.removePeer(session.peer.id);
			session.peer = undefined;
			session.room = undefined;
		});
	}

	async #handle(socket: IoSocket, s: Session, name: RequestName, data: unknown): Promise<ResponseMap[RequestName]> {
		switch (name) {
			case "join": {
				if (s.peer) throw new ConflictError("already_joined", "This connection already joined a meeting.");
				const d = data as ParsedRequest<"join">;
				const room = await this.#rooms.getOrCreate(d.meetingId);
				const peer = new Peer({
					id: randomUUID(),
					displayName: d.displayName,
					notify: (event, ...args) => socket.emit(event, ...args),
				});
				room.addPeer(peer);
				s.peer = peer;
				s.room = room;
				room.once("close", () => {
					if (s.room === room) {
						s.room = undefined;
						s.peer = undefined;
					}
				});
				return {
					peerId: peer.id,
					routerRtpCapabilities: room.router.rtpCapabilities,
					peers: [...room.peers.values()].filter((p) => p !== peer).map((p) => p.info()),
				};
			}
			case "createWebRtcTransport": {
				const { peer, room } = joined(s);
				return room.createWebRtcTransport(peer, (data as ParsedRequest<"createWebRtcTransport">).direction);
			}
			case "connectWebRtcTransport": {
				const { peer, room } = joined(s);
				const d = data as ParsedRequest<"connectWebRtcTransport">;
				await room.connectWebRtcTransport(peer, d.transportId, d.dtlsParameters as ms.DtlsParameters);
				return {};
			}
			case "setRtpCapabilities": {
				const { peer, room } = joined(s);
				const d = data as ParsedRequest<"setRtpCapabilities">;
				await room.setRtpCapabilities(peer, d.rtpCapabilities as ms.RtpCapabilities);
				return {};
			}
			case "produce": {
				const { peer, room } = joined(s);
				const d = data as ParsedRequest<"produce">;
				const producerId = await room.produce(
					peer,
					d.transportId,
					d.kind,
					d.rtpParameters as unknown as ms.RtpParameters,
					d.source,
				);
				return { producerId };
			}
			case "closeProducer": {
				const { peer } = joined(s);
				peer.producer((data as ParsedRequest<"closeProducer">).producerId).close();
				return {};
			}
			case "pauseProducer": {
				const { peer } = joined(s);
				await peer.producer((data as ParsedRequest<"pauseProducer">).producerId).pause();
				return {};
			}
			case "resumeProducer": {
				const { peer } = joined(s);
				await peer.producer((data as ParsedRequest<"resumeProducer">).producerId).resume();
				return {};
			}
			case "resumeConsumer": {
				const { peer, room } = joined(s);
				await room.resumeConsumer(peer, (data as ParsedRequest<"resumeConsumer">).consumerId);
				return {};
			}
			case "leave": {
				if (s.peer && s.room) s.room.removePeer(s.peer.id);
				s.peer = undefined;
				s.room = undefined;
				return {};
			}
			default: {
				const unreachable: never = name;
				throw new Error(`unhandled request ${String(unreachable)}`);
			}
		}
	}
}

type ParsedRequest<N extends RequestName> = import("zod").infer<(typeof RequestSchemas)[N]>;

function joined(s: Session): { peer: Peer; room: Room } {
	if (!s.peer || !s.room || s.room.closed) {
		throw new ConsentryError("not_joined", "Join a meeting first.", 409);
	}
	return { peer: s.peer, room: s.room };
}

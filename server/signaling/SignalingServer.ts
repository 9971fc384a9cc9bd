import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Socket as NetSocket } from "node:net";
import { errors as mediasoupErrors, type types as ms } from "mediasoup";
import type { Server as IoServer, Socket } from "socket.io";
import type { z } from "zod";
import {
	type ClientEvents,
	type ConnectRedirect,
	type RequestName,
	RequestSchemas,
	type Response,
	type ResponseMap,
	type ServerEvents,
} from "../../shared/protocol.js";
import type { Identity } from "../auth/TenantTypes.js";
import type { TokenVerifier } from "../auth/TokenVerifier.js";
import { DEFAULT_LIMITS, type GatewayLimits } from "../config.js";
import { ConsentryError, RateLimitError, toPublicError, ValidationError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Connection } from "../meetings/Connection.js";
import type { MeetingHub } from "../meetings/MeetingHub.js";
import { AddressLimits, type AddressRefusal, addressKey, clientAddress } from "./AddressLimits.js";
import { overBudget } from "./payloadBudget.js";
import { RateLimiter } from "./RateLimiter.js";

type IoSocket = Socket<ClientEvents, ServerEvents, Record<string, never>, { identity: Identity; address: string }>;
const MEDIA_GONE = {
	code: "media_unavailable",
	message: "The media connection for this meeting closed while handling the request; rejoin the meeting.",
};

type Parsed<N extends RequestName> = z.infer<(typeof RequestSchemas)[N]>;
/** One request's handler: gets the validated body, answers the request's response. */
type Handler<N extends RequestName> = (conn: Connection, data: Parsed<N>) => Promise<ResponseMap[N]> | ResponseMap[N];
export type Handlers = { [N in RequestName]: Handler<N> };

const REFUSALS: Record<AddressRefusal, string> = {
	too_many_connections: "Too many connections from your address; close some tabs and try again.",
	connecting_too_fast: "Your address opens connections too fast; wait a moment and try again.",
	cooling_down: "Your address sent too much too fast; wait a few seconds and try again.",
	too_many_guests: "Too many guest connections from your address; close some tabs, or sign in.",
	guests_full: "This gateway holds as many guest connections as it can right now; try again in a moment, or sign in.",
};

export interface SignalingServerOptions {
	io: IoServer<ClientEvents, ServerEvents>;
	hub: MeetingHub;
	verifier: TokenVerifier;
	/** Prefix of connection IDs, unique per gateway process sharing the store. */
	gatewayId: string;
	log: Logger;
	/** What one address may hold and spend (defaults: DEFAULT_LIMITS). */
	limits?: GatewayLimits;
	/** The per-address accounting the engine's allowRequest (signalingAllowRequest) uses too. */
	addresses?: AddressLimits;
	/** Client addresses from X-Forwarded-For's last hop. */
	trustProxy?: boolean;
}

/**
 * For socket.io's engine (`allowRequest`): refuses a new connection before any upgrade or socket.io work when its
 * address holds too many sockets or opens them too fast; counts connections per address as they open and close.
 */
export function signalingAllowRequest(addresses: AddressLimits, trustProxy = false) {
	return (req: IncomingMessage, callback: (err: string | null | undefined, success: boolean) => void): void => {
		const refusal = addresses.mayConnect(clientAddress(req, trustProxy));
		if (refusal) callback(refusal, false);
		else callback(null, true);
	};
}

/**
 * For the HTTP server's `connection` event: drops a TCP connection from an address that is cooling down (it overran
 * its byte budget) before any HTTP or TLS work — the cheapest refusal there is, so a flood that keeps reconnecting
 * costs next to nothing. Not behind a trusted proxy (there every connection comes from the proxy).
 */
export function dropCoolingDown(addresses: AddressLimits, trustProxy = false) {
	return (socket: NetSocket): void => {
		if (!trustProxy && addresses.coolingDown(addressKey(socket.remoteAddress))) socket.destroy();
	};
}

/**
 * Signaling over socket.io. The handshake's token (if any) is verified once per connection; without one the
 * person is a guest. Before any trust, cost is bounded: connections per address (and unauthenticated ones per
 * address and in all), one request and one byte budget per address shared by its sockets, a rate limit per socket,
 * and a body walk that refuses anything bigger, deeper or stranger than a real request before its zod schema runs.
 * Each request name has a typed handler; the reply is `{ ok, data }` or `{ ok: false, error }`. A handler failure
 * never escapes: it becomes an error reply, a client's mistake a 4xx code.
 */
export class SignalingServer {
	readonly #hub: MeetingHub;
	readonly #log: Logger;
	readonly #addresses: AddressLimits;
	readonly #handlers: Handlers;
	readonly #limits: GatewayLimits;

	constructor(options: SignalingServerOptions) {
		this.#hub = options.hub;
		this.#log = options.log.child({ component: "Signaling" });
		this.#addresses = options.addresses ?? new AddressLimits(options.limits ?? DEFAULT_LIMITS);
		this.#handlers = handlers(options.hub);
		this.#limits = options.limits ?? DEFAULT_LIMITS;
		const addresses = this.#addresses;
		const trustProxy = options.trustProxy ?? false;
		const io = options.io as unknown as IoServer<
			ClientEvents,
			ServerEvents,
			Record<string, never>,
			{ identity: Identity; address: string }
		>;
		io.engine.on("connection", (raw: { request: IncomingMessage; once(e: "close", f: () => void): void }) => {
			const key = clientAddress(raw.request, trustProxy);
			addresses.opened(key);
			raw.once("close", () => addresses.closed(key));
		});
		io.use((socket, next) => {
			const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
			const address = clientAddress(socket.request, trustProxy);
			socket.data.address = address;
			try {
				if (token === undefined || token === null || token === "") {
					const refusal = addresses.addGuest(address);
					if (refusal) throw new RateLimitError(REFUSALS[refusal], refusal);
					// Counted out when the underlying connection closes, whether or not the socket ever connected.
					socket.conn.once("close", () => addresses.removeGuest(address));
					socket.data.identity = { tenantId: "", subject: randomUUID(), role: "guest" };
				} else {
					if (typeof token !== "string") throw new ValidationError("the handshake token must be a string");
					socket.data.identity = options.verifier.verify(token);
				}
			} catch (err) {
				next(refusal(err));
				return;
			}
			// Cluster: the client named the meeting it is about to join; if it lives on another node, send it there now.
			const meetingId = (socket.handshake.auth as { meetingId?: unknown } | undefined)?.meetingId;
			if (meetingId === undefined || meetingId === null) {
				next();
				return;
			}
			if (typeof meetingId !== "string" || meetingId.length > 64) {
				next(refusal(new ValidationError("the handshake meetingId must be a meeting ID")));
				return;
			}
			this.#hub.redirectFor(socket.data.identity, meetingId).then(
				(r) => {
					if (!r) return next();
					const e = new Error("This meeting lives on another node.") as Error & { data: ConnectRedirect };
					e.data = { code: "redirect", message: e.message, meetingId: r.meetingId, redirect: r.redirect };
					next(e);
				},
				// The store could not tell: connect; the join decides (and answers store_unavailable if it must).
				() => next(),
			);
		});
		io.on("connection", (socket) => this.#onConnection(socket, options.gatewayId));
	}

	#onConnection(socket: IoSocket, gatewayId: string): void {
		const address = socket.data.address;
		const conn: Connection = {
			id: `${gatewayId}:${socket.id}`,
			peerId: randomUUID(),
			identity: socket.data.identity,
			address,
			state: "idle",
			notify: (event, ...args) => socket.emit(event, ...args),
			disconnect: () => setImmediate(() => socket.disconnect(true)),
		};
		this.#hub.connected(conn);
		const addresses = this.#addresses;
		// Bytes count as they arrive, before socket.io decodes them: an address over its byte budget loses the socket
		// and may open no new one for a while (AddressLimits.takeBytes).
		socket.conn.on("packet", (packet: { type: string; data?: unknown }) => {
			if (packet.type !== "message") return;
			const d = packet.data;
			const size = typeof d === "string" ? d.length : d instanceof Buffer ? d.byteLength : 0;
			if (!addresses.takeBytes(address, size)) {
				this.#log.warn(
					{ security: true, address, connection: conn.id },
					"address over its signaling byte budget: socket closed",
				);
				socket.disconnect(true);
			}
		});
		const perSocket = this.#limits.requestsPerSocketPerSecond;
		const limiter = new RateLimiter(perSocket * 2, perSocket);
		const chatLimiter = new RateLimiter(5, 1);
		for (const name of Object.keys(RequestSchemas) as RequestName[]) {
			socket.on(name, (...args: unknown[]) => {
				const ack = args.at(-1);
				if (typeof ack !== "function") return; // requests must carry an ack; ignore anything else
				const reply = ack as (r: Response<RequestName>) => void;
				if (!limiter.take() || !addresses.takeRequest(address) || (name === "chat" && !chatLimiter.take())) {
					reply({ ok: false, error: new RateLimitError().toJSON() });
					return;
				}
				const body = args.length > 1 ? args[0] : undefined;
				const tooBig = args.length > 2 ? "a request is one body and an ack" : overBudget(body);
				if (tooBig) {
					reply({ ok: false, error: new ValidationError(`invalid ${name} request: ${tooBig}`).toJSON() });
					return;
				}
				const parsed = RequestSchemas[name].safeParse(body, { reportInput: false });
				if (!parsed.success) {
					reply({
						ok: false,
						error: ValidationError.fromIssues(`invalid ${name} request`, parsed.error.issues).toJSON(),
					});
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
						const mapped = mediasoupRefusal(err);
						if (!mapped && !(err instanceof ConsentryError)) this.#log.error({ err, request: name }, "request failed");
						reply({ ok: false, error: toPublicError(mapped ?? err) });
					},
				);
			});
		}
		socket.on("disconnect", () => this.#hub.disconnected(conn));
	}

	async #handle<N extends RequestName>(conn: Connection, name: N, data: Parsed<N>): Promise<ResponseMap[N]> {
		return (this.#handlers[name] as Handler<N>)(conn, data);
	}
}

/** A handshake refusal: the socket.io `connect_error` the client sees, with the public error as its data. */
function refusal(err: unknown): Error & { data: unknown } {
	const e = new Error(err instanceof ConsentryError ? err.message : "Connection refused.") as Error & { data: unknown };
	e.data = toPublicError(err);
	return e;
}

/**
 * mediasoup refusing what a client sent (bad parameters, an unsupported codec): a client's mistake, so a 4xx
 * `invalid_request` rather than `internal_error`. Undefined for anything else.
 */
function mediasoupRefusal(err: unknown): ConsentryError | undefined {
	if (err instanceof TypeError || err instanceof mediasoupErrors.UnsupportedError) {
		return new ValidationError(`the media server refused the request: ${err.message.slice(0, 200)}`);
	}
	return undefined;
}

/** The handler of every request name. */
function handlers(hub: MeetingHub): Handlers {
	return {
		join: (conn, d) => hub.join(conn, d),
		createWebRtcTransport: (conn, d) => {
			const { peer, room } = joined(conn);
			return room.createWebRtcTransport(peer, d.direction);
		},
		connectWebRtcTransport: async (conn, d) => {
			const { peer, room } = joined(conn);
			await room.connectWebRtcTransport(peer, d.transportId, d.dtlsParameters as ms.DtlsParameters);
			return {};
		},
		setRtpCapabilities: async (conn, d) => {
			const { peer, room } = joined(conn);
			await room.setRtpCapabilities(peer, d.rtpCapabilities as ms.RtpCapabilities);
			return {};
		},
		produce: (conn, d) => hub.produce(conn, { ...d, rtpParameters: d.rtpParameters as unknown as ms.RtpParameters }),
		closeProducer: (conn, d) => {
			joined(conn).peer.producer(d.producerId).close();
			return {};
		},
		pauseProducer: async (conn, d) => {
			await hub.pauseProducer(conn, d.producerId);
			return {};
		},
		resumeProducer: async (conn, d) => {
			await hub.resumeProducer(conn, d.producerId);
			return {};
		},
		resumeConsumer: async (conn, d) => {
			const { peer, room } = joined(conn);
			await room.resumeConsumer(peer, d.consumerId);
			return {};
		},
		viewConsumer: async (conn, d) => {
			const { peer, room } = joined(conn);
			await room.viewConsumer(peer, d.consumerId, d.visible, d.spatialLayer);
			return {};
		},
		raiseHand: (conn, d) => {
			hub.raiseHand(conn, d.raised);
			return {};
		},
		lowerHand: async (conn, d) => {
			await hub.lowerHand(conn, d.peerId);
			return {};
		},
		chat: (conn, d) => hub.chat(conn, d.text),
		acknowledgeWarning: (conn, d) => hub.acknowledgeWarning(conn, d.warningId),
		admit: async (conn, d) => {
			await hub.admit(conn, d.peerId);
			return {};
		},
		deny: async (conn, d) => {
			await hub.deny(conn, d.peerId);
			return {};
		},
		lock: async (conn, d) => {
			await hub.lock(conn, d.locked);
			return {};
		},
		mute: async (conn, d) => {
			await hub.mute(conn, d.peerId, d.kind);
			return {};
		},
		stopScreenShare: async (conn, d) => {
			await hub.stopScreenShare(conn, d.peerId);
			return {};
		},
		remove: async (conn, d) => {
			await hub.remove(conn, d.peerId);
			return {};
		},
		setCoHost: async (conn, d) => {
			await hub.setCoHost(conn, d.peerId, d.coHost);
			return {};
		},
		endMeeting: async (conn) => {
			await hub.endMeeting(conn);
			return {};
		},
		leave: async (conn, d) => {
			await hub.leave(conn, d.clickedAt);
			return {};
		},
		startCapture: (conn, d) => hub.startCapture(conn, d.kind),
		pauseCapture: (conn, d) => hub.pauseCapture(conn, d.kind, d.clickedAt),
		stopCapture: (conn, d) => hub.stopCapture(conn, d.kind, d.clickedAt),
		noticeShown: async (conn, d) => {
			await hub.noticeShown(conn, d.noticeId);
			return {};
		},
		acknowledgeNotice: (conn, d) => hub.acknowledgeNotice(conn, d.noticeId, d.clickedAt),
		consent: (conn, d) => hub.consent(conn, d.noticeId, d.clickedAt),
		decline: (conn, d) => hub.decline(conn, d.noticeId, d.clickedAt),
		liftPasscodeLockout: (conn) => hub.liftPasscodeLockoutBy(conn),
	};
}

function joined(conn: Connection): { peer: NonNullable<Connection["peer"]>; room: NonNullable<Connection["room"]> } {
	if (conn.state !== "joined" || !conn.peer || !conn.room || conn.room.closed) {
		throw new ConsentryError("not_joined", "Join a meeting first.", 409);
	}
	return { peer: conn.peer, room: conn.room };
}

import type { PeerRole } from "../../shared/protocol.js";
import type { Identity } from "../auth/TenantTypes.js";
import type { Peer } from "../sfu/Peer.js";
import type { Notify } from "../sfu/PeerTypes.js";
import type { Room } from "../sfu/Room.js";

/** One signaling connection (a browser tab) and where it stands in a meeting. */
export interface Connection {
	/** `<gatewayId>:<socketId>`: unique across gateway processes sharing the store. */
	readonly id: string;
	/** The person's ID in meetings, for this connection. */
	readonly peerId: string;
	readonly identity: Identity;
	/** The client's address as limits key it (IPv4, or an IPv6 /64); absent for in-process connections. */
	readonly address?: string;
	readonly notify: Notify;
	/** Closes the socket (after any event was sent). */
	disconnect(): void;
	state: "idle" | "lobby" | "joined";
	meetingId?: string;
	displayName?: string;
	role?: PeerRole;
	peer?: Peer;
	room?: Room;
	/**
	 * The gateway's clock minus the client's, measured at its join (its clientTime against arrival; off by at most the
	 * one-way transit). Click times it sends are on the client's clock: this maps them to the gateway's.
	 */
	clockOffsetMs?: number;
	/** Listener on `room`'s close, removed when the connection leaves it. */
	onRoomClose?: () => void;
}

/** The key a person is known by in a meeting (removal, audit): `tenant:subject`, or the connection for guests. */
export function personKey(c: Connection): string {
	// A guest's subject is a random ID drawn at the handshake, unrelated to the peer ID the trail also records.
	return c.identity.role === "guest" ? `guest:${c.identity.subject}` : `${c.identity.tenantId}:${c.identity.subject}`;
}

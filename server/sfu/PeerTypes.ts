import type { PeerRole, ServerEvents } from "../../shared/protocol.js";

/** Sends one server event to this peer's client. */
export type Notify = <E extends keyof ServerEvents>(event: E, ...args: Parameters<ServerEvents[E]>) => void;

export interface PeerOptions {
	id: string;
	displayName: string;
	role: PeerRole;
	notify: Notify;
}

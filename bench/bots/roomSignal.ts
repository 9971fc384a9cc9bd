/**
 * A bot's signaling straight into a server/sfu Room in this process (no socket.io, no meeting rules): each request
 * and event crosses as JSON, as it would over the wire. Used where the media layer alone is under test (the cascade
 * pipe between two routers: test/cascade.test.ts, bench/cascade.ts).
 */
import type { types as ms } from "mediasoup";
import type { Logger } from "../../server/logger.js";
import { CascadeLink } from "../../server/sfu/Cascade.js";
import { Peer } from "../../server/sfu/Peer.js";
import { Room } from "../../server/sfu/Room.js";
import type { RtcListenOptions } from "../../server/sfu/RoomTypes.js";
import { WorkerPool } from "../../server/sfu/WorkerPool.js";
import type { MediaSource } from "../../shared/protocol.js";
import type { NewConsumer, Signal } from "./signal.js";

/** A value as it arrives after crossing a wire as JSON. */
export const wire = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** The two ends of a cascade pipe's control channel, in one process: every offer and change crosses as JSON. */
export function relayCascade(a: CascadeLink, b: CascadeLink): void {
	for (const [from, to] of [
		[a, b],
		[b, a],
	] as const) {
		from.on("offer", (o) => void to.accept(wire(o)));
		from.on("change", (c) => void to.apply(wire(c)));
	}
}

/** The fields of the requests a bot sends (validated by the gateway's zod contract; here the bot is trusted). */
interface Fields {
	direction: "send" | "recv";
	transportId: string;
	dtlsParameters: ms.DtlsParameters;
	rtpCapabilities: ms.RtpCapabilities;
	kind: ms.MediaKind;
	rtpParameters: ms.RtpParameters;
	source: MediaSource;
	consumerId: string;
}

export function roomSignal(room: Room, peerId: string): Signal & { peer: () => Peer | undefined } {
	let peer: Peer | undefined;
	const listeners: ((e: NewConsumer) => void)[] = [];
	const need = (): Peer => {
		if (!peer) throw new Error("join first");
		return peer;
	};
	const handle = async (name: string, d: Fields): Promise<unknown> => {
		switch (name) {
			case "join":
				peer = new Peer({
					id: peerId,
					displayName: peerId,
					role: "participant",
					notify: (event, ...args) => {
						if (event !== "newConsumer") return;
						const e = wire(args[0] as NewConsumer);
						setImmediate(() => {
							for (const fn of listeners) fn(e);
						});
					},
				});
				room.addPeer(peer);
				return { status: "joined", routerRtpCapabilities: room.router.rtpCapabilities };
			case "createWebRtcTransport":
				return room.createWebRtcTransport(need(), d.direction);
			case "connectWebRtcTransport":
				await room.connectWebRtcTransport(need(), d.transportId, d.dtlsParameters);
				return {};
			case "setRtpCapabilities":
				await room.setRtpCapabilities(need(), d.rtpCapabilities);
				return {};
			case "produce":
				return { producerId: await room.produce(need(), d.transportId, d.kind, d.rtpParameters, d.source) };
			case "resumeConsumer":
				await room.resumeConsumer(need(), d.consumerId);
				return {};
			case "leave":
				room.removePeer(peerId);
				return {};
			default:
				throw new Error(`unknown request ${name}`);
		}
	};
	return {
		async request(name, data) {
			return wire(await handle(name, wire(data) as Fields)) as never;
		},
		onNewConsumer(fn) {
			listeners.push(fn);
		},
		close() {
			if (peer && !room.closed) room.removePeer(peerId);
		},
		peer: () => peer,
	};
}

/**
 * One meeting's room on each of `nodes` worker processes (a worker stands for a node); with two, their cascade
 * links are opened, relayed and connected. For the benches that compare one node with two.
 */
export async function openCascadeRooms(
	nodes: 1 | 2,
	o: { workerBin: string; rtc: RtcListenOptions; log: Logger; meetingId: string },
): Promise<{ pools: WorkerPool[]; rooms: Room[]; links: CascadeLink[] }> {
	const pools = await Promise.all(
		Array.from({ length: nodes }, () => WorkerPool.create({ numWorkers: 1, workerBin: o.workerBin }, o.log)),
	);
	const rooms = await Promise.all(
		pools.map((pool) => Room.create({ meetingId: o.meetingId, pool, rtc: o.rtc, log: o.log })),
	);
	const links: CascadeLink[] = [];
	if (nodes === 2) {
		const pipe = { listenIp: "127.0.0.1", portRange: { min: o.rtc.minPort, max: o.rtc.maxPort }, peerIp: "127.0.0.1" };
		const [a, b] = await Promise.all(rooms.map((r) => CascadeLink.open(r, pipe)));
		if (!a || !b) throw new Error("no link");
		relayCascade(a, b);
		await Promise.all([a.connect(wire(b.local)), b.connect(wire(a.local))]);
		links.push(a, b);
	}
	return { pools, rooms, links };
}

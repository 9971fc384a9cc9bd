/**
 * Bare mediasoup: the media half of the gateway and nothing else, as the
 * baseline the gateway's CPU is compared with. One worker, one router per
 * meeting with the gateway's codecs, WebRtcTransports with the same options as
 * server/sfu/Room.ts, every producer consumed (paused, then resumed by the
 * client) by every other peer that can receive. No socket.io, no tokens, no
 * meeting rules, no store, no active-speaker observer, no logging.
 * BARE_ACTIVE_SPEAKER=1 adds the gateway's ActiveSpeakerObserver (interval
 * 300 ms, every audio producer) to each router, to attribute its cost.
 *
 * Run as a child of the benchmark (`fork`), it talks to the bots over Node IPC:
 *   → { t: "req", id, bot, name, data } | { t: "close", bot }
 *   ← { t: "ready", workerPid } | { t: "res", id, ok, data | error } | { t: "ev", bot, name, data }
 */

import type { types as ms } from "mediasoup";
import * as mediasoup from "mediasoup";
import { mediaCodecs } from "../../server/sfu/mediaCodecs.js";

export type BareToServer =
	| { t: "req"; id: number; bot: number; name: string; data: Record<string, unknown> }
	| { t: "close"; bot: number };
export type BareFromServer =
	| { t: "ready"; workerPid: number }
	| { t: "res"; id: number; ok: true; data: unknown }
	| { t: "res"; id: number; ok: false; error: string }
	| { t: "ev"; bot: number; name: "newConsumer"; data: unknown };

interface BarePeer {
	bot: number;
	router: ms.Router;
	transports: Map<string, ms.WebRtcTransport>;
	producers: Map<string, ms.Producer>;
	consumers: Map<string, ms.Consumer>;
	rtpCapabilities?: ms.RtpCapabilities;
	recv?: ms.WebRtcTransport;
}

const send = (m: BareFromServer) => process.send?.(m);
const minPort = Number(process.env.BARE_RTC_MIN_PORT ?? 41000);
const maxPort = Number(process.env.BARE_RTC_MAX_PORT ?? 41999);

const worker = await mediasoup.createWorker({
	...(process.env.MEDIASOUP_WORKER_BIN ? { workerBin: process.env.MEDIASOUP_WORKER_BIN } : {}),
	logLevel: "warn",
});
worker.on("died", () => process.exit(1));
const withSpeaker = process.env.BARE_ACTIVE_SPEAKER === "1";
const speakers = new Map<ms.Router, ms.ActiveSpeakerObserver>();
const routers = new Map<string, Promise<ms.Router>>();
const peers = new Map<number, BarePeer>();
const rooms = new Map<ms.Router, Set<BarePeer>>();

async function consume(peer: BarePeer, producer: ms.Producer): Promise<void> {
	const caps = peer.rtpCapabilities;
	if (!caps || !peer.recv || !peer.router.canConsume({ producerId: producer.id, rtpCapabilities: caps })) return;
	const consumer = await peer.recv.consume({ producerId: producer.id, rtpCapabilities: caps, paused: true });
	peer.consumers.set(consumer.id, consumer);
	send({
		t: "ev",
		bot: peer.bot,
		name: "newConsumer",
		data: {
			peerId: String(peer.bot),
			producerId: producer.id,
			consumerId: consumer.id,
			kind: consumer.kind,
			source: producer.kind === "audio" ? "mic" : "camera",
			rtpParameters: consumer.rtpParameters,
			producerPaused: consumer.producerPaused,
		},
	});
	if (consumer.kind === "video")
		await consumer.setPreferredLayers({ spatialLayer: 2, temporalLayer: 2 }).catch(() => undefined);
}

async function handle(bot: number, name: string, d: Record<string, unknown>): Promise<unknown> {
	if (name === "join") {
		const meetingId = String(d.meetingId);
		let r = routers.get(meetingId);
		if (!r) {
			r = worker.createRouter({ mediaCodecs, appData: { meetingId } }).then(async (router) => {
				if (withSpeaker) speakers.set(router, await router.createActiveSpeakerObserver({ interval: 300 }));
				return router;
			});
			routers.set(meetingId, r);
		}
		const router = await r;
		const peer: BarePeer = { bot, router, transports: new Map(), producers: new Map(), consumers: new Map() };
		peers.set(bot, peer);
		let room = rooms.get(router);
		if (!room) {
			room = new Set();
			rooms.set(router, room);
		}
		room.add(peer);
		return { status: "joined", peerId: String(bot), routerRtpCapabilities: router.rtpCapabilities, peers: [] };
	}
	const peer = peers.get(bot);
	if (!peer) throw new Error("not joined");
	switch (name) {
		case "createWebRtcTransport": {
			const portRange = { min: minPort, max: maxPort };
			const t = await peer.router.createWebRtcTransport({
				listenInfos: [
					{ protocol: "udp", ip: "127.0.0.1", portRange },
					{ protocol: "tcp", ip: "127.0.0.1", portRange },
				],
				enableUdp: true,
				enableTcp: true,
				preferUdp: true,
				initialAvailableOutgoingBitrate: 1_000_000,
				appData: { direction: d.direction },
			});
			peer.transports.set(t.id, t);
			if (d.direction === "recv") peer.recv = t;
			return {
				id: t.id,
				iceParameters: t.iceParameters,
				iceCandidates: t.iceCandidates,
				dtlsParameters: t.dtlsParameters,
			};
		}
		case "connectWebRtcTransport":
			await peer.transports
				.get(String(d.transportId))
				?.connect({ dtlsParameters: d.dtlsParameters as ms.DtlsParameters });
			return {};
		case "setRtpCapabilities":
			peer.rtpCapabilities = d.rtpCapabilities as ms.RtpCapabilities;
			for (const other of rooms.get(peer.router) ?? [])
				if (other !== peer) for (const p of other.producers.values()) await consume(peer, p);
			return {};
		case "produce": {
			const t = peer.transports.get(String(d.transportId));
			if (!t) throw new Error("no such transport");
			const p = await t.produce({ kind: d.kind as ms.MediaKind, rtpParameters: d.rtpParameters as ms.RtpParameters });
			peer.producers.set(p.id, p);
			if (p.kind === "audio") await speakers.get(peer.router)?.addProducer({ producerId: p.id });
			for (const other of rooms.get(peer.router) ?? []) if (other !== peer) await consume(other, p);
			return { producerId: p.id };
		}
		case "resumeConsumer":
			await peer.consumers.get(String(d.consumerId))?.resume();
			return {};
		case "leave":
			close(bot);
			return {};
		default:
			throw new Error(`unsupported request ${name}`);
	}
}

function close(bot: number): void {
	const peer = peers.get(bot);
	if (!peer) return;
	peers.delete(bot);
	for (const t of peer.transports.values()) t.close();
	const room = rooms.get(peer.router);
	room?.delete(peer);
	if (room && room.size === 0) {
		rooms.delete(peer.router);
		routers.delete(String(peer.router.appData.meetingId));
		speakers.delete(peer.router);
		peer.router.close();
	}
}

process.on("message", (m: BareToServer) => {
	if (m.t === "close") {
		close(m.bot);
		return;
	}
	handle(m.bot, m.name, m.data).then(
		(data) => send({ t: "res", id: m.id, ok: true, data }),
		(err: unknown) => send({ t: "res", id: m.id, ok: false, error: String(err) }),
	);
});
process.on("disconnect", () => {
	worker.close();
	process.exit(0);
});
send({ t: "ready", workerPid: worker.pid });

import dgram from "node:dgram";
import type { AddressInfo } from "node:net";
import type { types as ms } from "mediasoup";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bot } from "../bench/bots/Bot.js";
import { SyntheticMedia } from "../bench/bots/media.js";
import { relayCascade, roomSignal, wire } from "../bench/bots/roomSignal.js";
import { loadConfig } from "../server/config.js";
import { createLogger } from "../server/logger.js";
import { CascadeLink } from "../server/sfu/Cascade.js";
import type { PipeEndpoint } from "../server/sfu/CascadeTypes.js";
import { Room } from "../server/sfu/Room.js";
import type { RtcListenOptions } from "../server/sfu/RoomTypes.js";
import { WorkerPool } from "../server/sfu/WorkerPool.js";
import { waitFor } from "./helpers/wait.js";

/**
 * One meeting's media over two routers on two mediasoup worker processes, joined by a cascade pipe (PipeTransports
 * over loopback UDP with SRTP, connected only through the JSON endpoints each side hands the other): people on
 * either side receive each other's audio and video, and a pause or a close crosses the pipe. This is the media half
 * of a meeting cascaded over two nodes; the nodes' control channel and the meeting's join path are not wired.
 */
describe("cascade pipe between two routers", () => {
	const log = createLogger("silent");
	let poolA: WorkerPool;
	let poolB: WorkerPool;
	let roomA: Room;
	let roomB: Room;
	let linkA: CascadeLink;
	let linkB: CascadeLink;
	let media: SyntheticMedia;
	const bots: Bot[] = [];
	let rtc: RtcListenOptions;

	beforeAll(async () => {
		const config = loadConfig({ ...process.env, CONSENTRY_WORKERS: "1" });
		rtc = { listenIp: "127.0.0.1", minPort: config.rtc.minPort, maxPort: config.rtc.maxPort };
		poolA = await WorkerPool.create({ numWorkers: 1, workerBin: config.mediasoup.workerBin }, log);
		poolB = await WorkerPool.create({ numWorkers: 1, workerBin: config.mediasoup.workerBin }, log);
		roomA = await Room.create({ meetingId: "m-cascade", pool: poolA, rtc, log });
		roomB = await Room.create({ meetingId: "m-cascade", pool: poolB, rtc, log });
		const pipe = { listenIp: "127.0.0.1", portRange: { min: rtc.minPort, max: rtc.maxPort }, peerIp: "127.0.0.1" };
		linkA = await CascadeLink.open(roomA, pipe);
		linkB = await CascadeLink.open(roomB, pipe);
		// The control channel: every message crosses as JSON.
		relayCascade(linkA, linkB);
		media = new SyntheticMedia({ width: 160, height: 90, fps: 10 });
	});

	afterAll(() => {
		for (const b of bots) b.close();
		media?.stop();
		linkA?.close();
		linkB?.close();
		roomA?.close();
		roomB?.close();
		poolA?.close();
		poolB?.close();
	});

	it("refuses a pipe bound to every address and an endpoint that is not the configured peer", async () => {
		await expect(
			CascadeLink.open(roomA, { listenIp: "0.0.0.0", portRange: { min: 40000, max: 40100 }, peerIp: "127.0.0.1" }),
		).rejects.toMatchObject({ code: "invalid_request", status: 400 });
		const stranger: PipeEndpoint = { ...wire(linkB.local), ip: "127.0.0.2" };
		await expect(linkA.connect(stranger)).rejects.toMatchObject({ code: "cascade_peer_refused", status: 403 });
	});

	it("people on either router receive each other's audio and video; a latecomer gets what was piped before; a tap on A records a person on B", async () => {
		await Promise.all([linkA.connect(wire(linkB.local)), linkB.connect(wire(linkA.local))]);
		expect(linkA.transport.tuple.remotePort).toBe(linkB.local.port);

		const alice = await Bot.join(roomSignal(roomA, "alice"), "m-cascade", {
			displayName: "alice",
			send: true,
			recv: true,
		});
		const bob = await Bot.join(roomSignal(roomB, "bob"), "m-cascade", { displayName: "bob", send: true, recv: true });
		bots.push(alice, bob);
		await alice.publish(media, { audio: true, video: true, maxVideoBitrate: 150_000 });
		await bob.publish(media, { audio: true, video: true, maxVideoBitrate: 150_000 });

		await Promise.all([alice.firstFrame(20_000), bob.firstFrame(20_000)]);
		await waitFor(() => alice.audioSeen > 0 && bob.audioSeen > 0, 10_000);
		// Each side got exactly the other's two producers, through the pipe (not a local peer: none is on the other side).
		expect(linkB.accepted).toEqual(new Set(alice.producers.map((p) => p.id)));
		expect(linkA.accepted).toEqual(new Set(bob.producers.map((p) => p.id)));
		expect(bob.consumers.size).toBe(2);

		const carol = await Bot.join(roomSignal(roomB, "carol"), "m-cascade", {
			displayName: "carol",
			send: false,
			recv: true,
		});
		bots.push(carol);
		await carol.firstFrame(20_000);
		// Carol hears Alice (piped) and Bob (local on B): 4 consumers.
		await waitFor(() => carol.consumers.size === 4, 10_000);

		// What a recording tap on A (the meeting's home) does: a PlainTransport consumer of a person on B, piped in.
		const bobAudio = [...linkA.accepted].find((id) => bob.producers.some((p) => p.id === id && p.kind === "audio"));
		if (!bobAudio) throw new Error("bob's audio was not piped to A");
		const sink = dgram.createSocket("udp4");
		await new Promise<void>((r) => sink.bind(0, "127.0.0.1", r));
		let tapped = 0;
		sink.on("message", () => tapped++);
		const tap = await roomA.router.createPlainTransport({
			listenInfo: { protocol: "udp", ip: "127.0.0.1" },
			rtcpMux: true,
		});
		await tap.connect({ ip: "127.0.0.1", port: (sink.address() as AddressInfo).port });
		await tap.consume({ producerId: bobAudio, rtpCapabilities: roomA.router.rtpCapabilities });
		await waitFor(() => tapped > 20, 10_000);
		tap.close();
		sink.close();

		const stats = (await linkA.transport.getStats())[0] as ms.PipeTransportStat;
		expect(stats.bytesSent).toBeGreaterThan(1_000);
		expect(stats.bytesReceived).toBeGreaterThan(1_000);
	});

	it("a pause and a close of the origin producer cross the pipe", async () => {
		const aliceVideo = [...roomA.localProducers()].find((p) => p.appData.peerId === "alice" && p.kind === "video");
		if (!aliceVideo) throw new Error("no video from alice");
		const bobPeer = roomB.peers.get("bob");
		if (!bobPeer) throw new Error("bob is not in room B");
		const bobsConsumer = [...bobPeer.consumers.values()].find((c) => c.producerId === aliceVideo.id);
		if (!bobsConsumer) throw new Error("bob does not receive alice's video");

		await aliceVideo.pause();
		await waitFor(() => bobsConsumer.producerPaused, 5_000);
		await aliceVideo.resume();
		await waitFor(() => !bobsConsumer.producerPaused, 5_000);

		// Someone stays on A (a room closes with its last peer), then alice leaves: her producers close on A …
		const dave = await Bot.join(roomSignal(roomA, "dave"), "m-cascade", {
			displayName: "dave",
			send: false,
			recv: true,
		});
		bots.push(dave);
		roomA.removePeer("alice"); //: her producers close on A …
		await waitFor(() => bobsConsumer.closed, 5_000); // … and on B
		expect(linkB.accepted.size).toBe(0);
		expect([...bobPeer.consumers.values()].some((c) => c.producerId === aliceVideo.id)).toBe(false);
	});
});

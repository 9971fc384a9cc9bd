import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bot } from "../bench/bots/Bot.js";
import { SyntheticMedia } from "../bench/bots/media.js";
import type { Signal } from "../bench/bots/signal.js";
import { verifyCommand } from "../cli/verify/command.js";
import type { JoinResult, NoticeView } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { joinVia, type NodeProcess, rejoin, startNodeProcess, stopNodeProcess } from "./helpers/clusterNodes.js";
import { postgresFor, TEST_DATABASE } from "./helpers/gateway.js";
import { codeOf, type RawClient } from "./helpers/signaling.js";
import { type FakeVoskServer, startFakeVosk } from "./helpers/stt-servers.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * Re-homing on node death (issue 12 placement): two gateway processes on one PostgreSQL; the meeting's node is killed
 * with -9. Within 5 s the other node takes the meeting (the missing heartbeat, then a compare-and-set on the
 * placement); the people's sockets drop, they reconnect through the node they know and are sent to the new home; the
 * meeting goes on (same ID, still live, the host seat free for its host), and the trail says why (`node_lost`).
 * Then an attack on the new home: clients that publish and chat there before answering the continued recording's
 * notice (a returning person, who had answered the lost session's, and a newcomer with real media) are refused
 * (`notice_pending`) and nothing of theirs is captured; once they answer, they are. The meeting is also transcribed
 * (a Vosk-protocol engine) with nobody speaking before the kill: the lost transcription session, which never had a
 * checkpoint, is finished in the bucket as an empty transcript ended by `node_lost`, and `consentry verify` passes on
 * the meeting's folder.
 */
describe.skipIf(TEST_DATABASE !== "postgres")("a meeting's node killed with -9 (two node processes)", () => {
	const engine = { type: "vosk", endpoint: "", languageCode: "en-US" };
	const acme = testTenant("acme", { transcriptionEngine: engine });
	let vosk: FakeVoskServer;
	const file = path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-rehome-")), "store.sqlite");
	let databaseUrl: string;
	const nodes: NodeProcess[] = [];
	const open: RawClient[] = [];
	const bots: Bot[] = [];
	let media: SyntheticMedia | undefined;
	let db: pg.Client;
	let bucket: TestBucket;

	beforeAll(async () => {
		databaseUrl = await postgresFor(file);
		bucket = await startBucket("acme-rehome");
		vosk = await startFakeVosk("hello everyone");
		engine.endpoint = vosk.endpoint;
		const env = storageEnv(); // one master key for the cluster
		// One after the other: the first migrates the fresh database.
		nodes.push(await startNodeProcess({ id: "node-a", databaseUrl, tenants: [acme], env }));
		nodes.push(await startNodeProcess({ id: "node-b", databaseUrl, tenants: [acme], env }));
		await saveStorageTarget(nodes[0] as NodeProcess, acme, bucket, "rec");
		db = new pg.Client({ connectionString: databaseUrl });
		await db.connect();
		// Each node reads the live nodes at its heartbeat (1 s): after one, A knows B too.
		await new Promise((r) => setTimeout(r, 1500));
	}, 120_000);
	afterAll(async () => {
		for (const b of bots) b.close();
		media?.stop();
		for (const c of open) c.close();
		await db?.end();
		await Promise.all(nodes.map((n) => stopNodeProcess(n)));
		await bucket?.stop();
		await vosk?.close();
	});

	const placement = async (meetingId: string) =>
		(
			await db.query<{ node_id: string; epoch: number; cause: string }>(
				"SELECT node_id, epoch, cause FROM meeting_placements WHERE meeting_id = $1",
				[meetingId],
			)
		).rows[0];

	it("the other node takes the meeting within 5 s; both people come back to it and meet again", async () => {
		const [a, b] = nodes as [NodeProcess, NodeProcess];
		const hostToken = acme.token("hana");
		const partToken = acme.token("piet", "participant");
		const created = await fetch(`${a.url}/api/meetings`, {
			method: "POST",
			headers: { authorization: `Bearer ${hostToken}`, "content-type": "application/json" },
			body: JSON.stringify({ title: "re-homed", settings: { lobby: true } }),
		});
		const { id } = (await created.json()) as { id: string };

		// The host first reaches A, the participant first reaches B; they meet on the meeting's node.
		const host = await joinVia(a.url, hostToken, { meetingId: id, displayName: "Hana" });
		open.push(host.client);
		expect(host.answer.status).toBe("joined");
		const homeId = (await placement(id))?.node_id as string;
		const home = nodes.find((n) => n.id === homeId) as NodeProcess;
		const survivor = home === a ? b : a;
		const lobby = host.client.next("lobbyChanged");
		const part = await joinVia(b.url, partToken, { meetingId: id, displayName: "Piet" });
		open.push(part.client);
		expect(part.answer.status).toBe("lobby"); // this meeting has a lobby
		const { waiting } = await lobby;
		const admitted = part.client.next("admitted");
		await host.client.call("admit", { peerId: waiting[0]?.peerId });
		await admitted;
		const inRoom = await part.client.call("join", { meetingId: id, displayName: "Piet" });
		expect(inRoom.status).toBe("joined");
		expect(host.answer.status === "joined" && host.answer.cluster?.nodes.sort()).toEqual([a.url, b.url].sort());

		// The host turns recording on; both acknowledge (no media: these are signaling bots).
		const on = await host.client.call("startCapture", { kind: "recording" });
		expect(on.state).toBe("on");
		const oldSession = on.sessionId as string;
		const onT = await host.client.call("startCapture", { kind: "transcription" });
		const oldT = onT.sessionId as string;

		// Kill -9 the meeting's node.
		const hostLost = new Promise((r) => host.client.socket.once("disconnect", r));
		const partLost = new Promise((r) => part.client.socket.once("disconnect", r));
		const killedAt = Date.now();
		home.kill("SIGKILL");
		await Promise.all([hostLost, partLost]);

		// The clients reconnect as the browser does: the node they were on, then the others they were told of.
		const urls = [home.url, survivor.url];
		// Every notice a returning person gets: in the join answer, or as an event, which may come before the answer
		// (a session that starts while the join is answered) or while the checks below run, so listened to from the
		// connection on.
		const rejoinNoticed = async (token: string, displayName: string, notices: NoticeView[]) => {
			const r = await rejoin(
				urls,
				token,
				{ meetingId: id, displayName },
				{ connected: (c) => c.socket.on("captureNotice", (n: NoticeView) => notices.push(n)) },
			);
			notices.push(...r.answer.notices);
			return r;
		};
		const pietNotices: NoticeView[] = [];
		const hanaNotices: NoticeView[] = [];
		const [h2, p2] = await Promise.all([
			rejoinNoticed(hostToken, "Hana", hanaNotices),
			rejoinNoticed(partToken, "Piet", pietNotices),
		]);
		open.push(h2.client, p2.client);
		const rehomedIn = Math.max(h2.at, p2.at) - killedAt;
		console.log(`re-homed and both people back in ${rehomedIn} ms (host ${h2.tries} tries, participant ${p2.tries})`);
		expect(rehomedIn).toBeLessThanOrEqual(5000);

		// Same meeting, new home, still live; the host has their seat back (no take-over) and the participant skipped
		// the lobby (they were in the meeting when its node was lost).
		const moved = await placement(id);
		expect(moved).toMatchObject({ node_id: survivor.id, epoch: 2, cause: "node_lost" });
		expect(h2.answer).toMatchObject({ status: "joined", role: "host", cluster: { node: survivor.id } });
		expect(p2.answer.status).toBe("joined");
		// Whoever got back second found the other in the room (both, when they got back at the same moment).
		const seen = [
			...h2.answer.peers.map((p) => `Hana sees ${p.displayName}`),
			...p2.answer.peers.map((p) => `Piet sees ${p.displayName}`),
		];
		expect(seen.length).toBeGreaterThanOrEqual(1);
		for (const x of seen) expect(["Hana sees Piet", "Piet sees Hana"]).toContain(x);
		// Only those who were in: someone new still waits in the lobby.
		const newcomer = await joinVia(survivor.url, acme.token("zoe", "participant"), {
			meetingId: id,
			displayName: "Zoe",
		});
		open.push(newcomer.client);
		expect(newcomer.answer.status).toBe("lobby");
		const state = await fetch(`${survivor.url}/api/meetings/${id}`, {
			headers: { authorization: `Bearer ${hostToken}` },
		});
		expect(((await state.json()) as { state: string }).state).toBe("live");

		// The trail says what happened and why.
		const trail = await waitFor(
			async () => {
				const r = await fetch(`${survivor.url}/api/meetings/${id}/events`, {
					headers: { authorization: `Bearer ${hostToken}` },
				});
				const events = ((await r.json()) as { events: { type: string; data: Record<string, unknown> }[] }).events;
				return events.some((e) => e.type === "meeting.rehomed") ? events : undefined;
			},
			5000,
			"the re-homing in the trail",
		);
		expect(trail.find((e) => e.type === "meeting.rehomed")?.data).toMatchObject({
			from: home.id,
			to: survivor.id,
			cause: "node_lost",
		});
		expect(trail.some((e) => e.type === "host_seat.taken_over")).toBe(false);

		const events = async () => {
			const r = await fetch(`${survivor.url}/api/meetings/${id}/events`, {
				headers: { authorization: `Bearer ${hostToken}` },
			});
			return ((await r.json()) as { events: { seq: number; type: string; data: Record<string, unknown> }[] }).events;
		};
		// The recording goes on here in a new session that names the one it continues and the gap's cause; the people
		// coming back get its notice (nobody covered until they answer it).
		const continued = await waitFor(
			async () => {
				const r = await fetch(`${survivor.url}/api/meetings/${id}/events`, {
					headers: { authorization: `Bearer ${hostToken}` },
				});
				const events = (
					(await r.json()) as { events: { type: string; actor: string; data: Record<string, unknown> }[] }
				).events;
				return events.find((e) => e.type === "session.on" && e.data.continues === oldSession);
			},
			10_000,
			"the recording continued on the new home",
		);
		expect(continued.data).toMatchObject({ kind: "recording", cause: "node_lost", lostNode: home.id });
		const newSession = continued.data.sessionId as string;
		const newT = (
			await waitFor(
				async () => (await events()).find((e) => e.type === "session.on" && e.data.continues === oldT),
				10_000,
				"the transcription continued on the new home",
			)
		).data.sessionId as string;
		expect(newSession).not.toBe(oldSession);
		// The host gets it too.
		await waitFor(
			async () => hanaNotices.find((n) => n.sessionId === newSession),
			10_000,
			"the continued session's notice to the returning host",
		);

		// The attack: publishing and chatting on the new home before answering its notice. Piet answered the lost
		// session's notice on the lost node; that consent does not carry over.
		const pietNotice = await waitFor(
			async () => pietNotices.find((n) => n.sessionId === newSession),
			10_000,
			"the continued session's notice to the returning participant",
		);
		const pietNoticeT = await waitFor(
			async () => pietNotices.find((n) => n.sessionId === newT),
			10_000,
			"the continued transcription's notice to the returning participant",
		);
		const pietTransport = await p2.client.call("createWebRtcTransport", { direction: "send" });
		const produceMic = () =>
			p2.client.req("produce", {
				transportId: pietTransport.id,
				kind: "audio",
				source: "mic",
				rtpParameters: {
					codecs: [{ mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 }],
					encodings: [{ ssrc: 4242 }],
				},
			});
		expect(codeOf(await produceMic())).toBe("notice_pending");
		// Chat is not refused (it is shown live) but not captured: not in the recording's chat log.
		expect(codeOf(await p2.client.req("chat", { text: "piet, before answering" }))).toBe("ok");

		// Zoe, new here, is let in from the lobby and joins the new home while it records, with a real camera and
		// microphone (a WebRTC bot): her join answer carries the notice; publishing before answering is refused.
		const zoeAdmitted = newcomer.client.next("admitted");
		await h2.client.call("admit", { peerId: (newcomer.answer as { peerId: string }).peerId });
		await zoeAdmitted;
		let zoeJoin: JoinResult | undefined;
		const zoeSignal: Signal = {
			request: async (name, data) => {
				const r = await newcomer.client.call(name, data);
				if (name === "join") zoeJoin = r as JoinResult;
				return r as never;
			},
			onNewConsumer: (fn) => newcomer.client.socket.on("newConsumer", fn),
			close: () => newcomer.client.close(),
		};
		const zoe = await Bot.join(zoeSignal, id, { displayName: "Zoe", send: true, recv: false });
		bots.push(zoe);
		const zoeNotices = zoeJoin?.status === "joined" ? zoeJoin.notices : [];
		const zoeNotice = zoeNotices.find((n) => n.sessionId === newSession);
		const zoeNoticeT = zoeNotices.find((n) => n.sessionId === newT);
		expect(zoeNotice, "the notice in Zoe's join answer").toBeDefined();
		expect(zoeNoticeT, "the transcription's notice in Zoe's join answer").toBeDefined();
		media = new SyntheticMedia({ width: 160, height: 90, fps: 10 });
		await expect(zoe.publish(media, { audio: true, video: false, maxVideoBitrate: 0 })).rejects.toMatchObject({
			body: { code: "notice_pending" },
		});
		await expect(zoe.publish(media, { audio: false, video: true, maxVideoBitrate: 150_000 })).rejects.toMatchObject({
			body: { code: "notice_pending" },
		});
		expect(codeOf(await newcomer.client.req("chat", { text: "zoe, before answering" }))).toBe("ok");
		// Past the chat log's checkpoint delay (2 s): nothing of theirs in the new session, in the trail or the bucket.
		await new Promise((r) => setTimeout(r, 2500));
		const gates = (evs: Awaited<ReturnType<typeof events>>) =>
			evs.filter((e) => e.type === "gate.opened" && e.data.sessionId === newSession);
		const beforeAnswers = await events();
		expect(gates(beforeAnswers)).toEqual([]);
		const chatKey = `rec/${id}/${newSession}/chat.jsonl`;
		expect(await bucket.bytes(chatKey).catch(() => undefined)).toBeUndefined();

		// Answered: both publish, their gates open after their answers, and what they say is in the chat log.
		for (const n of [pietNotice, pietNoticeT])
			await p2.client.call("acknowledgeNotice", { noticeId: n.id, clickedAt: Date.now() });
		for (const n of [zoeNotice, zoeNoticeT])
			await newcomer.client.call("acknowledgeNotice", { noticeId: n?.id, clickedAt: Date.now() });
		expect(codeOf(await produceMic())).toBe("ok");
		await zoe.publish(media, { audio: true, video: true, maxVideoBitrate: 150_000 });
		await p2.client.call("chat", { text: "piet, after answering" });
		await newcomer.client.call("chat", { text: "zoe, after answering" });
		const afterAnswers = await waitFor(
			async () => {
				const evs = await events();
				return gates(evs).length >= 3 ? evs : undefined;
			},
			15_000,
			"the gates of Piet's microphone and Zoe's camera and microphone",
		);
		for (const g of gates(afterAnswers)) {
			const answer = afterAnswers.find(
				(e) => e.type === "notice.acknowledged" && e.data.sessionId === newSession && e.data.peerId === g.data.peerId,
			);
			expect(answer, `the answer before ${String(g.data.peerId)}'s gate`).toBeDefined();
			expect(answer?.seq).toBeLessThan(g.seq);
		}
		await waitFor(async () => (await zoe.packets()).sent > 50, 15_000, "Zoe's media flowing");

		// The lost node's session is finished from the bucket: its manifest says the node was lost.
		const manifest = await waitFor(
			async () => bucket.json<{ endReason: string }>(`rec/${id}/${oldSession}/manifest.json`).catch(() => undefined),
			30_000, // the new home waits out the lost recorder's grace (11.5 s) before finishing the session
			"the lost session's manifest",
		);
		expect(manifest.endReason).toBe("node_lost");
		// The lost transcription session, finished right after it: nobody spoke before the kill, so no checkpoint was
		// written; its transcript is empty, ended by node_lost, the whole session a node_lost hole, its proof beside it.
		const lostTranscript = await waitFor(
			async () =>
				bucket
					.json<{
						startedAt: string;
						endedAt?: string;
						endReason?: string;
						holes?: { from: string; cause: string }[];
						entries: unknown[];
					}>(`rec/${id}/${oldT}/transcript.json`)
					.catch(() => undefined),
			10_000,
			"the lost transcript",
		);
		expect(lostTranscript).toMatchObject({
			endReason: "node_lost",
			endedAt: lostTranscript.startedAt,
			holes: [{ from: lostTranscript.startedAt, cause: "node_lost" }],
			entries: [],
		});
		// Its audit export is written right after the transcript.
		await waitFor(
			() => bucket.bytes(`rec/${id}/${oldT}/audit.jsonl`).catch(() => undefined),
			5000,
			"the lost transcript's audit.jsonl",
		);

		// The continued session, stopped: Zoe's media is in it from her answer on, its chat log holds only what was
		// said after answering.
		await new Promise((r) => setTimeout(r, 2000));
		await h2.client.call("stopCapture", { kind: "recording" });
		await h2.client.call("stopCapture", { kind: "transcription" });
		const continuedManifest = await waitFor(
			async () =>
				bucket
					.json<{
						continues?: { session: string };
						tracks: {
							kind: string;
							openedAt: string;
							coveredBy: { type: string; seq: number } | null;
							objects: unknown[];
						}[];
					}>(`rec/${id}/${newSession}/manifest.json`)
					.catch(() => undefined),
			30_000,
			"the continued session's manifest",
		);
		expect(continuedManifest.continues?.session).toBe(oldSession);
		const zoeAnswer = afterAnswers.find(
			(e) =>
				e.type === "notice.acknowledged" &&
				e.data.sessionId === newSession &&
				e.data.peerId === (zoeJoin as { peerId?: string }).peerId,
		);
		const zoeTracks = continuedManifest.tracks.filter((t) => t.coveredBy?.seq === zoeAnswer?.seq);
		expect(zoeTracks.map((t) => t.kind).sort()).toEqual(["audio", "camera"]);
		for (const t of zoeTracks) expect(t.objects.length).toBeGreaterThanOrEqual(1);
		const chat = (await bucket.bytes(chatKey)).toString("utf8");
		const said = chat
			.split("\n")
			.filter(Boolean)
			.map((l) => (JSON.parse(l) as { text: string }).text);
		expect(said.sort()).toEqual(["piet, after answering", "zoe, after answering"]);

		// The customer's auditor: the meeting's folder (two recording, two transcription sessions) verifies.
		const newTranscript = await waitFor(
			async () =>
				bucket
					.json<{ endReason?: string; continues?: unknown }>(`rec/${id}/${newT}/transcript.json`)
					.then((t) => (t.endReason ? t : undefined))
					.catch(() => undefined),
			15_000,
			"the continued transcript",
		);
		expect(newTranscript.continues).toEqual({ session: oldT, cause: "node_lost", lostNode: home.id });
		let out = "";
		process.env.AWS_ACCESS_KEY_ID ??= "x";
		process.env.AWS_SECRET_ACCESS_KEY ??= "x";
		const code = await verifyCommand([`s3://${bucket.name}/rec/${id}`, "--endpoint", bucket.server.endpoint], {
			out: (t) => (out += t),
			err: (t) => (out += t),
		});
		expect(code, out).toBe(0);
		for (const s of [oldSession, newSession, oldT, newT]) expect(out).toContain(s);
	}, 90_000);
});

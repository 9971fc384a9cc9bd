import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bot } from "../bench/bots/Bot.js";
import { SyntheticMedia } from "../bench/bots/media.js";
import { EXIT, verifyCommand } from "../cli/verify/command.js";
import type { TapChange } from "../server/compliance/CaptureService.js";
import type { Gateway } from "../server/Gateway.js";
import type { Manifest } from "../server/recording/RecordingTypes.js";
import type { JoinResult, NoticeView } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { type PostgresServer, startPostgres } from "./helpers/postgres.js";
import { codeOf, connect, type RawClient, signalOf } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * PostgreSQL down under a running gateway (docs/architecture.md, "The store"): new starts and joins answer
 * `store_unavailable` quickly, the meeting in progress goes on (its people still talk: chat, media), and once the
 * engine is back everything resumes.
 */
describe("the gateway when PostgreSQL stops answering", () => {
	const acme = testTenant("acme");
	let pg: PostgresServer;
	let gw: Gateway;
	const open: RawClient[] = [];

	beforeAll(async () => {
		pg = await startPostgres();
		gw = await startGateway({
			tenants: [acme],
			env: { CONSENTRY_DATABASE_URL: await pg.createDatabase("outage"), CONSENTRY_DATABASE_TIMEOUT_MS: "2000" },
		});
	});
	afterAll(async () => {
		for (const c of open) c.close();
		pg?.resume();
		await gw?.close();
		await pg?.stop();
	});

	it("refuses new joins and starts with store_unavailable within seconds, keeps the live meeting, then resumes", async () => {
		const m = (await api(gw, "POST", "/api/meetings", acme.token("hana"), { title: "t", settings: { lobby: false } }))
			.body as { id: string };
		const host = await connect(gw.url, acme.token("hana"));
		const pia = await connect(gw.url, acme.token("pia", "participant"));
		open.push(host, pia);
		expect(((await host.call("join", { meetingId: m.id, displayName: "Hana" })) as JoinResult).status).toBe("joined");
		expect(((await pia.call("join", { meetingId: m.id, displayName: "Pia" })) as JoinResult).status).toBe("joined");
		const other = (await api(gw, "POST", "/api/meetings", acme.token("olga"), { title: "o" })).body as { id: string };

		pg.pause();
		try {
			const t0 = Date.now();
			const kim = await connect(gw.url, acme.token("kim", "participant"));
			open.push(kim);
			expect(codeOf(await kim.req("join", { meetingId: m.id, displayName: "Kim" }))).toBe("store_unavailable");
			const start = await api(gw, "POST", `/api/meetings/${other.id}/start`, acme.token("olga"));
			expect([start.status, start.body.code]).toEqual([503, "store_unavailable"]);
			expect(Date.now() - t0).toBeLessThan(12_000); // each within the store's query timeout (2 s here)
			// The meeting in progress goes on: its people still reach each other.
			const said = pia.next("chatMessage");
			await host.call("chat", { text: "still here" });
			expect(((await said) as { text: string }).text).toBe("still here");
		} finally {
			pg.resume();
		}
		// Back up: joins work again.
		const lou = await connect(gw.url, acme.token("lou", "participant"));
		open.push(lou);
		expect(((await lou.call("join", { meetingId: m.id, displayName: "Lou" })) as JoinResult).status).toBe("joined");
	}, 60_000);
});

/**
 * Acknowledgements waiting for the meeting's commit when PostgreSQL stops answering (CaptureService commits them
 * together): every one answers `store_unavailable` within the store's timeout, at once — not one timeout after the
 * other — and nobody's gate opens. Back up, answering again opens the gates.
 */
describe("acknowledgements waiting for a commit when PostgreSQL stops answering", () => {
	const acme = testTenant("acme");
	const PEOPLE = 8;
	let pg: PostgresServer;
	let bucket: TestBucket;
	let gw: Gateway;
	const open: RawClient[] = [];

	beforeAll(async () => {
		pg = await startPostgres();
		bucket = await startBucket("acme-outage");
		gw = await startGateway({
			tenants: [acme],
			env: {
				...storageEnv(),
				CONSENTRY_DATABASE_URL: await pg.createDatabase("outage_acks"),
				CONSENTRY_DATABASE_TIMEOUT_MS: "2000",
			},
		});
		await saveStorageTarget(gw, acme, bucket, "rec");
	});
	afterAll(async () => {
		for (const c of open) c.close();
		pg?.resume();
		await gw?.close();
		await bucket?.stop();
		await pg?.stop();
	});

	it("all fail at once with store_unavailable, none opens; once back, answering again covers them", async () => {
		const m = (await api(gw, "POST", "/api/meetings", acme.token("hana"), { title: "t", settings: { lobby: false } }))
			.body as { id: string };
		const people: { c: RawClient; notice: Promise<unknown>; peerId: string }[] = [];
		for (let i = 0; i < PEOPLE; i++) {
			const c = await connect(gw.url, i === 0 ? acme.token("hana") : acme.token(`p${i}`, "participant"));
			open.push(c);
			const joined = (await c.call("join", { meetingId: m.id, displayName: `P${i}` })) as JoinResult;
			const notice = c.next("captureNotice", 20_000);
			notice.catch(() => undefined);
			people.push({ c, notice, peerId: String((joined as { peerId?: string }).peerId) });
		}
		await people[0]?.c.call("startCapture", { kind: "recording" });
		const notices = (await Promise.all(people.map((p) => p.notice))) as NoticeView[];

		pg.pause();
		let answers: { code: string | undefined; at: number }[];
		try {
			answers = await Promise.all(
				people.map(async (p, i) => {
					const r = (await p.c.socket
						.timeout(60_000)
						.emitWithAck("acknowledgeNotice", { noticeId: notices[i]?.id, clickedAt: Date.now() })) as {
						ok: boolean;
						error?: { code: string };
					};
					return { code: r.ok ? "ok" : r.error?.code, at: Date.now() };
				}),
			);
		} finally {
			pg.resume();
		}
		expect(answers.map((a) => a.code)).toEqual(Array(PEOPLE).fill("store_unavailable"));
		// The first answer's commit fails alone; everything that waited for it fails together, one store timeout
		// later — not one timeout after the other (2 s each here, so at least 14 s apart if each were retried).
		const later = answers
			.map((a) => a.at)
			.sort((a, b) => a - b)
			.slice(1);
		expect(Math.max(...later) - Math.min(...later)).toBeLessThan(1_500);
		for (const p of people) expect(gw.capture.mayCapture(m.id, "recording", p.peerId)).toBe(false);

		// Back up: the notice is still theirs to answer, and answering covers them.
		await Promise.all(
			people.map((p, i) => p.c.call("acknowledgeNotice", { noticeId: notices[i]?.id, clickedAt: Date.now() })),
		);
		for (const p of people) expect(gw.capture.mayCapture(m.id, "recording", p.peerId)).toBe(true);
	}, 90_000);
});

/**
 * Explicit consent (all-party consent) with real media when PostgreSQL stops answering while a person consents
 * (CaptureService: `#proven` reverts the answer — CaptureControl.revert — and `#hold` holds their media again). The
 * consent answers `store_unavailable`, no tap opens for their producers and nothing of their media reaches the
 * bucket, they are not counted covered, and their producers are paused again at the SFU (nobody receives them); once
 * the engine is back, consenting again covers them and only from that click on is their media recorded: the
 * manifest's tracks are covered by the one consent the trail holds, and `consentry verify` passes on the meeting.
 */
describe("explicit consent while PostgreSQL stops answering", () => {
	const acme = testTenant("acme");
	let pg: PostgresServer;
	let bucket: TestBucket;
	let gw: Gateway;
	let media: SyntheticMedia;
	const open: RawClient[] = [];
	const bots: Bot[] = [];
	const taps: TapChange[] = [];

	beforeAll(async () => {
		pg = await startPostgres();
		bucket = await startBucket("acme-consent-outage");
		gw = await startGateway({
			tenants: [acme],
			env: {
				...storageEnv(),
				CONSENTRY_DATABASE_URL: await pg.createDatabase("outage_consent"),
				CONSENTRY_DATABASE_TIMEOUT_MS: "2000",
			},
		});
		await saveStorageTarget(gw, acme, bucket, "rec");
		gw.capture.on("tap", (t) => taps.push(t));
		media = new SyntheticMedia({ width: 160, height: 90, fps: 10 });
	});
	afterAll(async () => {
		for (const b of bots) b.close();
		for (const c of open) c.close();
		media?.stop();
		pg?.resume();
		await gw?.close();
		await bucket?.stop();
		await pg?.stop();
	});

	it("a consent whose proof is not committed captures nothing and holds the media again; consenting later records", async () => {
		process.env.AWS_ACCESS_KEY_ID = "AKIATEST";
		process.env.AWS_SECRET_ACCESS_KEY = "secret-value";
		const m = (
			await api(gw, "POST", "/api/meetings", acme.token("hana"), {
				title: "All-party consent",
				settings: { lobby: false, capturePolicy: "explicit-consent" },
			})
		).body as { id: string };
		const host = await connect(gw.url, acme.token("hana"));
		open.push(host);
		expect(((await host.call("join", { meetingId: m.id, displayName: "Hana" })) as JoinResult).status).toBe("joined");
		const pia = await connect(gw.url, acme.token("pia", "participant"));
		open.push(pia);
		const held: { held: boolean; producerIds: string[] }[] = [];
		pia.socket.on("mediaHeld", (e: { held: boolean; producerIds: string[] }) => held.push(e));
		const noticeP = pia.next("captureNotice", 20_000);
		noticeP.catch(() => undefined);
		const bot = await Bot.join(signalOf(pia), m.id, { displayName: "Pia", send: true, recv: false });
		bots.push(bot);
		await bot.publish(media, { audio: true, video: true, maxVideoBitrate: 150_000 });
		const room = () => gw.rooms.get(m.id);
		const piaPeer = await waitFor(
			() => [...(room()?.peers.values() ?? [])].find((p) => p.displayName === "Pia" && p.producers.size === 2),
			20_000,
			"Pia sending audio and video",
		);
		const peerId = piaPeer.id;
		const producers = () => [...(room()?.peers.get(peerId)?.producers.values() ?? [])];
		const producerIds = producers()
			.map((p) => p.id)
			.sort();
		const piaTaps = () => taps.filter((t) => t.peerId === peerId);

		await host.call("startCapture", { kind: "recording" });
		const notice = (await noticeP) as NoticeView;
		expect(notice.consentRequired).toBe(true);
		await waitFor(() => held.length === 1 && producers().every((p) => p.paused), 10_000, "Pia's media held");
		expect(held[0]).toMatchObject({ held: true });

		pg.pause();
		let answer: string | undefined;
		try {
			const r = (await pia.socket
				.timeout(30_000)
				.emitWithAck("consent", { noticeId: notice.id, clickedAt: Date.now() })) as {
				ok: boolean;
				error?: { code: string };
			};
			answer = r.ok ? "ok" : r.error?.code;
			// Released at the click, held again once the proof could not be written.
			await waitFor(() => held.length === 3, 5_000, "Pia's media held again");
			expect(held.map((h) => h.held)).toEqual([true, false, true]);
			expect([...(held[2]?.producerIds ?? [])].sort()).toEqual(producerIds);
			await waitFor(() => producers().every((p) => p.paused), 5_000, "Pia's producers paused again");
			expect(gw.capture.mayCapture(m.id, "recording", peerId)).toBe(false);
			expect(gw.capture.coverage(m.id, "recording").find((e) => e.peerId === peerId)).toMatchObject({
				coverage: "pending",
				covered: false,
			});
			expect(codeOf(await pia.req("resumeProducer", { producerId: producerIds[0] }))).toBe("consent_required");
		} finally {
			pg.resume();
		}
		expect(answer).toBe("store_unavailable");
		// Back up: still nothing opened for Pia, nothing of hers recorded, her media still held.
		await new Promise((r) => setTimeout(r, 1_500));
		expect(piaTaps()).toEqual([]);
		expect(gw.recorder?.openTracks ?? []).toEqual([]);
		const listed = await bucket.s3.send(new ListObjectsV2Command({ Bucket: bucket.name, Prefix: `rec/${m.id}/` }));
		expect((listed.Contents ?? []).map((o) => o.Key).filter((k) => k?.endsWith(".webm"))).toEqual([]);
		expect(producers().every((p) => p.paused)).toBe(true);
		expect(gw.capture.mayCapture(m.id, "recording", peerId)).toBe(false);

		// Consenting again covers her, and only now is her media captured.
		const started = new Set<string>();
		gw.recorder?.on("trackStarted", (t) => started.add(t.trackId));
		const clickedAt = Date.now();
		expect(await pia.call("consent", { noticeId: notice.id, clickedAt })).toEqual({ coverage: "consented" });
		expect(gw.capture.mayCapture(m.id, "recording", peerId)).toBe(true);
		await waitFor(() => held.length === 4 && producers().every((p) => !p.paused), 5_000, "Pia's media released");
		await waitFor(() => gw.recorder?.openTracks.length === 2, 20_000, "Pia's tracks recording");
		expect(piaTaps().filter((t) => t.open).length).toBe(2);
		// Each track's first frame muxed (the audio's once a sender report dates it: one every few seconds), then more.
		await waitFor(() => started.size === 2, 20_000, "both of Pia's tracks recording frames");
		await new Promise((r) => setTimeout(r, 1_500));
		const session = gw.capture.session(m.id, "recording");
		await host.call("stopCapture", { kind: "recording" });
		const base = `rec/${m.id}/${session?.id}`;
		const manifest = await waitFor(
			() => bucket.json<Manifest>(`${base}/manifest.json`).catch(() => undefined),
			60_000,
			"manifest.json",
		);

		// The trail holds one consent of Pia's (the one that failed never landed); it covers both her tracks.
		const events = await gw.events.list({ tenantId: "acme", meetingId: m.id });
		const consents = events.filter((e) => e.type === "consent.given" && e.data.peerId === peerId);
		expect(consents).toHaveLength(1);
		const pseudonym = consents[0]?.actor;
		const tracks = manifest.tracks.filter((t) => t.person === pseudonym);
		expect(tracks).toHaveLength(2);
		for (const t of tracks) {
			expect(t.coveredBy).toMatchObject({ type: "consent.given", seq: consents[0]?.seq });
			expect(t.objects.length, JSON.stringify(t)).toBeGreaterThan(0);
			expect(t.capture?.clickAt).toBe(clickedAt);
			expect(t.capture?.firstCaptureAt ?? 0).toBeGreaterThanOrEqual(clickedAt);
		}
		let out = "";
		const code = await verifyCommand([`s3://${bucket.name}/rec/${m.id}`, "--endpoint", bucket.server.endpoint], {
			out: (t) => (out += t),
			err: (t) => (out += t),
		});
		expect(code, out).toBe(EXIT.verified);
	}, 120_000);
});

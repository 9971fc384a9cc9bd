import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bot } from "../bench/bots/Bot.js";
import { SyntheticMedia } from "../bench/bots/media.js";
import { EXIT, verifyCommand } from "../cli/verify/command.js";
import type { SessionReport } from "../cli/verify/report.js";
import { answersIn } from "../server/audit/notices.js";
import type { Gateway } from "../server/Gateway.js";
import type { Manifest } from "../server/recording/RecordingTypes.js";
import type { NoticeView } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { connect, type RawClient, signalOf } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * Acknowledgements that reach the gateway while the meeting's previous entries are being committed are recorded
 * together, in one `notices.acknowledged` entry (server/compliance/CaptureService.ts, coalesceAnswers). A real
 * recording of five people who all answer at the same moment (real mediasoup, recorder, S3 API): each gate still
 * opens only after the entry holding that person's answer, each track's coveredBy names that entry, `consentry
 * verify` passes on the bucket alone, and a person's access export holds only their own answer of it.
 */
const PEOPLE = 5;
let acme: ReturnType<typeof testTenant>;
let bucket: TestBucket;
let gw: Gateway;
let media: SyntheticMedia;
const bots: Bot[] = [];
const clients: RawClient[] = [];
let meetingId: string;
let base: string;

beforeAll(async () => {
	acme = testTenant("acme");
	bucket = await startBucket("acme-answers");
	gw = await startGateway({ tenants: [acme], env: storageEnv() });
	await saveStorageTarget(gw, acme, bucket, "rec");
	media = new SyntheticMedia({ width: 160, height: 90, fps: 10 });
	const m = await api(gw, "POST", "/api/meetings", acme.token("b-host"), {
		title: "Answered together",
		settings: { lobby: false },
	});
	meetingId = m.body.id as string;
	const notices: Promise<NoticeView>[] = [];
	for (let i = 0; i < PEOPLE; i++) {
		const c = await connect(gw.url, i === 0 ? acme.token("b-host") : acme.token(`p${i}`, "participant"));
		clients.push(c);
		const notice = c.next("captureNotice", 20_000) as Promise<NoticeView>;
		notice.catch(() => undefined);
		notices.push(notice);
		const bot = await Bot.join(signalOf(c), meetingId, { displayName: `P${i}`, send: true, recv: false });
		bots.push(bot);
		await bot.publish(media, { audio: true, video: true, maxVideoBitrate: 150_000 });
	}
	await waitFor(
		() => [...(gw.rooms.get(meetingId)?.peers.values() ?? [])].every((p) => p.producers.size === 2),
		20_000,
		"everyone sending",
	);
	await clients[0]?.call("startCapture", { kind: "recording" });
	const views = await Promise.all(notices);
	// Everyone clicks at once.
	await Promise.all(
		clients.map((c, i) => c.call("acknowledgeNotice", { noticeId: views[i]?.id, clickedAt: Date.now() })),
	);
	await waitFor(() => gw.recorder?.openTracks.length === 2 * PEOPLE, 20_000, "every track recording");
	await new Promise((r) => setTimeout(r, 4_000));
	const session = gw.capture.session(meetingId, "recording");
	await clients[0]?.call("stopCapture", { kind: "recording" });
	base = `rec/${meetingId}/${session?.id}`;
	await waitFor(() => bucket.json(`${base}/manifest.json`).catch(() => undefined), 60_000, "manifest.json");
}, 120_000);

afterAll(async () => {
	for (const b of bots) b.close();
	for (const c of clients) c.close();
	media?.stop();
	await gw?.close();
	await bucket?.stop();
});

describe("acknowledgements committed together", () => {
	process.env.AWS_ACCESS_KEY_ID = "AKIATEST";
	process.env.AWS_SECRET_ACCESS_KEY = "secret-value";

	it("are one entry after the first, and every gate opens after the entry holding its person's answer", async () => {
		const events = await gw.events.list({ tenantId: "acme", meetingId });
		const answers = events.flatMap((e) => answersIn(e).map((a) => ({ e, a })));
		expect(new Set(answers.map((x) => x.a.person)).size).toBe(PEOPLE);
		const together = events.filter((e) => e.type === "notices.acknowledged");
		expect(together.length).toBeGreaterThanOrEqual(1);
		expect(together.length + events.filter((e) => e.type === "notice.acknowledged").length).toBeLessThan(PEOPLE);
		expect(together.every((e) => e.actor === null && answersIn(e).length >= 2)).toBe(true);
		for (const g of events.filter((e) => e.type === "gate.opened")) {
			const answered = answers.find((x) => x.a.person === g.data.person);
			expect(answered, String(g.data.person)).toBeDefined();
			expect(g.seq).toBeGreaterThan(answered?.e.seq as number);
		}
	});

	it("each track's coveredBy names that entry, and consentry verify passes from the bucket alone", async () => {
		const manifest = (await bucket.json(`${base}/manifest.json`)) as Manifest;
		expect(manifest.tracks).toHaveLength(2 * PEOPLE);
		for (const t of manifest.tracks) expect(t.objects.length, `${t.person} ${t.kind}`).toBeGreaterThan(0);
		const events = await gw.events.list({ tenantId: "acme", meetingId });
		const shared = manifest.tracks.filter((t) => {
			const e = events.find((x) => x.seq === t.coveredBy?.seq);
			return e?.type === "notices.acknowledged" && answersIn(e).some((a) => a.person === t.person);
		});
		expect(shared.length).toBeGreaterThanOrEqual(4); // two people's audio and video at least
		let out = "";
		const code = await verifyCommand([`s3://${bucket.name}/${base}`, "--endpoint", bucket.server.endpoint, "--json"], {
			out: (t) => (out += t),
			err: () => undefined,
		});
		const report = JSON.parse(out) as { sessions: SessionReport[] };
		expect(report.sessions.flatMap((s) => s.problems.filter((p) => p.severity === "fail"))).toEqual([]);
		expect(code).toBe(EXIT.verified);
	});

	it("a person's access export holds only their own answer of it", async () => {
		const events = await gw.events.list({ tenantId: "acme", meetingId });
		const together = events.find((e) => e.type === "notices.acknowledged") as (typeof events)[number];
		const one = answersIn(together)[0]?.person as string;
		const res = await api(gw, "POST", "/api/dsr/export", acme.token("it-admin", "admin"), {
			person: { pseudonym: one },
		});
		expect(res.status).toBe(200);
		const entries = (res.body.audit as { entries: { seq: number; data: { answers?: unknown[] }; omitted?: unknown }[] })
			.entries;
		const mine = entries.find((e) => e.seq === together.seq);
		expect(mine?.data.answers).toEqual([expect.objectContaining({ person: one })]);
		expect(mine?.omitted).toEqual({ answers: answersIn(together).length - 1 });
		// Their recorded objects, found from the manifest.
		const objects = (res.body.bucket as { objects: { key: string; holds: string }[] }).objects;
		expect(objects.filter((o) => o.holds === "media" && o.key.startsWith(`${base}/${one}-`)).length).toBe(2);
	});
});

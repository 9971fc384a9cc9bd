import { DeleteObjectCommand, PutBucketCorsCommand } from "@aws-sdk/client-s3";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bot } from "../bench/bots/Bot.js";
import { SyntheticMedia } from "../bench/bots/media.js";
import type { Gateway } from "../server/Gateway.js";
import type { TranscriptDocument, TranscriptPart } from "../server/transcription/TranscriptTypes.js";
import type { NoticeView } from "../shared/protocol.js";
import { axeViolations } from "./helpers/axe.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket, transcriptSoFar } from "./helpers/bucket.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { connect, type RawClient, signalOf } from "./helpers/signaling.js";
import { type FakeVoskServer, startFakeVosk } from "./helpers/stt-servers.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * The transcript link while the session runs: a real gateway transcribes a participant (a headless WebRTC bot sending
 * real Opus through mediasoup to the recorder's engine stream; a Vosk-protocol server that ends a line every 1.5 s of
 * tone) and writes its checkpoint parts to a real S3 API (moto). The link lists the parts so far, presigned, a page
 * after a cursor; the page in Chromium shows the lines so far and new ones as they come, marks a part missing from the
 * bucket, and shows the final transcript once the session stops.
 */
const SCRIPT = "we agreed to ship on friday";
let vosk: FakeVoskServer;
let acme: ReturnType<typeof testTenant>;
const other = testTenant("other");
let bucket: TestBucket;
let gw: Gateway;
let media: SyntheticMedia;
let chrome: LaunchedBrowser;
const clients: RawClient[] = [];
const bots: Bot[] = [];
const pages: Page[] = [];
let host: RawClient;
let meetingId: string;
let linkId: string;
let base: string;

interface Live {
	after: number;
	parts: { part: number; url: string }[];
	next: number;
	more: boolean;
	pollSeconds: number;
}

const link = (query = "", token = acme.token("pat", "participant")) =>
	api(gw, "GET", `/api/transcripts/${linkId}${query}`, token);
const openings = async () =>
	(await gw.events.list({ tenantId: "acme", meetingId, type: "transcript.link_opened" })).length;

beforeAll(async () => {
	vosk = await startFakeVosk(SCRIPT, { finalEveryMs: 1500 });
	acme = testTenant("acme", { transcriptionEngine: { type: "vosk", endpoint: vosk.endpoint, languageCode: "en-US" } });
	// A bucket as S3's are by default: no CORS (moto allows every origin unless told not to); the page's rule is added
	// in the page's test, as docs/storage.md tells the customer.
	process.env.MOTO_DISABLE_GLOBAL_CORS = "true";
	try {
		bucket = await startBucket("acme-live");
	} finally {
		delete process.env.MOTO_DISABLE_GLOBAL_CORS;
	}
	gw = await startGateway({ tenants: [acme, other], env: storageEnv() });
	await saveStorageTarget(gw, acme, bucket, "live");
	await saveStorageTarget(gw, other, bucket, "other");
	media = new SyntheticMedia({ width: 160, height: 90, fps: 5 });
	const m = await api(gw, "POST", "/api/meetings", acme.token("live-host"), {
		title: "Weekly",
		settings: { lobby: false },
	});
	meetingId = m.body.id as string;
	host = await connect(gw.url, acme.token("live-host"));
	const pat = await connect(gw.url, acme.token("pat", "participant"));
	clients.push(host, pat);
	await host.call("join", { meetingId, displayName: "Hana" });
	const bot = await Bot.join(signalOf(pat), meetingId, { displayName: "Pat", send: true, recv: false });
	bots.push(bot);
	await bot.publish(media, { audio: true, video: false, maxVideoBitrate: 0 });
	const notice = pat.next("captureNotice", 20_000) as Promise<NoticeView>;
	const announced = pat.next("transcriptLink", 20_000) as Promise<{ sessionId: string; path: string }>;
	await host.call("startCapture", { kind: "transcription" });
	await pat.call("acknowledgeNotice", { noticeId: (await notice).id, clickedAt: Date.now() });
	const l = await announced;
	linkId = l.path.slice(3);
	base = `live/${meetingId}/${l.sessionId}`;
	// Under load the engine's stream starts late: go on once Pat's audio (≥ 1 s) reached it, and its first line.
	await waitFor(
		() => vosk.connections.some((c) => c.binaryBytes >= 32_000),
		45_000,
		`Pat's audio at the engine (engine connections: ${vosk.connections.length})`,
	);
	chrome = await launchChromium();
}, 90_000);

afterAll(async () => {
	await Promise.all(pages.map((p) => p.close().catch(() => undefined)));
	await chrome?.close();
	for (const b of bots) b.close();
	for (const c of clients) c.close();
	media?.stop();
	await gw?.close();
	await bucket?.stop();
	await vosk?.close();
});

describe("the transcript link while transcription runs", () => {
	it("lists the checkpoint parts so far, presigned, a page after a cursor; bad cursors are 400; authorized as an opening", async () => {
		await waitFor(async () => ((await transcriptSoFar(bucket, base))?.parts ?? 0) >= 3, 60_000, "three parts");
		const before = await openings();
		const first = await link();
		expect(first.status).toBe(200);
		expect(first.body.ready).toBe(false);
		const live = first.body.live as Live;
		const numbers = live.parts.map((p) => p.part);
		expect(numbers.length).toBeGreaterThanOrEqual(3);
		expect(numbers).toEqual(numbers.map((_, i) => i + 1));
		expect(live).toMatchObject({ after: 0, next: numbers.at(-1), more: false, pollSeconds: 2 });
		// Each URL reads the part from the bucket: the lines since the part before, nobody else's.
		for (const p of live.parts) {
			const part = (await (await fetch(p.url)).json()) as TranscriptPart;
			expect(part).toMatchObject({ kind: "consentry.transcript.part", part: p.part, session: base.split("/")[2] });
			expect(part.entries.length).toBeGreaterThan(0);
			for (const e of part.entries) expect([e.displayName, e.text]).toEqual(["Pat", SCRIPT]);
		}

		// After a cursor: only newer parts.
		const k = live.next;
		const newer = (await link(`?after=${k - 1}`)).body.live as Live;
		expect(newer.parts[0]?.part).toBe(k);
		expect(newer.parts.every((p) => p.part >= k)).toBe(true);
		const later = await waitFor(
			async () => {
				const r = (await link(`?after=${k}`)).body.live as Live | null;
				return r?.parts.length ? r : undefined;
			},
			20_000,
			"a part written after the first answer",
		);
		expect(later.parts.every((p) => p.part > k)).toBe(true);
		// A page at a time.
		const one = (await link("?after=0&limit=1")).body.live as Live;
		expect(one).toMatchObject({ after: 0, next: 1, more: true });
		expect(one.parts.map((p) => p.part)).toEqual([1]);
		expect((await link("?after=999999")).body.live).toMatchObject({ parts: [], next: 999_999, more: false });

		for (const q of ["?after=-1", "?after=abc", "?after=1.5", "?after=1000000", "?limit=0", "?limit=201", "?limit=x"]) {
			const r = await link(q);
			expect([q, r.status, r.body.code]).toEqual([q, 400, "invalid_request"]);
		}
		// Polls with a cursor are authorized as an opening (the same person checks) …
		const outsider = await link("?after=0", acme.token("olga", "participant"));
		expect([outsider.status, outsider.body.code]).toEqual([403, "not_a_member"]);
		const foreign = await link("?after=0", other.token("pat", "participant"));
		expect([foreign.status, foreign.body.code]).toEqual([404, "link_not_found"]);
		expect((await api(gw, "GET", `/api/transcripts/${linkId}?after=0`)).status).toBe(401);
		// … and audited once: Pat's opening covers Pat's polls; the host's first poll is an opening of theirs.
		expect(await openings()).toBe(before + 1);
		expect((await link("?after=0", acme.token("live-host"))).status).toBe(200);
		expect((await link("?after=1", acme.token("live-host"))).status).toBe(200);
		expect(await openings()).toBe(before + 2);
	}, 120_000);

	it("the page shows the lines so far and follows the meeting, marks a missing part, then shows the final transcript", async () => {
		await waitFor(async () => ((await transcriptSoFar(bucket, base))?.parts ?? 0) >= 1, 60_000, "a part");
		// Without a CORS rule on the bucket the page cannot read it, and says so (no error screen, no lines).
		const blocked = await chrome.browser.newPage();
		pages.push(blocked);
		await blocked.goto(`${gw.url}/t/${linkId}#token=${acme.token("pat", "participant")}`);
		await blocked.getByTestId("transcript-unreadable").waitFor({ timeout: 15_000 });
		expect(await blocked.getByTestId("transcript-line").count()).toBe(0);
		expect(await blocked.getByTestId("transcript-in-progress").count()).toBe(1);
		await blocked.close();
		// The rule docs/storage.md gives: GET from the gateway's origin.
		await bucket.s3.send(
			new PutBucketCorsCommand({
				Bucket: bucket.name,
				CORSConfiguration: { CORSRules: [{ AllowedOrigins: [gw.url], AllowedMethods: ["GET"], MaxAgeSeconds: 3600 }] },
			}),
		);

		const page = await chrome.browser.newPage();
		pages.push(page);
		await page.goto(`${gw.url}/t/${linkId}#token=${acme.token("pat", "participant")}`);
		await page.getByTestId("transcript-in-progress").waitFor({ timeout: 15_000 });
		expect(await page.getByTestId("transcript-disclaimer").textContent()).toMatch(/incomplete or wrong/);
		expect(await page.getByTestId("transcript-in-progress").textContent()).toMatch(/still running/);
		const lines = page.getByTestId("transcript-line");
		await lines.first().waitFor({ timeout: 15_000 });
		expect(await lines.first().textContent()).toMatch(/^0:\d\d Pat we agreed to ship on friday$/);
		const shown = await lines.count();
		expect(await axeViolations(page)).toEqual([]);
		expect(shown).toBeGreaterThanOrEqual(3);
		// It follows: new lines appear without reloading.
		await expect.poll(() => lines.count(), { timeout: 20_000 }).toBeGreaterThan(shown);
		expect(await page.getByTestId("transcript-json").count()).toBe(0); // not written yet

		// A part gone from the bucket: a page opened now marks where it was (in French too).
		await bucket.s3.send(new DeleteObjectCommand({ Bucket: bucket.name, Key: `${base}/transcript.part-000002.json` }));
		const fresh = await chrome.browser.newPage();
		pages.push(fresh);
		await fresh.goto(`${gw.url}/t/${linkId}#token=${acme.token("live-host")}`);
		await fresh.getByTestId("transcript-gap").waitFor({ timeout: 15_000 });
		expect(await fresh.getByTestId("transcript-gap").count()).toBe(1);
		await fresh.getByRole("button", { name: "Passer au français" }).click();
		await fresh
			.getByTestId("transcript-in-progress")
			.getByText(/encore en cours/)
			.waitFor();
		expect(await fresh.getByTestId("transcript-gap").textContent()).toMatch(/manque ici/);

		// The race: a page has listed the parts but not read them yet when the session ends and they are deleted. (Its
		// reads of the bucket are held until then — the real bucket then answers them, 404.)
		const racer = await chrome.browser.newPage();
		pages.push(racer);
		let release: () => void = () => undefined;
		const released = new Promise<void>((r) => {
			release = r;
		});
		let held = 0;
		await racer.route(/transcript\.part-\d+\.json/, async (route) => {
			held++;
			await released;
			await route.continue();
		});
		await racer.goto(`${gw.url}/t/${linkId}#token=${acme.token("pat", "participant")}`);
		await waitFor(() => held > 0, 15_000, "the racer's reads of the parts held");

		// The session stops: transcript.json is written, the parts deleted; every page switches to it, no error.
		await host.call("stopCapture", { kind: "transcription" });
		await page.getByTestId("transcript-final").waitFor({ timeout: 30_000 });
		await fresh.getByTestId("transcript-final").waitFor({ timeout: 30_000 });
		await waitFor(async () => (await transcriptSoFar(bucket, base)) === undefined, 30_000, "the parts deleted");
		release();
		await racer.getByTestId("transcript-final").waitFor({ timeout: 15_000 });
		expect(await racer.getByTestId("transcript-error").count()).toBe(0);
		const doc = await bucket.json<TranscriptDocument>(`${base}/transcript.json`);
		expect(doc.entries.length).toBeGreaterThanOrEqual(shown);
		expect(await lines.count()).toBe(doc.entries.length);
		expect(await fresh.getByTestId("transcript-line").count()).toBe(doc.entries.length);
		expect(await fresh.getByTestId("transcript-gap").count()).toBe(0);
		expect(await racer.getByTestId("transcript-line").count()).toBe(doc.entries.length);
		expect(await page.getByTestId("transcript-error").count()).toBe(0);
		expect(await page.getByTestId("transcript-json").getAttribute("href")).toMatch(/transcript\.json/);
		expect(await fresh.getByTestId("transcript-final").textContent()).toMatch(/arrêtée/);
		// The API says so too: ready, no parts.
		const done = await link("?after=3");
		expect([done.body.ready, done.body.live]).toEqual([true, null]);
	}, 120_000);
});

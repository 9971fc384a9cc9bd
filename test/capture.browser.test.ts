import type { Locator, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { sentNotices } from "../server/audit/notices.js";
import type { Gateway } from "../server/Gateway.js";
import type { Peer } from "../server/sfu/Peer.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * The recording notice as people meet it, in headless Chromium against the real gateway (real
 * mediasoup worker, the tenant's storage bucket on a real S3 API): the host turns recording on,
 * everyone sees the modal notice and the REC indicator and answers it; someone joining a recorded
 * meeting answers before anything of theirs is published; under explicit consent a person who
 * declines leaves and is never captured; pausing and resuming asks again; the audible cue can be
 * switched off. The proof is read where it lives: the meeting's audit trail over REST.
 */
const tenant = testTenant("acme");
/** A second customer whose administrator registered no bucket. */
const globex = testTenant("globex");
let bucket: TestBucket;
let gateway: Gateway;
let chrome: LaunchedBrowser;
let hostCount = 0;

beforeAll(async () => {
	bucket = await startBucket("acme-recordings");
	gateway = await startGateway({ tenants: [tenant, globex], env: storageEnv() });
	// The customer's administrator registers the bucket: recording may start from now on.
	await saveStorageTarget(gateway, tenant, bucket, "consentry", { encryption: { type: "SSE-S3" } });
	chrome = await launchChromium();
	// Counts the cue's oscillators in every page (the page itself exposes nothing for tests).
	await chrome.browser.addInitScript(() => {
		const proto = BaseAudioContext.prototype;
		const create = proto.createOscillator;
		proto.createOscillator = function (this: BaseAudioContext) {
			const w = window as unknown as { __oscillators?: number };
			w.__oscillators = (w.__oscillators ?? 0) + 1;
			return create.call(this);
		};
	});
});

afterAll(async () => {
	await chrome?.close();
	await gateway?.close();
	await bucket?.stop();
});

// Helpers ---------------------------------------------------------------------------------------------------------

interface Scheduled {
	id: string;
	joinCode: string;
	hostToken: string;
}

async function schedule(settings: Record<string, unknown> = {}): Promise<Scheduled> {
	const hostToken = tenant.token(`capture-host-${++hostCount}`);
	const res = await api(gateway, "POST", "/api/meetings", hostToken, { title: "Recorded meeting", settings });
	expect(res.status).toBe(201);
	return { id: res.body.id as string, joinCode: res.body.joinCode as string, hostToken };
}

interface TrailEvent {
	seq: number;
	type: string;
	data: Record<string, unknown>;
}

/** The meeting's audit trail, as the host reads it over REST. */
async function trail(m: Scheduled): Promise<TrailEvent[]> {
	const res = await api(gateway, "GET", `/api/meetings/${m.id}/events`, m.hostToken);
	expect(res.status).toBe(200);
	return res.body.events as TrailEvent[];
}

/** The trail once `ok` holds for it. */
async function trailWhen(m: Scheduled, ok: (events: TrailEvent[]) => boolean, what: string): Promise<TrailEvent[]> {
	let last: TrailEvent[] = [];
	await waitFor(
		async () => {
			last = await trail(m);
			return ok(last);
		},
		10_000,
		what,
	);
	return last;
}

const ofPeer = (events: TrailEvent[], type: string, peerId: string) =>
	events.filter((e) => e.type === type && e.data.peerId === peerId);
/** The entries recording a notice sent to this peer (one `notice.sent`, or a `notices.sent` naming them). */
const noticedPeer = (events: TrailEvent[], peerId: string) =>
	events.filter((e) => sentNotices(e).some((n) => n.peerId === peerId));

const pages: Page[] = [];
const pageErrors: string[] = [];

afterEach(async (ctx) => {
	if (ctx.task.result?.state === "fail") {
		for (const page of pages) console.error(`page ${page.url()}: ${await pageState(page)}`);
	}
	expect(pageErrors.splice(0)).toEqual([]);
});

afterAll(async () => {
	await Promise.all(pages.splice(0).map((p) => p.close().catch(() => undefined)));
});

async function pageState(page: Page): Promise<string> {
	return page
		.evaluate(() => {
			const screen = Array.from(document.querySelectorAll<HTMLElement>("[data-testid$='-screen']")).find(
				(s) => !s.hidden,
			);
			const notices = Array.from(document.querySelectorAll("#notices li")).map((n) => n.textContent);
			const dialog = document.querySelector<HTMLDialogElement>("#notice-dialog");
			return `${screen?.dataset.testid} ${screen?.dataset.code ?? ""} status="${document.querySelector("#status")?.textContent}" notices=${JSON.stringify(notices)} notice-dialog open=${dialog?.open} ${JSON.stringify(dialog?.dataset)}`;
		})
		.catch((err: unknown) => `unreadable: ${String(err)}`);
}

/** Opens the meeting link as `name` (token in the fragment) and presses Join. */
async function join(m: Scheduled, name: string, token: string): Promise<Page> {
	const page = await chrome.browser.newPage();
	pages.push(page);
	page.on("pageerror", (err) => pageErrors.push(`${name}: ${err.message}`));
	const q = new URLSearchParams({ m: m.joinCode, name });
	await page.goto(`${gateway.url}/?${q}#token=${token}`);
	await page.getByRole("button", { name: "Join", exact: true }).click();
	return page;
}

async function connected(page: Page): Promise<void> {
	await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
}

async function peerNamed(m: Scheduled, name: string): Promise<Peer> {
	return waitFor(
		() => [...(gateway.rooms.get(m.id)?.peers.values() ?? [])].find((p) => p.displayName === name),
		10_000,
		`${name} in the room`,
	);
}

const notice = (page: Page): Locator => page.getByTestId("capture-notice");
const indicator = (page: Page, kind = "recording"): Locator =>
	page.locator(`[data-testid="capture-indicator"][data-kind="${kind}"]`);
const hostButton = (page: Page, testid: string): Locator =>
	page.locator(`[data-testid="${testid}"][data-kind="recording"]`);

/** Waits for the notice modal; returns its notice and session IDs after checking it is a real modal with focus on its primary button. */
async function noticeShown(page: Page, consentRequired = false): Promise<{ noticeId: string; sessionId: string }> {
	const dialog = notice(page);
	await dialog.waitFor({ state: "visible", timeout: 15_000 });
	const seen = await dialog.evaluate((d: HTMLDialogElement) => ({
		modal: d.matches(":modal"),
		role: d.getAttribute("role"),
		labelled: document.getElementById(d.getAttribute("aria-labelledby") ?? "")?.textContent ?? "",
		focused: (document.activeElement as HTMLElement | null)?.dataset.testid,
		kind: d.dataset.kind,
		consentRequired: d.dataset.consentRequired,
		noticeId: d.dataset.noticeId ?? "",
		sessionId: d.dataset.sessionId ?? "",
	}));
	expect(seen).toMatchObject({
		modal: true,
		role: "alertdialog",
		kind: "recording",
		consentRequired: String(consentRequired),
		focused: consentRequired ? "notice-consent" : "notice-ack",
	});
	expect(seen.labelled).toMatch(/record/i);
	return { noticeId: seen.noticeId, sessionId: seen.sessionId };
}

async function acknowledge(page: Page): Promise<void> {
	await page.getByTestId("notice-ack").click();
	await notice(page).waitFor({ state: "hidden" });
}

const oscillators = (page: Page) =>
	page.evaluate(() => (window as unknown as { __oscillators?: number }).__oscillators ?? 0);

// Tests -----------------------------------------------------------------------------------------------------------

describe("recording under the notice policy", () => {
	let m: Scheduled;
	let host: Page;
	let bob: Page;
	let carol: Page;
	let ids: { host: string; bob: string; carol: string };

	beforeAll(async () => {
		m = await schedule({ lobby: false });
		host = await join(m, "Hana", m.hostToken);
		await connected(host);
		[bob, carol] = await Promise.all([
			join(m, "Bob", tenant.token("bob", "participant")),
			join(m, "Carol", tenant.token("carol", "participant")),
		]);
		await Promise.all([connected(bob), connected(carol)]);
		ids = {
			host: (await peerNamed(m, "Hana")).id,
			bob: (await peerNamed(m, "Bob")).id,
			carol: (await peerNamed(m, "Carol")).id,
		};
		for (const name of ["Hana", "Bob", "Carol"]) {
			const peer = await peerNamed(m, name);
			await waitFor(() => peer.producers.size === 2, 15_000, `${name} sends mic and camera`);
		}
	});

	afterAll(async () => {
		// Fewer pages sending video for the next describe (a 2-core machine).
		await Promise.all([host, bob, carol].map((p) => p?.close().catch(() => undefined)));
	});

	it("the host starts recording: everyone sees the notice and the REC indicator, acknowledges, and the trail proves it", async () => {
		// Nothing is on before: no indicator, and only the host has the button.
		for (const page of [host, bob, carol]) await indicator(page).waitFor({ state: "hidden" });
		expect(await hostButton(bob, "capture-start").count()).toBe(0);
		const before = await Promise.all([host, bob, carol].map(oscillators));

		await hostButton(host, "capture-start").click();
		const shown = [];
		for (const page of [host, bob, carol]) {
			shown.push(await noticeShown(page));
			await indicator(page).and(page.locator('[data-state="on"]')).waitFor();
			expect(await indicator(page).textContent()).toContain("REC");
		}
		// One session, one notice per person.
		expect(new Set(shown.map((s) => s.sessionId)).size).toBe(1);
		expect(new Set(shown.map((s) => s.noticeId)).size).toBe(3);
		// The host sees who is still pending.
		const coverage = host.getByTestId("coverage-list").and(host.locator('[data-kind="recording"]'));
		await coverage.locator('[data-testid="coverage-entry"][data-coverage="pending"]').nth(2).waitFor();
		// The host's buttons now pause or stop.
		await hostButton(host, "capture-pause").waitFor();
		await hostButton(host, "capture-stop").waitFor();

		for (const page of [host, bob, carol]) await acknowledge(page);
		for (const id of Object.values(ids)) {
			await coverage
				.locator(`[data-testid="coverage-entry"][data-peer="${id}"][data-coverage="acknowledged"][data-covered="true"]`)
				.waitFor();
		}
		expect(await coverage.locator('[data-overdue="true"]').count()).toBe(0);
		// Everyone heard the cue (two tones).
		const after = await Promise.all([host, bob, carol].map(oscillators));
		expect(after.map((n, i) => n - (before[i] ?? 0))).toEqual([2, 2, 2]);

		const events = await trailWhen(
			m,
			(e) => Object.values(ids).every((id) => ofPeer(e, "gate.opened", id).length === 2),
			"gates opened for everyone's two producers",
		);
		const on = events.filter((e) => e.type === "session.on");
		expect(on).toHaveLength(1);
		const sessionId = on[0]?.data.sessionId;
		expect(sessionId).toBe(shown[0]?.sessionId);
		// The start's notices to all three are one entry (server/audit/notices.ts).
		const started = events.filter((e) => e.type === "notices.sent" && e.data.sessionId === sessionId);
		expect(started).toHaveLength(1);
		expect(
			started
				.flatMap(sentNotices)
				.map((n) => n.peerId)
				.sort(),
		).toEqual(Object.values(ids).sort());
		for (const [name, id] of Object.entries(ids)) {
			const sent = noticedPeer(events, id);
			const seen = ofPeer(events, "notice.shown", id);
			const acked = ofPeer(events, "notice.acknowledged", id);
			expect([sent.length, seen.length, acked.length], name).toEqual([1, 1, 1]);
			const [s, v, a] = [sent[0], seen[0], acked[0]] as [TrailEvent, TrailEvent, TrailEvent];
			expect(s.seq).toBeLessThan(v.seq);
			expect(v.seq).toBeLessThan(a.seq);
			const gates = ofPeer(events, "gate.opened", id);
			const producers = [...(gateway.rooms.get(m.id)?.peers.get(id)?.producers.keys() ?? [])];
			expect(gates.map((g) => g.data.producerId).sort()).toEqual(producers.sort());
			for (const g of gates) expect(g.seq).toBeGreaterThan(a.seq);
		}
	});

	it("a person joining while recording is on answers the notice before anything of theirs is published", async () => {
		const dan = await join(m, "Dan", tenant.token("dan", "participant"));
		await noticeShown(dan);
		await indicator(dan).and(dan.locator('[data-state="on"]')).waitFor();
		const danPeer = await peerNamed(m, "Dan");
		// Left unanswered for a while: the page publishes nothing, the gateway captures nothing of Dan.
		await dan.getByText("Answer the recording notice").waitFor();
		await new Promise((r) => setTimeout(r, 1500));
		expect(danPeer.producers.size).toBe(0);
		let events = await trail(m);
		expect(noticedPeer(events, danPeer.id).map((e) => [e.type, e.data.via])).toEqual([["notice.sent", "join"]]);
		expect(ofPeer(events, "notice.shown", danPeer.id)).toHaveLength(1);
		expect(ofPeer(events, "gate.opened", danPeer.id)).toHaveLength(0);
		// The others see no media of Dan's, and the host sees him pending.
		const danTile = bob.locator(`[data-peer="${danPeer.id}"][data-source="camera"]`);
		await danTile.waitFor();
		expect(await danTile.getAttribute("data-video-off")).not.toBeNull();
		await host
			.locator(
				`[data-testid="coverage-entry"][data-peer="${danPeer.id}"][data-coverage="pending"][data-covered="false"]`,
			)
			.waitFor();

		await acknowledge(dan);
		await connected(dan);
		await waitFor(() => danPeer.producers.size === 2, 15_000, "Dan publishes mic and camera");
		// The page never tried early: no refused `produce` to report.
		expect(await dan.locator("#notices li").allTextContents()).toEqual([]);
		events = await trailWhen(m, (e) => ofPeer(e, "gate.opened", danPeer.id).length === 2, "Dan's gates");
		const acked = ofPeer(events, "notice.acknowledged", danPeer.id);
		expect(acked).toHaveLength(1);
		for (const g of ofPeer(events, "gate.opened", danPeer.id)) expect(g.seq).toBeGreaterThan(acked[0]?.seq ?? 0);
		await host
			.locator(
				`[data-testid="coverage-entry"][data-peer="${danPeer.id}"][data-coverage="acknowledged"][data-covered="true"]`,
			)
			.waitFor();
		await dan.close();
	});

	it("pausing shows paused; resuming is a new session with a new notice to acknowledge", async () => {
		const first = await indicator(bob).getAttribute("data-session-id");
		expect(first).toBeTruthy();
		await hostButton(host, "capture-pause").click();
		for (const page of [host, bob, carol]) {
			await indicator(page).and(page.locator('[data-state="paused"]')).waitFor();
			expect(await indicator(page).textContent()).toContain("paused");
		}
		await hostButton(host, "capture-start").and(host.getByText("Resume recording")).click();
		const again = [];
		for (const page of [host, bob, carol]) {
			again.push(await noticeShown(page));
			await indicator(page).and(page.locator('[data-state="on"]')).waitFor();
		}
		const sessionId = again[0]?.sessionId;
		expect(sessionId).toBeTruthy();
		expect(sessionId).not.toBe(first);
		for (const page of [host, bob, carol]) await acknowledge(page);

		const events = await trail(m);
		expect(events.filter((e) => e.type === "session.paused")).toHaveLength(1);
		expect(events.filter((e) => e.type === "session.on").map((e) => e.data.sessionId)).toEqual([first, sessionId]);
		for (const id of [ids.bob, ids.carol]) {
			const notices = ofPeer(events, "notice.acknowledged", id).map((e) => e.data.noticeId);
			expect(notices).toHaveLength(2);
			expect(notices[0]).not.toBe(notices[1]);
			expect(notices[1]).toBe(again[id === ids.bob ? 1 : 2]?.noticeId);
		}
	});

	it("the indicator says who started the recording; the cue can be switched off, and stays off", async () => {
		for (const page of [bob, carol]) {
			const text = await indicator(page).textContent();
			expect(text).toContain("started by Hana");
			expect(text).toMatch(/since \d{1,2}:\d{2}/);
		}
		// Carol switches the cue off; it stays off in her next page (localStorage).
		const toggle = carol.getByTestId("cue-toggle");
		expect(await toggle.isChecked()).toBe(true);
		await toggle.uncheck();
		await carol.reload();
		await carol.getByRole("button", { name: "Join", exact: true }).click();
		await noticeShown(carol); // recording is on: she answers the notice on rejoining
		expect(await carol.getByTestId("cue-toggle").isChecked()).toBe(false);
		await acknowledge(carol);
		await connected(carol);
		// The next session beeps for Bob, not for Carol.
		await hostButton(host, "capture-stop").click();
		for (const page of [host, bob, carol]) await indicator(page).waitFor({ state: "hidden" });
		const [bobBefore, carolBefore] = await Promise.all([oscillators(bob), oscillators(carol)]);
		await hostButton(host, "capture-start").click();
		for (const page of [host, bob, carol]) await noticeShown(page);
		expect((await oscillators(bob)) - bobBefore).toBe(2);
		expect((await oscillators(carol)) - carolBefore).toBe(0);
		for (const page of [host, bob, carol]) await acknowledge(page);
		// Back on for the tests after this one.
		await carol.getByTestId("cue-toggle").check();
		expect(await carol.evaluate(() => localStorage.getItem("consentry.captureCue"))).toBe("on");
	});
});

describe("recording under explicit consent", () => {
	it("a person who declines leaves and is never captured; one who consents is", async () => {
		const m = await schedule({ lobby: false, capturePolicy: "explicit-consent" });
		const host = await join(m, "Hedda", m.hostToken);
		await connected(host);
		const [erin, frank] = await Promise.all([
			join(m, "Erin", tenant.token("erin", "participant")),
			join(m, "Frank", tenant.token("frank", "participant")),
		]);
		await Promise.all([connected(erin), connected(frank)]);
		const erinPeer = await peerNamed(m, "Erin");
		const frankPeer = await peerNamed(m, "Frank");
		for (const p of [erinPeer, frankPeer]) await waitFor(() => p.producers.size === 2, 15_000, "media sent");

		await hostButton(host, "capture-start").click();
		for (const page of [host, erin, frank]) {
			await noticeShown(page, true);
			expect(await page.getByTestId("notice-decline").textContent()).toBe("Decline and leave");
			expect(await page.getByTestId("notice-ack").count()).toBe(0);
		}
		// Until they consent, their media is held by the gateway, and the page says so.
		await frank.getByTestId("media-held").waitFor();
		await waitFor(() => [...frankPeer.producers.values()].every((p) => p.paused), 5000, "Frank's media held");

		await host.getByTestId("notice-consent").click();
		await frank.getByTestId("notice-consent").click();
		await notice(frank).waitFor({ state: "hidden" });
		await frank.getByTestId("media-held").waitFor({ state: "hidden" });
		await waitFor(() => [...frankPeer.producers.values()].every((p) => !p.paused), 5000, "Frank's media released");

		await erin.getByTestId("notice-decline").click();
		const ended = erin.locator('[data-testid="error-screen"][data-code="declined_capture"]');
		await ended.waitFor({ timeout: 15_000 });
		await ended.getByText("You declined to be recorded").waitFor();
		await waitFor(() => !gateway.rooms.get(m.id)?.peers.has(erinPeer.id), 5000, "Erin out of the room");
		await host
			.locator(`[data-testid="coverage-entry"][data-peer="${frankPeer.id}"][data-coverage="consented"]`)
			.waitFor();

		const events = await trailWhen(m, (e) => ofPeer(e, "gate.opened", frankPeer.id).length === 2, "Frank's gates");
		expect(ofPeer(events, "consent.declined", erinPeer.id)).toHaveLength(1);
		expect(ofPeer(events, "gate.opened", erinPeer.id)).toHaveLength(0);
		const given = ofPeer(events, "consent.given", frankPeer.id);
		expect(given).toHaveLength(1);
		for (const g of ofPeer(events, "gate.opened", frankPeer.id)) expect(g.seq).toBeGreaterThan(given[0]?.seq ?? 0);
		expect(events.find((e) => e.type === "session.on")?.data.policy).toMatchObject({ name: "explicit-consent" });
	});
});

describe("recording without a storage bucket", () => {
	it("the host is told to set up the bucket first, and nothing turns on", async () => {
		const hostToken = globex.token("globex-host");
		const res = await api(gateway, "POST", "/api/meetings", hostToken, { title: "No bucket", settings: {} });
		expect(res.status).toBe(201);
		const m: Scheduled = { id: res.body.id as string, joinCode: res.body.joinCode as string, hostToken };
		const host = await join(m, "Gus", hostToken);
		await connected(host);
		await hostButton(host, "capture-start").click();
		const message = host.locator('[data-testid="capture-message"][data-code="no_storage_target"]');
		await message.waitFor();
		expect(await message.textContent()).toContain("Set up the storage bucket first");
		expect(await indicator(host).isHidden()).toBe(true);
		expect(await notice(host).isHidden()).toBe(true);
		await hostButton(host, "capture-start").waitFor();
		expect((await trail(m)).filter((e) => e.type.startsWith("session."))).toEqual([]);
	});
});

describe("co-host", () => {
	it("the host names a co-host, who then turns recording on; everyone is noticed", async () => {
		const m = await schedule({ lobby: false });
		const host = await join(m, "Ines", m.hostToken);
		await connected(host);
		const jo = await join(m, "Jo", tenant.token("jo", "participant"));
		await connected(jo);
		const joPeer = await peerNamed(m, "Jo");
		expect(await hostButton(jo, "capture-start").count()).toBe(0);
		await host.getByRole("button", { name: "Make co-host: Jo" }).click();
		await jo.getByTestId("cohost-badge").waitFor();
		await hostButton(jo, "capture-start").click();
		for (const page of [host, jo]) {
			await noticeShown(page);
			await acknowledge(page);
			await indicator(page).and(page.locator('[data-state="on"]')).waitFor();
		}
		expect(await indicator(host).textContent()).toContain("Jo");
		await jo.getByTestId("coverage-list").waitFor();
		const events = await trail(m);
		expect(events.find((e) => e.type === "host.cohost_set")?.data).toMatchObject({ peerId: joPeer.id, coHost: true });
		await hostButton(jo, "capture-stop").click();
		await indicator(host).waitFor({ state: "hidden" });
	});
});

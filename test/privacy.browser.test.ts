import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { ChatLine, Manifest } from "../server/recording/RecordingTypes.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { type TestTenant, testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * The notice gate covers everything captured, end to end in Chromium against a real S3 API:
 * - chat: a message sent by someone the gate does not cover (here: sent from the page while the notice
 *   is still unanswered, as a modified client could) is shown live but never written to the bucket's
 *   chat.jsonl; once they acknowledged, their messages are; chat.jsonl names senders by pseudonym only.
 *   The notice links the tenant's own privacy notice.
 * - `onDecline: "stay-unrecorded"`: a person declines and stays; everyone sees them as not recorded;
 *   the manifest lists them as present-not-recorded; nothing of theirs (track, chat line) is in the bucket.
 */
const PRIVACY_URL = "https://acme.example/privacy";
const acme = testTenant("acme", { privacyNoticeUrl: PRIVACY_URL });
const beta = testTenant("beta", { onDecline: "stay-unrecorded" });
let bucket: TestBucket;
let gw: Gateway;
let chrome: LaunchedBrowser;
const pages: Page[] = [];

beforeAll(async () => {
	bucket = await startBucket("privacy-recordings");
	gw = await startGateway({ tenants: [acme, beta], env: storageEnv() });
	await saveStorageTarget(gw, acme, bucket, "acme");
	await saveStorageTarget(gw, beta, bucket, "beta");
	chrome = await launchChromium();
});

afterAll(async () => {
	await Promise.all(pages.map((p) => p.close().catch(() => undefined)));
	await chrome?.close();
	await gw?.close();
	await bucket?.stop();
});

async function join(joinCode: string, name: string, token: string, privacyLink = false): Promise<Page> {
	const page = await chrome.browser.newPage();
	pages.push(page);
	await page.goto(`${gw.url}/?${new URLSearchParams({ m: joinCode, name })}#token=${token}`);
	if (privacyLink) {
		// The join page links the customer's own privacy notice (tenant setting), before anyone joins.
		await expect(page.getByTestId("join-privacy").getAttribute("href")).resolves.toBe(PRIVACY_URL);
	}
	await page.getByRole("button", { name: "Join", exact: true }).click();
	await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
	return page;
}

async function meeting(tenant: TestTenant, title: string): Promise<{ meetingId: string; joinCode: string }> {
	const m = await api(gw, "POST", "/api/meetings", tenant.token(`${tenant.id}-host`), {
		title,
		settings: { lobby: false },
	});
	const { id: meetingId, joinCode } = m.body as { id: string; joinCode: string };
	return { meetingId, joinCode };
}

async function say(page: Page, text: string): Promise<void> {
	const box = page.getByLabel("Message");
	await box.fill(text);
	await box.press("Enter");
}

function peerIdOf(meetingId: string, name: string): string {
	const id = [...(gw.rooms.get(meetingId)?.peers.values() ?? [])].find((p) => p.displayName === name)?.id;
	if (!id) throw new Error(`${name} is not in the room`);
	return id;
}

async function manifestOf(base: string): Promise<Manifest> {
	return waitFor(
		async () => JSON.parse((await bucket.bytes(`${base}/manifest.json`)).toString()) as Manifest,
		60_000,
		"manifest.json in the bucket",
	);
}

async function chatLines(base: string): Promise<ChatLine[]> {
	const text = (await bucket.bytes(`${base}/chat.jsonl`)).toString();
	return text
		.split("\n")
		.filter(Boolean)
		.map((l) => JSON.parse(l) as ChatLine);
}

describe("the gate covers everything captured", () => {
	it("chat of someone not covered is shown live, never written; chat.jsonl carries pseudonyms", async () => {
		const { meetingId, joinCode } = await meeting(acme, "Chat gate");
		const host = await join(joinCode, "Hana", acme.token("acme-host"), true);
		const bob = await join(joinCode, "Bob", acme.token("bob", "participant"));
		const bobId = peerIdOf(meetingId, "Bob");

		await host.locator('[data-testid="capture-start"][data-kind="recording"]').click();
		await host.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
		await host.getByTestId("notice-ack").click();
		const notice = bob.getByTestId("capture-notice");
		await notice.waitFor({ state: "visible", timeout: 15_000 });
		// The notice links the customer's own privacy notice.
		await expect(bob.getByTestId("notice-privacy").getAttribute("href")).resolves.toBe(PRIVACY_URL);
		// …and names who receives the media: the organisation's own bucket.
		await expect(bob.locator("#notice-body").textContent()).resolves.toContain(
			"Stored in: the organisation's own storage bucket",
		);
		const session = gw.capture.session(meetingId, "recording");
		expect(session).toBeDefined();

		// A modified client: the dialog put aside, a message sent while the notice is unanswered.
		await notice.evaluate((d: HTMLDialogElement) => d.close());
		await say(bob, "sent before answering");
		const before = host.getByTestId("chat-log").locator(`li[data-peer="${bobId}"]`).first();
		await before.waitFor(); // shown live to the others
		expect(gw.capture.mayCapture(meetingId, "recording", bobId)).toBe(false);
		await say(host, "host while recording");
		await host.getByTestId("chat-log").getByText("host while recording").waitFor();

		await notice.evaluate((d: HTMLDialogElement) => d.showModal());
		await bob.getByTestId("notice-ack").click();
		await waitFor(() => gw.capture.mayCapture(meetingId, "recording", bobId), 10_000, "Bob covered");
		await say(bob, "sent after answering");
		await host.getByTestId("chat-log").getByText("sent after answering").waitFor();
		await host.locator('[data-testid="capture-stop"][data-kind="recording"]').click();

		const base = `acme/${meetingId}/${session?.id}`;
		const manifest = await manifestOf(base);
		const lines = await chatLines(base);
		expect(lines.map((l) => l.text)).toEqual(["host while recording", "sent after answering"]);
		expect(manifest.chat.messages).toBe(2);
		const raw = (await bucket.bytes(`${base}/chat.jsonl`)).toString();
		expect(raw).not.toContain("sent before answering");
		for (const l of lines) {
			expect(l.from).toMatch(/^psn_/);
			expect(Object.keys(l).sort()).toEqual(["at", "from", "text"]);
		}
		expect(raw).not.toContain("Bob");
		expect(raw).not.toContain("Hana");
	});

	it('onDecline "stay-unrecorded": the person stays, everyone sees it, nothing of theirs is in the bucket', async () => {
		const { meetingId, joinCode } = await meeting(beta, "Stay unrecorded");
		const host = await join(joinCode, "Hana", beta.token("beta-host"));
		const dee = await join(joinCode, "Dee", beta.token("dee", "participant"));
		const room = gw.rooms.get(meetingId);
		await waitFor(
			() => room?.peers.size === 2 && [...room.peers.values()].every((p) => p.producers.size === 2),
			20_000,
			"both sending mic and camera",
		);
		const deeId = peerIdOf(meetingId, "Dee");

		await host.locator('[data-testid="capture-start"][data-kind="recording"]').click();
		await host.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
		await host.getByTestId("notice-ack").click();
		await dee.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
		const decline = dee.getByTestId("notice-decline");
		await expect(decline.textContent()).resolves.toBe("Decline and stay, not recorded");
		await decline.click();
		await dee.getByTestId("capture-notice").waitFor({ state: "hidden" });

		// Everyone sees Dee is not recorded (Dee included), and Dee is still in the meeting.
		await host
			.locator(`[data-testid="participants"] li[data-peer="${deeId}"] [data-testid="not-recorded-badge"]`)
			.waitFor();
		await dee
			.locator(`[data-testid="participants"] li[data-peer="${deeId}"] [data-testid="not-recorded-badge"]`)
			.waitFor();
		const session = gw.capture.session(meetingId, "recording");
		await waitFor(() => gw.recorder?.openTracks.length === 2, 15_000, "the host's 2 tracks recording");
		await say(dee, "Dee says hi, unrecorded");
		await say(host, "host says hi, recorded");
		await host.getByTestId("chat-log").getByText("Dee says hi, unrecorded").waitFor();
		await host.getByTestId("chat-log").getByText("host says hi, recorded").waitFor();
		await new Promise((r) => setTimeout(r, 2000));
		expect(room?.peers.has(deeId)).toBe(true);
		expect(gw.capture.mayCapture(meetingId, "recording", deeId)).toBe(false);
		await host.locator('[data-testid="capture-stop"][data-kind="recording"]').click();

		const base = `beta/${meetingId}/${session?.id}`;
		const manifest = await manifestOf(base);
		const events = await gw.events.list({ tenantId: "beta", meetingId });
		const deePsn = events.find((e) => e.type === "consent.declined" && e.data.peerId === deeId)?.actor;
		expect(deePsn).toMatch(/^psn_/);
		expect(manifest.notRecorded).toEqual([deePsn]);
		expect(manifest.persons).toHaveLength(1);
		expect(manifest.persons).not.toContain(deePsn);
		expect(manifest.tracks.every((t) => t.person !== deePsn)).toBe(true);
		const lines = await chatLines(base);
		expect(lines.map((l) => l.text)).toEqual(["host says hi, recorded"]);
		expect(lines.some((l) => l.from === deePsn)).toBe(false);
		const listed = await bucket.s3.send(new ListObjectsV2Command({ Bucket: bucket.name, Prefix: `${base}/` }));
		const keys = (listed.Contents ?? []).map((o) => o.Key as string);
		expect(keys.some((k) => k.includes(String(deePsn)))).toBe(false);
		// Dee is still in the meeting once recording is off, and the badge is gone.
		expect(room?.peers.has(deeId)).toBe(true);
		await host
			.locator(`[data-testid="participants"] li[data-peer="${deeId}"] [data-testid="not-recorded-badge"]`)
			.waitFor({ state: "detached" });
	});
});

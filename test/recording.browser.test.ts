import { createHash } from "node:crypto";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sentNotices } from "../server/audit/notices.js";
import { verifyExport } from "../server/audit/verify.js";
import type { Gateway } from "../server/Gateway.js";
import type { Manifest } from "../server/recording/RecordingTypes.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";
import { probeMedia } from "./helpers/webm.js";

/**
 * A recorded meeting end to end: two Chromium participants acknowledge the
 * notice, a third never answers it; 20 s of recording land in the customer's
 * bucket (a real S3 API) as WebM objects that decode (Opus, VP8) for about
 * as long as each person was covered, with a manifest whose checksums match
 * the objects and whose proofs point into the exported, verifiable trail.
 * The person the gate never covered has no object at all.
 */
const acme = testTenant("acme");
let bucket: TestBucket;
let gw: Gateway;
let chrome: LaunchedBrowser;
const pages: Page[] = [];

beforeAll(async () => {
	bucket = await startBucket("acme-recordings");
	gw = await startGateway({ tenants: [acme], env: storageEnv() });
	await saveStorageTarget(gw, acme, bucket, "rec", { encryption: { type: "SSE-S3" } });
	chrome = await launchChromium();
});

afterAll(async () => {
	await Promise.all(pages.map((p) => p.close().catch(() => undefined)));
	await chrome?.close();
	await gw?.close();
	await bucket?.stop();
});

async function join(joinCode: string, name: string, token: string): Promise<Page> {
	const page = await chrome.browser.newPage();
	pages.push(page);
	await page.goto(`${gw.url}/?${new URLSearchParams({ m: joinCode, name })}#token=${token}`);
	await page.getByRole("button", { name: "Join", exact: true }).click();
	await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
	return page;
}

describe("recording into the customer's bucket", () => {
	it("records 20 s of two covered people, nothing of the one who never answered, with a manifest that proves it", async () => {
		const hostToken = acme.token("rec-host");
		const m = await api(gw, "POST", "/api/meetings", hostToken, { title: "Recorded", settings: { lobby: false } });
		const { id: meetingId, joinCode } = m.body as { id: string; joinCode: string };
		const host = await join(joinCode, "Hana", hostToken);
		const bob = await join(joinCode, "Bob", acme.token("bob", "participant"));
		const dan = await join(joinCode, "Dan", acme.token("dan", "participant"));
		const room = gw.rooms.get(meetingId);
		await waitFor(
			() => [...(room?.peers.values() ?? [])].every((p) => p.producers.size === 2) && room?.peers.size === 3,
			20_000,
			"everyone sending mic and camera",
		);

		const danId = [...(room?.peers.values() ?? [])].find((p) => p.displayName === "Dan")?.id;
		await host.locator('[data-testid="capture-start"][data-kind="recording"]').click();
		for (const page of [host, bob]) {
			await page.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
			await page.getByTestId("notice-ack").click();
		}
		await dan.getByTestId("capture-notice").waitFor({ state: "visible" }); // Dan sees it and never answers
		const session = gw.capture.session(meetingId, "recording");
		expect(session).toBeDefined();
		await waitFor(() => gw.recorder?.openTracks.length === 4, 15_000, "4 tracks recording");
		const started = Date.now();
		await new Promise((r) => setTimeout(r, 20_000));
		await host.locator('[data-testid="capture-stop"][data-kind="recording"]').click();
		const recordedFor = (Date.now() - started) / 1000;

		const base = `rec/${meetingId}/${session?.id}`;
		const manifest = await waitFor(
			async () => JSON.parse((await bucket.bytes(`${base}/manifest.json`)).toString()) as Manifest,
			60_000,
			"manifest.json in the bucket",
		);
		expect(manifest).toMatchObject({ meeting: meetingId, session: session?.id, policy: { name: "notice" } });
		expect(manifest.persons).toHaveLength(2);
		expect(manifest.tracks.map((t) => t.kind).sort()).toEqual(["audio", "audio", "camera", "camera"]);

		const events = await gw.events.list({ tenantId: "acme", meetingId });
		const danPsn = events.flatMap(sentNotices).find((n) => n.peerId === danId)?.person;
		expect(danPsn).toMatch(/^psn_/);
		expect(manifest.persons).not.toContain(danPsn);

		const listed = await bucket.s3.send(new ListObjectsV2Command({ Bucket: bucket.name, Prefix: `${base}/` }));
		const keys = (listed.Contents ?? []).map((o) => o.Key as string);
		expect(keys.some((k) => k.includes(String(danPsn)))).toBe(false);

		for (const track of manifest.tracks) {
			// Covered by this person's acknowledgement of this session, written before the gate opened.
			expect(track.coveredBy?.type).toBe("notice.acknowledged");
			const ack = events.find((e) => e.seq === track.coveredBy?.seq);
			expect(ack?.hash).toBe(track.coveredBy?.hash);
			const opened = events.find((e) => e.type === "gate.opened" && e.data.producerId === track.producerId);
			expect(opened && ack && opened.seq > ack.seq).toBe(true);
			expect(track.objects).toHaveLength(1);
			const obj = track.objects[0] as Manifest["tracks"][number]["objects"][number];
			expect(keys).toContain(obj.key);
			const bytes = await bucket.bytes(obj.key);
			expect(bytes.length).toBe(obj.size);
			expect(createHash("sha256").update(bytes).digest("hex")).toBe(obj.sha256);
			const probe = await probeMedia(bytes);
			expect(probe.codecs).toEqual([track.kind === "audio" ? "opus" : "vp8"]);
			expect(probe.decodeErrors).toBe("");
			const covered = (Date.parse(track.closedAt as string) - Date.parse(track.openedAt)) / 1000;
			expect(Math.abs(probe.seconds - covered)).toBeLessThan(1);
			expect(covered).toBeGreaterThan(recordedFor - 1);
		}

		// The trail next to the recording verifies offline and is anchored in the gateway's chain.
		const audit = (await bucket.bytes(`${base}/audit.jsonl`)).toString();
		expect(createHash("sha256").update(audit).digest("hex")).toBe(manifest.audit.sha256);
		expect(verifyExport(audit)).toMatchObject({ ok: true });
		expect((await gw.events.verify({ tenantId: "acme" }))[0]).toMatchObject({ ok: true });
		const written = events.filter((e) => e.type === "storage.object_written");
		expect(written.length).toBeGreaterThanOrEqual(4);
	});
});

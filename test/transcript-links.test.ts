import { randomBytes } from "node:crypto";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { NoticeView } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { connect, type RawClient } from "./helpers/signaling.js";
import { type TestTenant, testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * Transcript links over the real REST API: `/t/{id}` is announced to the people
 * in the meeting when transcription starts; it opens for the host and the
 * people who were in the meeting (short-lived presigned URLs to the transcript
 * in the customer's bucket, each opening audited), not for anyone else, and no
 * more once the host revoked it or it expired.
 */
const acme = testTenant("acme");
/** Links that expire after 2 s. */
const brief = testTenant("brief", { transcriptLinkSeconds: 2 });
/** Its bucket encrypts with the customer's own key (SSE-C): nothing can be presigned. */
const ssec = testTenant("ssec");
let bucket: TestBucket;
let gw: Gateway;
const open: RawClient[] = [];

beforeAll(async () => {
	bucket = await startBucket("transcripts");
	gw = await startGateway({ tenants: [acme, brief, ssec], env: storageEnv() });
	for (const t of [acme, brief]) await saveStorageTarget(gw, t, bucket, t.id);
	await saveStorageTarget(gw, ssec, bucket, "ssec", {
		encryption: { type: "SSE-C", key: randomBytes(32).toString("base64") },
	});
});

afterAll(async () => {
	for (const c of open) c.close();
	await gw?.close();
	await bucket?.stop();
});

/** A meeting where the host and a participant transcribe (nobody speaks) and stop: returns the link's ID. */
async function transcribedMeeting(t: TestTenant, host: string): Promise<{ linkId: string; meetingId: string }> {
	const m = await api(gw, "POST", "/api/meetings", t.token(host), { title: "Links", settings: { lobby: false } });
	const meetingId = m.body.id as string;
	const h = await connect(gw.url, t.token(host));
	const p = await connect(gw.url, t.token("pat", "participant"));
	open.push(h, p);
	await h.call("join", { meetingId, displayName: "Host" });
	await p.call("join", { meetingId, displayName: "Pat" });
	const linkP = p.next("transcriptLink");
	const noticeP = p.next("captureNotice");
	await p.call("startCapture", { kind: "transcription" });
	const link = await linkP;
	expect(link.path).toMatch(/^\/t\/[A-Za-z0-9_-]{22}$/);
	await p.call("acknowledgeNotice", { noticeId: ((await noticeP) as NoticeView).id });
	// While it runs the transcript is in checkpoint parts: the link opens, and says the files are not written yet.
	const during = await waitFor(
		async () => {
			const r = await api(gw, "GET", `/api/transcripts/${link.path.slice(3)}`, t.token(host));
			return r.status === 200 ? r : undefined;
		},
		10_000,
		"the link saved",
	);
	expect(during.body.ready).toBe(false);
	expect(during.body.live).toMatchObject({ after: 0, parts: [], next: 0, more: false }); // nobody spoke yet
	await h.call("stopCapture", { kind: "transcription" });
	const session = (await gw.events.list({ tenantId: t.id, meetingId, type: "session.on" }))[0]?.data
		.sessionId as string;
	await waitFor(
		() =>
			bucket.s3.send(
				new HeadObjectCommand({ Bucket: bucket.name, Key: `${t.id}/${meetingId}/${session}/transcript.json` }),
			),
		20_000,
		"transcript.json",
	);
	return { linkId: link.path.slice(3), meetingId };
}

describe("transcript links", () => {
	it("open for the host and the people who were in the meeting, audited; not for anyone else; revocable", async () => {
		const { linkId, meetingId } = await transcribedMeeting(acme, "links-host");
		const opened = await api(gw, "GET", `/api/transcripts/${linkId}`, acme.token("pat", "participant"));
		expect(opened.status).toBe(200);
		expect(opened.body.ready).toBe(true);
		expect(opened.body.disclaimer).toMatch(/incomplete or wrong/);
		const files = opened.body.files as { json: string; vtt: string };
		const json = (await (await fetch(files.json)).json()) as { kind: string; entries: unknown[]; disclaimer: string };
		expect(json).toMatchObject({ kind: "consentry.transcript", entries: [] });
		expect(await (await fetch(files.vtt)).text()).toMatch(/^WEBVTT/);
		expect((await api(gw, "GET", `/api/transcripts/${linkId}`, acme.token("links-host"))).status).toBe(200);

		// Someone of the same organisation who was not there, another organisation, no token.
		const outsider = await api(gw, "GET", `/api/transcripts/${linkId}`, acme.token("olga", "participant"));
		expect([outsider.status, outsider.body.code]).toEqual([403, "not_a_member"]);
		const foreign = await api(gw, "GET", `/api/transcripts/${linkId}`, brief.token("pat", "participant"));
		expect([foreign.status, foreign.body.code]).toEqual([404, "link_not_found"]);
		expect((await api(gw, "GET", `/api/transcripts/${linkId}`)).status).toBe(401);
		expect((await api(gw, "GET", "/api/transcripts/..%2F..%2Fetc", acme.token("pat", "participant"))).status).toBe(400);

		const openings = await gw.events.list({ tenantId: "acme", meetingId, type: "transcript.link_opened" });
		expect(openings).toHaveLength(3); // once while it ran, twice after
		expect(await gw.events.list({ tenantId: "acme", meetingId, type: "transcript.link_issued" })).toHaveLength(1);

		// Only the host revokes; after that the link is refused.
		expect((await api(gw, "DELETE", `/api/transcripts/${linkId}`, acme.token("pat", "participant"))).status).toBe(403);
		expect((await api(gw, "DELETE", `/api/transcripts/${linkId}`, acme.token("links-host"))).status).toBe(200);
		const revoked = await api(gw, "GET", `/api/transcripts/${linkId}`, acme.token("pat", "participant"));
		expect([revoked.status, revoked.body.code]).toEqual([410, "link_revoked"]);
		const polled = await api(gw, "GET", `/api/transcripts/${linkId}?after=1`, acme.token("pat", "participant"));
		expect([polled.status, polled.body.code]).toEqual([410, "link_revoked"]);
		expect(await gw.events.list({ tenantId: "acme", meetingId, type: "transcript.link_revoked" })).toHaveLength(1);

		// The page itself is the client app (it reads the API with the person's token).
		const page = await fetch(`${gw.url}/t/${linkId}`);
		expect(page.headers.get("content-type")).toMatch(/text\/html/);
		// It reads the transcript from the bucket: its CSP lets it fetch from the bucket's origin, nowhere else.
		expect(page.headers.get("content-security-policy")).toContain(`connect-src 'self' ${bucket.server.endpoint};`);
	});

	it("is refused once expired (the tenant's link lifetime)", async () => {
		const { linkId } = await transcribedMeeting(brief, "brief-host");
		await new Promise((r) => setTimeout(r, 2200));
		const expired = await api(gw, "GET", `/api/transcripts/${linkId}`, brief.token("pat", "participant"));
		expect([expired.status, expired.body.code]).toEqual([410, "link_expired"]);
		// A page following the session (a poll with a cursor) is refused the same way.
		const polled = await api(gw, "GET", `/api/transcripts/${linkId}?after=3`, brief.token("pat", "participant"));
		expect([polled.status, polled.body.code]).toEqual([410, "link_expired"]);
	});

	it("an SSE-C bucket: the link explains, while the session runs (a poll with a cursor) as after", async () => {
		const m = await api(gw, "POST", "/api/meetings", ssec.token("ssec-host"), {
			title: "SSE-C",
			settings: { lobby: false },
		});
		const h = await connect(gw.url, ssec.token("ssec-host"));
		open.push(h);
		await h.call("join", { meetingId: m.body.id, displayName: "Host" });
		const linkP = h.next("transcriptLink");
		await h.call("startCapture", { kind: "transcription" });
		const linkId = ((await linkP) as { path: string }).path.slice(3);
		for (const q of ["", "?after=0", "?after=5&limit=10"]) {
			const r = await waitFor(
				async () => {
					const r = await api(gw, "GET", `/api/transcripts/${linkId}${q}`, ssec.token("ssec-host"));
					return r.status === 404 ? undefined : r; // the link is saved as it is announced
				},
				10_000,
				"the link saved",
			);
			expect([q, r.status, r.body.code]).toEqual([q, 409, "presign_unavailable"]);
		}
		// Its page's CSP names no bucket origin (nothing to fetch from the bucket).
		const page = await fetch(`${gw.url}/t/${linkId}`);
		expect(page.headers.get("content-security-policy")).toMatch(/connect-src 'self';/);
		await h.call("stopCapture", { kind: "transcription" });
	});
});

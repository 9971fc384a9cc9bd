import { randomBytes, randomUUID } from "node:crypto";
import { DeleteObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { NoticeView } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { connect, type RawClient } from "./helpers/signaling.js";
import { type TestTenant, testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * The playback page's REST API (`/api/recordings/{sessionId}`, the page `/r/{sessionId}`) over a real gateway and a
 * real S3 API: the same rules as transcript links — the host and the people who were in the meeting, each with
 * their own token; nobody else of the organisation (403), no other organisation (404), nobody without a token (401);
 * every opening in the tenant's chain; refused once the host revoked it or the tenant's lifetime ran out (410);
 * SSE-KMS buckets play, SSE-C ones are explained (a presigned GET cannot carry the customer's key).
 */
const acme = testTenant("acme");
/** Pages that expire 3 s after the session started. */
const brief = testTenant("brief", { transcriptLinkSeconds: 3 });
const kms = testTenant("kms");
const ssec = testTenant("ssec");
/** Declining keeps the person in the meeting, never recorded. */
const stays = testTenant("stays", { onDecline: "stay-unrecorded" });
let bucket: TestBucket;
let gw: Gateway;
const open: RawClient[] = [];

beforeAll(async () => {
	bucket = await startBucket("playback");
	gw = await startGateway({ tenants: [acme, brief, kms, ssec, stays], env: storageEnv() });
	await saveStorageTarget(gw, acme, bucket, "acme");
	await saveStorageTarget(gw, brief, bucket, "brief");
	await saveStorageTarget(gw, stays, bucket, "stays");
	await saveStorageTarget(gw, kms, bucket, "kms", {
		encryption: { type: "SSE-KMS", kmsKeyId: "arn:aws:kms:us-east-1:123456789012:key/playback-test" },
	});
	await saveStorageTarget(gw, ssec, bucket, "ssec", {
		encryption: { type: "SSE-C", key: randomBytes(32).toString("base64") },
	});
});

afterAll(async () => {
	for (const c of open) c.close();
	await gw?.close();
	await bucket?.stop();
});

/** A meeting recorded (nobody sends media): the host and Pat answer, Nia never does (or declines). */
async function recorded(
	t: TestTenant,
	host: string,
	nia: "silent" | "declines" = "silent",
): Promise<{ sessionId: string; meetingId: string }> {
	const m = await api(gw, "POST", "/api/meetings", t.token(host), { title: "Played back", settings: { lobby: false } });
	const meetingId = m.body.id as string;
	const h = await connect(gw.url, t.token(host));
	const p = await connect(gw.url, t.token("pat", "participant"));
	const n = await connect(gw.url, t.token("nia", "participant"));
	open.push(h, p, n);
	await h.call("join", { meetingId, displayName: "Host" });
	await p.call("join", { meetingId, displayName: "Pat" });
	await n.call("join", { meetingId, displayName: "Nia" });
	const notices = [h.next("captureNotice"), p.next("captureNotice")];
	const niaNotice = n.next("captureNotice");
	await h.call("startCapture", { kind: "recording" });
	if (nia === "declines") await n.call("decline", { noticeId: ((await niaNotice) as NoticeView).id });
	for (const [i, c] of [h, p].entries()) {
		await c.call("acknowledgeNotice", { noticeId: ((await notices[i]) as NoticeView).id });
	}
	const sessionId = (await gw.events.list({ tenantId: t.id, meetingId, type: "session.on" }))[0]?.data
		.sessionId as string;
	// While it records, the page says so (its files are not all written yet).
	const running = await api(gw, "GET", `/api/recordings/${sessionId}`, t.token("pat", "participant"));
	expect([running.status, running.body.code]).toEqual([
		409,
		t === ssec ? "presign_unavailable" : "recording_in_progress",
	]);
	await h.call("stopCapture", { kind: "recording" });
	await waitFor(
		async () =>
			(await gw.events.list({ tenantId: t.id, meetingId, type: "storage.object_written" })).some(
				(e) => e.data.manifest === true && e.data.sessionId === sessionId,
			),
		20_000,
		"the session's manifest",
	);
	return { sessionId, meetingId };
}

describe("recording playback API", () => {
	it("opens for the host and the people who were there, audited; not for anyone else; revocable", async () => {
		const { sessionId, meetingId } = await recorded(acme, "pb-host");
		const path = `/api/recordings/${sessionId}`;
		const opened = await api(gw, "GET", path, acme.token("pat", "participant"));
		expect(opened.status).toBe(200);
		const body = opened.body as {
			manifest: { session: string; tracks: unknown[] };
			files: { manifest: string; audit: string };
			evidence: { persons: { role: string; answer: { type: string } | null; you: boolean; recorded: unknown[] }[] };
		};
		expect(body.manifest.session).toBe(sessionId);
		// The presigned URLs are the bucket's own (the gateway relays no media).
		const fromBucket = (await (await fetch(body.files.manifest)).json()) as { session: string };
		expect(fromBucket.session).toBe(sessionId);
		expect(await (await fetch(body.files.audit)).text()).toContain('"type":"notice.acknowledged"');
		// Evidence: three present, two answered (Pat is "you"), Nia never answered; nobody sent media.
		const persons = body.evidence.persons;
		expect(persons).toHaveLength(3);
		expect(persons.filter((p) => p.answer?.type === "notice.acknowledged")).toHaveLength(2);
		expect(persons.filter((p) => p.answer === null)).toHaveLength(1);
		expect(persons.filter((p) => p.you)).toHaveLength(1);
		expect(persons.every((p) => p.recorded.length === 0)).toBe(true);
		expect(persons.map((p) => p.role).sort()).toEqual(["host", "participant", "participant"]);
		expect((await api(gw, "GET", path, acme.token("nia", "participant"))).status).toBe(200);
		expect((await api(gw, "GET", path, acme.token("pb-host"))).status).toBe(200);

		// Same organisation but not there, another organisation, no token, a malformed ID, an unknown one.
		const outsider = await api(gw, "GET", path, acme.token("olga", "participant"));
		expect([outsider.status, outsider.body.code]).toEqual([403, "not_a_member"]);
		const otherHost = await api(gw, "GET", path, acme.token("other-host"));
		expect([otherHost.status, otherHost.body.code]).toEqual([403, "not_a_member"]);
		const foreign = await api(gw, "GET", path, brief.token("pat", "participant"));
		expect([foreign.status, foreign.body.code]).toEqual([404, "recording_not_found"]);
		expect((await api(gw, "GET", path)).status).toBe(401);
		expect((await api(gw, "GET", "/api/recordings/..%2F..%2Fetc", acme.token("pat", "participant"))).status).toBe(400);
		// A token limited to one meeting opens that meeting's recordings only.
		const scoped = await api(gw, "GET", path, acme.token("pat", "participant", { meeting: meetingId }));
		expect(scoped.status).toBe(200);
		const elsewhere = await api(gw, "GET", path, acme.token("pat", "participant", { meeting: "another-meeting" }));
		expect([elsewhere.status, elsewhere.body.code]).toEqual([403, "token_wrong_meeting"]);
		const unknown = await api(gw, "GET", `/api/recordings/${randomUUID()}`, acme.token("pat", "participant"));
		expect([unknown.status, unknown.body.code]).toEqual([404, "recording_not_found"]);

		// The meeting's recordings, listed for the same people (how a member finds the page).
		const listed = await api(gw, "GET", `/api/meetings/${meetingId}/recordings`, acme.token("nia", "participant"));
		expect(listed.status).toBe(200);
		expect(listed.body.recordings).toEqual([
			expect.objectContaining({ sessionId, ready: true, revoked: false, page: `/r/${sessionId}` }),
		]);
		const listPath = `/api/meetings/${meetingId}/recordings`;
		expect((await api(gw, "GET", listPath, acme.token("olga", "participant"))).body.code).toBe("not_a_member");
		expect((await api(gw, "GET", listPath, brief.token("pat", "participant"))).status).toBe(404);
		expect((await api(gw, "GET", listPath)).status).toBe(401);

		const openings = await gw.events.list({ tenantId: "acme", meetingId, type: "recording.playback_opened" });
		expect(openings).toHaveLength(4);
		expect(openings.every((e) => e.data.sessionId === sessionId && String(e.actor).startsWith("psn_"))).toBe(true);

		// The page is the client app; its CSP lets media come from that organisation's bucket, and nothing else.
		const page = await fetch(`${gw.url}/r/${sessionId}`);
		expect(page.headers.get("content-type")).toMatch(/text\/html/);
		const csp = page.headers.get("content-security-policy") ?? "";
		expect(csp).toContain(`media-src 'self' blob: ${new URL(bucket.server.endpoint).origin}`);
		expect(csp).toMatch(/script-src 'self';/);
		expect(csp).toMatch(/connect-src 'self';/);
		const none = await fetch(`${gw.url}/r/${randomUUID()}`);
		expect(none.headers.get("content-security-policy")).toContain("media-src 'self' blob:;");

		// Only the host revokes; after that the page is refused for everyone.
		expect((await api(gw, "DELETE", path, acme.token("pat", "participant"))).status).toBe(403);
		expect((await api(gw, "DELETE", path, acme.token("pb-host"))).status).toBe(200);
		expect((await api(gw, "DELETE", path, acme.token("pb-host"))).status).toBe(200);
		for (const who of [acme.token("pat", "participant"), acme.token("pb-host")]) {
			const revoked = await api(gw, "GET", path, who);
			expect([revoked.status, revoked.body.code]).toEqual([410, "recording_revoked"]);
		}
		expect(await gw.events.list({ tenantId: "acme", meetingId, type: "recording.playback_revoked" })).toHaveLength(1);
		expect((await gw.events.verify({ tenantId: "acme" }))[0]).toMatchObject({ ok: true });
	});

	it("is refused once the tenant's lifetime is over", async () => {
		const { sessionId } = await recorded(brief, "brief-host");
		const at = Date.parse((await gw.events.list({ tenantId: "brief", type: "session.on" }))[0]?.at as string);
		await new Promise((r) => setTimeout(r, Math.max(0, at + 3100 - Date.now())));
		const expired = await api(gw, "GET", `/api/recordings/${sessionId}`, brief.token("pat", "participant"));
		expect([expired.status, expired.body.code]).toEqual([410, "recording_expired"]);
	});

	it("shows each track's recorded intervals and holes from the manifest; refuses a manifest it did not write", async () => {
		const { sessionId, meetingId } = await recorded(acme, "holes-host");
		const key = (await gw.events.list({ tenantId: "acme", meetingId, type: "storage.object_written" })).find(
			(e) => e.data.manifest === true,
		)?.data.key as string;
		const manifest = await bucket.json<Record<string, unknown> & { persons: string[] }>(key);
		const person = (await gw.events.list({ tenantId: "acme", meetingId, type: "notice.acknowledged" }))[0]
			?.actor as string;
		const t0 = Date.parse(String(manifest.startedAt));
		const at = (s: number) => new Date(t0 + s * 1000).toISOString();
		const track = {
			trackId: "t1",
			person,
			kind: "camera",
			producerId: "p1",
			holes: [{ from: at(4), to: at(6), cause: "network_loss", frames: 50 }],
			objects: [
				{
					key: `${key.replace(/manifest\.json$/, "")}${person}-camera-1.webm`,
					seq: 1,
					size: 1,
					sha256: null,
					startedAt: at(1),
					endedAt: at(4),
					firstFrameAt: t0 + 1100,
				},
				{
					key: `${key.replace(/manifest\.json$/, "")}${person}-camera-2.webm`,
					seq: 2,
					size: 1,
					sha256: null,
					startedAt: at(6),
					endedAt: at(9),
				},
			],
		};
		const put = (body: string) =>
			bucket.s3.send(
				new PutObjectCommand({ Bucket: bucket.name, Key: key, Body: body, ContentType: "application/json" }),
			);
		await put(JSON.stringify({ ...manifest, persons: [person], tracks: [track] }));
		const r = await api(gw, "GET", `/api/recordings/${sessionId}`, acme.token("pat", "participant"));
		expect(r.status).toBe(200);
		const body = r.body as {
			urls: Record<string, string>;
			evidence: {
				persons: { person: string; recorded: { kind: string; from: string; to: string }[] }[];
				holes: unknown[];
			};
		};
		expect(Object.keys(body.urls).sort()).toEqual(track.objects.map((o) => o.key).sort());
		expect(body.evidence.persons.find((p) => p.person === person)?.recorded).toEqual([
			{ kind: "camera", from: new Date(t0 + 1100).toISOString(), to: at(4) },
			{ kind: "camera", from: at(6), to: at(9) },
		]);
		expect(body.evidence.holes).toEqual([
			{ person, kind: "camera", from: at(4), to: at(6), cause: "network_loss", frames: 50 },
		]);

		for (const hostile of [
			"{not json",
			JSON.stringify({ ...manifest, session: "another" }),
			JSON.stringify({ ...manifest, tracks: [{ objects: 5 }] }),
		]) {
			await put(hostile);
			const refused = await api(gw, "GET", `/api/recordings/${sessionId}`, acme.token("pat", "participant"));
			expect([refused.status, refused.body.code]).toEqual([422, "recording_unreadable"]);
		}
		await bucket.s3.send(new DeleteObjectCommand({ Bucket: bucket.name, Key: key }));
		const gone = await api(gw, "GET", `/api/recordings/${sessionId}`, acme.token("pat", "participant"));
		expect([gone.status, gone.body.code]).toEqual([409, "recording_missing"]);
	});

	it("names who declined and stayed, never recorded", async () => {
		const { sessionId } = await recorded(stays, "stays-host", "declines");
		const r = await api(gw, "GET", `/api/recordings/${sessionId}`, stays.token("nia", "participant"));
		expect(r.status).toBe(200);
		const { evidence, manifest } = r.body as {
			evidence: { persons: { you: boolean; notRecorded: boolean; answer: { type: string } | null }[] };
			manifest: { notRecorded: string[] };
		};
		expect(manifest.notRecorded).toHaveLength(1);
		const nia = evidence.persons.find((p) => p.you);
		expect(nia).toMatchObject({ notRecorded: true, answer: { type: "consent.declined" } });
		expect(evidence.persons.filter((p) => p.notRecorded)).toHaveLength(1);
	});

	it("plays from an SSE-KMS bucket; explains SSE-C", async () => {
		const k = await recorded(kms, "kms-host");
		const ok = await api(gw, "GET", `/api/recordings/${k.sessionId}`, kms.token("pat", "participant"));
		expect(ok.status).toBe(200);
		const manifest = await fetch((ok.body.files as { manifest: string }).manifest);
		expect(manifest.status).toBe(200);
		expect(((await manifest.json()) as { session: string }).session).toBe(k.sessionId);

		const c = await recorded(ssec, "ssec-host");
		const refused = await api(gw, "GET", `/api/recordings/${c.sessionId}`, ssec.token("pat", "participant"));
		expect([refused.status, refused.body.code]).toEqual([409, "presign_unavailable"]);
		expect(refused.body.message).toMatch(/SSE-C/);
	});
});

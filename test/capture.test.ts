import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEvent } from "../server/audit/EventLog.js";
import { sentNotices } from "../server/audit/notices.js";
import type { TapChange } from "../server/compliance/CaptureService.js";
import type { Gateway } from "../server/Gateway.js";
import type { JoinResult, NoticeView } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { codeOf, connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * The notice gate over real signaling: who may turn recording on, notices to
 * everyone present and in the join flow, media refused before the notice is
 * answered, held under explicit consent, declining means leaving, and taps (the
 * only way the recorder reaches media) open only after the proof is in the trail.
 */
describe("recording notice gate (signaling)", () => {
	const acme = testTenant("acme");
	/** A tenant that keeps transcription to the host and co-hosts. */
	const strict = testTenant("strict", { transcription: "host" });
	let bucket: TestBucket;
	let gw: Gateway;
	const open: RawClient[] = [];
	const taps: TapChange[] = [];
	const client = async (token?: string) => {
		const c = await connect(gw.url, token);
		open.push(c);
		return c;
	};
	const schedule = async (host: string, settings: Record<string, unknown> = {}) => {
		const r = await api(gw, "POST", "/api/meetings", acme.token(host), {
			title: `${host}'s meeting`,
			settings: { lobby: false, ...settings },
		});
		expect(r.status).toBe(201);
		return r.body as { id: string };
	};
	const joined = async (c: RawClient, meetingId: string, displayName: string) => {
		const r = (await c.call("join", { meetingId, displayName })) as JoinResult;
		if (r.status !== "joined") throw new Error("expected to join");
		return r;
	};
	/** Publishes a (silent) mic producer: mediasoup accepts it before the transport connects. */
	const produceMic = async (c: RawClient) => {
		const t = await c.call("createWebRtcTransport", { direction: "send" });
		return c.req("produce", {
			transportId: t.id,
			kind: "audio",
			source: "mic",
			rtpParameters: {
				codecs: [{ mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 }],
				encodings: [{ ssrc: 1000 + open.indexOf(c) }],
			},
		});
	};
	const trail = (meetingId: string): Promise<AuditEvent[]> => gw.events.list({ tenantId: "acme", meetingId });

	beforeAll(async () => {
		bucket = await startBucket("acme-recordings");
		gw = await startGateway({ tenants: [acme, strict], env: storageEnv() });
		gw.capture.on("tap", (t) => taps.push(t));
	});

	afterAll(async () => {
		for (const c of open) c.close();
		await gw?.close();
		await bucket?.stop();
	});

	it("refuses to record without the customer's bucket, and lets only the host turn recording on", async () => {
		const m = await schedule("nobucket-host");
		const host = await client(acme.token("nobucket-host"));
		await joined(host, m.id, "Host");
		const pia = await client(acme.token("pia", "participant"));
		await joined(pia, m.id, "Pia");
		const r = await host.req("startCapture", { kind: "recording" });
		expect(codeOf(r)).toBe("no_storage_target");
		if (!r.ok) expect(r.error.message).toMatch(/storage bucket/);
		expect(codeOf(await pia.req("startCapture", { kind: "recording" }))).toBe("host_only");
		expect(codeOf(await host.req("startCapture", { kind: "transcription" }))).toBe("no_storage_target");
		expect(codeOf(await host.req("startCapture", { kind: "filming" }))).toBe("invalid_request");
		expect((await trail(m.id)).some((e) => e.type === "session.on")).toBe(false);
	});

	it("notices everyone, refuses new media until the notice is answered, and opens taps only after the proof", async () => {
		await saveStorageTarget(gw, acme, bucket, "consentry");
		const m = await schedule("gate-host");
		const host = await client(acme.token("gate-host"));
		await joined(host, m.id, "Host");
		const pia = await client(acme.token("pia", "participant"));
		const piaJoin = await joined(pia, m.id, "Pia");
		expect(piaJoin.capture.find((c) => c.kind === "recording")?.state).toBe("off");
		expect(piaJoin.notices).toEqual([]);
		expect(codeOf(await produceMic(pia))).toBe("ok"); // already sending before recording starts

		const noticeP = pia.next("captureNotice");
		const hostNoticeP = host.next("captureNotice");
		const piaStates: unknown[] = [];
		pia.socket.on("captureState", (s: unknown) => piaStates.push(s));
		const started = await host.call("startCapture", { kind: "recording" });
		expect(started).toMatchObject({ kind: "recording", state: "on", startedBy: "Host", policy: { name: "notice" } });
		const notice = await noticeP;
		expect(notice).toMatchObject({ kind: "recording", consentRequired: false, locale: "en", startedBy: "Host" });
		expect(notice.title).toMatch(/recorded/);
		// The notice says the session is on (kind, sessionId, startedBy, since, policy): no separate captureState.
		expect(notice).toMatchObject({ sessionId: started.sessionId, since: started.since, policy: started.policy });
		await pia.call("noticeShown", { noticeId: notice.id }); // (a round trip: anything sent before it has arrived)
		expect(piaStates).toEqual([]);
		expect(gw.capture.mayCapture(m.id, "recording", piaJoin.peerId)).toBe(false);
		expect(taps.filter((t) => t.peerId === piaJoin.peerId)).toEqual([]);

		// A late joiner gets the notice with the join, and may not publish before answering it.
		const lou = await client(acme.token("lou", "participant"));
		const louJoin = await joined(lou, m.id, "Lou");
		expect(louJoin.notices).toHaveLength(1);
		expect(louJoin.capture.find((c) => c.kind === "recording")).toMatchObject({ state: "on", startedBy: "Host" });
		expect(codeOf(await produceMic(lou))).toBe("notice_pending");

		// Someone else's notice, or a made-up one, is refused.
		expect(codeOf(await lou.req("acknowledgeNotice", { noticeId: notice.id }))).toBe("stale_notice");
		const coverageP = host.next("captureCoverage", 3000);
		await pia.call("noticeShown", { noticeId: notice.id });
		expect(await pia.call("acknowledgeNotice", { noticeId: notice.id })).toEqual({ coverage: "acknowledged" });
		expect(gw.capture.mayCapture(m.id, "recording", piaJoin.peerId)).toBe(true);
		const piaTaps = taps.filter((t) => t.peerId === piaJoin.peerId);
		expect(piaTaps).toHaveLength(1);
		expect(piaTaps[0]).toMatchObject({ open: true, session: { id: started.sessionId } });

		const louNotice = louJoin.notices[0] as NoticeView;
		await lou.call("acknowledgeNotice", { noticeId: louNotice.id });
		expect(codeOf(await produceMic(lou))).toBe("ok"); // opens its tap at once: the gate is already open for Lou
		expect(taps.filter((t) => t.peerId === louJoin.peerId && t.open)).toHaveLength(1);

		const coverage = await coverageP;
		expect(coverage.sessionId).toBe(started.sessionId);
		const hostNotice = await hostNoticeP;
		await waitFor(async () => {
			const c = gw.capture.coverage(m.id, "recording");
			return c.find((e) => e.displayName === "Host")?.coverage === "pending" ? c : undefined;
		});
		await host.call("acknowledgeNotice", { noticeId: hostNotice.id });

		// The trail proves the order for every tap: notice sent, shown, acknowledged, then the gate.
		const events = await trail(m.id);
		const types = (person: string) =>
			events
				.filter(
					(e) =>
						e.data.person === person ||
						sentNotices(e).some((n) => n.person === person) ||
						(e.actor === person && e.type.startsWith("notice.")),
				)
				.map((e) => e.type);
		const piaPsn = events.find((e) => e.type === "notice.acknowledged" && e.data.peerId === piaJoin.peerId)?.actor;
		expect(piaPsn).toMatch(/^psn_/);
		expect(types(piaPsn as string)).toEqual(["notices.sent", "notice.shown", "notice.acknowledged", "gate.opened"]);
		const on = events.find((e) => e.type === "session.on");
		expect(on?.data).toMatchObject({
			kind: "recording",
			sessionId: started.sessionId,
			policy: { name: "notice", version: 1 },
		});
		// The start's notices to everyone then in the meeting are one entry; a later joiner's is their own.
		expect(events.filter((e) => e.type === "notices.sent")).toHaveLength(1);
		expect(
			events.flatMap(sentNotices).map((n) => n.via),
			"three notices, one per person",
		).toHaveLength(3);

		// Leaving closes the gate at once.
		const louPsn = events.find((e) => e.type === "notice.acknowledged" && e.data.peerId === louJoin.peerId)?.actor;
		await lou.call("leave", {});
		expect(gw.capture.mayCapture(m.id, "recording", louJoin.peerId)).toBe(false);
		expect(taps.filter((t) => t.peerId === louJoin.peerId).map((t) => [t.open, t.reason])).toEqual([
			[true, "producer_added"],
			[false, "left"],
		]);
		expect((await trail(m.id)).filter((e) => e.type === "gate.closed" && e.data.person === louPsn)).toHaveLength(1);

		// Pause closes every gate; resuming is a new session that needs a new acknowledgement.
		await host.call("pauseCapture", { kind: "recording" });
		expect(gw.capture.mayCapture(m.id, "recording", piaJoin.peerId)).toBe(false);
		const again = pia.next("captureNotice");
		const resumed = await host.call("startCapture", { kind: "recording" });
		expect(resumed.sessionId).not.toBe(started.sessionId);
		const notice2 = await again;
		expect(notice2.id).not.toBe(notice.id);
		expect(codeOf(await pia.req("acknowledgeNotice", { noticeId: notice.id }))).toBe("stale_notice");
		expect(gw.capture.mayCapture(m.id, "recording", piaJoin.peerId)).toBe(false);
		await pia.call("acknowledgeNotice", { noticeId: notice2.id });
		expect(gw.capture.mayCapture(m.id, "recording", piaJoin.peerId)).toBe(true);

		const offP = pia.next("captureState");
		await host.call("stopCapture", { kind: "recording" });
		expect(await offP).toMatchObject({ kind: "recording", state: "off" });
		expect(gw.capture.mayCapture(m.id, "recording", piaJoin.peerId)).toBe(false);
		const kinds = (await trail(m.id)).filter((e) => e.type.startsWith("session.")).map((e) => e.type);
		expect(kinds).toEqual(["session.on", "session.paused", "session.on", "session.off"]);
		expect((await gw.events.verify({ tenantId: "acme" }))[0]).toMatchObject({ ok: true });
	});

	it("under explicit consent holds media until consent, and a person who declines leaves, never captured", async () => {
		const m = await schedule("consent-host", { capturePolicy: "explicit-consent" });
		const host = await client(acme.token("consent-host"));
		await joined(host, m.id, "Host");
		const cy = await client(acme.token("cy", "participant"));
		const cyJoin = await joined(cy, m.id, "Cy");
		const dee = await client(acme.token("dee", "participant"));
		const deeJoin = await joined(dee, m.id, "Dee");
		const cyMic = await produceMic(cy);
		expect(cyMic.ok).toBe(true);
		await produceMic(dee);

		const cyNoticeP = cy.next("captureNotice");
		const heldP = cy.next("mediaHeld");
		const deeNoticeP = dee.next("captureNotice");
		const hostNoticeP = host.next("captureNotice");
		await host.call("startCapture", { kind: "recording" });
		const cyNotice = await cyNoticeP;
		expect(cyNotice).toMatchObject({ consentRequired: true, policy: { name: "explicit-consent", version: 1 } });
		const held = await heldP;
		const cyProducerId = cyMic.ok ? cyMic.data.producerId : "";
		expect(held).toEqual({ held: true, producerIds: [cyProducerId] });
		expect(codeOf(await cy.req("resumeProducer", { producerId: cyProducerId }))).toBe("consent_required");
		// An acknowledgement alone opens nothing under this policy.
		await cy.call("acknowledgeNotice", { noticeId: cyNotice.id });
		expect(gw.capture.mayCapture(m.id, "recording", cyJoin.peerId)).toBe(false);

		const released = cy.next("mediaHeld");
		expect(await cy.call("consent", { noticeId: cyNotice.id })).toEqual({ coverage: "consented" });
		expect(await released).toEqual({ held: false, producerIds: [cyProducerId] });
		expect(gw.capture.mayCapture(m.id, "recording", cyJoin.peerId)).toBe(true);

		const deeNotice = await deeNoticeP;
		const ejected = dee.next("ejected");
		expect(codeOf(await dee.req("decline", { noticeId: deeNotice.id }))).toBe("ok");
		expect(await ejected).toMatchObject({ reason: "declined_capture" });
		expect(gw.capture.mayCapture(m.id, "recording", deeJoin.peerId)).toBe(false);
		expect(taps.filter((t) => t.peerId === deeJoin.peerId)).toEqual([]);

		const events = await trail(m.id);
		const deePsn = events.find((e) => e.type === "consent.declined")?.actor;
		expect(deePsn).toMatch(/^psn_/);
		expect(events.some((e) => e.type === "gate.opened" && e.data.person === deePsn)).toBe(false);
		expect(events.some((e) => e.type === "consent.given" && e.data.peerId === cyJoin.peerId)).toBe(true);

		// The host must consent too; withdrawing later is leaving as well.
		const hostNotice = await hostNoticeP;
		expect(hostNotice.consentRequired).toBe(true);
		await host.call("consent", { noticeId: hostNotice.id });
		const cyOut = cy.next("ejected");
		await cy.call("decline", { noticeId: cyNotice.id });
		expect(await cyOut).toMatchObject({ reason: "declined_capture" });
		expect((await trail(m.id)).some((e) => e.type === "consent.withdrawn" && e.data.peerId === cyJoin.peerId)).toBe(
			true,
		);
		expect(gw.capture.coverage(m.id, "recording").map((e) => e.displayName)).toEqual(["Host"]);
	});

	it('onDecline "stay-unrecorded": the decliner stays, held media released, everyone (late joiners too) sees it', async () => {
		const stays = testTenant("stays", { policy: "explicit-consent", onDecline: "stay-unrecorded" });
		const gw2 = await startGateway({ tenants: [stays], env: storageEnv() });
		const local: RawClient[] = [];
		try {
			await saveStorageTarget(gw2, stays, bucket, "stays");
			const r = await api(gw2, "POST", "/api/meetings", stays.token("s-host"), {
				title: "Stays",
				settings: { lobby: false },
			});
			const m = r.body as { id: string };
			const join = async (token: string, name: string) => {
				const c = await connect(gw2.url, token);
				local.push(c);
				const j = (await c.call("join", { meetingId: m.id, displayName: name })) as JoinResult;
				if (j.status !== "joined") throw new Error("expected to join");
				return { c, j };
			};
			const host = await join(stays.token("s-host"), "Host");
			const dee = await join(stays.token("dee", "participant"), "Dee");
			const t = await dee.c.call("createWebRtcTransport", { direction: "send" });
			const mic = await dee.c.call("produce", {
				transportId: t.id,
				kind: "audio",
				source: "mic",
				rtpParameters: {
					codecs: [{ mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 }],
					encodings: [{ ssrc: 4242 }],
				},
			});
			const heldP = dee.c.next("mediaHeld");
			const noticeP = dee.c.next("captureNotice");
			await host.c.call("startCapture", { kind: "recording" });
			const notice = await noticeP;
			expect(notice).toMatchObject({ consentRequired: true, onDecline: "stay-unrecorded" });
			expect(await heldP).toEqual({ held: true, producerIds: [mic.producerId] });

			const told = host.c.next("notRecorded");
			const released = dee.c.next("mediaHeld");
			expect(await dee.c.call("decline", { noticeId: notice.id })).toEqual({ stayed: true });
			const session = gw2.capture.session(m.id, "recording");
			expect(await told).toEqual({ persons: [{ peerId: dee.j.peerId, kind: "recording", sessionId: session?.id }] });
			expect(await released).toEqual({ held: false, producerIds: [mic.producerId] });
			// Still in the meeting, seen and heard live (may resume), never captured in this session.
			expect(gw2.rooms.get(m.id)?.peers.has(dee.j.peerId)).toBe(true);
			expect(codeOf(await dee.c.req("resumeProducer", { producerId: mic.producerId }))).toBe("ok");
			expect(codeOf(await dee.c.req("consent", { noticeId: notice.id }))).toBe("declined");
			expect(codeOf(await dee.c.req("acknowledgeNotice", { noticeId: notice.id }))).toBe("ok");
			expect(gw2.capture.mayCapture(m.id, "recording", dee.j.peerId)).toBe(false);
			const events = await gw2.events.list({ tenantId: "stays", meetingId: m.id });
			expect(events.find((e) => e.type === "consent.declined")?.data).toMatchObject({ stayed: true });
			expect(events.some((e) => e.type === "gate.opened" && e.data.peerId === dee.j.peerId)).toBe(false);

			// A late joiner learns it with the join answer; Dee leaving clears it.
			const eve = await join(stays.token("eve", "participant"), "Eve");
			expect(eve.j.status === "joined" && eve.j.notRecorded).toEqual([
				{ peerId: dee.j.peerId, kind: "recording", sessionId: session?.id },
			]);
			const cleared = host.c.next("notRecorded");
			await dee.c.call("leave", {});
			expect(await cleared).toEqual({ persons: [] });
		} finally {
			for (const c of local) c.close();
			await gw2.close();
		}
	});

	it("lets a co-host the host named turn recording on and off, and nobody else", async () => {
		const m = await schedule("cohost-host");
		const host = await client(acme.token("cohost-host"));
		await joined(host, m.id, "Host");
		const cora = await client(acme.token("cora", "participant"));
		const coraJoin = await joined(cora, m.id, "Cora");
		const eli = await client(acme.token("eli", "participant"));
		const eliJoin = await joined(eli, m.id, "Eli");
		expect(codeOf(await cora.req("startCapture", { kind: "recording" }))).toBe("host_only");
		expect(codeOf(await eli.req("setCoHost", { peerId: coraJoin.peerId, coHost: true }))).toBe("host_only");
		const told = eli.next("coHostChanged");
		await host.call("setCoHost", { peerId: coraJoin.peerId, coHost: true });
		expect(await told).toEqual({ peerId: coraJoin.peerId, coHost: true });
		const coverage = cora.next("captureCoverage", 3000);
		const started = await cora.call("startCapture", { kind: "recording" });
		expect(started).toMatchObject({ state: "on", startedBy: "Cora" });
		expect((await coverage).entries).toHaveLength(3); // a co-host sees who is covered, like the host
		expect(codeOf(await eli.req("pauseCapture", { kind: "recording" }))).toBe("host_only");
		await cora.call("pauseCapture", { kind: "recording" });
		await host.call("setCoHost", { peerId: coraJoin.peerId, coHost: false });
		expect(codeOf(await cora.req("startCapture", { kind: "recording" }))).toBe("host_only");
		await host.call("stopCapture", { kind: "recording" });
		const named = (await trail(m.id)).filter((e) => e.type === "host.cohost_set");
		expect(named.map((e) => e.data.coHost)).toEqual([true, false]);
		expect(named[0]?.data.person).toMatch(/^psn_/);
		// A later joiner learns who the co-hosts are.
		await host.call("setCoHost", { peerId: eliJoin.peerId, coHost: true });
		const fay = await client(acme.token("fay", "participant"));
		expect((await joined(fay, m.id, "Fay")).coHosts).toEqual([eliJoin.peerId]);
	});

	it("lets any member turn transcription on, unless the tenant keeps it to the host", async () => {
		const m = await schedule("stt-host");
		const host = await client(acme.token("stt-host"));
		await joined(host, m.id, "Host");
		const pia = await client(acme.token("pia", "participant"));
		await joined(pia, m.id, "Pia");
		expect(await pia.call("startCapture", { kind: "transcription" })).toMatchObject({ state: "on", startedBy: "Pia" });
		await pia.call("stopCapture", { kind: "transcription" });

		await saveStorageTarget(gw, strict, bucket, "strict");
		const sm = await api(gw, "POST", "/api/meetings", strict.token("strict-host"), {
			title: "Strict",
			settings: { lobby: false },
		});
		const sh = await client(strict.token("strict-host"));
		await joined(sh, sm.body.id as string, "Host");
		const sp = await client(strict.token("sam", "participant"));
		await joined(sp, sm.body.id as string, "Sam");
		expect(codeOf(await sp.req("startCapture", { kind: "transcription" }))).toBe("host_only");
		expect(await sh.call("startCapture", { kind: "transcription" })).toMatchObject({ state: "on" });
		await sh.call("stopCapture", { kind: "transcription" });
	});

	it("ends every session with the meeting", async () => {
		const m = await schedule("end-host");
		const host = await client(acme.token("end-host"));
		await joined(host, m.id, "Host");
		await host.call("startCapture", { kind: "recording" });
		expect(codeOf(await host.req("startCapture", { kind: "recording" }))).toBe("already_on");
		await host.call("endMeeting", {});
		await waitFor(async () => ((await trail(m.id)).some((e) => e.type === "meeting.ended") ? true : undefined));
		const off = (await trail(m.id)).find((e) => e.type === "session.off");
		expect(off?.data).toMatchObject({ kind: "recording", reason: "meeting_ended" });
		expect(gw.capture.session(m.id, "recording")).toBeUndefined();
	});
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TapChange } from "../server/compliance/CaptureService.js";
import type { Gateway } from "../server/Gateway.js";
import type { JoinResult, NoticeView } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { codeOf, connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * The click time an answer carries (issue 11) over real signaling: one that can't be true is refused with a clear
 * code and changes nothing; a plausible one reaches the taps it opens (the recorder gates each packet on it).
 */
describe("the click time of an answer", () => {
	const acme = testTenant("acme");
	let bucket: TestBucket;
	let gw: Gateway;
	const open: RawClient[] = [];
	const taps: TapChange[] = [];

	beforeAll(async () => {
		bucket = await startBucket("acme-click");
		gw = await startGateway({ tenants: [acme], env: storageEnv() });
		await saveStorageTarget(gw, acme, bucket, "consentry");
		gw.capture.on("tap", (t) => taps.push(t));
	});

	afterAll(async () => {
		for (const c of open) c.close();
		await gw?.close();
		await bucket?.stop();
	});

	it("refuses a click in the future, long past, or before the notice; takes a true one to the taps", async () => {
		const r = await api(gw, "POST", "/api/meetings", acme.token("click-host"), {
			title: "Clicks",
			settings: { lobby: false },
		});
		const meetingId = (r.body as { id: string }).id;
		const host = await connect(gw.url, acme.token("click-host"));
		const pia = await connect(gw.url, acme.token("pia", "participant"));
		open.push(host, pia);
		await host.call("join", { meetingId, displayName: "Host" });
		const piaJoin = (await pia.call("join", { meetingId, displayName: "Pia" })) as JoinResult;
		const t = await pia.call("createWebRtcTransport", { direction: "send" });
		await pia.call("produce", {
			transportId: t.id,
			kind: "audio",
			source: "mic",
			rtpParameters: {
				codecs: [{ mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 }],
				encodings: [{ ssrc: 4242 }],
			},
		});
		const noticeP = pia.next("captureNotice") as Promise<NoticeView>;
		const sentAt = Date.now();
		await host.call("startCapture", { kind: "recording" });
		const notice = await noticeP;
		const ack = (clickedAt: unknown) => pia.req("acknowledgeNotice", { noticeId: notice.id, clickedAt });
		expect(codeOf(await ack(Date.now() + 60_000))).toBe("click_in_future");
		expect(codeOf(await ack(Date.now() - 120_000))).toBe("click_too_old");
		expect(codeOf(await ack(sentAt - 10_000))).toBe("click_before_notice");
		expect(codeOf(await ack("soon"))).toBe("invalid_request");
		expect(gw.capture.mayCapture(meetingId, "recording", piaJoin.peerId)).toBe(false);
		const clickedAt = Date.now();
		expect(codeOf(await ack(clickedAt))).toBe("ok");
		const tap = taps.find((x) => x.peerId === piaJoin.peerId && x.open);
		expect(tap?.clickedAt).toBe(clickedAt);
	});
	it("checks a click on the client's own clock: a clock 5 minutes fast still answers; its lies are still refused", async () => {
		const skew = 5 * 60_000; // the participant's laptop clock runs 5 minutes ahead of the gateway's
		const r = await api(gw, "POST", "/api/meetings", acme.token("skew-host"), {
			title: "Skewed clock",
			settings: { lobby: false },
		});
		const meetingId = (r.body as { id: string }).id;
		const host = await connect(gw.url, acme.token("skew-host"));
		const sam = await connect(gw.url, acme.token("sam", "participant"));
		open.push(host, sam);
		await host.call("join", { meetingId, displayName: "Host" });
		const samJoin = (await sam.call("join", {
			meetingId,
			displayName: "Sam",
			clientTime: Date.now() + skew,
		})) as JoinResult;
		const noticeP = sam.next("captureNotice") as Promise<NoticeView>;
		await host.call("startCapture", { kind: "recording" });
		const notice = await noticeP;
		const ack = (clickedAt: unknown) => sam.req("acknowledgeNotice", { noticeId: notice.id, clickedAt });
		// On Sam's clock: a minute ahead of now is the future; the gateway's "now" is 5 minutes in Sam's past.
		expect(codeOf(await ack(Date.now() + skew + 60_000))).toBe("click_in_future");
		expect(codeOf(await ack(Date.now()))).toBe("click_too_old");
		expect(gw.capture.mayCapture(meetingId, "recording", samJoin.peerId)).toBe(false);
		const clickedAt = Date.now() + skew;
		expect(codeOf(await ack(clickedAt))).toBe("ok");
		expect(gw.capture.mayCapture(meetingId, "recording", samJoin.peerId)).toBe(true);
	});

	it("the close side: leave and pause carry their click; each closed tap gets its close time, never refused", async () => {
		const skew = 3_000; // the host's clock runs 3 s ahead of the gateway's
		const r = await api(gw, "POST", "/api/meetings", acme.token("close-host"), {
			title: "Closes",
			settings: { lobby: false },
		});
		const meetingId = (r.body as { id: string }).id;
		const host = await connect(gw.url, acme.token("close-host"));
		const ann = await connect(gw.url, acme.token("ann", "participant"));
		const ben = await connect(gw.url, acme.token("ben", "participant"));
		open.push(host, ann, ben);
		const hostJoin = (await host.call("join", {
			meetingId,
			displayName: "Host",
			clientTime: Date.now() + skew,
		})) as JoinResult;
		const people: { c: RawClient; peerId: string; ssrc: number }[] = [];
		for (const [c, name, ssrc] of [
			[host, "", 5151],
			[ann, "Ann", 5252],
			[ben, "Ben", 5353],
		] as const) {
			const peerId = name
				? ((await c.call("join", { meetingId, displayName: name })) as JoinResult).peerId
				: hostJoin.peerId;
			const t = await c.call("createWebRtcTransport", { direction: "send" });
			await c.call("produce", {
				transportId: t.id,
				kind: "audio",
				source: "mic",
				rtpParameters: {
					codecs: [{ mimeType: "audio/opus", payloadType: 100, clockRate: 48000, channels: 2 }],
					encodings: [{ ssrc }],
				},
			});
			people.push({ c, peerId, ssrc });
		}
		const notices = people.map((p) => p.c.next("captureNotice") as Promise<NoticeView>);
		await host.call("startCapture", { kind: "recording" });
		for (const [i, p] of people.entries()) {
			const n = await notices[i];
			await p.c.call("acknowledgeNotice", {
				noticeId: n?.id,
				clickedAt: p.c === host ? Date.now() + skew : Date.now(),
			});
		}
		const closes = (peerId: string) => taps.filter((x) => x.peerId === peerId && !x.open);
		// Ann leaves: her tap closes at her own click, on her own clock.
		const annClick = Date.now() - 200;
		expect(codeOf(await ann.req("leave", { clickedAt: annClick }))).toBe("ok");
		expect(closes(people[1]?.peerId as string).map((x) => x.closeAt)).toEqual([{ at: annClick, clock: "sender" }]);
		// The host pauses: their own tap closes at their click (their clock); Ben's at it on the gateway's clock.
		const hostClick = Date.now() + skew - 100;
		expect(codeOf(await host.req("pauseCapture", { kind: "recording", clickedAt: hostClick }))).toBe("ok");
		expect(closes(hostJoin.peerId).map((x) => x.closeAt)).toEqual([{ at: hostClick, clock: "sender" }]);
		const benClose = closes(people[2]?.peerId as string)[0]?.closeAt;
		expect(benClose?.clock).toBe("gateway");
		expect(Math.abs((benClose?.at as number) - (hostClick - skew))).toBeLessThan(100); // off by the join's transit
		// A close click that can't be true is not refused (the close happens): the gateway's time is used.
		const again = [host, ben].map((c) => c.next("captureNotice") as Promise<NoticeView>);
		await host.call("startCapture", { kind: "recording" });
		await host.call("acknowledgeNotice", { noticeId: (await again[0])?.id, clickedAt: Date.now() + skew });
		await ben.call("acknowledgeNotice", { noticeId: (await again[1])?.id, clickedAt: Date.now() });
		const before = Date.now();
		expect(codeOf(await ben.req("leave", { clickedAt: Date.now() + 60_000 }))).toBe("ok");
		const lied = closes(people[2]?.peerId as string).at(-1)?.closeAt;
		expect(lied?.clock).toBe("gateway");
		expect(lied?.at as number).toBeGreaterThanOrEqual(before);
		expect(lied?.at as number).toBeLessThanOrEqual(Date.now());
	});
});

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
});

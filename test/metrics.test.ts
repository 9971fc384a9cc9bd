import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { JoinResult } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * /metrics on a real gateway: Prometheus text with live figures (meetings, people, producers, worker CPU) and
 * the notice answer latency histogram from the trail; loopback only unless a token is configured, then only
 * with the token. (Recorder figures from a real recording are checked by the demo's browser test.)
 */
const acme = testTenant("acme");
let bucket: TestBucket;
let gw: Gateway;
const clients: RawClient[] = [];

const scrape = async (g: Gateway, headers: Record<string, string> = {}) => {
	const r = await fetch(`${g.url}/metrics`, { headers });
	return { status: r.status, type: r.headers.get("content-type"), text: await r.text() };
};
/** A sample's value, e.g. value(text, 'consentry_producers{kind="audio"}'). */
const value = (text: string, series: string): number | undefined => {
	const line = text.split("\n").find((l) => l.startsWith(`${series} `));
	return line ? Number(line.slice(series.length + 1)) : undefined;
};

beforeAll(async () => {
	bucket = await startBucket("acme-recordings");
	gw = await startGateway({ tenants: [acme], env: storageEnv() });
	await saveStorageTarget(gw, acme, bucket, "rec");
});

afterAll(async () => {
	for (const c of clients) c.close();
	await gw?.close();
	await bucket?.stop();
});

describe("metrics", () => {
	it("counts meetings, people and producers, worker CPU, and how long people take to answer a notice", async () => {
		const empty = await scrape(gw);
		expect(empty.status).toBe(200);
		expect(empty.type).toMatch(/^text\/plain; version=0\.0\.4/);
		expect(value(empty.text, "consentry_meetings")).toBe(0);

		const m = await api(gw, "POST", "/api/meetings", acme.token("host"), {
			title: "Measured",
			settings: { lobby: false },
		});
		const meetingId = m.body.id as string;
		const host = await connect(gw.url, acme.token("host"));
		const pia = await connect(gw.url, acme.token("pia", "participant"));
		clients.push(host, pia);
		(await host.call("join", { meetingId, displayName: "Host" })) as JoinResult;
		(await pia.call("join", { meetingId, displayName: "Pia" })) as JoinResult;
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
		const hostNotice = host.next("captureNotice");
		const piaNotice = pia.next("captureNotice");
		await host.call("startCapture", { kind: "recording" });
		await new Promise((r) => setTimeout(r, 300));
		await pia.call("acknowledgeNotice", { noticeId: (await piaNotice).id });
		await host.call("acknowledgeNotice", { noticeId: (await hostNotice).id });

		const live = await scrape(gw);
		expect(value(live.text, "consentry_meetings")).toBe(1);
		expect(value(live.text, "consentry_people")).toBe(2);
		expect(value(live.text, 'consentry_producers{kind="audio"}')).toBe(1);
		expect(value(live.text, "consentry_media_workers")).toBe(1);
		expect(live.text).toMatch(/^consentry_media_worker_cpu_seconds\{worker="\d+"\} [\d.e-]+$/m);
		expect(value(live.text, 'consentry_notice_answer_seconds_count{kind="recording",answer="acknowledged"}')).toBe(2);
		// Pia answered after ≥ 0.3 s: her answer is not in the 0.25 s bucket.
		expect(
			value(live.text, 'consentry_notice_answer_seconds_bucket{le="0.25",kind="recording",answer="acknowledged"}'),
		).toBe(0);
		expect(live.text).toContain("process_cpu_seconds_total");
		expect(value(live.text, "consentry_recorder_tracks")).toBe(0); // a fake mic sends no RTP: nothing to record
	});

	it("does not exist for requests through a proxy or from another address; a token opens it and is then required", async () => {
		expect((await scrape(gw, { "x-forwarded-for": "203.0.113.9" })).status).toBe(404);
		expect((await scrape(gw, { forwarded: "for=203.0.113.9" })).status).toBe(404);

		const token = "metrics-token-0123456789abcdef";
		const guarded = await startGateway({ tenants: [acme], env: { CONSENTRY_METRICS_TOKEN: token } });
		try {
			const no = await scrape(guarded);
			expect(no.status).toBe(401);
			expect(JSON.parse(no.text)).toMatchObject({ code: "metrics_token" });
			expect((await scrape(guarded, { authorization: "Bearer wrong-token-0123456789abcdef" })).status).toBe(401);
			const yes = await scrape(guarded, { authorization: `Bearer ${token}`, "x-forwarded-for": "203.0.113.9" });
			expect(yes.status).toBe(200);
			expect(yes.text).toContain("consentry_people 0");
		} finally {
			await guarded.close();
		}
		const off = await startGateway({ tenants: [acme], env: { CONSENTRY_METRICS: "false" } });
		try {
			expect((await scrape(off)).status).toBe(404);
		} finally {
			await off.close();
		}
	});
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NOTICE_SENT_TYPES, sentNotices } from "../server/audit/notices.js";
import type { Gateway } from "../server/Gateway.js";
import type { JoinResult, NoticeView } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { connect, type RawClient } from "./helpers/signaling.js";
import { type FakeVoskServer, startFakeVosk } from "./helpers/stt-servers.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * A tenant transcribing with its own Vosk servers, one per language: each person's microphone goes to the server
 * of the language they joined with, and the notice everyone answers names the engine.
 */
let vosk: { en: FakeVoskServer; fr: FakeVoskServer };
let bucket: TestBucket;
let gw: Gateway;
const clients: RawClient[] = [];
let hostNotice: NoticeView;
let piaNotice: NoticeView;

beforeAll(async () => {
	vosk = { en: await startFakeVosk("hello"), fr: await startFakeVosk("bonjour") };
	const acme = testTenant("acme", {
		transcriptionEngine: {
			type: "vosk",
			endpoint: vosk.en.endpoint,
			languageCode: "en-US",
			languages: { fr: { endpoint: vosk.fr.endpoint, languageCode: "fr-FR" } },
		},
	});
	bucket = await startBucket("acme-recordings");
	gw = await startGateway({ tenants: [acme], env: storageEnv() });
	await saveStorageTarget(gw, acme, bucket, "rec");
	const m = await api(gw, "POST", "/api/meetings", acme.token("host"), {
		title: "Bilingual",
		settings: { lobby: false },
	});
	const meetingId = m.body.id as string;
	const join = async (token: string, displayName: string, locale: "en" | "fr", ssrc: number) => {
		const c = await connect(gw.url, token);
		clients.push(c);
		const r = (await c.call("join", { meetingId, displayName, locale })) as JoinResult;
		expect(r.status).toBe("joined");
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
		return c;
	};
	const host = await join(acme.token("host"), "Hana", "en", 5001);
	const pia = await join(acme.token("pia", "participant"), "Pia", "fr", 5002);
	const notices = [host.next("captureNotice"), pia.next("captureNotice")];
	await host.call("startCapture", { kind: "transcription" });
	[hostNotice, piaNotice] = (await Promise.all(notices)) as [NoticeView, NoticeView];
	await pia.call("acknowledgeNotice", { noticeId: piaNotice.id });
	await host.call("acknowledgeNotice", { noticeId: hostNotice.id });
});

afterAll(async () => {
	for (const c of clients) c.close();
	await gw?.close();
	await bucket?.stop();
	await vosk?.en.close();
	await vosk?.fr.close();
});

describe("per-person transcription language", () => {
	it("sends each person's microphone to the engine of the language they chose", async () => {
		await waitFor(
			() => vosk.en.connections[0]?.textMessages.length && vosk.fr.connections[0]?.textMessages.length,
			15_000,
			"one stream each, configured",
		);
		expect([vosk.en.connections.length, vosk.fr.connections.length]).toEqual([1, 1]);
		expect(vosk.en.connections[0]?.textMessages[0]).toContain('"sample_rate":16000');
		expect(vosk.fr.connections[0]?.textMessages[0]).toContain('"sample_rate":16000');
	});

	it("names the engine in the notice, in the person's language", async () => {
		const enHost = new URL(vosk.en.endpoint).host;
		const frHost = new URL(vosk.fr.endpoint).host;
		expect(hostNotice.body).toContain(
			`Engine: Vosk, on the organisation's own server (${enHost}, ${frHost}; en-US, fr-FR).`,
		);
		expect(piaNotice.locale).toBe("fr");
		expect(piaNotice.body).toContain("Moteur: Vosk, sur le serveur de l'organisation");
		// The trail records the hash of the exact text shown, engine included.
		const sent = (
			await Promise.all(NOTICE_SENT_TYPES.map((type) => gw.events.list({ tenantId: "acme", type })))
		).flatMap((es) => es.flatMap(sentNotices));
		expect(new Set(sent.map((n) => n.textSha256)).size).toBe(2);
	});
});

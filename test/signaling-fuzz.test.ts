import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { type RequestName, RequestSchemas, type Response } from "../shared/protocol.js";
import { api, startGateway } from "./helpers/gateway.js";
import { connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * A property over every request name: whatever a client sends — random JSON, or a valid request with any of its
 * fields (however deep) replaced by something else — the gateway answers, and never with `internal_error` (a
 * client's mistake is a 4xx code). Run against a real gateway and mediasoup, from a socket that never joined and
 * from a host in a live meeting with real transports, a producer and another person (real IDs to aim at).
 */
/** Fixed for reproducible CI runs; `FUZZ_SEED=<n>` explores elsewhere. */
const SEED = Number(process.env.FUZZ_SEED ?? 20261201);

describe("signaling fuzz: no internal_error for any request", () => {
	const acme = testTenant("acme");
	let gw: Gateway;
	const open: RawClient[] = [];
	let round = 0;

	beforeAll(async () => {
		gw = await startGateway({ tenants: [acme], env: { CONSENTRY_REQUESTS_PER_SOCKET_PER_SECOND: "100000" } });
	});
	afterAll(async () => {
		for (const c of open) c.close();
		await gw?.close();
	});

	const dtls = { role: "client", fingerprints: [{ algorithm: "sha-256", value: "AB:CD:EF" }] };
	const opus = {
		mimeType: "audio/opus",
		payloadType: 100,
		clockRate: 48000,
		channels: 2,
		parameters: { useinbandfec: 1, "sprop-stereo": 1 },
		rtcpFeedback: [{ type: "transport-cc", parameter: "" }],
	};
	const vp8 = { mimeType: "video/VP8", payloadType: 101, clockRate: 90000, rtcpFeedback: [{ type: "nack" }] };

	/** A host in a live meeting (with a participant), real transports and a producer: the IDs requests aim at. */
	async function scene() {
		const host = `fuzz-host-${++round}`;
		const m = await api(gw, "POST", "/api/meetings", acme.token(host), {
			title: "fuzz",
			settings: { lobby: false, allowGuests: true },
		});
		const hostClient = await connect(gw.url, acme.token(host));
		const other = await connect(gw.url, acme.token(`fuzz-p-${round}`, "participant"));
		open.push(hostClient, other);
		const joined = (await hostClient.call("join", { meetingId: m.body.id, displayName: "Host" })) as {
			peerId: string;
		};
		const p = (await other.call("join", { meetingId: m.body.id, displayName: "P" })) as { peerId: string };
		const send = await hostClient.call("createWebRtcTransport", { direction: "send" });
		const recv = await hostClient.call("createWebRtcTransport", { direction: "recv" });
		const { producerId } = await hostClient.call("produce", {
			transportId: send.id,
			kind: "audio",
			source: "mic",
			rtpParameters: { codecs: [opus], encodings: [{ ssrc: 1111 }], rtcp: { cname: "fuzz" } },
		});
		return {
			client: hostClient,
			meetingId: m.body.id as string,
			self: joined.peerId,
			other: p.peerId,
			send,
			recv,
			producerId,
		};
	}

	/** A valid request of each name, aimed at the scene's real objects. */
	/** A valid request of each name; `$…` stand for the current scene's real IDs (filled in when sent). */
	const VALID: Record<RequestName, unknown> = (() => {
		const s = { meetingId: "$MEETING", send: { id: "$SEND" }, producerId: "$PRODUCER", other: "$OTHER" };
		return {
			join: { meetingId: s.meetingId, displayName: "Again", passcode: "x", takeOverHostSeat: true, locale: "fr" },
			createWebRtcTransport: { direction: "recv" },
			connectWebRtcTransport: { transportId: s.send.id, dtlsParameters: dtls },
			setRtpCapabilities: {
				rtpCapabilities: {
					codecs: [
						{ ...opus, kind: "audio", preferredPayloadType: 100 },
						{ ...vp8, kind: "video", preferredPayloadType: 101 },
					],
					headerExtensions: [{ kind: "audio", uri: "urn:ietf:params:rtp-hdrext:sdes:mid", preferredId: 1 }],
				},
			},
			produce: {
				transportId: s.send.id,
				kind: "video",
				source: "camera",
				rtpParameters: {
					mid: "1",
					codecs: [vp8],
					headerExtensions: [{ uri: "urn:ietf:params:rtp-hdrext:sdes:mid", id: 1 }],
					encodings: [{ ssrc: 2222, rid: "r0", scalabilityMode: "L1T3", maxBitrate: 100000 }],
					rtcp: { cname: "fuzz", reducedSize: true },
				},
			},
			closeProducer: { producerId: s.producerId },
			pauseProducer: { producerId: s.producerId },
			resumeProducer: { producerId: s.producerId },
			resumeConsumer: { consumerId: s.producerId },
			viewConsumer: { consumerId: s.producerId, visible: true, spatialLayer: 1 },
			raiseHand: { raised: true },
			lowerHand: { peerId: s.other },
			chat: { text: "hello" },
			admit: { peerId: s.other },
			deny: { peerId: s.other },
			lock: { locked: true },
			mute: { peerId: s.other, kind: "audio" },
			stopScreenShare: { peerId: s.other },
			remove: { peerId: s.other },
			setCoHost: { peerId: s.other, coHost: true },
			endMeeting: {},
			leave: {},
			startCapture: { kind: "transcription" },
			pauseCapture: { kind: "recording" },
			stopCapture: { kind: "transcription" },
			noticeShown: { noticeId: s.producerId },
			acknowledgeNotice: { noticeId: "n" },
			consent: { noticeId: "n" },
			decline: { noticeId: "n" },
			liftPasscodeLockout: {},
			acknowledgeWarning: { warningId: "w1" },
		};
	})();

	type Scene = Awaited<ReturnType<typeof scene>>;
	/** The body with the scene's real IDs in place of `$…`. */
	function fill(body: unknown, sc: Scene): unknown {
		const ids: Record<string, string> = {
			$MEETING: sc.meetingId,
			$SEND: sc.send.id,
			$PRODUCER: sc.producerId,
			$OTHER: sc.other,
		};
		return JSON.parse(JSON.stringify(body) ?? "null", (_k, v) => (typeof v === "string" && v in ids ? ids[v] : v));
	}

	/**
	 * Before each request of some names, the scene is put back where that request does something: a fresh, unconnected
	 * send transport for connect, no camera/screen producer for produce (else every try is only `source_busy` /
	 * `transport_already_connected`). Done on the server's objects directly: set-up, not the thing under test.
	 */
	async function prepare(name: RequestName, sc: Scene): Promise<void> {
		const peer = gw.rooms.get(sc.meetingId)?.peers.get(sc.self);
		if (!peer) return;
		if (name === "produce") for (const p of peer.producers.values()) if (p.appData.source !== "mic") p.close();
		if (name === "connectWebRtcTransport") {
			for (const t of peer.transports.values()) if (t.id !== sc.send.id) t.close();
			sc.send = await sc.client.call("createWebRtcTransport", { direction: "send" });
		}
	}

	/** Any JSON, small. */
	const json = fc.jsonValue({ maxDepth: 3 });
	type Path = (string | number)[];
	/** Every place in a body: each field and element, at every depth. */
	function paths(v: unknown, prefix: Path = []): Path[] {
		if (v === null || typeof v !== "object") return [];
		const entries = Array.isArray(v) ? v.map((x, i) => [i, x] as const) : Object.entries(v);
		return entries.flatMap(([k, x]) => [[...prefix, k], ...paths(x, [...prefix, k])]);
	}
	const DELETE = Symbol("delete");
	const DUPLICATE = Symbol("duplicate");
	/** What goes in a place instead: an edge value, another type, any JSON, nothing, or the same thing twice. */
	const replacement = fc.oneof(
		json,
		fc.integer(),
		fc.integer({ min: -1, max: 300 }),
		fc.double(),
		fc.constantFrom(0, -1, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER, true, null),
		fc.string({ maxLength: 40 }),
		fc.constantFrom("", "audio/opus", "video/VP8", "video/H264", "video/rtx", "S1T3", "L9T9", "recv", "x".repeat(300)),
		fc.array(json, { maxLength: 40 }),
		fc.constant(DELETE),
		fc.constant(DUPLICATE),
	);
	function apply(body: unknown, at: Path, value: unknown): unknown {
		if (at.length === 0) return body;
		const parent = at.slice(0, -1).reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], body) as
			| Record<string | number, unknown>
			| unknown[];
		const key = at.at(-1) as string | number;
		if (value === DELETE) {
			if (Array.isArray(parent)) parent.splice(Number(key), 1);
			else delete parent[key];
		} else if (value === DUPLICATE) {
			if (Array.isArray(parent)) parent.push(structuredClone(parent[Number(key)]));
			else (parent as Record<string, unknown>)[`${String(key)}2`] = structuredClone(parent[key]);
		} else (parent as Record<string | number, unknown>)[key] = value;
		return body;
	}
	/** A valid body, or it with one to three places changed (so most requests get past validation, into handlers). */
	function mutated(base: unknown): fc.Arbitrary<unknown> {
		const places = paths(base);
		if (places.length === 0) return fc.oneof(fc.constant(base), json);
		return fc.oneof(
			{ weight: 1, arbitrary: fc.constant(base) },
			{
				weight: 6,
				arbitrary: fc
					.array(fc.tuple(fc.constantFrom(...places), replacement), { minLength: 1, maxLength: 3 })
					.map((changes) => {
						const body = structuredClone(base);
						for (const [at, value] of changes) {
							try {
								apply(body, at, value);
							} catch {
								// An earlier change removed this place: skip it.
							}
						}
						return body;
					}),
			},
		);
	}

	it("answers every request name, from a scene of real objects, with a code that is never internal_error", async () => {
		let s = await scene();
		const seen = new Map<string, number>();
		for (const name of Object.keys(RequestSchemas) as RequestName[]) {
			const runs =
				(["produce", "setRtpCapabilities", "connectWebRtcTransport", "join"].includes(name) ? 120 : 25) *
				Number(process.env.FUZZ_SCALE ?? 1);
			await fc.assert(
				fc.asyncProperty(
					fc.oneof({ weight: 4, arbitrary: mutated(VALID[name]) }, { weight: 1, arbitrary: json }),
					async (body) => {
						// A request may end the scene (leave, end the meeting, decline…): set a new one up.
						if (!s.client.socket.connected || !gw.rooms.get(s.meetingId)?.peers.has(s.self)) s = await scene();
						await prepare(name, s);
						const r = (await s.client.socket.timeout(5000).emitWithAck(name, fill(body, s))) as Response<RequestName>;
						const code = r.ok ? "ok" : r.error.code;
						if (process.env.FUZZ_DEBUG === name)
							console.log(JSON.stringify(body).slice(0, 400), JSON.stringify(r).slice(0, 400));
						seen.set(`${name}:${code}`, (seen.get(`${name}:${code}`) ?? 0) + 1);
						expect(typeof code).toBe("string");
						expect(code, `${name} ${JSON.stringify(body)?.slice(0, 300)}`).not.toBe("internal_error");
					},
				),
				{ numRuns: runs, seed: SEED + name.length },
			);
		}
		if (process.env.FUZZ_DEBUG === "summary") console.log([...seen].sort().join("\n"));
		// The property reached past validation into the handlers, for every name.
		for (const name of Object.keys(RequestSchemas)) {
			const codes = [...seen.keys()].filter((k) => k.startsWith(`${name}:`));
			expect(
				codes.some((k) => k !== `${name}:invalid_request`),
				`${name}: ${codes.join(" ")}`,
			).toBe(true);
		}
	}, 120_000);

	it("answers every request name from a socket that never joined, never internal_error", async () => {
		const guest = await connect(gw.url);
		open.push(guest);
		for (const name of Object.keys(RequestSchemas) as RequestName[]) {
			await fc.assert(
				fc.asyncProperty(json, async (body) => {
					const r = (await guest.socket.timeout(5000).emitWithAck(name, body)) as Response<RequestName>;
					expect(r.ok ? "ok" : r.error.code).not.toBe("internal_error");
				}),
				{ numRuns: 15, seed: SEED },
			);
		}
	}, 60_000);
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { JoinResult } from "../shared/protocol.js";
import { api, startGateway } from "./helpers/gateway.js";
import { codeOf, connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * The meeting rules of the terms, over the real REST API and real socket.io
 * signaling of a real gateway: one live meeting per host, one host seat, the
 * lobby, guests and passcodes, host controls, chat.
 */
describe("meetings", () => {
	const acme = testTenant("acme");
	const globex = testTenant("globex");
	let gw: Gateway;
	const open: RawClient[] = [];
	const client = async (token?: string) => {
		const c = await connect(gw.url, token);
		open.push(c);
		return c;
	};
	const schedule = async (host: string, body: Record<string, unknown> = {}) => {
		const r = await api(gw, "POST", "/api/meetings", acme.token(host), { title: `${host}'s meeting`, ...body });
		expect(r.status).toBe(201);
		return r.body as { id: string; joinCode: string; joinUrl: string; state: string };
	};

	beforeAll(async () => {
		gw = await startGateway({ tenants: [acme, globex] });
	});

	afterAll(async () => {
		for (const c of open) c.close();
		await gw?.close();
	});

	describe("REST API for hosts", () => {
		it("schedules, lists and reads only the caller's meetings", async () => {
			const m = await schedule("rest-host", { passcode: "58-20-71", settings: { lobby: false, chat: false } });
			expect(m.joinCode).toMatch(/^[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}$/);
			expect(m.joinUrl).toContain(`/?m=${m.joinCode}`);
			expect(m).toMatchObject({ state: "scheduled", hasPasscode: true, settings: { lobby: false, chat: false } });
			expect(JSON.stringify(m)).not.toContain("58-20-71");
			const list = await api(gw, "GET", "/api/meetings", acme.token("rest-host"));
			expect((list.body.meetings as { id: string }[]).map((x) => x.id)).toContain(m.id);
			expect((await api(gw, "GET", `/api/meetings/${m.joinCode}`, acme.token("rest-host"))).status).toBe(200);
			// Another host, another tenant: not found (IDs can't be probed).
			expect((await api(gw, "GET", `/api/meetings/${m.id}`, acme.token("someone-else"))).status).toBe(404);
			expect((await api(gw, "GET", `/api/meetings/${m.id}`, globex.token("rest-host"))).status).toBe(404);
			const pub = await api(gw, "GET", `/api/meetings/${m.id}/public`);
			expect(pub.body).toMatchObject({ needsPasscode: true, state: "scheduled" });
		});

		it("rejects bad bodies and bad callers with reason codes", async () => {
			const bad = await api(gw, "POST", "/api/meetings", acme.token("h"), {
				title: "",
				settings: { maxParticipants: 1 },
			});
			expect(bad.status).toBe(400);
			expect(bad.body.code).toBe("invalid_request");
			expect((bad.body.issues as { path: string }[]).map((i) => i.path).sort()).toEqual([
				"settings.maxParticipants",
				"title",
			]);
			expect((await api(gw, "GET", "/api/meetings")).body.code).toBe("token_missing");
			expect((await api(gw, "GET", "/api/meetings", "garbage")).status).toBe(401);
			const participant = await api(gw, "GET", "/api/meetings", acme.token("p", "participant"));
			expect([participant.status, participant.body.code]).toEqual([403, "host_only"]);
			const notJson = await fetch(`${gw.url}/api/meetings`, {
				method: "POST",
				headers: { authorization: `Bearer ${acme.token("h")}`, "content-type": "application/json" },
				body: "{nope",
			});
			expect(notJson.status).toBe(400);
			expect(JSON.stringify(await notJson.json())).not.toContain("at ");
		});

		it("lets a host hold one live meeting: 100 concurrent starts, exactly one live", async () => {
			const ids: string[] = [];
			for (let i = 0; i < 100; i++) ids.push((await schedule("busy-host")).id);
			const token = acme.token("busy-host");
			const results = await Promise.all(ids.map((id) => api(gw, "POST", `/api/meetings/${id}/start`, token)));
			const ok = results.filter((r) => r.status === 200);
			const conflicts = results.filter((r) => r.status === 409);
			expect(ok).toHaveLength(1);
			expect(conflicts).toHaveLength(99);
			const liveId = ok[0]?.body.id;
			expect(conflicts[0]?.body).toMatchObject({ code: "host_has_live_meeting", liveMeetingId: liveId });
			expect(conflicts[0]?.body.endUrl).toBe(`/api/meetings/${liveId}/end`);
			const list = (await api(gw, "GET", "/api/meetings", token)).body.meetings as { state: string }[];
			expect(list.filter((m) => m.state === "live")).toHaveLength(1);
			expect((await api(gw, "POST", `/api/meetings/${liveId}/end`, token)).body.state).toBe("ended");
			expect((await api(gw, "POST", `/api/meetings/${ids[1]}/start`, token)).status).toBe(200);
		});
	});

	describe("joining", () => {
		it("keeps participants out until the host starts, then through the lobby", async () => {
			const m = await schedule("lobby-host");
			const bob = await client(acme.token("bob", "participant", { name: "Bob" }));
			expect(codeOf(await bob.req("join", { meetingId: m.joinCode }))).toBe("meeting_not_started");

			const host = await client(acme.token("lobby-host", "host", { name: "Hana" }));
			const hj = (await host.call("join", { meetingId: m.joinCode })) as Extract<JoinResult, { status: "joined" }>;
			expect(hj).toMatchObject({ status: "joined", role: "host", meeting: { joinCode: m.joinCode } });

			const lobbyChanged = host.next("lobbyChanged");
			const bj = await bob.call("join", { meetingId: m.joinCode });
			expect(bj.status).toBe("lobby");
			const waiting = (await lobbyChanged).waiting;
			expect(waiting).toEqual([expect.objectContaining({ peerId: bj.peerId, displayName: "Bob", guest: false })]);
			// Only members get room traffic; the lobby can't send media or chat.
			expect(codeOf(await bob.req("createWebRtcTransport", { direction: "recv" }))).toBe("not_joined");
			expect(codeOf(await bob.req("chat", { text: "hi" }))).toBe("not_joined");

			const admitted = bob.next("admitted");
			await host.call("admit", { peerId: bj.peerId });
			await admitted;
			const joined = await bob.call("join", { meetingId: m.joinCode });
			expect(joined).toMatchObject({ status: "joined", role: "participant" });
			expect(gw.rooms.get(m.id)?.peers.size).toBe(2);

			const carol = await client(acme.token("carol", "participant"));
			const cj = await carol.call("join", { meetingId: m.joinCode, displayName: "Carol" });
			const ejected = carol.next("ejected");
			const gone = new Promise((r) => carol.socket.once("disconnect", r));
			await host.call("deny", { peerId: cj.peerId });
			expect((await ejected).reason).toBe("denied");
			await gone;
		});

		it("takes guests with the passcode, into the lobby; refuses them where not allowed", async () => {
			const closed = await schedule("guest-host-1", { passcode: "open-sesame" });
			const m = await schedule("guest-host-2", {
				passcode: "open-sesame",
				settings: { allowGuests: true, lobby: false },
			});
			const host1 = await client(acme.token("guest-host-1"));
			await host1.call("join", { meetingId: closed.id, displayName: "H1" });
			const host2 = await client(acme.token("guest-host-2"));
			await host2.call("join", { meetingId: m.id, displayName: "H2" });
			const guest = await client();
			expect(codeOf(await guest.req("join", { meetingId: closed.id, displayName: "G", passcode: "open-sesame" }))).toBe(
				"guests_not_allowed",
			);
			expect(codeOf(await guest.req("join", { meetingId: m.joinCode, displayName: "G" }))).toBe("wrong_passcode");
			expect(codeOf(await guest.req("join", { meetingId: m.joinCode, displayName: "G", passcode: "nope" }))).toBe(
				"wrong_passcode",
			);
			const gj = await guest.call("join", {
				meetingId: m.joinCode.toUpperCase(),
				displayName: "G",
				passcode: "open-sesame",
			});
			expect(gj.status).toBe("lobby"); // guests always wait, even with the lobby off
			expect(codeOf(await guest.req("join", { meetingId: "zzzz-zzzz-zzzz", displayName: "G" }))).toBe(
				"meeting_not_found",
			);
		});

		it("refuses newcomers to a locked meeting, and removed persons for good", async () => {
			const m = await schedule("lock-host", { settings: { lobby: false } });
			const host = await client(acme.token("lock-host"));
			await host.call("join", { meetingId: m.id, displayName: "H" });
			const dave = await client(acme.token("dave", "participant"));
			const dj = await dave.call("join", { meetingId: m.id, displayName: "Dave" });
			expect(dj.status).toBe("joined");
			const daveLocked = dave.next("meetingLocked");
			await host.call("lock", { locked: true });
			expect(await daveLocked).toEqual({ locked: true });
			const erin = await client(acme.token("erin", "participant"));
			expect(codeOf(await erin.req("join", { meetingId: m.id, displayName: "Erin" }))).toBe("meeting_locked");
			await host.call("lock", { locked: false });
			expect((await erin.call("join", { meetingId: m.id, displayName: "Erin" })).status).toBe("joined");

			expect(codeOf(await dave.req("remove", { peerId: host.socket.id }))).toBe("host_only");
			const ejected = dave.next("ejected");
			await host.call("remove", { peerId: dj.peerId });
			expect((await ejected).reason).toBe("removed");
			const daveAgain = await client(acme.token("dave", "participant"));
			expect(codeOf(await daveAgain.req("join", { meetingId: m.id, displayName: "Dave" }))).toBe("removed");
		});

		it("gives a host one seat: a second connection is refused, then takes it over", async () => {
			const m = await schedule("seat-host", { settings: { lobby: false } });
			const first = await client(acme.token("seat-host"));
			await first.call("join", { meetingId: m.id, displayName: "Phone" });
			const second = await client(acme.token("seat-host"));
			const refused = await second.req("join", { meetingId: m.id, displayName: "Laptop" });
			expect(codeOf(refused)).toBe("host_seat_taken");
			const ejected = first.next("ejected");
			const taken = await second.call("join", { meetingId: m.id, displayName: "Laptop", takeOverHostSeat: true });
			expect(taken).toMatchObject({ status: "joined", role: "host" });
			expect((await ejected).reason).toBe("host_seat_taken_over");
			// Even where the old connection can't be reached (another gateway process), it has lost host controls:
			// simulate by moving the seat behind this process's back.
			await gw.seats.takeOver(acme.id, "seat-host", "elsewhere:socket", m.id);
			expect(codeOf(await second.req("lock", { locked: true }))).toBe("host_seat_taken_over");
			await gw.seats.takeOver(acme.id, "seat-host", `test:${second.socket.id}`, m.id);
			expect(codeOf(await second.req("lock", { locked: false }))).toBe("ok");
			const events = (await api(gw, "GET", `/api/meetings/${m.id}/events`, acme.token("seat-host"))).body.events as {
				type: string;
			}[];
			expect(events.map((e) => e.type)).toEqual(
				expect.arrayContaining(["meeting.started", "host_seat.taken", "host_seat.refused", "host_seat.taken_over"]),
			);
			// The seat spans meetings: the same host can't sit in a second meeting from a third device.
			const other = await schedule("seat-host");
			const third = await client(acme.token("seat-host"));
			expect(codeOf(await third.req("join", { meetingId: other.id, displayName: "Tablet" }))).toBe(
				"host_has_live_meeting",
			);
		});

		it("refuses newcomers beyond the meeting's capacity (the lobby takes no seat: test/lobby.test.ts)", async () => {
			const m = await schedule("full-host", { settings: { maxParticipants: 2, lobby: false } });
			const host = await client(acme.token("full-host"));
			await host.call("join", { meetingId: m.id, displayName: "H" });
			const one = await client(acme.token("one", "participant"));
			expect((await one.call("join", { meetingId: m.id, displayName: "One" })).status).toBe("joined");
			const two = await client(acme.token("two", "participant"));
			expect(codeOf(await two.req("join", { meetingId: m.id, displayName: "Two" }))).toBe("meeting_full");
		});

		it("scopes tokens to their tenant and meeting", async () => {
			const m = await schedule("scope-host", { settings: { lobby: false } });
			const host = await client(acme.token("scope-host"));
			await host.call("join", { meetingId: m.id, displayName: "H" });
			const foreign = await client(globex.token("frank", "participant"));
			expect(codeOf(await foreign.req("join", { meetingId: m.id, displayName: "F" }))).toBe("wrong_tenant");
			const scoped = await client(acme.token("gina", "participant", { meeting: "aaaaaaaaaaaa" }));
			expect(codeOf(await scoped.req("join", { meetingId: m.id, displayName: "G" }))).toBe("token_wrong_meeting");
		});
	});

	describe("in the meeting", () => {
		it("delivers chat to the others, within limits, and honours chat off and host-only screen share", async () => {
			const m = await schedule("chat-host", { settings: { lobby: false, screenShare: "host" } });
			const host = await client(acme.token("chat-host"));
			await host.call("join", { meetingId: m.id, displayName: "Host" });
			const ivy = await client(acme.token("ivy", "participant"));
			await ivy.call("join", { meetingId: m.id, displayName: "Ivy" });
			const got = host.next("chatMessage");
			await ivy.call("chat", { text: "hello there" });
			expect(await got).toMatchObject({ displayName: "Ivy", text: "hello there" });
			const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => ivy.req("chat", { text: `m${i}` })));
			expect(burst.filter((r) => codeOf(r) === "rate_limited").length).toBeGreaterThan(0);

			const t = await ivy.call("createWebRtcTransport", { direction: "send" });
			const screen = await ivy.req("produce", {
				transportId: t.id,
				kind: "video",
				source: "screen",
				rtpParameters: {
					codecs: [{ mimeType: "video/VP8", payloadType: 96, clockRate: 90000 }],
					encodings: [{ ssrc: 1 }],
				},
			});
			expect(codeOf(screen)).toBe("screen_share_not_allowed");

			const quiet = await schedule("quiet-host", { settings: { lobby: false, chat: false } });
			const qh = await client(acme.token("quiet-host"));
			await qh.call("join", { meetingId: quiet.id, displayName: "Q" });
			expect(codeOf(await qh.req("chat", { text: "hi" }))).toBe("chat_disabled");
		});

		it("lets a member who dropped out come straight back, past the lobby and the lock", async () => {
			const m = await schedule("grace-host");
			const host = await client(acme.token("grace-host"));
			await host.call("join", { meetingId: m.id, displayName: "Host" });
			const lee = await client(acme.token("lee", "participant"));
			const lj = await lee.call("join", { meetingId: m.id, displayName: "Lee" });
			expect(lj.status).toBe("lobby");
			const admitted = lee.next("admitted");
			await host.call("admit", { peerId: lj.peerId });
			await admitted;
			expect((await lee.call("join", { meetingId: m.id })).status).toBe("joined");
			await host.call("lock", { locked: true });
			const left = host.next("peerLeft");
			lee.close(); // network drop
			await left;
			const back = await client(acme.token("lee", "participant"));
			expect((await back.call("join", { meetingId: m.id, displayName: "Lee" })).status).toBe("joined");
			const stranger = await client(acme.token("max", "participant"));
			expect(codeOf(await stranger.req("join", { meetingId: m.id, displayName: "Max" }))).toBe("meeting_locked");
		});

		it("tells everyone to reconnect when the meeting's media worker dies, then lets them rejoin", async () => {
			const m = await schedule("crash-host");
			const host = await client(acme.token("crash-host"));
			await host.call("join", { meetingId: m.id, displayName: "Host" });
			const nia = await client(acme.token("nia", "participant"));
			const nj = await nia.call("join", { meetingId: m.id, displayName: "Nia" });
			const admitted = nia.next("admitted");
			await host.call("admit", { peerId: nj.peerId });
			await admitted;
			await nia.call("join", { meetingId: m.id });
			const pid = gw.pool.workers[0]?.pid as number;
			const told = [host.next("reconnect"), nia.next("reconnect")];
			const restarted = new Promise((r) => gw.pool.once("workerrestarted", r));
			process.kill(pid, "SIGKILL");
			expect((await Promise.all(told)).map((e) => e.reason)).toEqual([
				"media_worker_restarted",
				"media_worker_restarted",
			]);
			await restarted;
			expect(gw.pool.workers[0]?.pid).not.toBe(pid);
			expect((await host.call("join", { meetingId: m.id })).status).toBe("joined");
			expect((await nia.call("join", { meetingId: m.id })).status).toBe("joined"); // no second trip through the lobby
			expect(gw.rooms.get(m.id)?.peers.size).toBe(2);
		});

		it("ends the meeting for everyone", async () => {
			const m = await schedule("end-host", { settings: { lobby: false } });
			const host = await client(acme.token("end-host"));
			await host.call("join", { meetingId: m.id, displayName: "Host" });
			const jo = await client(acme.token("jo", "participant"));
			await jo.call("join", { meetingId: m.id, displayName: "Jo" });
			const ejected = jo.next("ejected");
			await host.call("endMeeting", {});
			expect((await ejected).reason).toBe("meeting_ended");
			expect((await gw.store.get(m.id)).state).toBe("ended");
			expect(gw.rooms.get(m.id)).toBeUndefined();
			const late = await client(acme.token("kim", "participant"));
			expect(codeOf(await late.req("join", { meetingId: m.id, displayName: "Kim" }))).toBe("meeting_not_started");
		});
	});
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { JoinResult, LobbyEntry } from "../shared/protocol.js";
import { api, startGateway } from "./helpers/gateway.js";
import { codeOf, connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * Lobby squatting: people waiting in the lobby never take a seat in the meeting, the lobby has its own cap with a
 * clear error, and the host sees who waits.
 */
describe("the lobby never takes a seat", () => {
	const acme = testTenant("acme");
	let gw: Gateway;
	const open: RawClient[] = [];
	const client = async (token?: string) => {
		const c = await connect(gw.url, token);
		open.push(c);
		return c;
	};

	beforeAll(async () => {
		gw = await startGateway({ tenants: [acme], env: { CONSENTRY_LOBBY_MAX: "3" } });
	});
	afterAll(async () => {
		for (const c of open) c.close();
		await gw?.close();
	});

	it("lets invited people in past a full lobby, refuses the 4th waiting guest with lobby_full, and shows the host who waits", async () => {
		const m = await api(gw, "POST", "/api/meetings", acme.token("hana"), {
			title: "squatted",
			settings: { allowGuests: true, lobby: false, maxParticipants: 3 },
		});
		const id = m.body.id as string;
		const host = await client(acme.token("hana"));
		const joined = (await host.call("join", { meetingId: id, displayName: "Hana" })) as JoinResult & {
			status: "joined";
		};
		expect(joined.lobby).toEqual([]);

		// Three tokenless guests wait in the lobby: the lobby is full, the meeting is not.
		const guests = [];
		for (let i = 0; i < 3; i++) {
			const g = await client();
			const changed = host.next("lobbyChanged");
			expect((await g.call("join", { meetingId: id, displayName: `Guest ${i}` })).status).toBe("lobby");
			expect((await changed).waiting).toHaveLength(i + 1);
			guests.push(g);
		}
		const fourth = await client();
		const refused = await fourth.req("join", { meetingId: id, displayName: "Guest 3" });
		expect(codeOf(refused)).toBe("lobby_full");
		expect(!refused.ok && refused.error.message).toMatch(/waiting/);

		// Invited participants take the seats: 3 = host + 2, whatever waits in the lobby.
		const p1 = await client(acme.token("p1", "participant"));
		const p2 = await client(acme.token("p2", "participant"));
		expect((await p1.call("join", { meetingId: id, displayName: "P1" })).status).toBe("joined");
		const seen = (await p2.call("join", { meetingId: id, displayName: "P2" })) as { status: string };
		expect(seen.status).toBe("joined");
		const p3 = await client(acme.token("p3", "participant"));
		expect(codeOf(await p3.req("join", { meetingId: id, displayName: "P3" }))).toBe("meeting_full");

		// The host sees who waits (a fresh host view, e.g. after a reload, lists them too)…
		const again = await client(acme.token("hana"));
		const view = (await again.call("join", { meetingId: id, displayName: "Hana", takeOverHostSeat: true })) as {
			lobby: LobbyEntry[];
		};
		expect(view.lobby.map((e) => [e.displayName, e.guest])).toEqual([
			["Guest 0", true],
			["Guest 1", true],
			["Guest 2", true],
		]);
		// …and can't let anyone in while the meeting is full.
		const admit = await again.req("admit", { peerId: view.lobby[0]?.peerId });
		expect(codeOf(admit)).toBe("meeting_full");
		p2.close();
		await new Promise((r) => setTimeout(r, 300));
		expect(codeOf(await again.req("admit", { peerId: view.lobby[0]?.peerId }))).toBe("ok");
	});
});

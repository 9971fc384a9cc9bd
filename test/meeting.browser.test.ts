import jwt from "jsonwebtoken";
import type { Locator, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { Peer } from "../server/sfu/Peer.js";
import type { Room } from "../server/sfu/Room.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { AUDIENCE, testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * The meeting client as people use it, in headless Chromium against the real gateway and
 * mediasoup worker: joining (tokens, guests, passcodes, lobby), media between three people,
 * screen sharing, chat, the host's controls and every refusal screen. Tests read the page's DOM
 * and the server's real state; the page exposes nothing for them.
 */
const tenant = testTenant();
let gateway: Gateway;
let chrome: LaunchedBrowser;
let hostCount = 0;

beforeAll(async () => {
	gateway = await startGateway({ tenants: [tenant] });
	chrome = await launchChromium();
});

afterAll(async () => {
	await chrome?.close();
	await gateway?.close();
});

// Helpers ---------------------------------------------------------------------------------------------------------

interface Scheduled {
	id: string;
	joinCode: string;
	/** The host's subject and token. */
	host: string;
	hostToken: string;
}

/** Schedules a meeting for a fresh host (each host may hold one live meeting). */
async function schedule(settings: Record<string, unknown> = {}, passcode?: string): Promise<Scheduled> {
	const host = `host-${++hostCount}`;
	const hostToken = tenant.token(host);
	const res = await api(gateway, "POST", "/api/meetings", hostToken, {
		title: `Meeting of ${host}`,
		settings,
		...(passcode ? { passcode } : {}),
	});
	expect(res.status).toBe(201);
	return { id: res.body.id as string, joinCode: res.body.joinCode as string, host, hostToken };
}

/** Every page a test opened, closed after it; uncaught page errors fail the test. */
const openPages: Page[] = [];
const pageErrors: string[] = [];

/** What a page shows, for failure reports: the visible screen, its error code, status and notices. */
async function pageState(page: Page): Promise<string> {
	return page
		.evaluate(() => {
			const screen = Array.from(document.querySelectorAll<HTMLElement>("[data-testid$='-screen']")).find(
				(s) => !s.hidden,
			);
			const notices = Array.from(document.querySelectorAll("#notices li")).map((n) => n.textContent);
			return `${screen?.dataset.testid} ${screen?.dataset.code ?? ""} status="${document.querySelector("#status")?.textContent}" notices=${JSON.stringify(notices)}`;
		})
		.catch((err: unknown) => `unreadable: ${String(err)}`);
}

const allPages = () => [...openPages, ...threePages];
let threePages: Page[] = [];

afterEach(async (ctx) => {
	if (ctx.task.result?.state === "fail") {
		for (const page of allPages()) console.error(`page ${page.url()}: ${await pageState(page)}`);
	}
	await Promise.all(openPages.splice(0).map((p) => p.close().catch(() => undefined)));
	expect(pageErrors.splice(0)).toEqual([]);
});

interface OpenOptions {
	name: string;
	token?: string;
	/** Join with camera and microphone (default) or switch both off on the device check first. */
	media?: boolean;
	passcode?: string;
}

/**
 * Opens the meeting link as a person would: `?m=<code>&name=<name>`, token in the URL fragment.
 * The page closes after the test unless `perTest` is false.
 */
async function open(joinCode: string, o: OpenOptions, perTest = true): Promise<Page> {
	const page = await chrome.browser.newPage();
	if (perTest) openPages.push(page);
	page.on("pageerror", (err) => pageErrors.push(`${o.name}: ${err.message}`));
	const q = new URLSearchParams({ m: joinCode, name: o.name });
	await page.goto(`${gateway.url}/?${q}${o.token ? `#token=${o.token}` : ""}`);
	if (o.media === false) {
		await page.getByLabel("Camera on").uncheck();
		await page.getByLabel("Microphone on").uncheck();
	}
	if (o.passcode !== undefined) {
		await page.getByLabel("Passcode", { exact: true }).fill(o.passcode);
	}
	return page;
}

async function pressJoin(page: Page): Promise<void> {
	await page.getByRole("button", { name: "Join", exact: true }).click();
}

/** Opens the link, presses Join and waits until the meeting screen says Connected. */
async function joinMeeting(joinCode: string, o: OpenOptions): Promise<Page> {
	const page = await open(joinCode, o);
	await pressJoin(page);
	await connected(page);
	return page;
}

async function connected(page: Page): Promise<void> {
	await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
}

/** The error screen with this code; returns it once visible. */
async function errorScreen(page: Page, code: string): Promise<Locator> {
	const screen = page.locator(`[data-testid="error-screen"][data-code="${code}"]`);
	await screen.waitFor({ timeout: 15_000 });
	return screen;
}

function room(meetingId: string): Room {
	const r = gateway.rooms.get(meetingId);
	if (!r) throw new Error(`no room for ${meetingId}`);
	return r;
}

async function peerNamed(meetingId: string, name: string): Promise<Peer> {
	return waitFor(
		() => [...(gateway.rooms.get(meetingId)?.peers.values() ?? [])].find((p) => p.displayName === name),
		10_000,
		`${name} in the room`,
	);
}

const producerOf = (peer: Peer, source: string) =>
	[...peer.producers.values()].find((p) => p.appData.source === source);

function tile(page: Page, peerId: string, source: "camera" | "screen" = "camera"): Locator {
	return page.locator(`[data-peer="${peerId}"][data-source="${source}"]`);
}

/** Waits until the tile's video element renders frames. */
async function plays(page: Page, peerId: string, source: "camera" | "screen", what: string): Promise<void> {
	await waitFor(
		() =>
			tile(page, peerId, source)
				.locator("video")
				.evaluate((v: HTMLVideoElement) => v.videoWidth > 0),
		20_000,
		what,
	);
}

function participantRow(page: Page, peerId: string): Locator {
	return page.getByTestId("participants").locator(`[data-peer="${peerId}"]`);
}

// Tests -----------------------------------------------------------------------------------------------------------

describe("a meeting of three (lobby off)", () => {
	let m: Scheduled;
	let host: Page;
	let bob: Page;
	let carol: Page;
	let ids: { host: string; bob: string; carol: string };

	beforeAll(async () => {
		m = await schedule({ lobby: false, screenShare: "all" });
		// These pages live for the whole describe (each test goes on from the previous one's state).
		const person = async (name: string, token: string) => {
			const page = await open(m.joinCode, { name, token }, false);
			await pressJoin(page);
			await connected(page);
			return page;
		};
		host = await person("Hana", m.hostToken);
		// Bob and Carol join at the same moment.
		[bob, carol] = await Promise.all([
			person("Bob", tenant.token("bob", "participant")),
			person("Carol", tenant.token("carol", "participant")),
		]);
		threePages = [host, bob, carol];
		ids = {
			host: (await peerNamed(m.id, "Hana")).id,
			bob: (await peerNamed(m.id, "Bob")).id,
			carol: (await peerNamed(m.id, "Carol")).id,
		};
	});

	afterAll(async () => {
		threePages = [];
		await Promise.all([host, bob, carol].map((p) => p?.close().catch(() => undefined)));
	});

	it("keeps the token out of the address bar", async () => {
		expect(new URL(host.url()).hash).toBe("");
		expect(new URL(host.url()).searchParams.get("m")).toBe(m.joinCode);
	});

	it("each person receives the others' audio and video and plays it", async () => {
		const r = room(m.id);
		expect(r.peers.size).toBe(3);
		for (const peer of r.peers.values()) {
			await waitFor(() => peer.producers.size === 2, 15_000, `${peer.displayName} sends mic and camera`);
		}
		// On the server: every person consumes each producer of both others, and RTP flows out.
		for (const peer of r.peers.values()) {
			const others = [...r.peers.values()].filter((p) => p !== peer).flatMap((p) => [...p.producers.keys()]);
			expect(others).toHaveLength(4);
			// Exactly one consumer per producer (Bob and Carol joined at the same moment), each resumed by the page.
			const live = () => [...peer.consumers.values()].filter((c) => !c.paused);
			await waitFor(
				() => others.every((id) => live().filter((c) => c.producerId === id).length === 1),
				15_000,
				`${peer.displayName} receives the others' 4 producers`,
			);
			expect(live()).toHaveLength(4);
			expect(peer.consumers.size).toBe(4);
			for (const c of live()) {
				await waitFor(
					async () => (await c.getStats()).some((s) => s.type === "outbound-rtp" && s.packetCount > 0),
					15_000,
					`${c.kind} forwarded to ${peer.displayName}`,
				);
			}
		}
		// In each page: the others' tiles render video and carry their audio.
		const pages = { host, bob, carol };
		for (const [me, page] of Object.entries(pages)) {
			for (const [other, id] of Object.entries(ids)) {
				if (other === me) continue;
				await plays(page, id, "camera", `${me} plays ${other}'s video`);
				const kinds = await tile(page, id)
					.locator("video")
					.evaluate((v: HTMLVideoElement) =>
						(v.srcObject as MediaStream)
							.getTracks()
							.map((t) => t.kind)
							.sort(),
					);
				expect(kinds).toEqual(["audio", "video"]);
			}
			await expect(page.getByTestId("participants").locator("li").count()).resolves.toBe(3);
		}
		// Roles are shown; host controls only to the host.
		await expect(participantRow(bob, ids.host).getByText("Host").count()).resolves.toBe(1);
		await expect(participantRow(bob, ids.carol).getByRole("button", { name: "Remove" }).count()).resolves.toBe(0);
		await expect(participantRow(host, ids.carol).getByRole("button", { name: "Remove" }).count()).resolves.toBe(1);
	});

	it("highlights the active speaker", async () => {
		// Chromium's fake microphones beep; the server's speaker observer names one of them.
		await waitFor(async () => (await host.locator("[data-speaking]").count()) > 0, 15_000, "a highlighted tile");
	});

	it("mutes and unmutes the microphone, turns the camera off and on", async () => {
		const bobPeer = await peerNamed(m.id, "Bob");
		await bob.getByRole("button", { name: "Mute microphone" }).click();
		await bob.getByRole("button", { name: "Unmute microphone" }).waitFor();
		await waitFor(() => producerOf(bobPeer, "mic")?.paused, 5000, "mic producer paused");
		await tile(host, ids.bob).and(host.locator("[data-mic-off]")).waitFor();
		await bob.getByRole("button", { name: "Unmute microphone" }).click();
		await waitFor(() => producerOf(bobPeer, "mic")?.paused === false, 5000, "mic producer resumed");
		await tile(host, ids.bob).and(host.locator(":not([data-mic-off])")).waitFor();

		await bob.getByRole("button", { name: "Turn camera off" }).click();
		await bob.getByRole("button", { name: "Turn camera on" }).waitFor();
		await waitFor(() => producerOf(bobPeer, "camera")?.paused, 5000, "camera producer paused");
		await tile(carol, ids.bob).and(carol.locator("[data-video-off]")).waitFor();
		// The camera itself is released: Bob's own tile shows no video any more.
		expect(
			await tile(bob, ids.bob)
				.locator("video")
				.evaluate((v: HTMLVideoElement) => v.srcObject),
		).toBeNull();
		await bob.getByRole("button", { name: "Turn camera on" }).click();
		await waitFor(() => producerOf(bobPeer, "camera")?.paused === false, 5000, "camera producer resumed");
		await tile(carol, ids.bob).and(carol.locator(":not([data-video-off])")).waitFor();
		await plays(carol, ids.bob, "camera", "Carol sees Bob's camera again");
	});

	it("lets the host mute a person's audio and video; the person is told", async () => {
		const carolPeer = await peerNamed(m.id, "Carol");
		await participantRow(host, ids.carol).getByRole("button", { name: "Mute audio" }).click();
		await carol.getByText("The host muted your microphone").waitFor();
		await carol.getByRole("button", { name: "Unmute microphone" }).waitFor();
		expect(producerOf(carolPeer, "mic")?.paused).toBe(true);
		await participantRow(host, ids.carol).getByRole("button", { name: "Mute video" }).click();
		await carol.getByText("The host turned your camera off").waitFor();
		await carol.getByRole("button", { name: "Turn camera on" }).waitFor();
		expect(producerOf(carolPeer, "camera")?.paused).toBe(true);
		await tile(bob, ids.carol).and(bob.locator("[data-video-off][data-mic-off]")).waitFor();
		// The person may turn them back on.
		await carol.getByRole("button", { name: "Unmute microphone" }).click();
		await carol.getByRole("button", { name: "Turn camera on" }).click();
		await waitFor(() => producerOf(carolPeer, "camera")?.paused === false, 5000, "Carol's camera back");
		await waitFor(() => producerOf(carolPeer, "mic")?.paused === false, 5000, "Carol's mic back");
	});

	it("shows a shared screen to the others as its own tile; stopping removes it", async () => {
		const bobPeer = await peerNamed(m.id, "Bob");
		await bob.getByRole("button", { name: "Share screen" }).click();
		await bob.getByRole("button", { name: "Stop sharing" }).waitFor();
		const screen = await waitFor(() => producerOf(bobPeer, "screen"), 20_000, "screen producer");
		expect(screen.kind).toBe("video");
		await plays(host, ids.bob, "screen", "host sees Bob's screen");
		await plays(carol, ids.bob, "screen", "Carol sees Bob's screen");
		await expect(tile(carol, ids.bob, "screen").getByText("Bob's screen").count()).resolves.toBe(1);
		await participantRow(host, ids.bob).getByText("Sharing screen").waitFor();

		// Bob stops: the producer closes, the tiles go.
		await bob.getByRole("button", { name: "Stop sharing" }).click();
		await waitFor(() => !producerOf(bobPeer, "screen"), 5000, "screen producer closed");
		await tile(carol, ids.bob, "screen").waitFor({ state: "detached" });

		// The host stops a share from the participant list.
		await carol.getByRole("button", { name: "Share screen" }).click();
		const carolPeer = await peerNamed(m.id, "Carol");
		await waitFor(() => producerOf(carolPeer, "screen"), 20_000, "Carol's screen producer");
		await plays(bob, ids.carol, "screen", "Bob sees Carol's screen");
		await participantRow(host, ids.carol).getByRole("button", { name: "Stop screen share" }).click();
		await waitFor(() => !producerOf(carolPeer, "screen"), 5000, "Carol's screen producer closed by the host");
		await tile(bob, ids.carol, "screen").waitFor({ state: "detached" });
		await tile(host, ids.carol, "screen").waitFor({ state: "detached" });
		// Carol is told: her button resets and her capture stops.
		await carol.getByText("The host stopped your screen share.").waitFor();
		await carol.getByRole("button", { name: "Share screen" }).waitFor();
	});

	it("delivers chat to everyone, limits length, and shows the rate limit", async () => {
		const box = bob.getByLabel("Message");
		await box.fill("Hello from Bob <b>not bold</b>");
		await box.press("Enter");
		for (const page of [host, carol, bob]) {
			const line = page.getByTestId("chat-log").locator(`li[data-peer="${ids.bob}"]`).last();
			await line.waitFor();
			await expect(line.locator(".text").textContent()).resolves.toBe("Hello from Bob <b>not bold</b>");
			await expect(line.locator("b").count()).resolves.toBe(0); // text, never HTML
		}
		await expect(box.inputValue()).resolves.toBe("");
		// 2000 characters at most: the box does not take more.
		await carol.getByLabel("Message").fill("x".repeat(2100));
		await expect(carol.getByLabel("Message").evaluate((t: HTMLTextAreaElement) => t.maxLength)).resolves.toBe(2000);
		await carol.getByLabel("Message").fill("");
		// The gateway accepts 5 messages in a burst, then 1 per second. Eight Enter presses in one go
		// (dispatched in the page: typing them one by one can be slower than the refill on a busy machine).
		await box.evaluate((t: HTMLTextAreaElement) => {
			for (let i = 0; i < 8; i++) {
				t.value = `burst ${i}`;
				t.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
			}
		});
		await bob.getByText("You are sending messages too fast").waitFor();
		const delivered = await host.getByTestId("chat-log").locator(`li[data-peer="${ids.bob}"]`).count();
		expect(delivered).toBeGreaterThanOrEqual(5);
		expect(delivered).toBeLessThan(9);
	});

	it("lets the host lock the meeting: a newcomer is refused", async () => {
		await host.getByRole("button", { name: "Lock meeting" }).click();
		await host.getByRole("button", { name: "Unlock meeting" }).waitFor();
		await bob.getByText("Locked", { exact: true }).waitFor();
		expect((await gateway.store.get(m.id)).locked).toBe(true);
		const dan = await open(m.joinCode, { name: "Dan", token: tenant.token("dan", "participant"), media: false });
		await pressJoin(dan);
		const refused = await errorScreen(dan, "meeting_locked");
		await refused.getByText("The host locked this meeting").waitFor();
		expect(room(m.id).peers.size).toBe(3);
		// Unlocked, Dan's "Try again" gets him in.
		await host.getByRole("button", { name: "Unlock meeting" }).click();
		await waitFor(async () => !(await gateway.store.get(m.id)).locked, 5000, "unlocked");
		await refused.getByRole("button", { name: "Try again" }).click();
		await connected(dan);
		expect(room(m.id).peers.size).toBe(4);
	});

	it("lets the host end the meeting for all", async () => {
		await host.getByRole("button", { name: "End meeting for all" }).click();
		await host.getByRole("dialog").getByRole("button", { name: "End meeting" }).click();
		for (const page of [host, bob, carol]) {
			await (await errorScreen(page, "meeting_ended")).getByText("The host ended the meeting").waitFor();
		}
		await waitFor(() => gateway.rooms.get(m.id) === undefined, 10_000, "room closed");
		expect((await gateway.store.get(m.id)).state).toBe("ended");
	});
});

describe("joining rules", () => {
	it("lobby: a participant waits until the host admits them; another one is denied", async () => {
		const m = await schedule(); // lobby on by default
		const host = await joinMeeting(m.joinCode, { name: "Hana", token: m.hostToken, media: false });
		const dora = await open(m.joinCode, { name: "Dora", token: tenant.token("dora", "participant"), media: false });
		await pressJoin(dora);
		await dora.getByTestId("lobby-screen").getByText("Waiting for the host to let you in…").waitFor();
		expect(room(m.id).peers.size).toBe(1);

		const lobby = host.getByTestId("lobby-list");
		await lobby.getByText("Dora").waitFor();
		await host.getByText("Dora is waiting in the lobby").waitFor();
		await lobby.getByRole("button", { name: "Admit Dora" }).click();
		await connected(dora);
		const doraPeer = await peerNamed(m.id, "Dora");
		await participantRow(host, doraPeer.id).waitFor();
		await lobby.getByText("Dora").waitFor({ state: "detached" });

		const eve = await open(m.joinCode, { name: "Eve", token: tenant.token("eve", "participant"), media: false });
		await pressJoin(eve);
		await eve.getByTestId("lobby-screen").waitFor();
		await lobby.getByRole("button", { name: "Deny Eve" }).click();
		const denied = await errorScreen(eve, "denied");
		await denied.getByText("The host did not let you in").first().waitFor();
		expect([...room(m.id).peers.values()].map((p) => p.displayName).sort()).toEqual(["Dora", "Hana"]);

		// Dora leaves, then rejoins: a new connection goes through the lobby again.
		await dora.getByRole("button", { name: "Leave", exact: true }).click();
		await dora.getByTestId("left-screen").getByRole("heading", { name: "You left the meeting" }).waitFor();
		await waitFor(() => room(m.id).peers.size === 1, 5000, "Dora out of the room");
		await participantRow(host, doraPeer.id).waitFor({ state: "detached" });
		await dora.getByRole("button", { name: "Rejoin" }).click();
		await dora.getByTestId("lobby-screen").waitFor();
		await lobby.getByRole("button", { name: "Admit Dora" }).waitFor();
	});

	it("a removed participant is out and cannot rejoin", async () => {
		const m = await schedule({ lobby: false });
		const host = await joinMeeting(m.joinCode, { name: "Hana", token: m.hostToken, media: false });
		const frankToken = tenant.token("frank", "participant");
		const frank = await joinMeeting(m.joinCode, { name: "Frank", token: frankToken, media: false });
		const frankPeer = await peerNamed(m.id, "Frank");
		await participantRow(host, frankPeer.id).getByRole("button", { name: "Remove" }).click();
		await host.getByRole("dialog").getByRole("button", { name: "Remove" }).click();
		await (await errorScreen(frank, "removed")).getByText("The host removed you").waitFor();
		await waitFor(() => room(m.id).peers.size === 1, 5000, "Frank out of the room");
		expect(frankPeer.closed).toBe(true);
		await participantRow(host, frankPeer.id).waitFor({ state: "detached" });

		// A new tab, same person: refused.
		const again = await open(m.joinCode, { name: "Frank", token: frankToken, media: false });
		await pressJoin(again);
		await (await errorScreen(again, "removed")).getByText("you cannot rejoin").waitFor();
		expect(room(m.id).peers.size).toBe(1);
	});

	it("a host with a live meeting cannot start a second one (REST 409 naming it, and in the page)", async () => {
		const first = await schedule({ lobby: false });
		await joinMeeting(first.joinCode, { name: "Hana", token: first.hostToken, media: false }); // joining starts it
		expect((await gateway.store.get(first.id)).state).toBe("live");
		const res = await api(gateway, "POST", "/api/meetings", first.hostToken, { title: "Second" });
		expect(res.status).toBe(201);
		const second = res.body as { id: string; joinCode: string };
		const start = await api(gateway, "POST", `/api/meetings/${second.id}/start`, first.hostToken);
		expect(start.status).toBe(409);
		expect(start.body.code).toBe("host_has_live_meeting");
		expect(start.body.liveMeetingId).toBe(first.id);
		expect(String(start.body.message)).toContain(`Meeting of ${first.host}`);
		// The host opening the second meeting's link sees why.
		const page = await open(second.joinCode, { name: "Hana", token: first.hostToken, media: false });
		await pressJoin(page);
		await (await errorScreen(page, "host_has_live_meeting")).getByText(`Meeting of ${first.host}`).waitFor();
		expect((await gateway.store.get(second.id)).state).toBe("scheduled");
	});

	it("a second host connection is refused, then takes the seat over; the first one is told", async () => {
		const m = await schedule({ lobby: false });
		const laptop = await joinMeeting(m.joinCode, { name: "Hana", token: m.hostToken, media: false });
		const laptopPeer = await peerNamed(m.id, "Hana");
		const phone = await open(m.joinCode, { name: "Hana", token: m.hostToken, media: false });
		await pressJoin(phone);
		const taken = await errorScreen(phone, "host_seat_taken");
		await taken.getByText("in use on another device").waitFor();
		expect(room(m.id).peers.size).toBe(1);

		await taken.getByRole("button", { name: "Take over here" }).click();
		await connected(phone);
		await (await errorScreen(laptop, "host_seat_taken_over")).getByText("took over your host seat").waitFor();
		await waitFor(() => laptopPeer.closed, 5000, "the laptop's peer closed");
		const peers = [...room(m.id).peers.values()];
		expect(peers.map((p) => [p.displayName, p.role])).toEqual([["Hana", "host"]]);
		expect(peers[0]?.id).not.toBe(laptopPeer.id);
		// The new seat holder has the host's controls.
		await phone.getByRole("button", { name: "End meeting for all" }).waitFor();
	});

	it("a guest needs the passcode: wrong one refused, right one goes to the lobby, then in", async () => {
		const m = await schedule({ allowGuests: true }, "open-sesame");
		const host = await joinMeeting(m.joinCode, { name: "Hana", token: m.hostToken, media: false });
		const guest = await open(m.joinCode, { name: "Gus", media: false });
		await guest.getByText("You join as a guest").waitFor();
		await guest.getByLabel("Passcode", { exact: true }).fill("open-sesam");
		await pressJoin(guest);
		const wrong = await errorScreen(guest, "wrong_passcode");
		await wrong.getByText("That passcode is not right").waitFor();
		await wrong.getByRole("button", { name: "Back" }).click();
		await guest.getByLabel("Passcode", { exact: true }).fill("open-sesame");
		await pressJoin(guest);
		await guest.getByTestId("lobby-screen").waitFor();
		const lobby = host.getByTestId("lobby-list");
		await lobby.getByText("Guest").waitFor();
		await lobby.getByRole("button", { name: "Admit Gus" }).click();
		await connected(guest); // the re-join after `admitted` carries the passcode again
		const gus = await peerNamed(m.id, "Gus");
		expect(gus.role).toBe("guest");
		await participantRow(host, gus.id).getByText("Guest").waitFor();
	});

	it("shows 'not started' until the host starts the meeting, then joins by itself", async () => {
		const m = await schedule({ lobby: false });
		const ivy = await open(m.joinCode, { name: "Ivy", token: tenant.token("ivy", "participant"), media: false });
		await ivy.getByText("has not started yet").waitFor();
		await pressJoin(ivy);
		await (await errorScreen(ivy, "meeting_not_started"))
			.getByRole("heading", { name: "The host has not started this meeting yet" })
			.waitFor();
		const started = await api(gateway, "POST", `/api/meetings/${m.id}/start`, m.hostToken);
		expect(started.status).toBe(200);
		await connected(ivy);
		expect((await peerNamed(m.id, "Ivy")).role).toBe("participant");
	});

	it("explains refused tokens, guests where none are allowed, and unknown meetings", async () => {
		const m = await schedule({ lobby: false });
		const expired = jwt.sign({ role: "participant" }, tenant.secret, {
			algorithm: "HS256",
			issuer: tenant.id,
			audience: AUDIENCE,
			subject: "late",
			expiresIn: -3600,
		});
		const late = await open(m.joinCode, { name: "Late", token: expired, media: false });
		await pressJoin(late);
		await (await errorScreen(late, "token_expired")).getByText("Your sign-in link has expired").waitFor();

		// Without a token, a live meeting that does not allow guests refuses (the join page said so already).
		expect((await api(gateway, "POST", `/api/meetings/${m.id}/start`, m.hostToken)).status).toBe(200);
		const guest = await open(m.joinCode, { name: "Gina", media: false });
		await guest.getByText("This meeting needs a sign-in link").waitFor();
		await pressJoin(guest);
		await (await errorScreen(guest, "guests_not_allowed")).getByRole("button", { name: "Back" }).waitFor();

		const lost = await open("zzzz-zzzz-zzzz", { name: "Lost", media: false });
		await lost.getByText("No meeting has this ID").waitFor();
		await pressJoin(lost);
		await (await errorScreen(lost, "meeting_not_found")).getByText("Meeting not found").waitFor();
	});
});

describe("when the meeting's media worker dies", () => {
	it("tells everyone, and Rejoin brings them back with media on the replacement worker", async () => {
		const m = await schedule({ lobby: false });
		const host = await joinMeeting(m.joinCode, { name: "Hana", token: m.hostToken });
		const jo = await joinMeeting(m.joinCode, { name: "Jo", token: tenant.token("jo", "participant") });
		const pid = gateway.pool.workers[0]?.pid;
		expect(pid).toBeGreaterThan(0);
		process.kill(pid as number, "SIGKILL");
		for (const page of [host, jo]) {
			await (await errorScreen(page, "reconnect")).getByRole("button", { name: "Rejoin" }).waitFor();
		}
		await waitFor(() => gateway.pool.workers.some((w) => w.pid !== pid && !w.closed), 15_000, "a new worker");
		for (const page of [host, jo]) {
			await page.getByRole("button", { name: "Rejoin" }).click();
			await connected(page);
		}
		const hana = await peerNamed(m.id, "Hana");
		await plays(jo, hana.id, "camera", "Jo sees Hana again");
		expect(room(m.id).peers.size).toBe(2);
	});
});

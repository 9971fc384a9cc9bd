import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Bot } from "../bench/bots/Bot.js";
import { SyntheticMedia } from "../bench/bots/media.js";
import { gatewaySignal } from "../bench/bots/signal.js";
import type { Gateway } from "../server/Gateway.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { type Browser, launchBrowser } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * The meeting page as people choose it, in headless Chromium against the real gateway: its
 * language (the browser's, switched in the page, the tenant's default) with the gateway's error
 * codes in words, an automated WCAG 2.1 AA audit (axe-core) of the join page, the meeting with a
 * recording notice open and the transcript page, and the layout on a phone and a tablet. Few
 * page sessions, each checking several things, to keep the run short.
 *
 * `CONSENTRY_SCREENSHOTS=docs/screenshots` also writes the README's screenshots.
 */
const acme = testTenant("acme");
/** A Quebec customer: its pages are French for browsers that prefer neither language. */
const quebec = { ...testTenant("quebec"), locale: "fr" as const };
let bucket: TestBucket;
let gateway: Gateway;
let chrome: { browser: Browser; close(): Promise<void> };
let hosts = 0;
const contexts: BrowserContext[] = [];
const pageErrors: string[] = [];
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const SHOTS = process.env.CONSENTRY_SCREENSHOTS;

beforeAll(async () => {
	bucket = await startBucket("ui-recordings");
	gateway = await startGateway({ tenants: [acme, quebec], env: storageEnv() });
	await saveStorageTarget(gateway, acme, bucket, "consentry", { encryption: { type: "SSE-S3" } });
	// Three fake cameras and three fake microphones: enough to switch devices in a meeting.
	chrome = await launchBrowser(["--use-fake-device-for-media-stream=device-count=3"]);
});

afterAll(async () => {
	await chrome?.close();
	await gateway?.close();
	await bucket?.stop();
});

afterEach(async () => {
	await Promise.all(contexts.splice(0).map((c) => c.close().catch(() => undefined)));
	expect(pageErrors.splice(0)).toEqual([]);
});

// Helpers ---------------------------------------------------------------------------------------------------------

async function schedule(settings: Record<string, unknown> = {}, tenant = acme) {
	const hostToken = tenant.token(`ui-host-${++hosts}`);
	const res = await api(gateway, "POST", "/api/meetings", hostToken, { title: "Équipe produit", settings });
	expect(res.status).toBe(201);
	return { id: res.body.id as string, joinCode: res.body.joinCode as string, hostToken };
}

async function newPage(o: { locale: string; width?: number; height?: number; mobile?: boolean }): Promise<Page> {
	const context = await chrome.browser.newContext({
		locale: o.locale,
		viewport: { width: o.width ?? 1280, height: o.height ?? 800 },
		...(o.mobile ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
		permissions: ["camera", "microphone"],
	});
	contexts.push(context);
	const page = await context.newPage();
	page.on("pageerror", (err) => pageErrors.push(err.message));
	return page;
}

async function openJoin(page: Page, joinCode: string, name: string, token?: string): Promise<void> {
	await page.goto(`${gateway.url}/?${new URLSearchParams({ m: joinCode, name })}${token ? `#token=${token}` : ""}`);
}

async function connected(page: Page, text: string): Promise<void> {
	await page.locator("#status").getByText(text, { exact: true }).waitFor({ timeout: 20_000 });
}

/** axe-core's WCAG 2.1 A/AA rules on the page as it is now; returns the violations, described. */
async function audit(page: Page): Promise<string[]> {
	// Evaluated over the DevTools protocol: the page's Content-Security-Policy does not apply to it.
	await page.evaluate(AXE);
	return page.evaluate(async () => {
		const axe = (window as unknown as { axe: { run(ctx: Document, o: unknown): Promise<AxeResult> } }).axe;
		interface AxeResult {
			violations: { id: string; nodes: { target: string[]; failureSummary?: string }[] }[];
		}
		const r = await axe.run(document, {
			runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
		});
		return r.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")} — ${n.failureSummary}`));
	});
}

/** Visible elements that reach past the viewport's left or right edge (or a page that scrolls sideways). */
async function overflowing(page: Page): Promise<string[]> {
	return page.evaluate(() => {
		const width = document.documentElement.clientWidth;
		const out: string[] = [];
		if (document.documentElement.scrollWidth > width)
			out.push(`page scrolls sideways (${document.documentElement.scrollWidth} > ${width})`);
		const name = (el: Element) =>
			`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""}${el.className && typeof el.className === "string" ? `.${el.className.trim().split(/\s+/).join(".")}` : ""}`;
		for (const el of Array.from(document.body.querySelectorAll("*"))) {
			const r = el.getBoundingClientRect();
			if (r.width === 0 || r.height === 0) continue;
			if (r.right <= width + 0.5 && r.left >= -0.5) continue;
			// Inside a container that scrolls or clips sideways (and itself fits): not past the screen.
			let clipped = false;
			for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
				const ox = getComputedStyle(a).overflowX;
				const ar = a.getBoundingClientRect();
				if (ox !== "visible" && ar.right <= width + 0.5 && ar.left >= -0.5) {
					clipped = true;
					break;
				}
			}
			if (!clipped) out.push(`${name(el)} [${Math.round(r.left)}, ${Math.round(r.right)}]`);
		}
		return out;
	});
}

async function shot(page: Page, file: string): Promise<void> {
	if (SHOTS) await page.screenshot({ path: path.join(SHOTS, file) });
}

// Tests -----------------------------------------------------------------------------------------------------------

describe("language", () => {
	it("follows the browser, switches in the page, falls back to the tenant's; errors in words; the lobby notice goes once admitted; raised hands reach the host", async () => {
		const m = await schedule({ lobby: true, allowGuests: true });
		const host = await newPage({ locale: "fr-CA" });
		await openJoin(host, m.joinCode, "Hélène", m.hostToken);
		await host.getByRole("heading", { name: "Rejoindre une réunion" }).waitFor();
		expect(await host.evaluate(() => document.documentElement.lang)).toBe("fr");
		await expect.poll(() => host.locator("#identity-note").textContent()).toBe("Vous entrez comme hôte.");
		await expect
			.poll(() => host.locator("#meeting-summary").textContent())
			.toBe("Équipe produit — pas encore commencée");
		// Switched in the page (and remembered): everything redrawn in English, then back.
		await host.getByRole("button", { name: "Switch to English" }).click();
		await host.getByRole("heading", { name: "Join a meeting" }).waitFor();
		expect(await host.locator("#meeting-summary").textContent()).toBe("Équipe produit — has not started yet");
		expect(await host.getByLabel("Camera on").isChecked()).toBe(true);
		await host.getByRole("button", { name: "Passer au français" }).click();
		await host.getByRole("button", { name: "Rejoindre", exact: true }).click();
		await connected(host, "Connecté");
		expect(await host.locator("#mic-button").textContent()).toBe("Couper le micro");
		expect(await host.locator("#meeting-code").textContent()).toBe(`Réunion n° ${m.joinCode}`);

		// An English guest waits in the lobby; the host's notice in French, gone once the guest is admitted.
		const guest = await newPage({ locale: "en-US" });
		await openJoin(guest, m.joinCode, "Dora");
		await guest.getByRole("button", { name: "Join", exact: true }).click();
		await guest.getByText("Waiting for the host to let you in…").waitFor();
		const waiting = host.locator("#notices li", { hasText: "Dora attend dans la salle d’attente." });
		await waiting.waitFor();
		await host.getByRole("button", { name: "Admettre Dora" }).click();
		await connected(guest, "Connected");
		await waiting.waitFor({ state: "detached", timeout: 3000 }); // well before the 12 s a notice stays
		expect(await guest.evaluate(() => document.documentElement.lang)).toBe("en");
		await host.locator('#participants li[data-role="guest"]', { hasText: "Invité" }).waitFor();

		// Raise hand: the host is told and sees the queue; lowering it there lowers it for the guest.
		await guest.getByRole("button", { name: "Raise hand" }).click();
		await guest.getByRole("button", { name: "Lower hand" }).waitFor();
		await host.locator("#notices li", { hasText: "Dora a levé la main." }).waitFor();
		await host.getByRole("heading", { name: "Mains levées" }).waitFor();
		await host.locator("#grid .tile[data-hand]", { hasText: "Dora" }).waitFor();
		expect(await host.getByTestId("hand-entry").count()).toBe(1);
		await host.getByRole("button", { name: "Baisser la main de Dora" }).click();
		await guest.getByRole("button", { name: "Raise hand" }).waitFor();
		await host.getByRole("heading", { name: "Mains levées" }).waitFor({ state: "hidden" });
		expect(await guest.locator("#hands-panel").isHidden()).toBe(true); // the queue is the host's

		// A browser preferring neither language gets the tenant's (French for this customer).
		const q = await schedule({}, quebec);
		const spanish = await newPage({ locale: "es-ES" });
		await openJoin(spanish, q.joinCode, "Pilar");
		await expect.poll(() => spanish.evaluate(() => document.documentElement.lang)).toBe("fr");
		await spanish.getByRole("heading", { name: "Rejoindre une réunion" }).waitFor();
		// The gateway's error code in words: the meeting has not started yet.
		await spanish.getByRole("button", { name: "Rejoindre", exact: true }).click();
		await spanish.getByRole("heading", { name: "L’hôte n’a pas encore commencé cette réunion" }).waitFor();
		expect(await spanish.locator("#error-message").textContent()).toBe("Réessayez dans un instant.");
		await spanish.getByRole("button", { name: "Switch to English" }).click();
		await spanish.getByRole("heading", { name: "The host has not started this meeting yet" }).waitFor();
	});
});

describe("accessibility", () => {
	it("has no WCAG 2.1 AA violation on the join page, the meeting with a notice open (focus kept in it, then given back) and the transcript page", async () => {
		const m = await schedule();
		const page = await newPage({ locale: "en-CA" });
		await openJoin(page, m.joinCode, "Ana", m.hostToken);
		await page.getByRole("heading", { name: "Join a meeting" }).waitFor();
		await expect.poll(() => page.locator("#meeting-summary").textContent()).toContain("has not started yet");
		expect(await audit(page)).toEqual([]);

		await page.getByRole("button", { name: "Join", exact: true }).click();
		await connected(page, "Connected");
		// Live regions for what arrives by itself: notices, captions and chat.
		expect(await page.locator("#notices").getAttribute("aria-live")).toBe("polite");
		expect(await page.locator("#captions").getAttribute("aria-live")).toBe("polite");
		expect(await page.locator("#chat-log").getAttribute("role")).toBe("log");

		const start = page.getByRole("button", { name: "Start transcription" });
		await start.focus();
		await start.press("Enter");
		const dialog = page.getByRole("alertdialog");
		await dialog.waitFor();
		const inDialog = () => page.evaluate(() => !!document.activeElement?.closest("#notice-dialog"));
		expect(await inDialog()).toBe(true);
		for (let i = 0; i < 4; i++) {
			await page.keyboard.press("Tab");
			expect(await inDialog()).toBe(true);
		}
		await page.keyboard.press("Escape"); // a notice can't be dismissed, only answered
		expect(await dialog.isVisible()).toBe(true);
		expect(await audit(page)).toEqual([]);
		await dialog.getByRole("button", { name: "Continue" }).click();
		await dialog.waitFor({ state: "hidden" });
		// The focus is back where it was: the transcription control (now "Pause transcription").
		await expect
			.poll(() => page.evaluate(() => document.activeElement?.getAttribute("data-kind")))
			.toBe("transcription");
		expect(await audit(page)).toEqual([]);

		const link = await page.getByTestId("transcript-link").getAttribute("href");
		const transcript = await newPage({ locale: "en-CA" });
		await transcript.goto(`${gateway.url}${link}#token=${m.hostToken}`);
		await transcript.getByTestId("transcript-disclaimer").waitFor();
		expect(await audit(transcript)).toEqual([]);
		await transcript.getByRole("button", { name: "Passer au français" }).click();
		// Transcription still runs: the page says so (it shows the lines so far; nobody spoke yet).
		await transcript
			.getByTestId("transcript-in-progress")
			.getByText(/encore en cours/)
			.waitFor();
		expect(await transcript.getByTestId("transcript-disclaimer").textContent()).toMatch(/faites par une machine/);
		await transcript.goto(`${gateway.url}/t/${"x".repeat(24)}`);
		await transcript.getByTestId("transcript-error").waitFor();
		expect(await audit(transcript)).toEqual([]);
	});
});

describe("phones and tablets", () => {
	it("fits 390×844, 360×740 and 768×1024: nothing wider than the screen, the menus and the people/chat sheet work", async () => {
		const m = await schedule({ lobby: false });
		const desktop = await newPage({ locale: "en-CA" });
		await openJoin(desktop, m.joinCode, "Ana", m.hostToken);
		await desktop.getByRole("button", { name: "Join", exact: true }).click();
		await connected(desktop, "Connected");
		for (const [label, width, height] of [
			["phone", 390, 844],
			["tablet", 768, 1024],
		] as const) {
			const page = await newPage({ locale: "en-CA", width, height, mobile: true });
			await openJoin(page, m.joinCode, `Ben (${label})`, acme.token(`ben-${label}`, "participant"));
			await page.getByRole("heading", { name: "Join a meeting" }).waitFor();
			await page.locator("#camera-select option").first().waitFor({ state: "attached" });
			expect(await overflowing(page), `${label} join page`).toEqual([]);
			await shot(page, `join-${label}.png`);
			await page.getByRole("button", { name: "Join", exact: true }).click();
			await connected(page, "Connected");
			// Both tiles show their video (the screenshot is taken once the other camera's frames arrive).
			await page.waitForFunction(() => {
				const videos = Array.from(document.querySelectorAll<HTMLVideoElement>("#grid video"));
				return videos.length >= 2 && videos.every((v) => v.videoWidth > 0);
			});
			expect(await overflowing(page), `${label} meeting`).toEqual([]);
			await shot(page, `meeting-${label}.png`);
			if (label === "phone") {
				// The toolbar keeps the essentials; the rest is behind "More".
				const share = page.getByRole("button", { name: "Share screen" });
				expect(await share.isVisible()).toBe(false);
				await page.locator("#more-button").click();
				await share.waitFor();
				expect(await overflowing(page), "phone, More open").toEqual([]);
				await page.keyboard.press("Escape");
				await share.waitFor({ state: "hidden" });
				expect(await page.evaluate(() => document.activeElement?.id)).toBe("more-button");
				// People and chat open as a sheet over the videos.
				await page.getByRole("button", { name: "People and chat" }).click();
				await page.getByLabel("Message").fill("Bonjour from the phone");
				await page.getByRole("button", { name: "Send" }).click();
				await desktop.getByTestId("chat-log").getByText("Bonjour from the phone").waitFor();
				expect(await overflowing(page), "phone, sheet open").toEqual([]);
				await shot(page, "people-phone.png");
				await page.getByRole("button", { name: "Close" }).click();
				await page.getByLabel("Message").waitFor({ state: "hidden" });
				// The narrowest phones the layout supports.
				await page.setViewportSize({ width: 360, height: 740 });
				await page.locator("#more-button").click();
				expect(await overflowing(page), "360 px, More open").toEqual([]);
				await page.keyboard.press("Escape");
			} else {
				// A tablet shows everything at once: no "More", the people and chat beside the videos.
				expect(await page.locator("#more-button").isVisible()).toBe(false);
				expect(await page.getByRole("button", { name: "Share screen" }).isVisible()).toBe(true);
				expect(await page.getByLabel("Message").isVisible()).toBe(true);
				if (SHOTS) {
					await desktop.waitForFunction(() =>
						Array.from(document.querySelectorAll<HTMLVideoElement>("#grid video")).every((v) => v.videoWidth > 0),
					);
					await shot(desktop, "meeting-desktop.png");
				}
			}
			await page.getByRole("button", { name: "Leave", exact: true }).click();
			await page.getByRole("heading", { name: "You left the meeting" }).waitFor();
		}
	});
});

describe("big meetings", () => {
	it("pages the grid and has a speaker view; only the videos on screen are received, each at the layer its tile needs", async () => {
		const m = await schedule({ lobby: false });
		const host = await newPage({ locale: "en-CA" });
		await openJoin(host, m.joinCode, "Ana", m.hostToken);
		await host.getByRole("button", { name: "Join", exact: true }).click();
		await connected(host, "Connected");
		// Carla sends simulcast from Chromium; eleven bots send one small camera layer each.
		const carla = await newPage({ locale: "en-CA" });
		await openJoin(carla, m.joinCode, "Carla", acme.token("carla", "participant"));
		await carla.getByRole("button", { name: "Join", exact: true }).click();
		await connected(carla, "Connected");
		const media = new SyntheticMedia({ width: 160, height: 90, fps: 10 });
		const bots: Bot[] = [];
		try {
			for (let i = 1; i <= 11; i++) {
				const signal = await gatewaySignal(gateway.url, acme.token(`bot-${i}`, "participant"));
				const bot = await Bot.join(signal, m.joinCode, { displayName: `Bot ${i}`, send: true, recv: false });
				await bot.publish(media, { audio: false, video: true, maxVideoBitrate: 80_000 });
				bots.push(bot);
			}
			const room = await waitFor(() => gateway.rooms.get(m.id), 5000, "the room");
			const ana = [...room.peers.values()].find((p) => p.displayName === "Ana");
			/** The host's video consumers, by sender name: paused on the gateway or not, and the preferred layer. */
			const received = () => {
				const out = new Map<string, { paused: boolean; layer: number | undefined }>();
				for (const c of ana?.consumers.values() ?? []) {
					if (c.kind !== "video") continue;
					const sender = [...room.peers.values()].find((p) => p.producers.has(c.producerId));
					if (sender) out.set(sender.displayName, { paused: c.paused, layer: c.preferredLayers?.spatialLayer });
				}
				return out;
			};
			const shownTiles = () =>
				host.evaluate(() =>
					Array.from(document.querySelectorAll<HTMLElement>("#grid .tile"))
						.filter((t) => !t.hasAttribute("data-offscreen"))
						.map((t) => t.querySelector(".name")?.textContent ?? ""),
				);
			await waitFor(
				async () => received().size === 12 && (await host.locator("#grid .tile").count()) === 13,
				30_000,
				"13 tiles",
			);

			// Grid: 1280×800 holds 9 tiles a page here (3 × 3; fewer rows if the toolbar wraps more); the others
			// are not received until their page is shown.
			await host.locator("#grid-pager").waitFor();
			const perPage = (await shownTiles()).length;
			expect(perPage).toBeGreaterThanOrEqual(6);
			expect(perPage).toBeLessThan(13);
			const pages = Math.ceil(13 / perPage);
			await host.getByText(`Page 1 of ${pages}`).waitFor();
			const pausedOn = async (want: (name: string, shown: boolean) => boolean) =>
				waitFor(
					async () => {
						const shown = new Set((await shownTiles()).map((n) => n.replace(" (you)", "")));
						return [...received()].every(([name, r]) => r.paused === !want(name, shown.has(name)));
					},
					10_000,
					"consumers paused exactly off screen",
				);
			await pausedOn((_n, shown) => shown);
			expect(received().get("Carla")?.layer).toBe(1); // a ~310 px tile: the middle layer
			await host.getByRole("button", { name: "Next page" }).click();
			await host.getByText(`Page 2 of ${pages}`).waitFor();
			expect(await shownTiles()).toHaveLength(Math.min(perPage, 13 - perPage));
			await pausedOn((_n, shown) => shown);

			// Speaker view: Carla (the only remote person with a microphone) large at the full layer, a strip of the others.
			await host.getByRole("button", { name: "Speaker view" }).click();
			await host.locator("#grid .tile.main", { hasText: "Carla" }).waitFor();
			await pausedOn((_n, shown) => shown);
			await waitFor(() => received().get("Carla")?.layer === 2, 10_000, "Carla at the full layer");
			const strip = (await shownTiles()).length - 1;
			expect(strip).toBeGreaterThanOrEqual(4);
			expect(strip).toBeLessThan(12);
			expect(await overflowing(host)).toEqual([]);
			await shot(host, "speaker-view.png");
			await host.getByRole("button", { name: "Grid view" }).click();
			await host.getByText(`Page 1 of ${pages}`).waitFor();
			await pausedOn((_n, shown) => shown);
		} finally {
			for (const b of bots) b.close();
			media.stop();
		}
	});
});

describe("in the meeting", () => {
	it("switches devices without leaving, hints when someone talks muted, shows each person's connection quality, reconnects by itself", async () => {
		const m = await schedule({ lobby: false });
		const page = await newPage({ locale: "en-CA" });
		// The page's peer connections, to read which device each sender really sends.
		await page.addInitScript(() => {
			const w = window as unknown as { __pcs: RTCPeerConnection[] };
			w.__pcs = [];
			const PC = window.RTCPeerConnection;
			window.RTCPeerConnection = class extends PC {
				constructor(config?: RTCConfiguration) {
					super(config);
					w.__pcs.push(this);
				}
			} as typeof RTCPeerConnection;
		});
		const sent = (kind: "audio" | "video") =>
			page.evaluate(
				(k) =>
					(window as unknown as { __pcs: RTCPeerConnection[] }).__pcs
						.flatMap((pc) => pc.getSenders())
						.map((s) => s.track)
						.filter((t) => t?.kind === k && t.readyState === "live")
						.map((t) => t?.label),
				kind,
			);
		await openJoin(page, m.joinCode, "Ana", m.hostToken);
		await page.getByRole("button", { name: "Join", exact: true }).click();
		await connected(page, "Connected");
		const eve = await newPage({ locale: "en-CA" });
		const eveToken = acme.token("eve", "participant");
		await openJoin(eve, m.joinCode, "Eve", eveToken);
		await eve.getByRole("button", { name: "Join", exact: true }).click();
		await connected(eve, "Connected");

		await page.getByRole("button", { name: "Devices" }).click();
		const dialog = page.getByRole("dialog", { name: "Camera and microphone" });
		await dialog.waitFor();
		const camSelect = dialog.locator("#meeting-camera-select");
		const micSelect = dialog.locator("#meeting-mic-select");
		const speakerSelect = dialog.locator("#meeting-speaker-select");
		const cameras = await camSelect.locator("option").allTextContents();
		const mics = await micSelect.locator("option").allTextContents();
		expect(cameras.length).toBeGreaterThanOrEqual(2);
		expect(mics.length).toBeGreaterThanOrEqual(2);
		// Chromium's second fake camera sends a depth format (Y16) no encoder takes; the third (MJPEG) is a camera.
		const otherCam = "fake_device_2";
		expect(cameras).toContain(otherCam);
		await camSelect.selectOption({ label: otherCam });
		await expect.poll(() => sent("video"), { timeout: 10_000 }).toEqual([otherCam]);
		const [micNow] = await sent("audio");
		const otherMic = mics.find((c) => c !== micNow) as string;
		await micSelect.selectOption({ label: otherMic });
		await expect.poll(() => sent("audio"), { timeout: 10_000 }).toEqual([otherMic]);
		const speakers = speakerSelect.locator("option");
		if (await speakerSelect.isVisible()) {
			const last = (await speakers.count()) - 1;
			const value = await speakers.nth(last).getAttribute("value");
			await speakerSelect.selectOption({ index: last });
			await expect
				.poll(() =>
					page.evaluate(
						() =>
							(document.querySelector("#grid .tile:not([data-self]) video") as HTMLVideoElement & { sinkId: string })
								.sinkId,
					),
				)
				.toBe(value === "default" ? "" : value);
		}
		expect(await audit(page)).toEqual([]);
		await dialog.getByRole("button", { name: "Close" }).click();
		await dialog.waitFor({ state: "hidden" });
		// The gateway still receives Ana's (new) camera on the same producer: her quality stays good below.

		// Muted, the fake microphone's beeps count as talking: the hint shows, and goes when unmuted.
		await page.getByRole("button", { name: "Mute microphone" }).click();
		const hint = page.getByTestId("muted-hint");
		await hint.waitFor({ timeout: 10_000 });
		expect(await hint.textContent()).toContain("You're muted");
		await page.getByRole("button", { name: "Unmute microphone" }).click();
		await hint.waitFor({ state: "hidden" });

		// Connection quality per person, from the gateway's view of each one's media (loopback: good).
		await page
			.locator('#grid .tile:not([data-self])[data-quality="good"] .quality[aria-label="Connection: good"]')
			.waitFor({ timeout: 15_000 });
		await page.locator('#grid .tile[data-self][data-quality="good"]').waitFor({ timeout: 15_000 });

		// Eve's connection drops: "Reconnecting…", then back in the meeting by herself, seen again by Ana.
		const sockets = [...gateway.io.sockets.sockets.values()].filter((so) => so.handshake.auth.token === eveToken);
		expect(sockets).toHaveLength(1);
		sockets[0]?.conn.close();
		await eve.getByRole("heading", { name: "Reconnecting…" }).waitFor();
		await connected(eve, "Connected");
		await page.locator("#grid .tile", { hasText: "Eve" }).waitFor();
		await page.waitForFunction(() => {
			const v = document.querySelector<HTMLVideoElement>("#grid .tile:not([data-self]) video");
			return !!v && v.videoWidth > 0;
		});
	});
});

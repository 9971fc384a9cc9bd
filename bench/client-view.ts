/**
 * The meeting page in a meeting of 25: what one person's browser spends (CPU of every Chromium
 * process, downlink from its own WebRTC stats) in the paged grid, in speaker view, and with every
 * video received at full size (what the page did before it paused off-screen videos and chose
 * layers — emulated by rewriting the page's `viewConsumer` requests to "on screen, full size").
 *
 * Real gateway (in this process), Debian Chromium (one page at 1280×800, its fake camera and
 * microphone on), 24 bots (mediasoup-client on @roamhq/wrtc, bench/bots/) each sending one
 * 320×180 camera layer at 15 fps (≤ 250 kbps) and no audio. The bots run in this process; only
 * Chromium's CPU is counted. Prints a markdown section for docs/benchmarks.md.
 *
 *   node --import tsx bench/client-view.ts [--rounds 2] [--seconds 15]
 */
import { readdirSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { Page } from "playwright-core";
import { launchBrowser } from "../test/helpers/chromium.js";
import { api, startGateway } from "../test/helpers/gateway.js";
import { testTenant } from "../test/helpers/tenants.js";
import { Bot } from "./bots/Bot.js";
import { SyntheticMedia } from "./bots/media.js";
import { cpuSeconds } from "./bots/proc.js";
import { gatewaySignal } from "./bots/signal.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: { rounds: { type: "string", default: "2" }, seconds: { type: "string", default: "15" } },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const BOTS = 24;
const log = (m: string) => process.stderr.write(`${m}\n`);

type Mode = "grid" | "speaker" | "all";

/** Every process below `pid` (Chromium's browser, renderer, GPU and utility processes). */
function descendants(pid: number): number[] {
	const parent = new Map<number, number>();
	for (const d of readdirSync("/proc")) {
		if (!/^\d+$/.test(d)) continue;
		try {
			const s = readFileSync(`/proc/${d}/stat`, "utf8");
			parent.set(Number(d), Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]));
		} catch {
			// gone meanwhile
		}
	}
	const out: number[] = [];
	const walk = (p: number) => {
		for (const [child, pp] of parent) {
			if (pp === p) {
				out.push(child);
				walk(child);
			}
		}
	};
	walk(pid);
	return out;
}

const chromeCpu = () =>
	descendants(process.pid)
		.filter((p) => {
			try {
				return !readFileSync(`/proc/${p}/cmdline`, "utf8").includes("node");
			} catch {
				return false;
			}
		})
		.reduce((sum, p) => sum + (cpuSeconds(p) || 0), 0);

const tenant = testTenant("bench");
const gw = await startGateway({ tenants: [tenant] });
const chrome = await launchBrowser();
const bots: Bot[] = [];
const media = new SyntheticMedia({ width: 320, height: 180, fps: 15 });
try {
	const hostToken = tenant.token("bench-host");
	const res = await api(gw, "POST", "/api/meetings", hostToken, { title: "All hands", settings: { lobby: false } });
	const joinCode = res.body.joinCode as string;
	const meetingId = res.body.id as string;
	const context = await chrome.browser.newContext({
		locale: "en-CA",
		viewport: { width: 1280, height: 800 },
		permissions: ["camera", "microphone"],
	});
	// Instrumentation only this benchmark adds: the page's peer connections (for their stats), and the
	// "all" mode's rewrite of every viewConsumer request into "on screen at full size".
	await context.addInitScript(() => {
		const w = window as unknown as { __pcs: RTCPeerConnection[]; __receiveAll: boolean };
		w.__pcs = [];
		w.__receiveAll = false;
		const PC = window.RTCPeerConnection;
		window.RTCPeerConnection = class extends PC {
			constructor(config?: RTCConfiguration) {
				super(config);
				w.__pcs.push(this);
			}
		} as typeof RTCPeerConnection;
		const send = WebSocket.prototype.send;
		WebSocket.prototype.send = function (this: WebSocket, data) {
			if (w.__receiveAll && typeof data === "string" && data.includes('"viewConsumer"')) {
				data = data.replace('"visible":false', '"visible":true').replace(/"spatialLayer":\d/, '"spatialLayer":2');
			}
			return send.call(this, data);
		};
	});
	const page: Page = await context.newPage();
	await page.goto(`${gw.url}/?m=${joinCode}&name=Bench#token=${hostToken}`);
	await page.getByRole("button", { name: "Join", exact: true }).click();
	await page.locator("#status").getByText("Connected", { exact: true }).waitFor({ timeout: 30_000 });
	log(`page joined; starting ${BOTS} bots`);
	for (let i = 1; i <= BOTS; i++) {
		const signal = await gatewaySignal(gw.url, tenant.token(`bot-${i}`, "participant"));
		const bot = await Bot.join(signal, joinCode, { displayName: `Bot ${i}`, send: true, recv: false });
		await bot.publish(media, { audio: false, video: true, maxVideoBitrate: 250_000 });
		bots.push(bot);
	}
	await page.waitForFunction((n) => document.querySelectorAll("#grid .tile").length === n, BOTS + 1, {
		timeout: 60_000,
	});

	const bytesReceived = () =>
		page.evaluate(async () => {
			let bytes = 0;
			let frames = 0;
			for (const pc of (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs) {
				if (pc.connectionState === "closed") continue;
				(await pc.getStats()).forEach((s: { type: string; bytesReceived?: number; framesDecoded?: number }) => {
					if (s.type === "inbound-rtp") {
						bytes += s.bytesReceived ?? 0;
						frames += s.framesDecoded ?? 0;
					}
				});
			}
			return { bytes, frames };
		});

	/**
	 * Puts the page in a mode the way a person would (the layout button). "all" (measured last) is the grid
	 * with every video of the page resumed at full size on the gateway, and the page's later view requests
	 * rewritten so that none pauses anything again.
	 */
	const enter = async (mode: Mode) => {
		const layout = await page.locator("#grid").getAttribute("data-layout");
		const want = mode === "speaker" ? "speaker" : "grid";
		if (layout !== want) await page.locator("#layout-button").click();
		if (mode !== "all") return;
		await page.evaluate(() => {
			(window as unknown as { __receiveAll: boolean }).__receiveAll = true;
		});
		const room = gw.rooms.get(meetingId);
		const me = [...(room?.peers.values() ?? [])].find((p) => p.displayName === "Bench");
		for (const c of me?.consumers.values() ?? []) {
			if (c.kind !== "video") continue;
			if (c.type === "simulcast") await c.setPreferredLayers({ spatialLayer: 2, temporalLayer: 2 });
			await c.resume();
		}
	};

	const results: Record<Mode, { cpu: number[]; kbps: number[]; fps: number[]; shown: number }> = {
		grid: { cpu: [], kbps: [], fps: [], shown: 0 },
		speaker: { cpu: [], kbps: [], fps: [], shown: 0 },
		all: { cpu: [], kbps: [], fps: [], shown: 0 },
	};
	const order: Mode[] = [];
	for (let r = 0; r < rounds; r++) order.push("grid", "speaker");
	for (let r = 0; r < rounds; r++) order.push("all");
	for (const [i, mode] of order.entries()) {
		{
			const r = mode === "all" ? i - 2 * rounds : Math.floor(i / 2);
			await enter(mode);
			await new Promise((res) => setTimeout(res, 5000)); // layers and pauses settle, key frames arrive
			const c0 = chromeCpu();
			const b0 = await bytesReceived();
			const t0 = performance.now();
			await new Promise((res) => setTimeout(res, seconds * 1000));
			const c1 = chromeCpu();
			const b1 = await bytesReceived();
			const dt = (performance.now() - t0) / 1000;
			results[mode].cpu.push(((c1 - c0) / dt) * 100);
			results[mode].kbps.push(((b1.bytes - b0.bytes) * 8) / dt / 1000);
			results[mode].fps.push((b1.frames - b0.frames) / dt);
			results[mode].shown = await page.evaluate(
				() => document.querySelectorAll("#grid .tile:not([data-offscreen])").length,
			);
			log(
				`round ${r + 1} ${mode}: cpu ${results[mode].cpu.at(-1)?.toFixed(0)} %, downlink ${results[mode].kbps.at(-1)?.toFixed(0)} kbps, ${results[mode].fps.at(-1)?.toFixed(0)} frames/s decoded`,
			);
		}
	}
	const row = (mode: Mode, what: string) =>
		`| ${what} | ${results[mode].shown} | ${median(results[mode].cpu).toFixed(0)} % | ${median(results[mode].kbps).toFixed(0)} kbps | ${median(results[mode].fps).toFixed(0)} |`;
	console.log(`### Client in a meeting of 25: speaker view vs grid (${new Date().toISOString().slice(0, 10)})

Machine: ${machine()}. \`npm run bench:client\` (bench/client-view.ts): one Chromium page (1280×800, its camera and
microphone on) and ${BOTS} bots each sending a 320×180 camera at 15 fps (≤ 250 kbps); ${rounds} rounds of ${seconds} s per mode,
medians (grid and speaker view alternate; the full-size mode is measured after them). CPU: all Chromium processes, % of one core. Downlink and decoded frames: the page's own WebRTC stats.

| mode | tiles on screen | client CPU | downlink | video frames decoded /s |
| --- | --- | --- | --- | --- |
${row("all", "every video received at full size (the page before this change)")}
${row("grid", "paged grid: only the page shown is received")}
${row("speaker", "speaker view: one large, a strip of small ones")}
`);
} finally {
	for (const b of bots) b.close();
	media.stop();
	await chrome.close();
	await gw.close();
}
// Exit before @roamhq/wrtc's native teardown (it can crash at process exit after its peer connections closed).
process.exit(0);

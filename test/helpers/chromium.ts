import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Browser, type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** The flags every browser test uses (Debian's Chromium, headless, fake media, loopback ICE). */
export const CHROMIUM_ARGS = [
	"--headless=new",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--use-fake-device-for-media-stream",
	"--use-fake-ui-for-media-stream",
	"--allow-loopback-in-peer-connection",
	"--autoplay-policy=no-user-gesture-required",
];

export interface LaunchedBrowser {
	browser: BrowserContext;
	close(): Promise<void>;
}

/**
 * Launches Debian's Chromium through playwright-core with a fresh profile.
 * `fakeAudioFile` feeds a WAV file as the microphone, once (silence after it) or, with `loopAudio`, over and over.
 */
export async function launchChromium(
	options: { fakeAudioFile?: string; loopAudio?: boolean } = {},
): Promise<LaunchedBrowser> {
	const userDataDir = mkdtempSync(path.join(os.tmpdir(), "consentry-chromium-"));
	const args = [...CHROMIUM_ARGS];
	if (options.fakeAudioFile)
		args.push(`--use-file-for-fake-audio-capture=${options.fakeAudioFile}${options.loopAudio ? "" : "%noloop"}`);
	const context = await chromium.launchPersistentContext(userDataDir, {
		executablePath: CHROMIUM_PATH,
		headless: true,
		args,
		permissions: ["camera", "microphone"],
	});
	return {
		browser: context,
		close: async () => {
			await context.close().catch(() => undefined);
			rmSync(userDataDir, { recursive: true, force: true });
		},
	};
}

/**
 * Launches Debian's Chromium as a browser whose contexts a test opens itself: each context its
 * own language, screen size and storage (`browser.newContext({ locale, viewport, permissions })`).
 */
export async function launchBrowser(extraArgs: string[] = []): Promise<{ browser: Browser; close(): Promise<void> }> {
	const browser = await chromium.launch({
		executablePath: CHROMIUM_PATH,
		headless: true,
		args: [...CHROMIUM_ARGS, ...extraArgs],
	});
	return { browser, close: () => browser.close().catch(() => undefined) };
}

export type { Browser };

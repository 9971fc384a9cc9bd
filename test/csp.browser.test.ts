import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";

/**
 * The built client works in Chromium under the gateway's Content-Security-Policy: the meeting flow of the other
 * browser tests (join with a token from the link, camera and microphone, the other person's video playing), with
 * every CSP violation the page reports collected — there must be none.
 */
describe("the client under the CSP", () => {
	const tenant = testTenant();
	let gateway: Gateway;
	let chrome: LaunchedBrowser;
	const violations: string[] = [];
	const errors: string[] = [];

	beforeAll(async () => {
		gateway = await startGateway({ tenants: [tenant] });
		chrome = await launchChromium();
		// Every page reports CSP violations to the test (before any of its own scripts run).
		await chrome.browser.addInitScript(() => {
			document.addEventListener("securitypolicyviolation", (e) => {
				console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
			});
		});
	});
	afterAll(async () => {
		await chrome?.close();
		await gateway?.close();
	});

	const open = async (joinCode: string, name: string, token: string): Promise<Page> => {
		const page = await chrome.browser.newPage();
		page.on("console", (m) => {
			if (/CSP violation|Content Security Policy/i.test(m.text())) violations.push(`${name}: ${m.text()}`);
		});
		page.on("pageerror", (err) => errors.push(`${name}: ${err.message}`));
		await page.goto(`${gateway.url}/?${new URLSearchParams({ m: joinCode, name })}#token=${token}`);
		await page.getByRole("button", { name: "Join", exact: true }).click();
		await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
		return page;
	};

	it("joins, sends and plays camera and microphone with no CSP violation", async () => {
		const hostToken = tenant.token("hana");
		const m = await api(gateway, "POST", "/api/meetings", hostToken, { title: "csp", settings: { lobby: false } });
		const joinCode = m.body.joinCode as string;
		const res = await fetch(`${gateway.url}/?m=${joinCode}`);
		expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
		const host = await open(joinCode, "Hana", hostToken);
		const bob = await open(joinCode, "Bob", tenant.token("bob", "participant"));
		const room = () => gateway.rooms.get(m.body.id as string);
		const peers = await waitFor(
			() => (room()?.peers.size === 2 ? [...(room()?.peers.values() ?? [])] : undefined),
			15_000,
			"two peers",
		);
		const id = (name: string) => peers.find((p) => p.displayName === name)?.id ?? "";
		for (const [page, other] of [
			[host, "Bob"],
			[bob, "Hana"],
		] as const) {
			await waitFor(
				() =>
					page
						.locator(`[data-peer="${id(other)}"][data-source="camera"] video`)
						.evaluate((v: HTMLVideoElement) => v.videoWidth > 0),
				20_000,
				`${other}'s video plays`,
			);
		}
		await Promise.all([host.close(), bob.close()]);
		expect(violations).toEqual([]);
		expect(errors).toEqual([]);

		// The detector works: an inline script (what an injection would add) is blocked and reported.
		const probe = await chrome.browser.newPage();
		probe.on("console", (msg) => {
			if (/CSP violation/.test(msg.text())) violations.push(msg.text());
		});
		await probe.goto(`${gateway.url}/`);
		const ran = await probe.evaluate(() => {
			const s = document.createElement("script");
			s.textContent = "window.injected = true";
			document.body.append(s);
			return (window as { injected?: boolean }).injected === true;
		});
		expect(ran).toBe(false);
		await waitFor(() => violations.some((v) => v.includes("script-src")), 5_000, "the violation reported");
		await probe.close();
	});
});

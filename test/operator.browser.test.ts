import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { api, startGateway } from "./helpers/gateway.js";
import { testOperator } from "./helpers/operator.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * The operator console in Chromium (docs/operator.md): the operator ends a meeting → every participant's page says
 * the service operator ended it, with the reason; the operator suspends the tenant mid-meeting → everyone is out
 * within a second and a new join is refused with `account_suspended`; reinstated → joins work again.
 */
const operator = testOperator();
const acme = testTenant("acme");
let gw: Gateway;
let chrome: LaunchedBrowser;
const pages: Page[] = [];

beforeAll(async () => {
	gw = await startGateway({ tenants: [acme], env: { CONSENTRY_OPERATOR_KEYS_FILE: operator.keysFile } });
	chrome = await launchChromium();
});

afterAll(async () => {
	for (const p of pages) await p.close().catch(() => undefined);
	await chrome?.close();
	await gw?.close();
});

async function schedule(host: string): Promise<{ id: string; joinCode: string }> {
	const r = await api(gw, "POST", "/api/meetings", acme.token(host), { title: "t", settings: { lobby: false } });
	expect(r.status).toBe(201);
	return r.body as { id: string; joinCode: string };
}

/** Opens the join link with media off and presses Join; `connected`: wait for the meeting screen. */
async function join(joinCode: string, name: string, token: string, connected = true): Promise<Page> {
	const page = await chrome.browser.newPage();
	pages.push(page);
	await page.goto(`${gw.url}/?${new URLSearchParams({ m: joinCode, name })}#token=${token}`);
	await page.getByLabel("Camera on").uncheck();
	await page.getByLabel("Microphone on").uncheck();
	await page.getByRole("button", { name: "Join", exact: true }).click();
	if (connected) {
		await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
	}
	return page;
}

async function confirmWithReason(ops: Page, reason: string): Promise<void> {
	const dialog = ops.locator("#operator-dialog");
	await dialog.getByRole("textbox").fill(reason);
	await dialog.locator("#operator-confirm").click();
}

describe("operator console", () => {
	it("ends a meeting: every participant sees that the service operator ended it, and why", async () => {
		const m = await schedule("host-1");
		const host = await join(m.joinCode, "Hana", acme.token("host-1"));
		const bob = await join(m.joinCode, "Bob", acme.token("bob", "participant"));
		const ops = await chrome.browser.newPage();
		pages.push(ops);
		await ops.goto(`${gw.url}/operator#token=${operator.token()}`);
		const row = ops.locator(`[data-meeting="${m.id}"]`);
		await row.waitFor({ timeout: 10_000 });
		await row.getByRole("button", { name: "End meeting" }).click();
		await confirmWithReason(ops, "Reported for abuse (case 42)");
		for (const page of [host, bob]) {
			const screen = page.locator('[data-testid="error-screen"][data-code="operator"]');
			await screen.waitFor({ timeout: 5000 });
			await expect(screen.textContent()).resolves.toContain("The service operator ended this meeting");
			await expect(screen.textContent()).resolves.toContain("Reported for abuse (case 42)");
		}
		await row.waitFor({ state: "detached", timeout: 10_000 });
	});

	it("suspends the tenant mid-meeting: everyone out within a second, a new join refused; reinstated → joins work", async () => {
		const m = await schedule("host-2");
		const host = await join(m.joinCode, "Hana", acme.token("host-2"));
		const carol = await join(m.joinCode, "Carol", acme.token("carol", "participant"));
		const ops = await chrome.browser.newPage();
		pages.push(ops);
		await ops.goto(`${gw.url}/operator#token=${operator.token()}`);
		const tenantRow = ops.locator('[data-tenant="acme"]');
		await tenantRow.getByRole("button", { name: "Suspend" }).click();
		const t0 = Date.now();
		await confirmWithReason(ops, "Unpaid invoices");
		const outMs = await Promise.all(
			[host, carol].map(async (page) => {
				await page.locator('[data-testid="error-screen"][data-code="operator"]').waitFor({ timeout: 5000 });
				return Date.now() - t0;
			}),
		);
		console.log(`tenant suspended from the console → everyone's page out after ${Math.max(...outMs)} ms`);
		expect(Math.max(...outMs)).toBeLessThan(1000);
		const late = await join(m.joinCode, "Dan", acme.token("dan", "participant"), false);
		await late.locator('[data-testid="error-screen"][data-code="account_suspended"]').waitFor({ timeout: 10_000 });

		await tenantRow.getByRole("button", { name: "Reinstate" }).click();
		await confirmWithReason(ops, "Paid");
		await tenantRow.getByRole("button", { name: "Suspend" }).waitFor({ timeout: 5000 });
		const m2 = await schedule("host-3");
		await join(m2.joinCode, "Hana", acme.token("host-3"));
	});
});

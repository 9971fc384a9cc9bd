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
		const violations: string[] = [];
		ops.on("console", (msg) => {
			if (/Content Security Policy|Refused to/i.test(msg.text())) violations.push(msg.text());
		});
		ops.on("pageerror", (err) => violations.push(err.message));
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
		// Issue 14: the console shows the security hold on log files (set through the operator API).
		await ops.getByTestId("operator-hold").getByText("Security hold: none").waitFor({ timeout: 5000 });
		const until = new Date(Date.now() + 7 * 86_400_000).toISOString();
		const set = await fetch(`${gw.url}/api/operator/security-hold`, {
			method: "PUT",
			headers: { authorization: `Bearer ${operator.token()}`, "content-type": "application/json" },
			body: JSON.stringify({ reason: "incident 7 under investigation", until }),
		});
		expect(set.status).toBe(200);
		await ops.getByRole("button", { name: "Refresh" }).click();
		await ops.getByTestId("operator-hold").getByText("incident 7 under investigation").waitFor({ timeout: 5000 });
		expect(violations).toEqual([]); // the console runs under the gateway's CSP, like the meeting page
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

describe("operator powers, seen in the page", () => {
	it("a warning is shown and acknowledged; a removed chat message leaves every screen; max live meetings = 1 refuses a second start", async () => {
		const op = operator.token();
		const m = await schedule("host-4");
		const host = await join(m.joinCode, "Hana", acme.token("host-4"));
		const erin = await join(m.joinCode, "Erin", acme.token("erin", "participant"));

		// Warning: a dialog the person must acknowledge; the acknowledgement is recorded.
		const w = await api(gw, "POST", "/api/operator/tenants/acme/warnings", op, {
			subject: "erin",
			message: "Please keep to the meeting's topic.",
			reason: "complaint 9",
		});
		expect(w.status).toBe(201);
		const dialog = erin.getByTestId("operator-warning");
		await dialog.getByText("Please keep to the meeting's topic.").waitFor({ timeout: 5000 });
		await dialog.getByRole("button", { name: "I have read this" }).click();
		await dialog.waitFor({ state: "hidden", timeout: 5000 });
		const actions = (await api(gw, "GET", "/api/operator-actions", acme.token("boss", "admin"))).body.actions as {
			action: string;
			warningId?: string;
		}[];
		expect(actions.filter((a) => a.warningId === w.body.id).map((a) => a.action)).toEqual([
			"warning.issued",
			"warning.acknowledged",
		]);

		// Chat: a message removed by the operator goes from every screen.
		await erin.getByLabel("Message").fill("visit my-spam.example");
		await erin.getByLabel("Message").press("Enter");
		const line = (p: Page) => p.getByTestId("chat-log").locator("li").filter({ hasText: "my-spam" });
		await line(host).waitFor({ timeout: 5000 });
		const id = await line(host).getAttribute("data-id");
		const r = await api(gw, "POST", `/api/operator/meetings/${m.id}/chat/${id}/remove`, op, { reason: "spam" });
		expect(r.status).toBe(200);
		for (const p of [host, erin]) {
			const removed = p.getByTestId("chat-log").locator(`li[data-id="${id}"][data-removed="true"]`);
			await removed.waitFor({ timeout: 5000 });
			await expect(removed.textContent()).resolves.toContain("removed by the service operator");
			await expect(p.getByTestId("chat-log").textContent()).resolves.not.toContain("my-spam");
		}

		// Limit: one live meeting for the tenant; a second host's start is refused on their page.
		await api(gw, "PUT", "/api/operator/tenants/acme", op, { limits: { maxLiveMeetings: 1 }, reason: "plan" });
		const m2 = await schedule("host-5");
		const second = await join(m2.joinCode, "Hugo", acme.token("host-5"), false);
		await second.locator('[data-testid="error-screen"][data-code="tenant_limit_reached"]').waitFor({ timeout: 10_000 });
		await api(gw, "PUT", "/api/operator/tenants/acme", op, { limits: {}, reason: "plan" });
	});
});

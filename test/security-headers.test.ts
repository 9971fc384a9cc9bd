import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { startGateway } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";

/** The security headers on every kind of response, over plain http and with the gateway serving TLS itself. */
describe("security headers", () => {
	const acme = testTenant("acme");
	let gw: Gateway;
	let tls: Gateway;
	const csp = (h: Headers) => h.get("content-security-policy") ?? "";

	beforeAll(async () => {
		gw = await startGateway({ tenants: [acme] });
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-tls-"));
		const [cert, key] = [path.join(dir, "cert.pem"), path.join(dir, "key.pem")];
		execFileSync(
			"openssl",
			[
				"req",
				"-x509",
				"-newkey",
				"ec",
				"-pkeyopt",
				"ec_paramgen_curve:prime256v1",
				"-nodes",
				"-days",
				"1",
				"-subj",
				"/CN=127.0.0.1",
				"-keyout",
				key,
				"-out",
				cert,
			],
			{ stdio: "ignore" },
		);
		tls = await startGateway({
			tenants: [acme],
			env: { CONSENTRY_TLS_CERT_FILE: cert, CONSENTRY_TLS_KEY_FILE: key },
		});
	});
	afterAll(async () => {
		await gw?.close();
		await tls?.close();
	});

	it("puts CSP, nosniff, frame denial and a referrer policy on the page, the API, errors and 404s; no HSTS on http", async () => {
		const page = await fetch(`${gw.url}/`);
		expect(page.headers.get("content-type")).toMatch(/text\/html/);
		for (const [what, res] of [
			["page", page],
			["asset-less 404", await fetch(`${gw.url}/nope`)],
			["API", await fetch(`${gw.url}/healthz`)],
			["API error", await fetch(`${gw.url}/api/meetings`)],
			["public meeting", await fetch(`${gw.url}/api/meetings/aaaa-bbbb-cccc/public`)],
		] as const) {
			const h = res.headers;
			expect(h.get("x-content-type-options"), what).toBe("nosniff");
			expect(h.get("x-frame-options"), what).toBe("DENY");
			expect(h.get("referrer-policy"), what).toBe("no-referrer");
			expect(csp(h), what).toContain("frame-ancestors 'none'");
			expect(csp(h), what).toContain("default-src 'self'");
			expect(csp(h), what).toContain("script-src 'self';");
			expect(csp(h), what).not.toContain("unsafe-");
			expect(csp(h), what).not.toContain("upgrade-insecure-requests");
			expect(h.get("strict-transport-security"), what).toBeNull();
		}
		// socket.io's own HTTP answers (long-polling handshake) too.
		const poll = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`);
		expect(poll.headers.get("x-content-type-options")).toBe("nosniff");
	});

	it("adds HSTS (and upgrade-insecure-requests) when the gateway serves TLS itself", async () => {
		expect(tls.url).toMatch(/^https:/);
		const res = await new Promise<{ headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
			// Self-signed: checked by hand here, never turned off globally.
			import("node:https").then(({ get }) =>
				get(`${tls.url}/healthz`, { rejectUnauthorized: false }, (r) => {
					r.resume();
					resolve({ headers: r.headers });
				}).on("error", reject),
			);
		});
		expect(res.headers["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains");
		expect(String(res.headers["content-security-policy"])).toContain("upgrade-insecure-requests");
		expect(res.headers["x-content-type-options"]).toBe("nosniff");
	});
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { startGateway } from "./helpers/gateway.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * The API description: /api/openapi.json is OpenAPI 3.1 with request schemas generated from the zod schemas the
 * handlers validate with, and it names every route the gateway registered — a new route without a description
 * fails here. The docs page and its assets come from the gateway itself (no CDN).
 */
let gw: Gateway;
let doc: {
	openapi: string;
	paths: Record<string, Record<string, { requestBody?: unknown; parameters?: { name: string; in: string }[] }>>;
	components: { schemas: Record<string, unknown> };
};

/** Routes that are files, not API: the client's static files and the docs page's assets. */
const isStaticFiles = (url: string) => url === "/" || url === "/*" || url.startsWith("/api/docs/assets/");

beforeAll(async () => {
	gw = await startGateway({
		tenants: [testTenant("acme")],
		env: { CONSENTRY_MASTER_KEY: Buffer.alloc(32, 7).toString("base64") },
	});
	doc = await (await fetch(`${gw.url}/api/openapi.json`)).json();
});

afterAll(async () => {
	await gw?.close();
});

describe("OpenAPI", () => {
	it("describes every route the gateway registered", () => {
		expect(doc.openapi).toBe("3.1.0");
		const missing = gw.apiRoutes
			.filter((r) => r.method !== "HEAD" && !isStaticFiles(r.url))
			.filter((r) => !doc.paths[r.url.replace(/:([A-Za-z0-9_]+)/g, "{$1}")]?.[r.method.toLowerCase()])
			.map((r) => `${r.method} ${r.url}`);
		expect(missing).toEqual([]);
		expect(gw.apiRoutes.length).toBeGreaterThan(20);
	});

	it("takes request bodies and parameters from the schemas the server validates with", () => {
		const schedule = doc.paths["/api/meetings"]?.post?.requestBody as {
			content: { "application/json": { schema: { properties: Record<string, unknown>; required: string[] } } };
		};
		const s = schedule.content["application/json"].schema;
		expect(Object.keys(s.properties)).toEqual(
			expect.arrayContaining(["title", "scheduledFor", "passcode", "settings"]),
		);
		expect(s.required).toEqual(["title"]);
		expect(s.properties.title).toMatchObject({ type: "string", minLength: 1, maxLength: 200 });
		const webhook = doc.paths["/api/webhook"]?.put?.requestBody as {
			content: { "application/json": { schema: { properties: { events: { items: { enum: string[] } } } } } };
		};
		expect(webhook.content["application/json"].schema.properties.events.items.enum).toContain("recording.ready");
		expect(doc.paths["/api/meetings/{id}"]?.get?.parameters).toEqual([
			expect.objectContaining({ name: "id", in: "path" }),
		]);
		expect(doc.paths["/api/webhook/deliveries"]?.get?.parameters?.map((p) => `${p.in}:${p.name}`)).toEqual([
			"query:state",
			"query:limit",
			"query:before",
		]);
		expect(doc.components.schemas.Error).toBeDefined();
	});

	it("serves the docs page and its assets from the gateway", async () => {
		const page = await fetch(`${gw.url}/api/docs`);
		expect(page.headers.get("content-type")).toMatch(/^text\/html/);
		const html = await page.text();
		const srcs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
		expect(srcs.length).toBe(4);
		for (const src of srcs) {
			expect(src.startsWith("/")).toBe(true); // same origin, no CDN
			const r = await fetch(`${gw.url}${src}`);
			expect(r.status, src).toBe(200);
		}
		expect(html).not.toMatch(/<script>[^<]/); // no inline script
		expect((await fetch(`${gw.url}/api/docs/assets/package.json`)).status).toBe(404);
	});
});

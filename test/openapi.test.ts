import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { BODY_LIMIT_BYTES, MAX_PARAM_LENGTH } from "../server/http/clientErrors.js";
import { ROUTES, type RouteDoc } from "../server/openapi/routes.js";
import { startGateway } from "./helpers/gateway.js";
import { testOperator } from "./helpers/operator.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * The API description: /api/openapi.json is OpenAPI 3.1 with request schemas generated from the zod schemas the
 * handlers validate with, and it names every route the gateway registered — a new route without a description
 * fails here. The docs page and its assets come from the gateway itself (no CDN).
 */
let gw: Gateway;
const acme = testTenant("acme");
const operator = testOperator();
let doc: {
	openapi: string;
	paths: Record<
		string,
		Record<
			string,
			{ requestBody?: unknown; parameters?: { name: string; in: string }[]; responses: Record<string, unknown> }
		>
	>;
	components: { schemas: Record<string, unknown> };
};

/** Routes that are files, not API: the client's static files and the docs page's assets. */
const isStaticFiles = (url: string) => url === "/" || url === "/*" || url.startsWith("/api/docs/assets/");

beforeAll(async () => {
	gw = await startGateway({
		tenants: [acme],
		env: {
			CONSENTRY_MASTER_KEY: Buffer.alloc(32, 7).toString("base64"),
			CONSENTRY_OPERATOR_KEYS_FILE: operator.keysFile,
		},
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

/** The statuses the document lists for a route. */
const listed = (r: RouteDoc): number[] =>
	Object.keys(doc.paths[r.url.replace(/:([A-Za-z0-9_]+)/g, "{$1}")]?.[r.method.toLowerCase()]?.responses ?? {}).map(
		Number,
	);
/** The route's URL with each path parameter filled (`odd`: this one with `value`, by default too long for the router). */
const fill = (url: string, odd?: string, value = "x".repeat(MAX_PARAM_LENGTH + 1)) =>
	url.replace(/:(\w+)/g, (_m, name: string) => (name === odd ? value : "abcdefghjk"));
const tokenFor = (r: RouteDoc): string | undefined =>
	r.auth === "operator"
		? operator.token()
		: r.auth === "admin"
			? acme.token("acme-admin", "admin")
			: r.auth === "host" || r.auth === "member"
				? acme.token("acme-host")
				: undefined;

/**
 * What the gateway refuses before any handler runs (server/http/clientErrors.ts, jsonBodies.ts) is in the document
 * for every route it applies to: each route, called with the right token, answers a body past the limit, a body
 * that is not JSON, a path parameter past the router's limit and one holding a NUL with exactly a status the
 * document lists for it.
 */
describe("OpenAPI error statuses against the real gateway", () => {
	const send = async (r: RouteDoc, url: string, body?: { text: string; type: string }) => {
		const token = tokenFor(r);
		const res = await fetch(`${gw.url}${url}`, {
			method: r.method,
			headers: {
				...(token ? { authorization: `Bearer ${token}` } : {}),
				...(body ? { "content-type": body.type } : {}),
			},
			...(body ? { body: body.text } : {}),
		});
		const text = await res.text();
		return { status: res.status, code: (JSON.parse(text || "{}") as { code?: string }).code, text };
	};
	const registered = () => ROUTES.filter((r) => gw.apiRoutes.some((g) => g.method === r.method && g.url === r.url));

	it("a body past the limit (413) and a body that is not JSON (415), on every route that reads a body", async () => {
		const routes = registered().filter((r) => r.method !== "GET");
		expect(routes.length).toBeGreaterThan(30);
		const wrong: string[] = [];
		for (const r of routes) {
			const big = await send(r, fill(r.url), {
				text: JSON.stringify({ title: "x".repeat(BODY_LIMIT_BYTES) }),
				type: "application/json",
			});
			const text = await send(r, fill(r.url), { text: "hello", type: "text/plain" });
			for (const [a, want, code] of [
				[big, 413, "body_too_large"],
				[text, 415, "unsupported_media_type"],
			] as const) {
				if (a.status !== want || a.code !== code || !listed(r).includes(a.status))
					wrong.push(`${r.method} ${r.url}: ${a.status} ${a.code} (listed: ${listed(r).join(",")})`);
			}
		}
		expect(wrong).toEqual([]);
	});

	it("a path parameter past the router's limit (414; 404 on a GET), on every route with parameters", async () => {
		const routes = registered().filter((r) => r.url.includes("/:"));
		expect(routes.length).toBeGreaterThan(30);
		const wrong: string[] = [];
		for (const r of routes) {
			for (const [, name] of r.url.matchAll(/:(\w+)/g)) {
				const a = await send(r, fill(r.url, name));
				// A GET's path is the client's files' when too long for the route (their catch-all route): no such page.
				const want = r.method === "GET" ? [414, 404] : [414];
				const ok = (a.status === 414 && a.code === "url_too_long") || (a.status === 404 && a.code === "not_found");
				if (!ok || !want.includes(a.status) || !listed(r).includes(a.status))
					wrong.push(`${r.method} ${r.url} (:${name}): ${a.status} ${a.code} (listed: ${listed(r).join(",")})`);
			}
		}
		expect(wrong).toEqual([]);
		// One parameter just at the limit is not refused as too long.
		const at = await send(
			ROUTES.find((r) => r.url === "/api/meetings/:id" && r.method === "GET") as RouteDoc,
			`/api/meetings/${"x".repeat(MAX_PARAM_LENGTH)}`,
		);
		expect(at.status).not.toBe(414);
	});

	it("a path parameter holding a NUL (400), on every route with parameters", async () => {
		const wrong: string[] = [];
		for (const r of registered().filter((x) => x.url.includes("/:"))) {
			for (const [, name] of r.url.matchAll(/:(\w+)/g)) {
				const a = await send(r, fill(r.url, name, "a%00b"));
				if (a.status !== 400 || a.code !== "invalid_request" || !listed(r).includes(a.status))
					wrong.push(`${r.method} ${r.url} (:${name}): ${a.status} ${a.code} (listed: ${listed(r).join(",")})`);
			}
		}
		expect(wrong).toEqual([]);
	});
});

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { projectRoot } from "../paths.js";
import { ErrorSchema, RATE_LIMITED, REFUSED_BEFORE_HANDLER, ROUTES, type RouteDoc } from "./routes.js";

/** A route as fastify registered it. */
export interface RegisteredRoute {
	method: string;
	url: string;
}

/** Starts recording every route registered on `http` from now on (call before any route is added). */
export function collectRoutes(http: FastifyInstance): RegisteredRoute[] {
	const routes: RegisteredRoute[] = [];
	http.addHook("onRoute", (r) => {
		for (const method of Array.isArray(r.method) ? r.method : [r.method]) routes.push({ method, url: r.url });
	});
	return routes;
}

type JsonSchema = Record<string, unknown>;

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect); named schemas (`.meta({ id })`) become refs. */
function toSchema(schema: z.ZodType, io: "input" | "output", components: Record<string, JsonSchema>): JsonSchema {
	const generated = z.toJSONSchema(schema, {
		target: "draft-2020-12",
		io,
		unrepresentable: "any",
		reused: "inline",
		metadata: z.globalRegistry,
	});
	// Named schemas land in $defs; in OpenAPI they live in components.
	const out = JSON.parse(JSON.stringify(generated).replaceAll('"#/$defs/', '"#/components/schemas/')) as JsonSchema & {
		$defs?: Record<string, JsonSchema>;
	};
	for (const [id, def] of Object.entries(out.$defs ?? {})) components[id] = def;
	const { $schema: _s, $defs: _d, ...rest } = out;
	const id = (rest as { id?: string }).id;
	if (id) {
		const { id: _i, ...named } = rest;
		components[id] = named;
		return { $ref: `#/components/schemas/${id}` };
	}
	return rest;
}

function parameters(
	where: "path" | "query",
	schema: z.ZodObject | undefined,
	components: Record<string, JsonSchema>,
): JsonSchema[] {
	if (!schema) return [];
	const json = toSchema(schema, "input", components) as {
		properties?: Record<string, JsonSchema>;
		required?: string[];
	};
	return Object.entries(json.properties ?? {}).map(([name, s]) => ({
		name,
		in: where,
		required: where === "path" || (json.required ?? []).includes(name),
		schema: s,
		...(typeof s.description === "string" ? { description: s.description } : {}),
	}));
}

const SECURITY: Record<RouteDoc["auth"], JsonSchema[] | undefined> = {
	none: [],
	host: [{ hostToken: [] }],
	admin: [{ adminToken: [] }],
	member: [{ personToken: [] }],
	metrics: [{}, { metricsToken: [] }],
	operator: [{ operatorToken: [] }],
};

/**
 * The error statuses a route answers before its handler runs, whatever it is (routes.ts, REFUSED_BEFORE_HANDLER):
 * 429 on every route but /healthz; 413 and 415 where a body is read (every method but GET); 400 and 414 where the
 * path has parameters, and on a GET 404 too (a parameter too long for the route: the client's files' path).
 */
export function refusedBeforeHandler(r: Pick<RouteDoc, "method" | "url">): RouteDoc["responses"] {
	const out: RouteDoc["responses"] = {};
	if (r.url !== "/healthz") out[429] = RATE_LIMITED;
	if (r.method !== "GET") Object.assign(out, REFUSED_BEFORE_HANDLER.body);
	if (r.url.includes("/:")) Object.assign(out, REFUSED_BEFORE_HANDLER.params);
	if (r.url.includes("/:") && r.method === "GET") Object.assign(out, REFUSED_BEFORE_HANDLER.paramsOnGet);
	return out;
}

/** The OpenAPI 3.1 document of `routes`, request schemas generated from the zod schemas the server validates with. */
export function openApiDocument(routes: readonly RouteDoc[] = ROUTES, version = "0.1.0"): JsonSchema {
	const components: Record<string, JsonSchema> = {};
	toSchema(ErrorSchema, "output", components);
	const paths: Record<string, Record<string, JsonSchema>> = {};
	for (const r of routes) {
		const p = r.url.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
		const responses: Record<string, JsonSchema> = {};
		const all: RouteDoc["responses"] = { ...refusedBeforeHandler(r), ...r.responses };
		for (const [status, res] of Object.entries(all)) {
			const type = res.contentType ?? "application/json";
			responses[status] = {
				description: res.description,
				...(res.schema || res.contentType
					? { content: { [type]: res.schema ? { schema: toSchema(res.schema, "output", components) } : {} } }
					: {}),
			};
		}
		const params = [...parameters("path", r.params, components), ...parameters("query", r.query, components)];
		paths[p] ??= {};
		(paths[p] as Record<string, JsonSchema>)[r.method.toLowerCase()] = {
			summary: r.summary,
			...(r.description ? { description: r.description } : {}),
			tags: [r.tag],
			operationId: `${r.method.toLowerCase()}${p.replace(/[{}]/g, "").replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? "").toUpperCase())}`,
			security: SECURITY[r.auth],
			...(params.length ? { parameters: params } : {}),
			...(r.body
				? {
						requestBody: {
							required: true,
							content: { "application/json": { schema: toSchema(r.body, "input", components) } },
						},
					}
				: {}),
			responses,
		};
	}
	return {
		openapi: "3.1.0",
		info: {
			title: "consentry gateway API",
			version,
			description:
				"Meetings, the customer's storage, transcripts, recordings and webhooks. Every call carries a JWT the Customer's own system signed for the person (`Authorization: Bearer <token>`; docs/identity.md); errors are `{code, message}`. Meeting signaling (socket.io) is described in shared/protocol.ts.",
		},
		servers: [{ url: "/" }],
		tags: ["meetings", "transcripts", "recordings", "storage", "webhooks", "operations", "operator", "privacy"].map(
			(name) => ({
				name,
			}),
		),
		paths,
		components: {
			schemas: components,
			securitySchemes: {
				hostToken: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "A token with `role: host`." },
				adminToken: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "A token with `role: admin`." },
				personToken: {
					type: "http",
					scheme: "bearer",
					bearerFormat: "JWT",
					description: "The token of the meeting's host or of a person who was in it.",
				},
				metricsToken: { type: "http", scheme: "bearer", description: "CONSENTRY_METRICS_TOKEN." },
				operatorToken: {
					type: "http",
					scheme: "bearer",
					bearerFormat: "JWT",
					description: "The service operator's token: `iss: consentry:operator`, `role: operator` (docs/operator.md).",
				},
			},
		},
	};
}

const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>consentry API</title>
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/api/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body>
</html>
`;
const DOCS_INIT = `window.ui = SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true });\n`;

/**
 * `GET /api/openapi.json` and the docs page `GET /api/docs` (Swagger UI from the swagger-ui-dist package, served
 * by the gateway: no CDN, no inline script).
 */
export async function registerOpenApi(http: FastifyInstance): Promise<void> {
	const require = createRequire(import.meta.url);
	const version = (JSON.parse(readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { version: string })
		.version;
	let doc: string | undefined;
	http.get("/api/openapi.json", async (_req, reply) => {
		doc ??= JSON.stringify(openApiDocument(ROUTES, version));
		return reply.type("application/json").send(doc);
	});
	http.get("/api/docs", async (_req, reply) => reply.type("text/html; charset=utf-8").send(DOCS_PAGE));
	http.get("/api/docs/init.js", async (_req, reply) => reply.type("text/javascript; charset=utf-8").send(DOCS_INIT));
	await http.register(fastifyStatic, {
		root: path.dirname(require.resolve("swagger-ui-dist/package.json")),
		prefix: "/api/docs/assets/",
		decorateReply: false,
		allowedPath: (p) => /^\/?(swagger-ui-bundle\.js|swagger-ui\.css|favicon-(16x16|32x32)\.png)$/.test(p),
	});
}

import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import Database from "better-sqlite3";
import jwt from "jsonwebtoken";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { ROUTES, type RouteDoc } from "../server/openapi/routes.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, capturedLog, postgresFor, startGateway, TEST_DATABASE } from "./helpers/gateway.js";
import { testOperator } from "./helpers/operator.js";
import { AUDIENCE, testTenant } from "./helpers/tenants.js";

/**
 * The REST API under attack, route by route (every route of server/openapi/routes.ts's ROUTES, so a new route is
 * covered the day it is listed): each is called with every wrong kind of caller (no token, a malformed, expired,
 * forged one, another tenant's, a weaker role, a meeting-scoped token where none is allowed, the operator on tenant
 * routes and a tenant on operator routes) and with hostile input (wrong JSON types at every field, bodies past the
 * limit, nesting, invalid JSON and bytes, the wrong content type, prototype keys, unicode edge cases, numbers at the
 * edges, path parameters that climb or are 10 KB long, other tenants' real IDs, repeated and array query strings).
 * Every answer: never 5xx, the error shape with a stable code, the right status class, nothing of another tenant,
 * no stack trace or path; the gateway logs no error for any of it, stores nothing for a refused request, and still
 * serves normal requests afterwards. One real gateway and a real S3 API (moto) for the storage routes.
 */
const acme = testTenant("acme");
const globex = testTenant("globex");
/** The hostile-input barrage calls destructive routes with the right token: they aim at this tenant and meeting. */
const initech = testTenant("initech");
const operator = testOperator();
/** What only acme's data carries: it must never appear in an answer to anyone else. */
const SECRET_TITLE = "ACME-CONFIDENTIAL-TITLE-7f3c";
const { log: captured, lines } = capturedLog();
let gw: Gateway;
let bucket: TestBucket;
let dbFile: string;
/** acme's real meeting, addressed by everyone in the barrage. */
let meetingId: string;
/** acme's meeting the hostile-input barrage may end, and the tenant it may suspend or wipe. */
let victim: Record<string, string>;

type Answer = { status: number; text: string; contentType: string };
/** Every request sent, with what it answered (for the report of a failing assertion). */
const sent: { what: string; answer: Answer }[] = [];

beforeAll(async () => {
	bucket = await startBucket("acme-fuzz");
	dbFile = path.join(mkdtempSync(path.join(os.tmpdir(), "consentry-rest-fuzz-")), "store.sqlite");
	gw = await startGateway({
		tenants: [acme, globex, initech],
		env: { ...storageEnv(), CONSENTRY_OPERATOR_KEYS_FILE: operator.keysFile, CONSENTRY_DB_FILE: dbFile },
		log: captured,
	});
	await saveStorageTarget(gw, acme, bucket, "fuzz");
	const m = await api(gw, "POST", "/api/meetings", acme.token("acme-host"), { title: SECRET_TITLE });
	expect(m.status).toBe(201);
	meetingId = m.body.id as string;
	const v = await api(gw, "POST", "/api/meetings", acme.token("acme-host"), { title: "victim" });
	victim = { id: v.body.id as string, tenantId: "initech" };
}, 60_000);

afterAll(async () => {
	reader?.close();
	await pgReader?.end();
	await gw?.close();
	await bucket?.stop();
});

/** Sends one request as-is (raw body, any headers); the answer as text. */
async function send(
	method: string,
	url: string,
	opts: { token?: string; auth?: string; body?: string | Buffer; contentType?: string } = {},
): Promise<Answer> {
	const headers: Record<string, string> = {};
	if (opts.auth !== undefined) headers.authorization = opts.auth;
	else if (opts.token) headers.authorization = `Bearer ${opts.token}`;
	if (opts.body !== undefined) headers["content-type"] = opts.contentType ?? "application/json";
	// The counts after the last refused request stand for the counts before this one (half the reads).
	const before = watchStore ? (known ?? JSON.stringify(await counts())) : "";
	known = undefined;
	const res = await fetch(`${gw.url}${url}`, {
		method,
		headers,
		...(opts.body !== undefined && method !== "GET"
			? { body: typeof opts.body === "string" ? opts.body : new Uint8Array(opts.body) }
			: {}),
	});
	const answer = { status: res.status, text: await res.text(), contentType: res.headers.get("content-type") ?? "" };
	sent.push({ what: `${method} ${url.slice(0, 200)}`, answer });
	if (process.env.FUZZ_DUMP && answer.status < 300)
		(await import("node:fs")).appendFileSync(
			process.env.FUZZ_DUMP,
			`${answer.status} ${method} ${url.slice(0, 100)} ${typeof opts.body === "string" ? opts.body.slice(0, 150) : "<bytes>"}\n`,
		);
	if (watchStore && answer.status >= 400) {
		const after = JSON.stringify(await counts());
		known = after;
		want(
			after === before,
			`${method} ${url.slice(0, 120)}`,
			answer,
			`refused, yet the store changed: ${before} → ${after}`,
		);
	}
	return answer;
}

/** What went wrong, one line each (the barrage goes on, and the test lists them all at its end). */
const problems: string[] = [];
function want(ok: boolean, what: string, a: Answer, why: string): void {
	if (!ok) problems.push(`${what} → ${a.status} ${a.text.slice(0, 200)} [${why}]`);
}
/** Fails the test with every problem found (the first 60 distinct ones). */
function noProblems(): void {
	const distinct = [...new Set(problems)];
	problems.length = 0;
	expect(distinct.slice(0, 60), `${distinct.length} problems`).toEqual([]);
}

/** What every answer must be, whoever asked and whatever they sent. */
function assertSane(what: string, a: Answer, opts: { foreign?: boolean } = {}): void {
	want(a.status < 500, what, a, "5xx");
	want(!a.text.includes("internal_error"), what, a, "internal_error");
	// No stack trace, no internal path.
	want(
		!/\n\s+at |at [\w.<>]+ \(|node_modules|\/work\/|\/server\/|\.ts:\d+|file:\/\//.test(a.text),
		what,
		a,
		"stack or path",
	);
	if (a.status >= 400) {
		want(a.contentType.includes("application/json"), what, a, `content-type ${a.contentType}`);
		let body: { code?: unknown; message?: unknown } = {};
		try {
			body = JSON.parse(a.text);
		} catch {}
		want(typeof body.code === "string" && /^[a-z][a-z0-9_]*$/.test(body.code), what, a, "no stable code");
		want(typeof body.message === "string", what, a, "no message");
	}
	if (opts.foreign) {
		want(!a.text.includes(SECRET_TITLE), what, a, "acme's title shown");
		want(a.status >= 400 || !a.text.includes(meetingId), what, a, "acme's meeting shown");
	}
}

/** `url` with its parameters filled: acme's real meeting, and plausible values for the rest. */
function fill(url: string, over: Record<string, string> = {}): string {
	return url.replace(/:(\w+)/g, (_m, name: string) => {
		if (name in over) return over[name] as string;
		switch (name) {
			case "id":
				// A transcript link's ID has its own form (16 to 64 URL-safe characters).
				return url.startsWith("/api/transcripts") || url.startsWith("/t/") ? "NoSuchLinkNoSuchLink" : meetingId;
			case "tenantId":
				return "acme";
			case "subject":
				return "someone";
			case "messageId":
				return "00000000-0000-4000-8000-000000000000";
			case "requestId":
			case "sessionId":
				return "00000000-0000-4000-8000-000000000000";
			default:
				return "abcdefghjk";
		}
	});
}

const paramsOf = (r: RouteDoc) => [...r.url.matchAll(/:(\w+)/g)].map((m) => m[1] as string);
/** A body the route's schema could take, as a base for replacing one field at a time. */
const BASE_BODY: Record<string, unknown> = {
	"POST /api/meetings": { title: "fuzz" },
	"POST /api/operator/tenants": { id: "fuzzco", name: "Fuzz Co", keys: [{ alg: "HS256", secret: "s".repeat(40) }] },
};
const bodyKeys = (r: RouteDoc): string[] => {
	const s = r.body as { shape?: Record<string, unknown> } | undefined;
	return s?.shape ? Object.keys(s.shape) : [];
};
const queryKeys = (r: RouteDoc): string[] => (r.query ? Object.keys(r.query.shape) : []);
const hasBody = (r: RouteDoc) => r.method !== "GET";

/** The token each route's callers have; the tenant routes' needed role. */
const rightToken = (r: RouteDoc): string | undefined => {
	switch (r.auth) {
		case "admin":
			return acme.token("acme-admin", "admin");
		case "host":
			return acme.token("acme-host");
		case "member":
			return acme.token("acme-host");
		case "operator":
			return operator.token();
		default:
			return undefined;
	}
};
const tenantRoute = (r: RouteDoc) => r.auth === "admin" || r.auth === "host" || r.auth === "member";
/** Routes about one meeting (a scoped token may call them for its meeting). */
const meetingRoute = (r: RouteDoc) => /:id\b|:sessionId/.test(r.url) && !r.url.startsWith("/api/operator");
const expired = jwt.sign({ role: "admin", exp: Math.floor(Date.now() / 1000) - 3600 }, acme.secret, {
	algorithm: "HS256",
	issuer: "acme",
	audience: AUDIENCE,
	subject: "acme-admin",
});
const forged = jwt.sign({ role: "admin" }, "not-the-key-of-acme-at-all-000000000", {
	algorithm: "HS256",
	issuer: "acme",
	audience: AUDIENCE,
	subject: "mallory",
	expiresIn: 600,
});
const otherAudience = jwt.sign({ role: "admin" }, acme.secret, {
	algorithm: "HS256",
	issuer: "acme",
	audience: "another-gateway",
	subject: "acme-admin",
	expiresIn: 600,
});
const forgedOperator = jwt.sign({ role: "operator" }, "not-the-operator-key-000000000000000", {
	algorithm: "HS256",
	keyid: "op-1",
	issuer: "consentry:operator",
	audience: AUDIENCE,
	subject: "mallory",
	expiresIn: 600,
});
const opExpired = jwt.sign({ role: "operator", exp: Math.floor(Date.now() / 1000) - 3600 }, operator.secret, {
	algorithm: "HS256",
	keyid: "op-1",
	issuer: "consentry:operator",
	audience: AUDIENCE,
	subject: "ops-alice",
});

/** The store, read beside the gateway: the SQLite file (WAL: each read sees what is committed), or its PostgreSQL. */
let reader: Database.Database | undefined;
let pgReader: pg.Client | undefined;
/** One statement counting every table's rows. */
let countAll: string | undefined;
/** Row counts of every table: what a refused request must not change. */
async function counts(): Promise<Record<string, number>> {
	// Heartbeats and leases are the gateway's own doing, not a caller's.
	const union = (tables: string[]) =>
		tables
			.filter((n) => !["cluster_nodes", "job_leases", "consentry_schema"].includes(n))
			.map((n) => `SELECT '${n}' AS t, count(*) AS n FROM "${n}"`)
			.join(" UNION ALL ");
	let rows: { t: string; n: number | string }[];
	if (TEST_DATABASE === "postgres") {
		if (!pgReader) {
			pgReader = new pg.Client({ connectionString: await postgresFor(dbFile) });
			await pgReader.connect();
			const t = await pgReader.query<{ n: string }>(
				"SELECT table_name AS n FROM information_schema.tables WHERE table_schema = current_schema()",
			);
			countAll = union(t.rows.map((r) => r.n));
		}
		rows = (await pgReader.query(countAll as string)).rows;
	} else {
		if (!reader) {
			reader = new Database(dbFile, { readonly: true, fileMustExist: true });
			const t = reader
				.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
				.all() as { name: string }[];
			countAll = union(t.map((r) => r.name));
		}
		rows = reader.prepare(countAll as string).all() as typeof rows;
	}
	return Object.fromEntries(rows.map((r) => [r.t, Number(r.n)]));
}
/** The store's counts after the last refused request, while watching. */
let known: string | undefined;
/** While set, every request is framed by the store's counts: a refused one (4xx) must have changed none. */
let watchStore = false;
const watch = (on: boolean) => {
	watchStore = on;
	known = undefined;
};

/** Strings that are not text: a NUL, lone surrogates. */
const NOT_TEXT: unknown[] = ["\u0000", "a\u0000b", "\ud800", "\udfff x"];
const HOSTILE_VALUES: unknown[] = [
	null,
	true,
	0,
	-1,
	1.5,
	1e308,
	-1e308,
	"NaN",
	"Infinity",
	"-0",
	"1e308",
	"",
	"x".repeat(20_000),
	"\u0000",
	"a\u0000b",
	"\ud800",
	"\udfff x",
	"\u202eevil\u202c",
	"\ufeff",
	"😀".repeat(1000),
	"../../etc/passwd",
	"<script>alert(1)</script>",
	[],
	[1, "a", null],
	{},
	{ __proto__: { admin: true } },
	JSON.parse('{"__proto__": {"polluted": 1}, "constructor": {"prototype": {"polluted": 1}}}'),
];
const HOSTILE_PARAMS = [
	"..",
	"../..",
	"..%2f..%2fetc%2fpasswd",
	"%2e%2e",
	"%2e%2e%2f%2e%2e",
	"%00",
	"a%00b",
	"%ff%fe",
	"%",
	"%zz",
	"a".repeat(10 * 1024),
	"%E2%80%AE",
	"%F0%9F%98%80",
	"__proto__",
	"constructor",
	"prototype",
	"-1",
	"1e308",
	"NaN",
	"null",
	"0",
];
const RAW_BODIES: { name: string; body: string | Buffer; contentType?: string }[] = [
	{ name: "invalid JSON", body: "{not json" },
	{ name: "truncated JSON", body: '{"title": "x"' },
	{ name: "JSON null", body: "null" },
	{ name: "JSON string", body: '"x"' },
	{ name: "JSON number", body: "1e308" },
	{ name: "JSON array", body: "[1,2,3]" },
	{ name: "empty with JSON type", body: "" },
	{ name: "deep arrays", body: `${"[".repeat(30_000)}${"]".repeat(30_000)}` },
	{ name: "deep objects", body: `${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}` },
	{ name: "past the body limit", body: JSON.stringify({ title: "x".repeat(200 * 1024) }) },
	{ name: "far past the body limit", body: Buffer.alloc(2 * 1024 * 1024, 0x20) },
	{
		name: "non-UTF-8 bytes",
		body: Buffer.from([0x7b, 0x22, 0x74, 0x69, 0x74, 0x6c, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]),
	},
	{ name: "BOM then JSON", body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"title":"x"}')]) },
	{
		name: "prototype keys",
		body: '{"__proto__":{"role":"admin"},"constructor":{"prototype":{"role":"admin"}},"title":"x"}',
	},
	{ name: "duplicate keys", body: '{"title":"a","title":{"x":1}}' },
	{ name: "text/plain", body: '{"title":"x"}', contentType: "text/plain" },
	{ name: "xml", body: "<title>x</title>", contentType: "application/xml" },
	{ name: "form", body: "title=x&title=y", contentType: "application/x-www-form-urlencoded" },
	{ name: "multipart", body: "--b\r\n\r\nx\r\n--b--", contentType: "multipart/form-data; boundary=b" },
	{ name: "JSON with a bad charset", body: '{"title":"x"}', contentType: "application/json; charset=ebcdic" },
	{ name: "no such content type", body: "{}", contentType: "application/x-consentry-nonsense" },
	{ name: "JSON's name with a suffix", body: '{"title":"x"}', contentType: "application/jsonp" },
];

describe("REST fuzz: every route, every wrong caller, hostile input", () => {
	it("covers every route of ROUTES", () => {
		expect(ROUTES.length).toBeGreaterThanOrEqual(60);
	});

	it("refuses every wrong caller with the right status, stores nothing for them, logs no error", async () => {
		const before = await counts();
		watch(true);
		const operatorOnTenant: string[] = [];
		for (const r of ROUTES) {
			const url = fill(r.url);
			const body = hasBody(r) ? JSON.stringify(BASE_BODY[`${r.method} ${r.url}`] ?? {}) : undefined;
			const call = (opts: Parameters<typeof send>[2]) => send(r.method, url, { ...opts, ...(body ? { body } : {}) });
			if (r.auth === "none" || r.auth === "metrics") continue;
			const where = `${r.method} ${r.url}`;
			// 401: no token, a malformed one, one that fails verification.
			for (const [name, opts] of [
				["no token", {}],
				["empty bearer", { auth: "Bearer " }],
				["not a JWT", { auth: "Bearer not-a-token" }],
				["basic auth", { auth: "Basic YWRtaW46YWRtaW4=" }],
				["two tokens", { auth: `Bearer ${acme.token("a", "admin")} ${acme.token("b", "admin")}` }],
				["alg none", { token: `${jwt.sign({ role: "admin" }, "", { algorithm: "none" as "HS256" })}` }],
				["expired", { token: r.auth === "operator" ? opExpired : expired }],
				["forged", { token: forged }],
				["forged operator", { token: forgedOperator }],
				["tenant key, role operator", { token: acme.token("x", "admin", { role: "operator" }) }],
				["tenant key, role guest", { token: acme.token("x", "admin", { role: "guest" }) }],
				["tenant key, another audience", { token: otherAudience }],
				["10 KB token", { token: "a".repeat(10 * 1024) }],
			] as const) {
				const a = await call(opts);
				assertSane(`${where} (${name})`, a, { foreign: true });
				// Each verifier refuses the other's issuer (the token's own claim) before any signature work, by design
				// (docs/operator.md): a tenant-issued token on an operator route is 403 `operator_only`, an operator-issued
				// one on a tenant route 403 `operator_token_refused`, forged or not. Every other bad token is 401.
				const otherIssuer =
					(name !== "forged operator" &&
						"token" in opts &&
						!name.includes("KB") &&
						name !== "expired" &&
						r.auth === "operator") ||
					(name === "forged operator" && r.auth !== "operator");
				want(a.status === (otherIssuer ? 403 : 401), `${where} (${name})`, a, otherIssuer ? "want 403" : "want 401");
			}
			if (r.auth === "operator") {
				for (const role of ["admin", "host", "participant"] as const) {
					const a = await call({ token: acme.token("x", role) });
					assertSane(`${where} (tenant ${role})`, a, { foreign: true });
					want(a.status === 403, `${where} (tenant ${role}) → ${a.text}`, a, "want 403");
				}
				continue;
			}
			// The operator on a tenant route: refused (its powers are the operator routes).
			const op = await call({ token: operator.token() });
			assertSane(`${where} (operator)`, op, { foreign: true });
			want(op.status === 403, `${where} (operator) → ${op.text}`, op, "want 403");
			operatorOnTenant.push(where);
			// A weaker role than the route needs.
			const weaker =
				r.auth === "admin" ? (["host", "participant"] as const) : r.auth === "host" ? (["participant"] as const) : [];
			for (const role of weaker) {
				const a = await call({ token: acme.token("acme-weak", role) });
				assertSane(`${where} (${role})`, a);
				want([403, 404].includes(a.status), `${where} (${role}) → ${a.status} ${a.text}`, a, "want 403/404");
			}
			// A token scoped to another meeting (on a meeting's route) or to any meeting (on an unscoped route).
			const scoped = await call({
				token: acme.token("acme-host", r.auth === "admin" ? "admin" : "host", { meeting: "zzzzzzzzzz" }),
			});
			assertSane(`${where} (scoped)`, scoped);
			want(
				[403, 404].includes(scoped.status) ||
					(r.url === "/api/meetings" && r.method === "GET" && scoped.text === '{"meetings":[]}'),
				`${where} (scoped) → ${scoped.status} ${scoped.text}`,
				scoped,
				"want 403/404",
			);
			// Another tenant's caller with the right role, on acme's real meeting: refused, nothing of acme's shown.
			if (meetingRoute(r)) {
				const a = await call({ token: globex.token("globex-boss", r.auth === "admin" ? "admin" : "host") });
				assertSane(`${where} (globex)`, a, { foreign: true });
				want([403, 404].includes(a.status), `${where} (globex) → ${a.status} ${a.text}`, a, "want 403/404");
			}
		}
		expect(operatorOnTenant.length).toBeGreaterThan(20);
		watch(false);
		// Nothing a refused caller asked for was stored, not even an audit line.
		expect(await counts()).toEqual(before);
		noProblems();
	}, 60_000);

	it("answers hostile bodies, params and queries with a clean 4xx (or a correct 2xx), never 5xx", async () => {
		watch(true);
		for (const r of ROUTES) {
			const token = rightToken(r);
			const where = `${r.method} ${r.url}`;
			const base = BASE_BODY[where] ?? {};
			// Path parameters: climbing, NUL, bad escapes, 10 KB, prototype names.
			for (const p of paramsOf(r)) {
				for (const v of HOSTILE_PARAMS) {
					const a = await send(r.method, fill(r.url, { ...victim, [p]: v }), {
						...(token ? { token } : {}),
						...(hasBody(r) ? { body: JSON.stringify(base) } : {}),
					});
					assertSane(`${where} :${p}=${v.slice(0, 40)}`, a);
					if (v.includes("%00")) want(a.status === 400, `${where} :${p}=${v}`, a, "want 400 for a NUL");
				}
				// Another tenant's real meeting ID in globex's hands: covered above; here a foreign tenant ID for the operator.
			}
			// Query strings: repeated, arrays, edge numbers, NUL.
			const keys = [...queryKeys(r), "limit", "a"];
			for (const k of keys) {
				for (const q of [
					`${k}=1&${k}=2`,
					`${k}[]=1`,
					`${k}[0]=1&${k}[1]=2`,
					`${k}[x]=1`,
					`${k}=1e308`,
					`${k}=-1`,
					`${k}=1.5`,
					`${k}=NaN`,
					`${k}=%00`,
					`${k}=%ff`,
					`${k}=${"9".repeat(400)}`,
					`__proto__[x]=1&constructor[prototype][x]=1`,
				]) {
					const a = await send(r.method, `${fill(r.url, victim)}?${q}`, {
						...(token ? { token } : {}),
						...(hasBody(r) ? { body: JSON.stringify(base) } : {}),
					});
					assertSane(`${where}?${q.slice(0, 60)}`, a);
				}
			}
			if (!hasBody(r)) continue;
			// Raw bodies: invalid JSON, nesting, past the limit, bad bytes and content types.
			for (const b of RAW_BODIES) {
				const a = await send(r.method, fill(r.url, victim), {
					...(token ? { token } : {}),
					body: b.body,
					...(b.contentType ? { contentType: b.contentType } : {}),
				});
				assertSane(`${where} (${b.name})`, a);
				if (b.name.includes("past the body limit"))
					want(a.status === 413 && a.text.includes('"body_too_large"'), `${where} (${b.name})`, a, "want 413");
				if (["text/plain", "xml", "form", "multipart"].includes(b.name) && r.body) {
					want(
						a.status === 415 && a.text.includes('"unsupported_media_type"'),
						`${where} (${b.name}) → ${a.text}`,
						a,
						"want 415",
					);
				}
				if (["invalid JSON", "truncated JSON", "non-UTF-8 bytes"].includes(b.name) && r.body) {
					want(a.status === 400, `${where} (${b.name}) → ${a.text}`, a, "want 400");
				}
			}
			// Wrong JSON types at every field of the body's schema (and a field it does not have).
			for (const k of [...bodyKeys(r), "__proto__", "constructor", "unknownField"]) {
				for (const v of HOSTILE_VALUES) {
					const body = JSON.stringify({ ...(base as object), [k]: v });
					const a = await send(r.method, fill(r.url, victim), { ...(token ? { token } : {}), body });
					assertSane(`${where} {${k}: ${JSON.stringify(v)?.slice(0, 40)}}`, a);
					// No NUL, no lone surrogate reaches a handler (nor the store: PostgreSQL refuses them).
					if (NOT_TEXT.includes(v))
						want(a.status === 400, `${where} {${k}: ${JSON.stringify(v)}}`, a, "want 400 for not-text");
				}
			}
		}
		watch(false);
		noProblems();
		expect(Object.prototype).not.toHaveProperty("polluted");
		expect(Object.prototype).not.toHaveProperty("admin");
	}, 120_000);

	it("answers what no route takes: other methods, unknown paths, traversal to files, chunked and compressed bodies", async () => {
		watch(true);
		const admin = acme.token("acme-admin", "admin");
		const byUrl = new Map<string, Set<string>>();
		for (const r of ROUTES) byUrl.set(r.url, (byUrl.get(r.url) ?? new Set()).add(r.method));
		for (const [url, methods] of byUrl) {
			for (const m of ["GET", "POST", "PUT", "DELETE", "PATCH"].filter((x) => !methods.has(x))) {
				const a = await send(m, fill(url), { token: admin, ...(m === "GET" ? {} : { body: "{}" }) });
				assertSane(`${m} ${url} (no such route)`, a);
				want([404, 405].includes(a.status), `${m} ${url}`, a, "want 404/405");
			}
		}
		for (const p of [
			"/api/nope",
			"/../../../../etc/passwd",
			"/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
			"/assets/..%2f..%2f..%2fpackage.json",
			"/..%5c..%5cpackage.json",
			"/%00",
			"/api/meetings/%2e%2e%2f%2e%2e%2fhealthz",
			`/${"a".repeat(10 * 1024)}`,
		]) {
			const a = await send("GET", p, { token: acme.token("acme-host") });
			assertSane(`GET ${p.slice(0, 60)}`, a);
			want(a.status === 404 || a.status === 400, `GET ${p.slice(0, 60)}`, a, "want 404/400");
			want(
				!a.text.includes("root:") && !a.text.includes('"dependencies"'),
				`GET ${p.slice(0, 60)}`,
				a,
				"a file leaked",
			);
		}
		// A body past the limit sent in chunks (no Content-Length): cut at the limit all the same.
		const chunks = new ReadableStream<Uint8Array>({
			start(c) {
				for (let i = 0; i < 40; i++)
					c.enqueue(new TextEncoder().encode(`${i ? "," : '{"title":"'}${"x".repeat(4096)}`));
				c.enqueue(new TextEncoder().encode('"}'));
				c.close();
			},
		});
		const chunked = await fetch(`${gw.url}/api/meetings`, {
			method: "POST",
			headers: { authorization: `Bearer ${acme.token("acme-host")}`, "content-type": "application/json" },
			body: chunks,
			duplex: "half",
		} as RequestInit);
		const answer = {
			status: chunked.status,
			text: await chunked.text(),
			contentType: chunked.headers.get("content-type") ?? "",
		};
		assertSane("POST /api/meetings (chunked past the limit)", answer);
		want(answer.status === 413, "POST /api/meetings (chunked past the limit)", answer, "want 413");
		// A compressed body (the gateway reads none): refused, never inflated.
		const gz = await fetch(`${gw.url}/api/meetings`, {
			method: "POST",
			headers: {
				authorization: `Bearer ${acme.token("acme-host")}`,
				"content-type": "application/json",
				"content-encoding": "gzip",
			},
			body: new Uint8Array(gzipSync(Buffer.from(JSON.stringify({ title: "z".repeat(60_000) })))),
		});
		const gza = { status: gz.status, text: await gz.text(), contentType: gz.headers.get("content-type") ?? "" };
		assertSane("POST /api/meetings (gzip)", gza);
		watch(false);
		noProblems();
	});

	it("keeps each tenant's data its own: globex's admin sees nothing of acme's", async () => {
		const globexAdmin = globex.token("globex-admin", "admin");
		for (const r of ROUTES.filter((x) => tenantRoute(x) && x.method === "GET")) {
			const a = await send(r.method, fill(r.url), { token: globexAdmin });
			assertSane(`${r.method} ${r.url} (globex admin)`, a, { foreign: true });
			want(!a.text.includes(bucket.name), `${r.method} ${r.url} (globex admin)`, a, "acme's bucket shown");
		}
		noProblems();
	});

	it("still serves normal requests, and logged no error for any of it", async () => {
		const health = await api(gw, "GET", "/healthz");
		expect(health.status).toBe(200);
		const list = await api(gw, "GET", "/api/meetings", acme.token("acme-host"));
		expect(list.status).toBe(200);
		expect(JSON.stringify(list.body)).toContain(meetingId);
		const meetingsBefore = (await counts()).meetings ?? 0;
		const made = await api(gw, "POST", "/api/meetings", acme.token("acme-host"), { title: "after the barrage" });
		expect(made.status).toBe(201);
		// The store's counts see what is stored (the watch above was not blind).
		expect((await counts()).meetings).toBe(meetingsBefore + 1);
		const errors = lines.filter((l) => typeof l.level === "number" && l.level >= 50);
		expect(errors.map((l) => `${l.msg} ${JSON.stringify(l.err ?? "").slice(0, 300)}`)).toEqual([]);
		expect(sent.length).toBeGreaterThan(3000);
	});
});

import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The compose deployment is HTTPS by default (a TLS proxy with HSTS, plain HTTP on loopback only) and its logs go
 * where an age limit applies. Docker is not needed: the YAML is parsed (PyYAML: Debian's python3-yaml, which scripts/setup.sh installs) and checked.
 */
const root = path.join(import.meta.dirname, "..");

interface Service {
	image?: string;
	profiles?: string[];
	depends_on?: Record<string, { condition?: string; required?: boolean }>;
	ports?: string[];
	environment?: Record<string, string>;
	logging?: { driver: string };
	volumes?: string[];
}

function compose(): { services: Record<string, Service> } {
	const json = execFileSync(
		"python3",
		[
			"-c",
			"import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
			path.join(root, "docker-compose.yml"),
		],
		{ encoding: "utf8" },
	);
	return JSON.parse(json) as { services: Record<string, Service> };
}

describe("docker-compose.yml", () => {
	it("serves HTTPS through the tls service; plain HTTP only on loopback; logs to journald", () => {
		const { services } = compose();
		const { gateway, tls } = services;
		expect(gateway?.ports?.filter((p) => p.includes("8080"))).toEqual(["127.0.0.1:8080:8080"]);
		expect(gateway?.environment?.CONSENTRY_TRUST_PROXY).toBe("true");
		expect(tls?.image).toMatch(/^caddy:/);
		expect(tls?.ports).toContain("443:443/tcp");
		expect(tls?.ports?.some((p) => /(^|:)80:/.test(p))).toBe(false);
		expect(tls?.volumes).toContain("./deploy/Caddyfile:/etc/caddy/Caddyfile:ro");
		for (const name of ["gateway", "tls"]) expect(services[name]?.logging?.driver).toBe("journald");
		// Every published port of every service: on loopback, or the TLS proxy's 443, or media (RTP) ports.
		for (const [name, s] of Object.entries(services)) {
			for (const p of s.ports ?? []) {
				const ok = p.startsWith("127.0.0.1:") || (name === "tls" && p.startsWith("443:")) || /\/(udp|tcp)$/.test(p);
				expect(ok, `${name}: ${p}`).toBe(true);
			}
		}
		const caddy = readFileSync(path.join(root, "deploy/Caddyfile"), "utf8");
		expect(caddy).toMatch(/Strict-Transport-Security "max-age=31536000/);
		expect(caddy).toMatch(/reverse_proxy gateway:8080/);
		expect(caddy).toMatch(/auto_https disable_redirects/);
		const journald = readFileSync(path.join(root, "deploy/journald/consentry-14d.conf"), "utf8");
		expect(journald).toMatch(/^MaxRetentionSec=14day$/m);
	});

	it("the cluster profile: PostgreSQL and a second gateway node on it, distinct names and RTC ports (README, Scaling)", () => {
		const { services } = compose();
		const { gateway, postgres } = services;
		const second = services["gateway-2"];
		// One machine by default: the gateway on its SQLite file (an empty URL counts as unset, server/config.ts).
		expect(gateway?.profiles).toBeUndefined();
		expect(gateway?.environment?.CONSENTRY_DATABASE_URL).toBe(`\${CONSENTRY_DATABASE_URL:-}`);
		expect(gateway?.depends_on?.postgres).toEqual({ condition: "service_healthy", required: false });
		// The cluster: PostgreSQL, unpublished, and the second node, both only with --profile cluster.
		expect(postgres?.image).toMatch(/^postgres:1[5-9]/);
		expect(postgres?.profiles).toEqual(["cluster"]);
		expect(postgres?.ports).toBeUndefined();
		expect(second?.profiles).toEqual(["cluster"]);
		expect(second?.depends_on?.postgres?.condition).toBe("service_healthy");
		const env1 = gateway?.environment ?? {};
		const env2 = second?.environment ?? {};
		// The same store, keys and tenants; a URL it cannot run without (never a SQLite file of its own).
		expect(env2.CONSENTRY_DATABASE_URL).toMatch(/^\$\{CONSENTRY_DATABASE_URL:-[^}]+\}$/);
		expect(env2.CONSENTRY_DATABASE_URL?.replace(/^\$\{CONSENTRY_DATABASE_URL:-|\}$/g, "")).not.toMatch(/^postgres/);
		for (const k of ["CONSENTRY_MASTER_KEY", "CONSENTRY_AUDIENCE", "CONSENTRY_TENANTS_FILE", "CONSENTRY_TRUST_PROXY"])
			expect(env2[k], k).toBe(env1[k]);
		expect(env1.CONSENTRY_GATEWAY_ID).toBeTruthy();
		expect(env2.CONSENTRY_GATEWAY_ID).toBeTruthy();
		expect(env2.CONSENTRY_GATEWAY_ID).not.toBe(env1.CONSENTRY_GATEWAY_ID);
		// Placement needs each node's own public URL (a meeting lives on one node; clients are sent there), and the
		// TLS proxy serves each one.
		expect(env1.CONSENTRY_PUBLIC_URL).toMatch(/^https:\/\//);
		expect(env2.CONSENTRY_PUBLIC_URL).toMatch(/^https:\/\/.*:8443$/);
		expect(env2.CONSENTRY_PUBLIC_URL).not.toBe(env1.CONSENTRY_PUBLIC_URL);
		expect(services.tls?.ports).toContain("8443:8443/tcp");
		const caddy = readFileSync(path.join(root, "deploy/Caddyfile"), "utf8");
		expect(caddy).toMatch(/:8443 \{\n(?:\t.*\n)*\treverse_proxy gateway-2:8080\n\}/);
		// RTC port ranges (their defaults) that do not overlap, each published as configured.
		const range = (env: Record<string, string>) =>
			[env.CONSENTRY_RTC_MIN_PORT, env.CONSENTRY_RTC_MAX_PORT].map((v) => Number(/:-(\d+)\}$/.exec(String(v))?.[1]));
		const [a0, a1] = range(env1) as [number, number];
		const [b0, b1] = range(env2) as [number, number];
		expect(a0 <= a1 && b0 <= b1 && (a1 < b0 || b1 < a0)).toBe(true);
		expect(second?.ports).toContain(
			`\${CONSENTRY_RTC2_MIN_PORT:-40100}-\${CONSENTRY_RTC2_MAX_PORT:-40199}:\${CONSENTRY_RTC2_MIN_PORT:-40100}-\${CONSENTRY_RTC2_MAX_PORT:-40199}/udp`,
		);
		// Distinct loopback HTTP ports; its own data volume.
		const http = (s?: Service) => s?.ports?.find((p) => p.startsWith("127.0.0.1:"));
		expect(http(second)).toBe("127.0.0.1:8081:8080");
		expect(http(second)).not.toBe(http(gateway));
		expect(second?.volumes?.some((v) => v.startsWith("gateway-2-data:"))).toBe(true);
		expect(second?.logging?.driver).toBe("journald");
	});
});

describe("the README's configuration table", () => {
	it("names every variable the gateway reads, and only those", () => {
		const readme = readFileSync(path.join(root, "README.md"), "utf8");
		const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("\nPer tenant, the tenants file"));
		const rows = section.split("\n").filter((l) => l.startsWith("| `"));
		// A row's first cell names its variables; a few more are explained inside a related row (a timeout beside its URL).
		const names = (text: string) => [...text.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]);
		const columns = new Set(rows.flatMap((l) => names(l.split("|")[1] ?? "")));
		const mentioned = new Set(rows.flatMap((l) => names(l)));
		const source = readFileSync(path.join(root, "server/config.ts"), "utf8");
		const schema = source.slice(source.indexOf("const EnvSchema"), source.indexOf(".refine("));
		const read = new Set([...schema.matchAll(/^\t\t([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]));
		expect(read.size).toBeGreaterThan(40);
		for (const v of read)
			expect(mentioned.has(v), `${v} is read by server/config.ts but not in the README's table`).toBe(true);
		for (const v of columns)
			expect(read.has(v), `${v} is in the README's table but server/config.ts never reads it`).toBe(true);
	});
});

describe("docker-compose.yml and server/config.ts", () => {
	it("every variable the compose file sets for a gateway node is one the gateway reads", () => {
		const { services } = compose();
		const source = readFileSync(path.join(root, "server/config.ts"), "utf8");
		const schema = source.slice(source.indexOf("const EnvSchema"), source.indexOf(".refine("));
		const read = new Set([...schema.matchAll(/^\t\t([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]));
		for (const name of ["gateway", "gateway-2"]) {
			const env = Object.keys(services[name]?.environment ?? {});
			expect(env.length).toBeGreaterThan(10);
			for (const v of env) expect(read.has(v), `${name}: ${v} is not read by server/config.ts`).toBe(true);
		}
	});
});

describe("the README's compose commands", () => {
	it("name every variable the compose file cannot start without; the cluster's also the database's", () => {
		const readme = readFileSync(path.join(root, "README.md"), "utf8");
		const yml = readFileSync(path.join(root, "docker-compose.yml"), "utf8");
		const required = [...new Set([...yml.matchAll(/\$\{([A-Z0-9_]+):\?/g)].map((m) => m[1] as string))];
		expect(required).toContain("CONSENTRY_MASTER_KEY");
		const one = /`([^`]*docker compose up -d)`/.exec(readme)?.[1] ?? "";
		for (const v of required) expect(one, v).toContain(`${v}=`);
		// The cluster profile: node 2 refuses to start without the URL, PostgreSQL without its password.
		const cluster = /`([^`]*docker compose --profile cluster up[^`]*)`/.exec(readme)?.[1] ?? "";
		expect(cluster).toContain("POSTGRES_PASSWORD=");
		expect(cluster).toMatch(/CONSENTRY_DATABASE_URL=postgres:\/\/consentry:[^@\s]+@postgres:5432\/consentry /);
	});

	it("the image is built from the sources only: nothing scripts/setup.sh built on the host goes into it", () => {
		const ignored = readFileSync(path.join(root, ".dockerignore"), "utf8").split("\n");
		// .venv-stt: a host venv's interpreter links point outside the image, and the Dockerfile's venv step then fails.
		for (const p of ["node_modules", "dist", "data", ".venv-stt"]) expect(ignored, p).toContain(p);
	});
});

describe("the build", () => {
	it("leaves every npm bin executable, so `npx consentry` runs after a rebuild in a folder npx already knows", () => {
		// npx links a project's own bin into its cache on the first run from a folder and never looks again: a later
		// fresh build that wrote it 0644 (as tsc does) answers "sh: consentry: Permission denied".
		const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { bin: Record<string, string> };
		for (const file of Object.values(pkg.bin)) {
			const { mode } = statSync(path.join(root, file));
			expect(mode & 0o111, `${file} mode ${mode.toString(8)}`).toBe(0o111);
		}
	});
});

describe("the documentation's links", () => {
	/** GitHub's anchor for a heading: lower case, punctuation dropped (not `-` or `_`), each space a `-`. */
	const slug = (heading: string) =>
		heading
			.replace(/`/g, "")
			.trim()
			.toLowerCase()
			.replace(/[^\p{L}\p{N}\s_-]/gu, "")
			.replace(/\s/g, "-");
	const prose = (file: string) => readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "");
	const anchors = (file: string) => {
		const seen = new Map<string, number>();
		const out = new Set<string>();
		for (const m of prose(file).matchAll(/^#{1,6}\s+(.*)$/gm)) {
			const s = slug(m[1] ?? "");
			const n = seen.get(s) ?? 0;
			seen.set(s, n + 1);
			out.add(n ? `${s}-${n}` : s);
		}
		return out;
	};

	it("every relative link in README.md and docs/*.md (and the READMEs they link) reaches a file, and its anchor a heading", () => {
		const files = [
			"README.md",
			"recorder/README.md",
			"scripts/mediasoup-worker/README.md",
			...readdirSync(path.join(root, "docs"))
				.filter((f) => f.endsWith(".md"))
				.map((f) => `docs/${f}`),
		];
		const broken: string[] = [];
		let checked = 0;
		for (const file of files) {
			for (const m of prose(path.join(root, file)).matchAll(/\]\(([^)\s]+)\)/g)) {
				const href = m[1] ?? "";
				if (/^[a-z][a-z0-9+.-]*:/i.test(href)) continue; // https:, mailto:
				const [target = "", anchor] = href.split("#");
				const to = target ? path.join(path.dirname(path.join(root, file)), target) : path.join(root, file);
				checked++;
				if (!existsSync(to)) broken.push(`${file}: ${href} (no such file)`);
				else if (anchor && to.endsWith(".md") && !anchors(to).has(anchor))
					broken.push(`${file}: ${href} (no such heading)`);
			}
		}
		expect(checked).toBeGreaterThan(50);
		expect(broken).toEqual([]);
	});

	it("every repository path they name in code (`server/…`, `test/…`, …) exists", () => {
		const files = ["README.md", "recorder/README.md", ...readdirSync(path.join(root, "docs")).map((f) => `docs/${f}`)];
		const top = "scripts|test|bench|server|cli|recorder|deploy|shared|contracts|client|docs";
		const named = new Set<string>();
		for (const file of files.filter((f) => f.endsWith(".md")))
			for (const m of prose(path.join(root, file)).matchAll(new RegExp(`\`((?:${top})/[A-Za-z0-9_./-]+)\``, "g")))
				named.add(m[1] as string);
		expect(named.size).toBeGreaterThan(100);
		// A module may be named without its extension (`recorder/main`).
		const missing = [...named].filter((p) => !["", ".ts"].some((ext) => existsSync(path.join(root, p + ext))));
		expect(missing).toEqual([]);
	});
});

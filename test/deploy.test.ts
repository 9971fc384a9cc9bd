import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The compose deployment is HTTPS by default (a TLS proxy with HSTS, plain HTTP on loopback only) and its logs go
 * where an age limit applies. Docker is not needed: the YAML is parsed (PyYAML, which moto brings) and checked.
 */
const root = path.join(import.meta.dirname, "..");

interface Service {
	image?: string;
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
});

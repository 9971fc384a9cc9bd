import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * The layout rule (docs/architecture.md, "Code layout"): the gateway (server/) and the recorder (recorder/) meet
 * only in contracts/. The recorder never imports server/, the server never imports recorder/ (it forks it), and
 * contracts/ imports neither.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"']+)["']/g;

function sources(dir: string): string[] {
	const out: string[] = [];
	for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
		const rel = path.join(dir, entry.name);
		if (entry.isDirectory()) out.push(...sources(rel));
		else if (/\.(ts|mts|js|mjs)$/.test(entry.name)) out.push(rel);
	}
	return out;
}

/** Every relative import of `dir`'s files that lands in one of `forbidden` (repository-relative folders). */
function crossings(dir: string, forbidden: string[]): string[] {
	const found: string[] = [];
	for (const file of sources(dir)) {
		for (const m of readFileSync(path.join(root, file), "utf8").matchAll(SPECIFIER)) {
			const spec = m[1] ?? "";
			if (!spec.startsWith(".")) continue;
			const target = path.relative(root, path.resolve(root, path.dirname(file), spec));
			if (forbidden.some((f) => target === f || target.startsWith(`${f}${path.sep}`))) found.push(`${file} → ${spec}`);
		}
	}
	return found;
}

describe("code layout", () => {
	it("the recorder imports nothing from server/", () => {
		expect(crossings("recorder", ["server"])).toEqual([]);
	});
	it("the server imports nothing from recorder/ (it forks the recorder and speaks contracts/)", () => {
		expect(crossings("server", ["recorder"])).toEqual([]);
	});
	it("contracts/ imports neither side", () => {
		expect(crossings("contracts", ["server", "recorder", "client"])).toEqual([]);
	});
	it("the check sees a crossing when there is one", () => {
		// The fixture itself: this file's folder is contracts/, and "../server/x.js" from here is in server/.
		const spec = "../server/x.js";
		const target = path.relative(root, path.resolve(root, "contracts", spec));
		expect(target.startsWith(`server${path.sep}`)).toBe(true);
		expect(crossings("test", ["server"]).length).toBeGreaterThan(0); // tests do import server/: the scan finds them
	});
});

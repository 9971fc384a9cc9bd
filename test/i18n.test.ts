import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { en } from "../client/src/i18n/en.js";
import { fr } from "../client/src/i18n/fr.js";
import { DEFAULT_TEXTS } from "../server/compliance/noticeTexts.js";

/**
 * The page's texts: both catalogues complete and alike, French written the Quebec way, and no
 * text a person reads written anywhere else in the client (HTML or code). Runs without a browser.
 */
const CLIENT = path.join(import.meta.dirname, "..", "client");
const keys = Object.keys(en) as (keyof typeof en)[];
const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("message catalogues", () => {
	it("French has every English key and no other, with the same placeholders", () => {
		expect(Object.keys(fr).sort()).toEqual([...keys].sort());
		for (const k of keys) {
			expect(fr[k], k).toBeTruthy();
			expect(placeholders(fr[k]), k).toEqual(placeholders(en[k]));
		}
	});

	it("French follows Quebec typography and vocabulary (the page's catalogue and the gateway's default notices)", () => {
		const problems: string[] = [];
		for (const k of keys) problems.push(...quebecProblems(k, fr[k]));
		const notices = JSON.stringify(DEFAULT_TEXTS.fr);
		for (const [path, v] of Object.entries(flatten(DEFAULT_TEXTS.fr)))
			problems.push(...quebecProblems(`notice ${path}`, v));
		expect(notices.length).toBeGreaterThan(200);
		expect(problems).toEqual([]);
	});

	it("English has no French spacing and the same placeholders in every message", () => {
		for (const k of keys) expect(en[k], k).not.toMatch(/[\u00a0\u202f]/);
	});
});

describe("no text outside the catalogues", () => {
	it("index.html: every text comes from a data-i18n key that exists", () => {
		const html = readFileSync(path.join(CLIENT, "index.html"), "utf8").replace(/<!--[\s\S]*?-->/g, "");
		const texts = [...html.matchAll(/>([^<]+)</g)].map((m) => m[1]?.trim() ?? "").filter((s) => /\p{L}/u.test(s));
		expect(texts).toEqual([]);
		const attrs = [...html.matchAll(/\s(aria-label|title|placeholder|alt|value)="([^"]*)"/g)]
			.filter((m) => m[1] !== "value" || /\p{Lu}|\s/u.test(m[2] ?? ""))
			.filter((m) => /\p{L}/u.test(m[2] ?? ""));
		expect(attrs.map((m) => m[0])).toEqual([]);
		const used = [
			...[...html.matchAll(/data-i18n="([^"]+)"/g)].map((m) => m[1]),
			...[...html.matchAll(/data-i18n-attr="([^"]+)"/g)].flatMap((m) =>
				(m[1] ?? "").split(/\s+/).map((pair) => pair.split(":")[1]),
			),
		];
		expect(used.length).toBeGreaterThan(40);
		expect(used.filter((k) => !(k && Object.hasOwn(en, k)))).toEqual([]);
	});

	it("client code: no string a person reads is written outside the catalogues", () => {
		const files = listTs(path.join(CLIENT, "src")).filter((f) => !f.includes(`${path.sep}i18n${path.sep}`));
		expect(files.length).toBeGreaterThan(10);
		const found: string[] = [];
		for (const file of files) {
			const src = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
			const visit = (node: ts.Node): void => {
				if (ignored(node)) return;
				let text: string | undefined;
				if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) text = node.text;
				else if (ts.isTemplateExpression(node))
					text = [node.head.text, ...node.templateSpans.map((s) => s.literal.text)].join(" ");
				if (text !== undefined && looksLikeProse(text)) {
					const { line } = src.getLineAndCharacterOfPosition(node.getStart());
					found.push(`${path.relative(CLIENT, file)}:${line + 1} ${JSON.stringify(text)}`);
				}
				ts.forEachChild(node, visit);
			};
			visit(src);
		}
		expect(found).toEqual([]);
	});

	it("every key the code names exists (keys built at run time: error codes, device errors)", () => {
		const code = listTs(path.join(CLIENT, "src"))
			.filter((f) => !f.includes(`${path.sep}i18n${path.sep}`))
			.map((f) => readFileSync(f, "utf8"))
			.join("\n");
		const named = [...code.matchAll(/"((?:[a-z]+[A-Za-z]*\.)+[a-zA-Z_]+)"/g)]
			.map((m) => m[1] ?? "")
			.filter((k) =>
				/^(page|lang|join|device|lobby|meeting|toolbar|notice|confirm|grid|people|chat|captions|capture|transcript|left|action|error)\./.test(
					k,
				),
			);
		expect(named.filter((k) => !Object.hasOwn(en, k))).toEqual([]);
		// Keys built from a template (`device.blocked.${what}`) exist for every value the code passes.
		for (const what of ["camera", "microphone"])
			for (const p of ["blocked", "notFound", "busy", "failed"])
				expect(Object.hasOwn(en, `device.${p}.${what}`)).toBe(true);
		for (const source of ["mic", "camera", "screen"]) expect(Object.hasOwn(en, `notice.held.${source}`)).toBe(true);
	});
});

/** What breaks OQLF typography or vocabulary in a French text. */
function quebecProblems(k: string, v: string): string[] {
	const problems: string[] = [];
	const bad = (why: string) => problems.push(`${k}: ${why} in ${JSON.stringify(v)}`);
	// OQLF: a no-break space before the colon, a narrow no-break space before ; ? ! (never a plain one).
	if (/[^\u00a0]:/.test(v)) bad("colon without a no-break space before it");
	if (/[^\u202f][;?!]/.test(v)) bad("; ? ! without a narrow no-break space before it");
	if (/«[^\u00a0]|[^\u00a0]»/.test(v)) bad("guillemets without no-break spaces inside");
	if (/["']/.test(v)) bad("straight quote or apostrophe (use « » and ’)");
	if (/\b(e-?mail|chat|meeting|login|upload)s?\b/i.test(v)) bad("anglicism (courriel, clavardage, réunion…)");
	if (/\.\.\./.test(v)) bad("three dots (use …)");
	return problems;
}

function flatten(o: object, prefix = ""): Record<string, string> {
	const out: Record<string, string> = {};
	for (const [k, v] of Object.entries(o)) {
		if (typeof v === "string") out[`${prefix}${k}`] = v;
		else if (v && typeof v === "object") Object.assign(out, flatten(v, `${prefix}${k}.`));
	}
	return out;
}

function listTs(dir: string): string[] {
	return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
		d.isDirectory() ? listTs(path.join(dir, d.name)) : d.name.endsWith(".ts") ? [path.join(dir, d.name)] : [],
	);
}

/** Words a person would read: two words in a row, or one capitalised word (not an identifier like NotFoundError). */
function looksLikeProse(s: string): boolean {
	if (/^[#.[:]|[[\]=>{}]/.test(s)) return false; // CSS selectors, attribute selectors
	return /\p{L}{2,}[,.:;!?'’]*\s+\p{L}{2,}/u.test(s) || /^\p{Lu}\p{Ll}+[.!?…]?$/u.test(s);
}

/** Strings that never reach a person: console output, internal errors, imports, type positions. */
function ignored(node: ts.Node): boolean {
	if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node) || ts.isLiteralTypeNode(node)) return true;
	if (ts.isCallExpression(node)) {
		const callee = node.expression.getText();
		if (/^console\./.test(callee)) return true;
	}
	if (ts.isNewExpression(node) && /^(DOMException)$/.test(node.expression.getText())) return true;
	// CSS classes, and comparisons with key or error names (ev.key === "Enter").
	if (ts.isPropertyAssignment(node) && /^"?(class|className)"?$/.test(node.name.getText())) return true;
	if (ts.isBinaryExpression(node) && /\.(key|code|name)$/.test(node.left.getText())) return true;
	return false;
}

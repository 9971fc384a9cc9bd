import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson, sha256Hex } from "./chain.js";

/**
 * The audit trail's fast paths (server/audit/chain.ts, EventLog.ts) against the implementations they replaced,
 * copied here verbatim from main at 48ed37f: what the trail stores and hashes must not change by one byte.
 */
function referenceCanonicalJson(value: unknown): string {
	if (value === null) return "null";
	switch (typeof value) {
		case "string":
			return JSON.stringify(value);
		case "boolean":
			return value ? "true" : "false";
		case "number":
			if (!Number.isFinite(value)) throw new TypeError(`not JSON: ${value}`);
			return JSON.stringify(value);
		case "object": {
			if (Array.isArray(value)) return `[${value.map(referenceCanonicalJson).join(",")}]`;
			const obj = value as Record<string, unknown>;
			const keys = Object.keys(obj).sort();
			let out = "{";
			for (let i = 0; i < keys.length; i++) {
				const k = keys[i] as string;
				out += `${i ? "," : ""}${JSON.stringify(k)}:${referenceCanonicalJson(obj[k])}`;
			}
			return `${out}}`;
		}
		default:
			throw new TypeError(`not JSON: ${typeof value}`);
	}
}

const referenceSha256Hex = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

/** The same outcome: the same text, or both throw a TypeError. */
function outcome(f: () => string): string {
	try {
		return `ok:${f()}`;
	} catch (err) {
		return `throws:${(err as Error).constructor.name}`;
	}
}

// Strings of any UTF-16 code units (lone surrogates included), escapes, and keys the fast paths treat specially.
const text = fc.oneof(
	fc.string({ unit: "binary", maxLength: 12 }),
	fc.string({ unit: "grapheme", maxLength: 6 }),
	fc.constantFrom("", '"', "\\", "\n\u0000\u001f", "\u2028\u2029", "\ud800", "a\udc00b", "é", "😀", "</script>"),
);
const key = fc.oneof(
	{ arbitrary: text, weight: 12 },
	{ arbitrary: fc.constantFrom("person", "persons", "a", "b", "10", "9", "-1", "01"), weight: 6 },
	// (Rare, so that most long arrays still take the JSON.stringify path: one such key anywhere turns it off.)
	{ arbitrary: fc.constantFrom("__proto__", "toJSON", "constructor", "hasOwnProperty"), weight: 1 },
);
const number = fc.oneof(
	fc.double({ noNaN: true, noDefaultInfinity: true }),
	fc.integer(),
	fc.constantFrom(-0, 0, 1e21, 1e-7, 5e-324, Number.MAX_VALUE, -(2 ** 53), 2 ** 53 + 2, 0.1, 123456789012345680000),
);
/** Objects built with CreateDataProperty (own `__proto__` keys included), as JSON.parse makes them. */
const { value } = fc.letrec<{ value: unknown; object: unknown; array: unknown }>((tie) => ({
	value: fc.oneof(
		{ depthSize: "small", withCrossShrink: true },
		fc.constant(null),
		fc.boolean(),
		number,
		text,
		tie("object"),
		tie("array"),
	),
	object: fc
		.array(fc.tuple(key, tie("value")), { maxLength: 6 })
		.map((entries) => Object.fromEntries(entries) as unknown),
	array: fc.oneof(
		fc.array(tie("value"), { maxLength: 5 }),
		// Long arrays of objects: the JSON.stringify path (at least 16).
		fc.array(tie("object"), { minLength: 16, maxLength: 24 }),
	),
}));

describe("the audit trail's fast paths are byte-identical to the code they replaced", () => {
	it("canonicalJson equals the original over random JSON values (unicode, escapes, -0, 1e21, __proto__, long arrays)", () => {
		fc.assert(
			fc.property(value, (v) => {
				expect(outcome(() => canonicalJson(v))).toBe(outcome(() => referenceCanonicalJson(v)));
				const parsed = JSON.parse(JSON.stringify(v) ?? "null") as unknown;
				expect(outcome(() => canonicalJson(parsed))).toBe(outcome(() => referenceCanonicalJson(parsed)));
			}),
			{ numRuns: 1500 },
		);
	});

	it("canonicalJson equals the original on values JSON.stringify would write differently", () => {
		const recipients = (extra: Record<string, unknown>) =>
			Array.from({ length: 20 }, (_, i) => ({ person: `p${i}`, peerId: `x${i}`, ...extra }));
		const holes = recipients({});
		delete (holes as unknown[])[3];
		const withProto = recipients({});
		Object.setPrototypeOf(withProto[2], { inherited: 1 });
		const cases: unknown[] = [
			{ r: recipients({ n: Number.NaN }) },
			{ r: recipients({ u: undefined }) },
			{ r: recipients({ f: () => 1 }) },
			{ r: recipients({ d: new Date(0) }) },
			{ r: recipients({ b: 1n }) },
			{ r: holes },
			{ r: withProto },
			{ r: recipients({ s: new String("x") }) },
			{ r: [...recipients({}), 1, "x", null, [recipients({})]] },
			JSON.parse(`[${Array.from({ length: 20 }, (_, i) => `{"__proto__":{"a":${i}},"a":2}`).join(",")}]`),
			Object.assign(Object.create(null), { b: 1, a: recipients({}) }),
			recipients({ toJSON: "not a function" }),
		];
		for (const c of cases) expect(outcome(() => canonicalJson(c))).toBe(outcome(() => referenceCanonicalJson(c)));
	});

	it("sha256Hex equals createHash(…).update(text, 'utf8') on any UTF-16 text", () => {
		fc.assert(
			fc.property(fc.string({ unit: "binary", maxLength: 200 }), (t) => {
				expect(sha256Hex(t)).toBe(referenceSha256Hex(t));
			}),
			{ numRuns: 1000 },
		);
		for (const t of ["", "\ud800", "a\udc00", "😀", "x".repeat(100_000)])
			expect(sha256Hex(t)).toBe(referenceSha256Hex(t));
	});
});

import { createHash } from "node:crypto";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { ENGINES, openTestStore } from "../../test/helpers/stores.js";
import type { Store } from "../store/Store.js";
import { canonicalJson, type Json, sha256Hex, toJson } from "./chain.js";
import { type AppendItem, EventLog, jsonCopy, PSEUDONYM_RE } from "./EventLog.js";

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

function referencePseudonymizeData(v: Json, psn: (personKey: string) => string): Json {
	if (Array.isArray(v)) return v.map((x) => referencePseudonymizeData(x, psn));
	if (v === null || typeof v !== "object") return v;
	const out: Record<string, Json> = {};
	for (const [k, x] of Object.entries(v)) {
		if (k === "person" && typeof x === "string") out[k] = psn(x);
		else if (k === "persons" && Array.isArray(x))
			out[k] = x.map((p) => (typeof p === "string" ? psn(p) : referencePseudonymizeData(p, psn)));
		else out[k] = referencePseudonymizeData(x, psn);
	}
	return out;
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

/** Same structure, same key order, same prototypes, primitives by Object.is (so -0 is not 0). */
function same(a: unknown, b: unknown): boolean {
	if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) return Object.is(a, b);
	if (Array.isArray(a) !== Array.isArray(b)) return false;
	const [pa, pb] = [Object.getPrototypeOf(a), Object.getPrototypeOf(b)];
	// (main's pseudonymizing copy turns a `__proto__` key into the copy's prototype: compared as a value.)
	const standard = (p: unknown) => p === Object.prototype || p === Array.prototype || p === null;
	if (standard(pa) || standard(pb) ? pa !== pb : !same(pa, pb)) return false;
	const ka = Object.keys(a);
	const kb = Object.keys(b);
	if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
	return ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

describe("jsonCopy (the append's copy of its data) equals toJson's JSON.parse(JSON.stringify(…))", () => {
	it("over random values, or leaves them to toJson", () => {
		let copied = 0;
		fc.assert(
			fc.property(value, (v) => {
				const shape = { named: false };
				const c = jsonCopy(v, shape, 0);
				if (c === undefined) return;
				copied++;
				expect(same(c, toJson(v))).toBe(true);
				const keys = (x: unknown): string[] =>
					typeof x === "object" && x !== null
						? Object.keys(x).flatMap((k) => [k, ...keys((x as Record<string, unknown>)[k])])
						: [];
				expect(shape.named).toBe(keys(v).some((k) => k === "person" || k === "persons"));
			}),
			{ numRuns: 1500 },
		);
		expect(copied).toBeGreaterThan(500);
	});

	it("leaves to toJson what the round trip would change", () => {
		const cyclic: Record<string, unknown> = { a: 1 };
		cyclic.self = cyclic;
		const holes = [1, 2, 3];
		delete holes[1];
		const cases: unknown[] = [
			{ u: undefined },
			[undefined],
			{ f: () => 1 },
			{ d: new Date(0) },
			{ n: Number.NaN },
			{ i: Number.POSITIVE_INFINITY },
			{ s: Symbol("x") },
			{ b: 1n },
			holes,
			cyclic,
			JSON.parse('{"__proto__":{"a":1}}'),
			{ toJSON: () => ({ x: 1 }) },
			{ toJSON: "not a function" },
			new Map([[1, 2]]),
			{ boxed: new String("x") },
		];
		for (const c of cases) expect(jsonCopy(c, { named: false }, 0)).toBeUndefined();
		let deep: unknown = 1;
		for (let i = 0; i < 100; i++) deep = [deep];
		expect(jsonCopy(deep, { named: false }, 0)).toBeUndefined();
		expect(Object.is(jsonCopy(-0, { named: false }, 0), 0)).toBe(true);
		expect(same(jsonCopy({ a: [-0, 1e21, "\ud800"] }, { named: false }, 0), toJson({ a: [-0, 1e21, "\ud800"] }))).toBe(
			true,
		);
	});
});

const stores: Store[] = [];
afterEach(async () => {
	for (const s of stores.splice(0)) await s.close();
});

/**
 * A trail written by the new code, checked row by row against what main's code computes from the same inputs (the
 * same pseudonym secrets and clock): the stored data text, every hash, and the entries handed to callers.
 */
describe.each(ENGINES)("the trail is byte-identical to main's (%s)", (engine) => {
	it("for a start (flat notices and one entry with 40 recipients), acknowledgements and odd data", async () => {
		const store = await openTestStore(engine);
		stores.push(store);
		const log = await EventLog.open(store, { now: () => Date.parse("2026-12-02T08:00:00.000Z") });
		const sessionId = "s-1";
		const people = Array.from({ length: 30 }, (_, i) => `acme:user-${i}`);
		const start: AppendItem[] = [
			{
				type: "session.on",
				tenantId: "acme",
				meetingId: "m1",
				actor: "acme:host",
				data: { kind: "recording", sessionId },
			},
			...people.map((person, i) => ({
				type: "notice.sent" as const,
				tenantId: "acme",
				meetingId: "m1",
				data: {
					kind: "recording",
					sessionId,
					noticeId: `n${i}`,
					person,
					peerId: `p${i}`,
					via: "session_start",
					locale: "en",
					textSha256: "a".repeat(64),
					consentRequired: false,
				},
			})),
			{
				type: "notice.sent",
				tenantId: "acme",
				meetingId: "m1",
				data: {
					kind: "recording",
					sessionId,
					recipients: Array.from({ length: 40 }, (_, i) => ({
						person: `acme:guest-${i % 35}`,
						peerId: `g${i}`,
						noticeId: `gn${i}`,
						locale: i % 2 ? "de" : "en",
						textSha256: "b".repeat(64),
					})),
				},
			},
		];
		const odd: AppendItem[] = [
			{
				type: "operator.action",
				tenantId: "acme",
				data: { at: new Date(0), skip: undefined, n: -0, big: 1e21, small: 5e-324 },
			},
			{
				type: "operator.action",
				tenantId: "acme",
				data: { text: 'é \u2028 \ud800 😀 "quoted" \\ \n', list: [1, [2, [3, null]], { z: 1, a: 2 }] },
			},
			{ type: "operator.action", tenantId: "acme", data: JSON.parse('{"__proto__":{"person":"acme:hidden"},"b":1}') },
			{
				type: "operator.action",
				tenantId: "acme",
				data: { persons: ["acme:user-1", { person: "acme:user-2" }, 7], nested: { person: "acme:user-3" } },
			},
			{ type: "operator.action", tenantId: "acme", actor: "acme:host", data: { person: `psn_${"c".repeat(64)}` } },
			{ type: "meeting.started", tenantId: "other", meetingId: "m1", actor: "other:x" },
			{ type: "operator.action", tenantId: "acme", data: { toJSON: "data, not a method", person: 5 } },
		];
		const [started, ...rest] = await Promise.all([
			log.appendMany(start),
			...people.map((person, i) =>
				log.append("notice.acknowledged", {
					tenantId: "acme",
					meetingId: "m1",
					actor: person,
					data: { kind: "recording", sessionId, noticeId: `n${i}`, peerId: `p${i}` },
				}),
			),
			...odd.map((o) => log.appendMany([o])),
		]);
		const inputs = [
			...start,
			...people.map((person, i) => ({
				type: "notice.acknowledged",
				tenantId: "acme",
				meetingId: "m1",
				actor: person,
				data: { kind: "recording", sessionId, noticeId: `n${i}`, peerId: `p${i}` },
			})),
			...odd,
		];
		const handed = [...(started ?? []), ...rest.flatMap((r) => (Array.isArray(r) ? r : [r]))];
		expect(handed).toHaveLength(inputs.length);

		const secrets = new Map<string, string>();
		for (const r of await store.db
			.selectFrom("audit_person_secrets")
			.select(["tenant_id", "person_key", "pseudonym"])
			.execute())
			secrets.set(`${r.tenant_id}/${r.person_key}`, r.pseudonym);
		const rows = await store.db.selectFrom("events").selectAll().orderBy("tenant_id").orderBy("seq").execute();
		const byHash = new Map(rows.map((r) => [r.hash, r]));
		for (const [i, input] of inputs.entries()) {
			const e = handed[i];
			const row = e ? byHash.get(e.hash) : undefined;
			if (!e || !row) throw new Error(`entry ${i} not stored`);
			const psn = (k: string) => (PSEUDONYM_RE.test(k) ? k : (secrets.get(`${input.tenantId}/${k}`) as string));
			const data = referencePseudonymizeData(toJson(input.data ?? {}), psn) as { [k: string]: Json };
			const actor = input.actor === undefined ? null : psn(input.actor);
			expect(row.data).toBe(referenceCanonicalJson(data));
			expect(row.actor).toBe(actor);
			const entry = {
				v: 1,
				seq: Number(row.seq),
				at: row.at,
				tenant: row.tenant_id,
				meeting: row.meeting_id,
				type: row.type,
				actor,
				data,
				prev: row.prev_hash,
				meetingPrev: row.meeting_prev_hash,
			};
			expect(row.hash).toBe(referenceSha256Hex(referenceCanonicalJson(entry)));
			expect(same(e.data, data)).toBe(true);
			expect(e.actor).toBe(actor);
		}
		expect((await log.verify()).every((v) => v.ok)).toBe(true);
	});
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ChainEntry, canonicalJson, entryHash, entryHashFromColumns, GENESIS, sha256Hex } from "./chain.js";

const jsonValue = fc.jsonValue() as fc.Arbitrary<unknown>;
const jsonObject = fc.dictionary(fc.string(), fc.jsonValue()) as fc.Arbitrary<ChainEntry["data"]>;

describe("canonical JSON", () => {
	it("sorts keys, drops whitespace and writes strings and numbers like JSON.stringify", () => {
		expect(canonicalJson({ b: 1, a: [true, null, "x\n\u0001é"], "": { z: 1.5, y: -0 } })).toBe(
			'{"":{"y":0,"z":1.5},"a":[true,null,"x\\n\\u0001é"],"b":1}',
		);
		expect(canonicalJson({ é: 1, z: 2, Z: 3, "10": 4, "9": 5 })).toBe('{"10":4,"9":5,"Z":3,"z":2,"é":1}');
		expect(() => canonicalJson({ a: undefined })).toThrow(TypeError);
		expect(() => canonicalJson(Number.NaN)).toThrow(TypeError);
		expect(() => canonicalJson(1n)).toThrow(TypeError);
	});

	it("is a fixed point: parse then canonicalize gives the same text, for any JSON value", () => {
		fc.assert(
			fc.property(jsonValue, (v) => {
				const text = canonicalJson(v);
				expect(canonicalJson(JSON.parse(text))).toBe(text);
				expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(v)));
			}),
		);
	});

	it("is independent of key insertion order", () => {
		fc.assert(
			fc.property(jsonObject, (o) => {
				const reversed = Object.fromEntries(Object.entries(o).reverse());
				expect(canonicalJson(reversed)).toBe(canonicalJson(o));
			}),
		);
	});
});

describe("entry hash", () => {
	const entry = fc.record({
		v: fc.constant(1 as const),
		seq: fc.integer({ min: 1, max: 2 ** 40 }),
		at: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
		tenant: fc.string(),
		meeting: fc.option(fc.string(), { nil: null }),
		type: fc.string(),
		actor: fc.option(fc.string(), { nil: null }),
		data: jsonObject,
		prev: fc.constantFrom(GENESIS, sha256Hex("x")),
		meetingPrev: fc.option(fc.constantFrom(GENESIS, sha256Hex("y")), { nil: null }),
	}) as fc.Arbitrary<ChainEntry>;

	it("from stored columns equals the hash of the whole entry's canonical JSON", () => {
		fc.assert(
			fc.property(entry, (e) => {
				expect(
					entryHashFromColumns(
						e.seq,
						e.at,
						e.tenant,
						e.meeting,
						e.type,
						e.actor,
						canonicalJson(e.data),
						e.prev,
						e.meetingPrev,
					),
				).toBe(entryHash(e));
			}),
		);
	});

	it("covers every field", () => {
		const e: ChainEntry = {
			v: 1,
			seq: 7,
			at: "2026-01-01T00:00:00.000Z",
			tenant: "acme",
			meeting: "m1",
			type: "person.joined",
			actor: "psn_a",
			data: { peerId: "p" },
			prev: GENESIS,
			meetingPrev: GENESIS,
		};
		const h = entryHash(e);
		const variants: ChainEntry[] = [
			{ ...e, seq: 8 },
			{ ...e, at: "2026-01-01T00:00:00.001Z" },
			{ ...e, tenant: "acmf" },
			{ ...e, meeting: null },
			{ ...e, type: "person.left" },
			{ ...e, actor: null },
			{ ...e, data: { peerId: "q" } },
			{ ...e, prev: sha256Hex("x") },
			{ ...e, meetingPrev: null },
		];
		for (const v of variants) expect(entryHash(v)).not.toBe(h);
	});
});

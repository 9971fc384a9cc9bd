import { describe, expect, it } from "vitest";
import { normalizeWords, wordErrorRate } from "./wer.js";

describe("word error rate", () => {
	it("normalizes case and punctuation", () => {
		expect(normalizeWords("Hello, World! It's 5 o'clock.")).toEqual(["hello", "world", "it's", "5", "o'clock"]);
	});

	it("is 0 for the same words and counts substitutions, deletions and insertions", () => {
		expect(wordErrorRate("the cat sat", "The cat, sat.").wer).toBe(0);
		expect(wordErrorRate("the cat sat on the mat", "the bat sat on mat")).toMatchObject({
			substitutions: 1,
			deletions: 1,
			insertions: 0,
			referenceWords: 6,
		});
		expect(wordErrorRate("the cat sat on the mat", "the bat sat on mat").wer).toBeCloseTo(2 / 6);
		expect(wordErrorRate("a b", "a x b y")).toMatchObject({ insertions: 2, wer: 1 });
		expect(wordErrorRate("", "").wer).toBe(0);
		expect(wordErrorRate("a b c", "").wer).toBe(1);
	});
});

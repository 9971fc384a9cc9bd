/** Lowercase words without punctuation (apostrophes inside words kept: "it's"). */
export function normalizeWords(text: string): string[] {
	return text
		.toLowerCase()
		.replace(/[^\p{L}\p{N}'\s]+/gu, " ")
		.split(/\s+/)
		.map((w) => w.replace(/^'+|'+$/g, ""))
		.filter((w) => w.length > 0);
}

export interface WerResult {
	/** (substitutions + deletions + insertions) / reference words; 0 when both are empty. */
	wer: number;
	substitutions: number;
	deletions: number;
	insertions: number;
	referenceWords: number;
}

/** Word error rate: the Levenshtein distance over words (normalizeWords) divided by the reference's length. */
export function wordErrorRate(reference: string, hypothesis: string): WerResult {
	const ref = normalizeWords(reference);
	const hyp = normalizeWords(hypothesis);
	// d[i][j]: edits turning ref[0..i) into hyp[0..j); op counts kept alongside for the breakdown.
	type Cell = { cost: number; s: number; d: number; i: number };
	let prev: Cell[] = Array.from({ length: hyp.length + 1 }, (_, j) => ({ cost: j, s: 0, d: 0, i: j }));
	for (let i = 1; i <= ref.length; i++) {
		const row: Cell[] = [{ cost: i, s: 0, d: i, i: 0 }];
		for (let j = 1; j <= hyp.length; j++) {
			const diag = prev[j - 1] as Cell;
			const up = prev[j] as Cell;
			const left = row[j - 1] as Cell;
			const same = ref[i - 1] === hyp[j - 1];
			const options: Cell[] = [
				{ cost: diag.cost + (same ? 0 : 1), s: diag.s + (same ? 0 : 1), d: diag.d, i: diag.i },
				{ cost: up.cost + 1, s: up.s, d: up.d + 1, i: up.i },
				{ cost: left.cost + 1, s: left.s, d: left.d, i: left.i + 1 },
			];
			row.push(options.reduce((best, o) => (o.cost < best.cost ? o : best)));
		}
		prev = row;
	}
	const last = prev[hyp.length] as Cell;
	return {
		wer: ref.length === 0 ? (hyp.length === 0 ? 0 : 1) : last.cost / ref.length,
		substitutions: last.s,
		deletions: last.d,
		insertions: last.i,
		referenceWords: ref.length,
	};
}

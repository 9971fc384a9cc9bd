/**
 * The cost bound that runs before any schema: a request body is walked once, iteratively, and refused as soon as
 * it holds more values than any real request needs, nests deeper, or carries something that is not JSON (a binary
 * attachment, which socket.io would otherwise hand over as a Buffer). So validation work per request is bounded by
 * a small constant whatever was sent; the zod schema then checks the shape.
 */
export interface PayloadBudget {
	/** Values in the whole body (every object, array, string, number…). A browser's rtpCapabilities is ~1,500. */
	maxValues: number;
	/** Nesting depth (the body itself is depth 1). The deepest real request is 7 (a codec's RTCP feedback type). */
	maxDepth: number;
	/** Keys of any one object. */
	maxKeys: number;
}

export const DEFAULT_PAYLOAD_BUDGET: PayloadBudget = { maxValues: 4000, maxDepth: 10, maxKeys: 64 };

/** Why `body` is over the budget, or undefined when it is within it. */
export function overBudget(body: unknown, budget: PayloadBudget = DEFAULT_PAYLOAD_BUDGET): string | undefined {
	const stack: [unknown, number][] = [[body, 1]];
	let values = 0;
	while (stack.length > 0) {
		const [v, depth] = stack.pop() as [unknown, number];
		if (++values > budget.maxValues) return `the request holds more than ${budget.maxValues} values`;
		if (depth > budget.maxDepth) return `the request nests deeper than ${budget.maxDepth} levels`;
		if (v === null || typeof v !== "object") {
			if (typeof v === "bigint" || typeof v === "function" || typeof v === "symbol") return "the request is not JSON";
			continue;
		}
		if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
			return "binary attachments are not accepted in signaling requests";
		}
		if (Array.isArray(v)) {
			if (v.length > budget.maxValues) return `the request holds more than ${budget.maxValues} values`;
			for (const item of v) stack.push([item, depth + 1]);
			continue;
		}
		const proto = Object.getPrototypeOf(v);
		if (proto !== Object.prototype && proto !== null) return "the request is not JSON";
		let keys = 0;
		for (const k in v) {
			if (++keys > budget.maxKeys) return `an object in the request has more than ${budget.maxKeys} keys`;
			stack.push([(v as Record<string, unknown>)[k], depth + 1]);
		}
	}
	return undefined;
}

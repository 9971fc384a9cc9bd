/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
	fn: () => T | Promise<T>,
	timeoutMs = 15_000,
	what = "condition",
): Promise<NonNullable<T>> {
	const deadline = Date.now() + timeoutMs;
	let lastErr: unknown;
	for (;;) {
		try {
			const v = await fn();
			if (v) return v as NonNullable<T>;
		} catch (err) {
			lastErr = err;
		}
		if (Date.now() > deadline) {
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ""}`);
		}
		await new Promise((r) => setTimeout(r, 100));
	}
}

/**
 * Preloaded into the gateway child by the benchmark (`node --expose-gc --import
 * tsx --import ./bench/bots/gc-probe.ts server/main.ts`): on SIGUSR2 it runs a
 * full garbage collection and prints `{"benchMemory": process.memoryUsage()}`
 * as one line on stdout, so memory per participant can be read without the
 * young generation's churn. It does nothing until signalled.
 */
process.on("SIGUSR2", () => {
	(globalThis as { gc?: () => void }).gc?.();
	process.stdout.write(`${JSON.stringify({ benchMemory: process.memoryUsage() })}\n`);
});

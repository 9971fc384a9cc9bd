import os from "node:os";

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
	const s = [...xs].sort((a, b) => a - b);
	const mid = Math.floor(s.length / 2);
	return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Percentile (0–100) by nearest rank. */
export function percentile(xs: readonly number[], p: number): number {
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

/** The machine a result was measured on, for docs/benchmarks.md. */
export function machine(): string {
	const cpu = os.cpus()[0]?.model.trim() ?? "unknown CPU";
	return `${process.platform} ${process.arch}, ${os.availableParallelism()} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load avg ${os.loadavg()[0]?.toFixed(1)}`;
}

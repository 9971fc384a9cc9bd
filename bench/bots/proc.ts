/**
 * Reads a process's CPU time and memory from /proc (Linux only), so a benchmark
 * can measure a child process (and its own children) from the outside.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat's utime/stime (USER_HZ: 100 on every Linux build that matters). */
const CLK_TCK = 100;

function statFields(pid: number): string[] | undefined {
	try {
		const s = readFileSync(`/proc/${pid}/stat`, "utf8");
		// The command (field 2) is in parentheses and may hold spaces: split after its closing one.
		const close = s.lastIndexOf(")");
		return [s.slice(0, s.indexOf(" (")), s.slice(s.indexOf("(") + 1, close), ...s.slice(close + 2).split(" ")];
	} catch {
		return undefined;
	}
}

/** User + system CPU seconds the process has used so far (utime + stime), or NaN once it is gone. */
export function cpuSeconds(pid: number): number {
	const f = statFields(pid);
	if (!f) return Number.NaN;
	return (Number(f[13]) + Number(f[14])) / CLK_TCK;
}

/**
 * CPU seconds of a process and all its direct children so far: the live children's own (utime + stime) plus, in the
 * parent's cutime + cstime, those it has reaped. A difference of two readings is the tree's CPU in between, also when
 * children came and went (e.g. a PostgreSQL server and its backends, one per connection).
 */
export function treeCpuSeconds(pid: number): number {
	const f = statFields(pid);
	if (!f) return Number.NaN;
	let ticks = Number(f[13]) + Number(f[14]) + Number(f[15]) + Number(f[16]);
	for (const d of readdirSync("/proc")) {
		if (!/^\d+$/.test(d)) continue;
		const c = statFields(Number(d));
		if (c && Number(c[3]) === pid) ticks += Number(c[13]) + Number(c[14]);
	}
	return ticks / CLK_TCK;
}

/** Resident set size in MiB (VmRSS), or NaN once the process is gone. */
export function rssMiB(pid: number): number {
	try {
		const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
		return m ? Number(m[1]) / 1024 : Number.NaN;
	} catch {
		return Number.NaN;
	}
}

/** The direct children of `pid` whose command name starts with `comm` (the kernel cuts names to 15 chars). */
export function childrenNamed(pid: number, comm: string): number[] {
	const out: number[] = [];
	for (const d of readdirSync("/proc")) {
		if (!/^\d+$/.test(d)) continue;
		const f = statFields(Number(d));
		if (f && Number(f[3]) === pid && comm.startsWith(f[1] ?? "\0")) out.push(Number(d));
	}
	return out;
}

/** Busy and total CPU seconds of the whole machine, all cores added up (from /proc/stat). */
export function machineCpu(): { busy: number; total: number } {
	const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
	const v = line.trim().split(/\s+/).slice(1).map(Number);
	const total = v.reduce((a, b) => a + b, 0);
	const idle = (v[3] ?? 0) + (v[4] ?? 0);
	return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}

/** Read and write system calls the process has made so far (/proc/<pid>/io syscr, syscw: sockets and files alike). */
export function syscalls(pid: number): { reads: number; writes: number } {
	try {
		const t = readFileSync(`/proc/${pid}/io`, "utf8");
		return {
			reads: Number(/syscr:\s+(\d+)/.exec(t)?.[1] ?? Number.NaN),
			writes: Number(/syscw:\s+(\d+)/.exec(t)?.[1] ?? Number.NaN),
		};
	} catch {
		return { reads: Number.NaN, writes: Number.NaN };
	}
}

import { accessSync, constants } from "node:fs";
import path from "node:path";

const cache = new Map<string, string | undefined>();

/** The absolute path of an executable `name` (looked up on PATH unless it has a `/`), or undefined. */
export function findExecutable(name: string): string | undefined {
	if (cache.has(name)) return cache.get(name);
	let found: string | undefined;
	const candidates = name.includes("/")
		? [name]
		: (process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(":").map((dir) => path.join(dir || ".", name));
	for (const candidate of candidates) {
		try {
			accessSync(candidate, constants.X_OK);
			found = path.resolve(candidate);
			break;
		} catch {
			// next
		}
	}
	cache.set(name, found);
	return found;
}

/**
 * The argv prefix that guards a child process: `setpriv --pdeathsig KILL --` (it dies with the recorder, even
 * on SIGKILL) and `prlimit --as=<bytes> --` (a bounded address space; 0 = none), each when the util-linux tool
 * exists.
 */
export function guardPrefix(memoryLimitBytes: number): string[] {
	const prefix: string[] = [];
	const setpriv = findExecutable("setpriv");
	if (setpriv) prefix.push(setpriv, "--pdeathsig", "KILL", "--");
	const prlimit = memoryLimitBytes > 0 ? findExecutable("prlimit") : undefined;
	if (prlimit) prefix.push(prlimit, `--as=${memoryLimitBytes}`, "--");
	return prefix;
}

/** Which guards guardPrefix applies here (for the log at start). */
export function childGuards(memoryLimitBytes: number): { pdeathsig: boolean; memoryLimit: boolean } {
	return {
		pdeathsig: findExecutable("setpriv") !== undefined,
		memoryLimit: memoryLimitBytes > 0 && findExecutable("prlimit") !== undefined,
	};
}

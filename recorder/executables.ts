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

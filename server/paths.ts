import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The project root: the nearest ancestor of this file holding package.json (works from source and from dist/). */
export const projectRoot: string = (() => {
	let dir = path.dirname(fileURLToPath(import.meta.url));
	while (!existsSync(path.join(dir, "package.json"))) {
		const parent = path.dirname(dir);
		if (parent === dir) throw new Error("consentry: package.json not found above the server code");
		dir = parent;
	}
	return dir;
})();

/** Where `vite build` puts the browser client. */
export const defaultClientDir: string = path.join(projectRoot, "dist", "client");

import { defineConfig } from "vite";

// The browser client is a static bundle the gateway serves itself: no CDN,
// no web fonts, no third-party request of any kind.
export default defineConfig({
	root: "client",
	build: { outDir: "../dist/client", emptyOutDir: true, sourcemap: true, target: "es2022" },
	server: { host: "127.0.0.1" },
});

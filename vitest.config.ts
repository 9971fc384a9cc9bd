import { defineConfig } from "vitest/config";

export default defineConfig({
	test: {
		include: ["server/**/*.test.ts", "recorder/**/*.test.ts", "test/**/*.test.ts"],
		// Real media workers, Chromium and ffmpeg on a 2-core machine: one file at a time keeps timings honest.
		fileParallelism: false,
		testTimeout: 90_000,
		hookTimeout: 60_000,
		reporters: process.env.CI ? ["verbose"] : ["default"],
		// CONSENTRY_TEST_DATABASE=postgres: one throwaway PostgreSQL for the run, gateways on it (README, "Tests").
		globalSetup: ["test/helpers/postgresGlobal.ts"],
	},
});

import { configDefaults, defineConfig } from "vitest/config";

/**
 * Suites about several gateway nodes on one PostgreSQL (issue 12): they run in the PostgreSQL half only
 * (`npm run test:postgres -- test/cluster.test.ts` to run one alone), not twice.
 */
export const CLUSTER_SUITES = ["test/cluster.test.ts"];

/**
 * With CONSENTRY_TEST_DATABASE=postgres (`npm run test:postgres`, the second half of `npm test`): the suites whose
 * gateways use the store, again on a throwaway PostgreSQL (the store-level suites already run on both engines in
 * the first half). Browser suites: the two that drive the gate and the meeting core end to end; the others exercise
 * the client, the recorder or the transcriber more than the store and run once (README, "Tests").
 */
export const POSTGRES_SUITES = [
	"test/capture-click.test.ts",
	"test/capture.test.ts",
	"test/answers-batch.test.ts",
	"test/dsr.test.ts",
	"test/hands.test.ts",
	"test/lobby.test.ts",
	"test/meetings.test.ts",
	"test/metrics.test.ts",
	"test/openapi.test.ts",
	"test/operator.test.ts",
	"test/passcode.test.ts",
	"test/playback-api.test.ts",
	"test/privacy-logs.test.ts",
	"test/rest-fuzz.test.ts",
	"test/rest-scope.test.ts",
	"test/retention.test.ts",
	"test/security-headers.test.ts",
	"test/signaling-fuzz.test.ts",
	"test/signaling-limits.test.ts",
	"test/signaling.test.ts",
	"test/storage-api.test.ts",
	"test/transcript-links.test.ts",
	"test/transcription-languages.test.ts",
	"test/webhooks-api.test.ts",
	"test/capture.browser.test.ts",
	"test/meeting.browser.test.ts",
	...CLUSTER_SUITES,
	// Issue 12 placement: several gateway nodes on one PostgreSQL (skipped on the SQLite run, but for its one-node case).
	"test/cluster-placement.test.ts",
	"test/cluster-rehome.test.ts",
	"test/cluster-robust.test.ts",
	"test/cluster.browser.test.ts",
	// Issue 12 item 3: kill -9 of a recording meeting's node, real media in Chromium, the bucket's proof checked.
	"test/cluster-kill.browser.test.ts",
];

export default defineConfig({
	test: {
		include:
			process.env.CONSENTRY_TEST_DATABASE === "postgres"
				? POSTGRES_SUITES
				: ["server/**/*.test.ts", "recorder/**/*.test.ts", "contracts/**/*.test.ts", "test/**/*.test.ts"],
		exclude:
			process.env.CONSENTRY_TEST_DATABASE === "postgres"
				? configDefaults.exclude
				: [...configDefaults.exclude, ...CLUSTER_SUITES],
		// Real media workers, Chromium and ffmpeg on a 2-core machine: one file at a time keeps timings honest.
		fileParallelism: false,
		testTimeout: 90_000,
		hookTimeout: 60_000,
		reporters: process.env.CI ? ["verbose"] : ["default"],
		// CONSENTRY_TEST_DATABASE=postgres: one throwaway PostgreSQL for the run, gateways on it.
		globalSetup: ["test/helpers/postgresGlobal.ts"],
	},
});

import { type PostgresServer, startPostgres } from "./postgres.js";

/**
 * Vitest global setup: with `CONSENTRY_TEST_DATABASE=postgres`, one throwaway PostgreSQL for the whole run (its
 * base URL in CONSENTRY_TEST_POSTGRES for the test files); the helpers that start gateways then give each gateway a
 * fresh database on it (test/helpers/gateway.ts). Without it, nothing starts: gateways use SQLite files.
 */
let server: PostgresServer | undefined;

export async function setup(): Promise<void> {
	if (process.env.CONSENTRY_TEST_DATABASE !== "postgres" || process.env.CONSENTRY_TEST_POSTGRES) return;
	server = await startPostgres();
	process.env.CONSENTRY_TEST_POSTGRES = `postgres://consentry@127.0.0.1:${server.port}`;
}

export async function teardown(): Promise<void> {
	await server?.stop();
}

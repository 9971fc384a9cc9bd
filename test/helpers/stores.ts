import { afterAll } from "vitest";
import { type Engine, Store } from "../../server/store/Store.js";
import { type PostgresServer, startPostgres } from "./postgres.js";

/** The engines the store-level suites run on: both, in `npm test` (docs/architecture.md, "The store"). */
export const ENGINES: readonly Engine[] = ["sqlite", "postgres"];

let server: Promise<PostgresServer> | undefined;
let n = 0;

// Registered when the test file imports this module (collection time). A hook registered from inside a running
// test, where the server is first asked for, is never run: each file left its PostgreSQL running.
afterAll(async () => {
	const started = server;
	server = undefined;
	if (started) await (await started).stop();
});

/** This test file's throwaway PostgreSQL, started on first use and stopped after the file's tests. */
export function postgresServer(): Promise<PostgresServer> {
	server ??= startPostgres();
	return server;
}

/** A fresh, migrated store on `engine` (a new in-memory SQLite database, or a new PostgreSQL database). */
export async function openTestStore(engine: Engine, opts: { file?: string } = {}): Promise<Store> {
	if (engine === "sqlite") return Store.open({ file: opts.file ?? ":memory:" });
	const pg = await postgresServer();
	const url = await pg.createDatabase(`s${process.pid}_${n++}`);
	// Generous: on a busy machine a new backend (or a free pool slot) can take over a second; outage tests that want
	// a quick store_unavailable open their own store with a short timeout.
	return Store.open({ url, connectTimeoutMs: 10_000 });
}

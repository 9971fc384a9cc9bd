import { afterAll } from "vitest";
import { type Engine, Store } from "../../server/store/Store.js";
import { type PostgresServer, startPostgres } from "./postgres.js";

/** The engines the store-level suites run on: both, in `npm test` (docs/architecture.md, "The store"). */
export const ENGINES: readonly Engine[] = ["sqlite", "postgres"];

let server: Promise<PostgresServer> | undefined;
let n = 0;

/** This test file's throwaway PostgreSQL, started on first use and stopped after the file's tests. */
export function postgresServer(): Promise<PostgresServer> {
	if (!server) {
		server = startPostgres();
		const started = server;
		afterAll(async () => {
			await (await started).stop();
		});
	}
	return server;
}

/** A fresh, migrated store on `engine` (a new in-memory SQLite database, or a new PostgreSQL database). */
export async function openTestStore(engine: Engine, opts: { file?: string } = {}): Promise<Store> {
	if (engine === "sqlite") return Store.open({ file: opts.file ?? ":memory:" });
	const pg = await postgresServer();
	const url = await pg.createDatabase(`s${process.pid}_${n++}`);
	return Store.open({ url, connectTimeoutMs: 1000 });
}

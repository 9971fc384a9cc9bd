import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import { api, startGateway } from "./helpers/gateway.js";
import { type PostgresServer, startPostgres } from "./helpers/postgres.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * CONSENTRY_DATABASE_POOL_SIZE on a real PostgreSQL: a burst of concurrent REST requests (meetings scheduled and
 * listed, each a store write or read) from a gateway whose pool is 2 opens at most 2 connections of its pool
 * (pg_stat_activity, `application_name = consentry`; the pool keeps them idle a while after the burst), and every
 * request is answered; the same burst from a gateway left at the default opens more than 2.
 */
describe("the PostgreSQL pool size", () => {
	const acme = testTenant("acme");
	let pgServer: PostgresServer;
	let url: string;
	let reader: pg.Client;
	const gateways: Gateway[] = [];

	beforeAll(async () => {
		pgServer = await startPostgres();
		url = await pgServer.createDatabase("pool_size");
		reader = new pg.Client({ connectionString: url });
		await reader.connect();
	});
	afterAll(async () => {
		await reader?.end();
		for (const gw of gateways) await gw.close();
		await pgServer?.stop();
	});

	/** Backends of the gateways' pools on this database, now. */
	const poolBackends = async (): Promise<number> =>
		Number(
			(
				await reader.query<{ n: string }>(
					"SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'consentry'",
				)
			).rows[0]?.n,
		);

	/** 60 requests at once (30 schedules by 30 hosts, 30 lists), all answered; the most pool backends seen meanwhile. */
	const burst = async (gw: Gateway, tag: string): Promise<number> => {
		let most = 0;
		let done = false;
		const watch = (async () => {
			while (!done) {
				most = Math.max(most, await poolBackends());
				await new Promise((r) => setTimeout(r, 5));
			}
		})();
		const answers = await Promise.all(
			Array.from({ length: 30 }, (_, i) => [
				api(gw, "POST", "/api/meetings", acme.token(`${tag}-host-${i}`), { title: `m${i}` }),
				api(gw, "GET", "/api/meetings", acme.token(`${tag}-host-${i}`)),
			]).flat(),
		);
		done = true;
		await watch;
		expect(answers.map((a) => a.status).sort()).toEqual([...Array(30).fill(200), ...Array(30).fill(201)]);
		// The pool keeps what it opened idle for a while (10 s): what the burst opened is still there.
		return Math.max(most, await poolBackends());
	};

	it("a gateway with CONSENTRY_DATABASE_POOL_SIZE=2 opens at most 2; at the default, more", async () => {
		const small = await startGateway({
			tenants: [acme],
			env: { CONSENTRY_DATABASE_URL: url, CONSENTRY_DATABASE_POOL_SIZE: "2" },
		});
		gateways.push(small);
		const withTwo = await burst(small, "two");
		expect(withTwo).toBeGreaterThanOrEqual(1);
		expect(withTwo).toBeLessThanOrEqual(2);
		await small.close();
		gateways.length = 0;
		// Its connections are gone with it; a gateway at the default (10) opens more for the same burst.
		await expect.poll(poolBackends, { timeout: 5_000 }).toBe(0);
		const dflt = await startGateway({ tenants: [acme], env: { CONSENTRY_DATABASE_URL: url } });
		gateways.push(dflt);
		const withDefault = await burst(dflt, "default");
		expect(withDefault).toBeGreaterThan(2);
		expect(withDefault).toBeLessThanOrEqual(10);
	}, 60_000);
});

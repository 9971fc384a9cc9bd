import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, DEFAULT_REST_LIMITS, loadConfig } from "./config.js";
import { ConfigError } from "./errors.js";

const bin = process.execPath; // any executable file will do for these checks

describe("loadConfig", () => {
	it("applies defaults bound to loopback", () => {
		const c = loadConfig({ MEDIASOUP_WORKER_BIN: bin });
		expect(c.http.host).toBe("127.0.0.1");
		expect(c.rtc.listenIp).toBe("127.0.0.1");
		expect(c.mediasoup.numWorkers).toBeGreaterThan(0);
		expect(c.http.tls).toBeUndefined();
	});

	it("names every bad variable at once", () => {
		try {
			loadConfig({
				MEDIASOUP_WORKER_BIN: bin,
				CONSENTRY_HTTP_PORT: "http",
				CONSENTRY_RTC_MIN_PORT: "50000",
				CONSENTRY_RTC_MAX_PORT: "40000",
			});
			expect.unreachable();
		} catch (err) {
			expect(err).toBeInstanceOf(ConfigError);
			expect((err as Error).message).toContain("CONSENTRY_HTTP_PORT");
		}
		expect(() =>
			loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_RTC_MIN_PORT: "50000", CONSENTRY_RTC_MAX_PORT: "40000" }),
		).toThrow(/CONSENTRY_RTC_MIN_PORT must be <= CONSENTRY_RTC_MAX_PORT/);
	});

	it("reads the limits (docs/security.md), with the documented defaults, and refuses nonsense", () => {
		expect(loadConfig({ MEDIASOUP_WORKER_BIN: bin }).limits).toEqual(DEFAULT_LIMITS);
		const c = loadConfig({
			MEDIASOUP_WORKER_BIN: bin,
			CONSENTRY_MAX_CONNECTIONS_PER_ADDRESS: "4",
			CONSENTRY_SIGNALING_KIB_PER_ADDRESS_PER_SECOND: "10",
			CONSENTRY_LOBBY_MAX: "7",
			CONSENTRY_TRUST_PROXY: "true",
		});
		expect(c.limits).toMatchObject({ maxConnectionsPerAddress: 4, bytesPerAddressPerSecond: 10 * 1024, lobbyMax: 7 });
		expect(c.trustProxy).toBe(true);
		expect(() => loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_MAX_CONNECTIONS_PER_ADDRESS: "0" })).toThrow(
			/CONSENTRY_MAX_CONNECTIONS_PER_ADDRESS/,
		);
		expect(() => loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_SIGNALING_MAX_MESSAGE_KIB: "1" })).toThrow(
			/CONSENTRY_SIGNALING_MAX_MESSAGE_KIB/,
		);
	});

	it("reads the REST limits (docs/security.md, REST API), with the documented defaults, and refuses nonsense", () => {
		expect(loadConfig({ MEDIASOUP_WORKER_BIN: bin }).rest).toEqual(DEFAULT_REST_LIMITS);
		const c = loadConfig({
			MEDIASOUP_WORKER_BIN: bin,
			CONSENTRY_REST_WINDOW_SECONDS: "2",
			CONSENTRY_REST_REQUESTS_PER_ADDRESS: "50",
			CONSENTRY_REST_DSR_PER_CALLER: "4",
		});
		expect(c.rest).toMatchObject({ windowMs: 2000, requestsPerAddress: 50, dsrPerCaller: 4, meetingsPerCaller: 300 });
		for (const [v, bad] of [
			["CONSENTRY_REST_WINDOW_SECONDS", "0"],
			["CONSENTRY_REST_REQUESTS_PER_ADDRESS", "0"],
			["CONSENTRY_REST_CHANGES_PER_CALLER", "many"],
		] as const)
			expect(() => loadConfig({ MEDIASOUP_WORKER_BIN: bin, [v]: bad })).toThrow(new RegExp(v));
	});

	it("refuses a missing or non-executable worker binary with the fix", () => {
		expect(() => loadConfig({ MEDIASOUP_WORKER_BIN: "/nonexistent/worker" })).toThrow(/scripts\/setup.sh/);
	});

	it("takes PostgreSQL from CONSENTRY_DATABASE_URL, and refuses anything but a postgres:// URL", () => {
		expect(loadConfig({ MEDIASOUP_WORKER_BIN: bin }).databaseUrl).toBeUndefined();
		expect(loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_DATABASE_URL: "" }).databaseUrl).toBeUndefined();
		const c = loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_DATABASE_URL: "postgres://u:p@db:5432/consentry" });
		expect([c.databaseUrl, c.databaseTimeoutMs]).toEqual(["postgres://u:p@db:5432/consentry", 5000]);
		expect(() => loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_DATABASE_URL: "mysql://db/x" })).toThrow(
			/CONSENTRY_DATABASE_URL/,
		);
		expect(() => loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_DATABASE_TIMEOUT_MS: "10" })).toThrow(
			/CONSENTRY_DATABASE_TIMEOUT_MS/,
		);
	});

	it("takes the PostgreSQL pool size from CONSENTRY_DATABASE_POOL_SIZE (default 10, empty = unset), refuses nonsense", () => {
		expect(loadConfig({ MEDIASOUP_WORKER_BIN: bin }).databasePoolSize).toBe(10);
		expect(loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_DATABASE_POOL_SIZE: "4" }).databasePoolSize).toBe(4);
		expect(loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_DATABASE_POOL_SIZE: " 20 " }).databasePoolSize).toBe(20);
		expect(loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_DATABASE_POOL_SIZE: "" }).databasePoolSize).toBe(10);
		for (const [bad, why] of [
			["0", /at least 1 connection/],
			["-3", /at least 1 connection/],
			["2.5", /whole number/],
			["ten", /whole number/],
			["100000", /at most 1000 connections/],
		] as const) {
			expect(() => loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_DATABASE_POOL_SIZE: bad }), bad).toThrow(
				/CONSENTRY_DATABASE_POOL_SIZE/,
			);
			expect(() => loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_DATABASE_POOL_SIZE: bad }), bad).toThrow(why);
		}
	});

	it("requires TLS certificate and key together", () => {
		expect(() => loadConfig({ MEDIASOUP_WORKER_BIN: bin, CONSENTRY_TLS_CERT_FILE: "/x.pem" })).toThrow(/both/);
	});
});

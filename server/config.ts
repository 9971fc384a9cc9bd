import { accessSync, constants as fsConstants } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as mediasoup from "mediasoup";
import { z } from "zod";
import { ConfigError } from "./errors.js";
import { defaultClientDir, projectRoot } from "./paths.js";
import { DEFAULT_DATABASE_POOL_SIZE } from "./store/Store.js";

const port = z.coerce.number().int().min(0).max(65535);

/** Every environment variable the gateway reads, with its default. */
const EnvSchema = z
	.object({
		CONSENTRY_HTTP_HOST: z.string().default("127.0.0.1"),
		CONSENTRY_HTTP_PORT: port.default(8080),
		CONSENTRY_TLS_CERT_FILE: z.string().optional(),
		CONSENTRY_TLS_KEY_FILE: z.string().optional(),
		CONSENTRY_RTC_LISTEN_IP: z.string().default("127.0.0.1"),
		CONSENTRY_RTC_ANNOUNCED_ADDRESS: z.string().optional(),
		CONSENTRY_RTC_MIN_PORT: port.default(40000),
		CONSENTRY_RTC_MAX_PORT: port.default(40999),
		/** The video codec a browser sends when it can (issue 16): `vp8` (default) or `h264` (recorded as `.mkv`). */
		CONSENTRY_VIDEO_CODEC: z.enum(["vp8", "h264"]).default("vp8"),
		CONSENTRY_WORKERS: z.coerce.number().int().min(1).max(64).optional(),
		/** Where the key of the rotating address hash lives (default: next to the store); share it between gateways. */
		CONSENTRY_ADDRESS_KEY_FILE: z.string().min(1).optional(),
		/** How long one address-hash key lives before it is replaced and destroyed: 1–14 days. */
		CONSENTRY_ADDRESS_KEY_DAYS: z.coerce.number().int().min(1).max(14).default(7),
		/** Issue 14: the gateway also writes its log lines to daily files here (server/privacy/LogFiles.ts). */
		CONSENTRY_LOG_DIR: z.string().min(1).optional(),
		/** Days the gateway's own log files are kept: 1–14 (004 §2.1); only a security hold keeps security lines longer. */
		CONSENTRY_LOG_RETENTION_DAYS: z.coerce
			.number()
			.int()
			.min(1)
			.max(
				14,
				"at most 14 days: logs holding IP addresses are kept no longer (docs/privacy.md); to keep security lines longer during an investigation, set a security hold (operator API)",
			)
			.default(14),
		/** Issue 14: how often the retention purge runs, minutes (0: never; one process at a time across the store). */
		CONSENTRY_RETENTION_INTERVAL_MINUTES: z.coerce.number().min(0).max(1440).default(60),
		CONSENTRY_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
		CONSENTRY_CLIENT_DIR: z.string().optional(),
		CONSENTRY_DB_FILE: z.string().min(1).optional(),
		/** `postgres://…`: PostgreSQL instead of the SQLite file (several gateway nodes share it). */
		// Empty counts as unset (the compose file passes `${CONSENTRY_DATABASE_URL:-}`: SQLite unless the cluster is on).
		CONSENTRY_DATABASE_URL: z.preprocess(
			(v) => (v === "" ? undefined : v),
			z
				.string()
				.regex(/^postgres(ql)?:\/\/\S+$/, "must be a postgres:// (or postgresql://) URL")
				.optional(),
		),
		/** PostgreSQL: a query unanswered this long fails as store_unavailable (ms); SQLite: the busy timeout. */
		CONSENTRY_DATABASE_TIMEOUT_MS: z.coerce.number().int().min(500).max(120_000).default(5000),
		/**
		 * PostgreSQL: connections in this process's pool (the cluster bus's LISTEN connection is one more). Each node's
		 * pool counts against the server's max_connections (100 by default).
		 */
		CONSENTRY_DATABASE_POOL_SIZE: z.preprocess(
			(v) => (typeof v === "string" && v.trim() === "" ? undefined : v), // empty counts as unset (compose)
			z.coerce
				.number({ error: "must be a whole number of connections" })
				.int("must be a whole number of connections")
				.min(1, "must be at least 1 connection")
				.max(1000, "must be at most 1000 connections per gateway process (PostgreSQL allows 100 by default)")
				.default(DEFAULT_DATABASE_POOL_SIZE),
		),
		CONSENTRY_TENANTS_FILE: z.string().min(1).optional(),
		/** JSON `{ "keys": [...] }`: the operator's token keys (docs/operator.md); unset = no operator API. */
		CONSENTRY_OPERATOR_KEYS_FILE: z.string().min(1).optional(),
		/** How often each gateway process reads the operator's change feed, ms (changes apply within this). */
		CONSENTRY_OPERATOR_POLL_MS: z.coerce.number().int().min(20).max(5000).default(200),
		/** 32 random bytes, base64: seals the customers' storage credentials at rest. */
		CONSENTRY_MASTER_KEY: z.string().min(1).optional(),
		/** Allow storage endpoints on private/loopback addresses (a bucket on the local network, tests). */
		CONSENTRY_STORAGE_ALLOW_PRIVATE: z.stringbool().default(false),
		/** Allow plain-http storage endpoints (never over the internet). */
		CONSENTRY_STORAGE_ALLOW_HTTP: z.stringbool().default(false),
		/** Run the recorder process (recording needs it and a tenant storage target). */
		CONSENTRY_RECORDER: z.stringbool().default(true),
		/** Memory one recorded track may hold while the bucket is slow or down, MiB (≥ 6). */
		CONSENTRY_RECORDER_BUFFER_MIB: z.coerce.number().int().min(6).max(4096).default(64),
		CONSENTRY_RECORDER_MAX_OUTAGE_SECONDS: z.coerce.number().int().min(5).max(86_400).default(600),
		/** Length of each recorded object before it rolls over into the next, minutes. */
		CONSENTRY_RECORDING_SEGMENT_MINUTES: z.coerce.number().min(0.05).max(1440).default(10),
		/** Serve Prometheus metrics at /metrics (loopback only unless CONSENTRY_METRICS_TOKEN is set). */
		CONSENTRY_METRICS: z.stringbool().default(true),
		/** A bearer token that opens /metrics to scrapers elsewhere (at least 16 characters). */
		CONSENTRY_METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").max(512).optional(),
		CONSENTRY_AUDIENCE: z.string().min(1).max(256).default("consentry"),
		CONSENTRY_GATEWAY_ID: z
			.string()
			.regex(/^[A-Za-z0-9._-]{1,64}$/, "letters, digits, '.', '_' and '-' only")
			.optional(),
		/**
		 * Cluster (issue 12 placement): the URL clients reach this node at (http(s)://host[:port], no path). With
		 * CONSENTRY_DATABASE_URL it registers the node and places each meeting on one node (docs/architecture.md).
		 */
		CONSENTRY_PUBLIC_URL: z
			.string()
			.regex(/^https?:\/\/[^/\s?#]+$/, "must be http(s)://host[:port] without a path")
			.optional(),
		/** Cluster: how often a node writes its heartbeat (ms); it counts as dead after CONSENTRY_NODE_DEAD_MS without one. */
		CONSENTRY_NODE_HEARTBEAT_MS: z.coerce.number().int().min(100).max(60_000).default(1000),
		CONSENTRY_NODE_DEAD_MS: z.coerce.number().int().min(300).max(600_000).default(3000),
		/** Signaling sockets one address may hold at once (IPv6: one /64). */
		CONSENTRY_MAX_CONNECTIONS_PER_ADDRESS: z.coerce.number().int().min(1).max(100_000).default(32),
		/** New signaling connections one address may open: a burst of 2 s worth, then this many per second. */
		CONSENTRY_CONNECTS_PER_ADDRESS_PER_SECOND: z.coerce.number().min(0.1).max(100_000).default(5),
		/** Unauthenticated (tokenless, guest) sockets one address may hold at once. */
		CONSENTRY_MAX_GUEST_CONNECTIONS_PER_ADDRESS: z.coerce.number().int().min(0).max(100_000).default(8),
		/** Unauthenticated sockets the whole gateway holds at once. */
		CONSENTRY_MAX_GUEST_CONNECTIONS: z.coerce.number().int().min(0).max(1_000_000).default(256),
		/** Signaling requests one address may send per second, all its sockets together (burst: 4 s worth). */
		CONSENTRY_REQUESTS_PER_ADDRESS_PER_SECOND: z.coerce.number().min(1).max(1_000_000).default(100),
		/** Signaling requests one socket may send per second (burst: 2 s worth); chat is 1/s on top. */
		CONSENTRY_REQUESTS_PER_SOCKET_PER_SECOND: z.coerce.number().min(1).max(1_000_000).default(30),
		/** Signaling bytes one address may send per second, KiB, all its sockets together (burst: 1 s worth). */
		CONSENTRY_SIGNALING_KIB_PER_ADDRESS_PER_SECOND: z.coerce.number().min(1).max(1_000_000).default(256),
		/** Largest signaling message, KiB. */
		CONSENTRY_SIGNALING_MAX_MESSAGE_KIB: z.coerce.number().int().min(16).max(4096).default(64),
		/** People one meeting's lobby holds at once (they never take a seat in the meeting). */
		CONSENTRY_LOBBY_MAX: z.coerce.number().int().min(1).max(10_000).default(50),
		/** Wrong passcodes one address may try per meeting before backing off (2 s, doubling, up to 5 min). */
		CONSENTRY_PASSCODE_FAILURES_PER_ADDRESS: z.coerce.number().int().min(1).max(1000).default(3),
		/** Wrong passcodes (all addresses) that lock a meeting's passcode joins until its host lifts the lockout. */
		CONSENTRY_PASSCODE_LOCKOUT_AFTER: z.coerce.number().int().min(1).max(100_000).default(20),
		/** The REST API's window: each REST limit below counts requests per this many seconds (fixed windows). */
		CONSENTRY_REST_WINDOW_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
		/** REST requests one address (IPv4, or IPv6 /64) may send per window, every route but /healthz together. */
		CONSENTRY_REST_REQUESTS_PER_ADDRESS: z.coerce.number().int().min(1).max(10_000_000).default(1200),
		/** Data-subject requests (access, export, erasure, retry) one caller (tenant + subject, or operator) per window. */
		CONSENTRY_REST_DSR_PER_CALLER: z.coerce.number().int().min(1).max(10_000_000).default(30),
		/** Storage-target and webhook changes, webhook pings and the operator's tenant wipes, per caller and window. */
		CONSENTRY_REST_CHANGES_PER_CALLER: z.coerce.number().int().min(1).max(10_000_000).default(30),
		/** Meetings one caller (tenant + subject) may create per window. */
		CONSENTRY_REST_MEETINGS_PER_CALLER: z.coerce.number().int().min(1).max(10_000_000).default(300),
		/** Take the client address from the last X-Forwarded-For hop (only behind a trusted TLS proxy). */
		CONSENTRY_TRUST_PROXY: z.stringbool().default(false),
		/** Defaults to where scripts/setup.sh puts the worker it built: mediasoup's own default path. */
		MEDIASOUP_WORKER_BIN: z.string().min(1).optional(),
	})
	.refine((e) => e.CONSENTRY_RTC_MIN_PORT <= e.CONSENTRY_RTC_MAX_PORT, {
		message: "CONSENTRY_RTC_MIN_PORT must be <= CONSENTRY_RTC_MAX_PORT",
		path: ["CONSENTRY_RTC_MIN_PORT"],
	})
	.refine((e) => Boolean(e.CONSENTRY_TLS_CERT_FILE) === Boolean(e.CONSENTRY_TLS_KEY_FILE), {
		message: "set both CONSENTRY_TLS_CERT_FILE and CONSENTRY_TLS_KEY_FILE, or neither",
		path: ["CONSENTRY_TLS_CERT_FILE"],
	})
	.refine((e) => e.CONSENTRY_NODE_DEAD_MS >= 2 * e.CONSENTRY_NODE_HEARTBEAT_MS, {
		message: "CONSENTRY_NODE_DEAD_MS must be at least twice CONSENTRY_NODE_HEARTBEAT_MS",
		path: ["CONSENTRY_NODE_DEAD_MS"],
	});

export interface GatewayConfig {
	http: { host: string; port: number; tls?: { certFile: string; keyFile: string } };
	rtc: {
		listenIp: string;
		announcedAddress?: string;
		minPort: number;
		maxPort: number;
		preferredVideoCodec?: "vp8" | "h264";
	};
	mediasoup: { workerBin: string; numWorkers: number };
	logLevel: string;
	/** Issue 14: the gateway's own log files (unset dir: stdout only) and how many days they are kept (≤ 14). */
	logs: { dir?: string; retentionDays: number };
	/** Issue 14: the retention purge's interval (0: off). */
	retention: { intervalMs: number };
	/** Client addresses kept only as a keyed hash whose key rotates (≤ 14 days) and is destroyed (docs/privacy.md). */
	privacy: { addressKeyFile: string; addressKeyDays: number };
	/** Directory holding the built browser client (vite build output). */
	clientDir: string;
	/** SQLite file holding meetings, seats and events (no media, ever); unused when `databaseUrl` is set. */
	dbFile: string;
	/** PostgreSQL instead of the SQLite file (CONSENTRY_DATABASE_URL). */
	databaseUrl?: string;
	/**
	 * PostgreSQL: how long a query may go unanswered before it fails as store_unavailable (ms). SQLite: how long a
	 * statement waits for another process's lock on the file (busy timeout) before it fails the same way.
	 */
	databaseTimeoutMs: number;
	/** PostgreSQL: connections in this process's pool (CONSENTRY_DATABASE_POOL_SIZE). */
	databasePoolSize: number;
	/** JSON file registering tenants and their token keys; unset = no tenant yet (guests only of nothing). */
	tenantsFile?: string;
	/** The operator's keys file, and how often the change feed is read (docs/operator.md). */
	operator: { keysFile?: string; pollMs: number };
	/** The `aud` tokens must carry. */
	audience: string;
	/** Names this gateway process among those sharing the store. */
	gatewayId: string;
	/**
	 * Cluster placement (issue 12): on when this node has a public URL and the store is PostgreSQL. Each meeting's
	 * router lives on one node; the others redirect its joins there (server/cluster).
	 */
	cluster?: { publicUrl: string; heartbeatMs: number; deadMs: number };
	storage: { masterKey?: string; allowPrivate: boolean; allowHttp: boolean };
	recorder: { enabled: boolean; maxBufferedBytes: number; segmentMinutes: number; maxOutageMs: number };
	/** /metrics: on or off, and the bearer token that opens it beyond loopback. */
	metrics: { enabled: boolean; token?: string };
	/** What one address (and unauthenticated sockets) may cost the gateway (docs/security.md). */
	limits: GatewayLimits;
	/** What one address and one caller may ask of the REST API per window (docs/security.md, "REST API"). */
	rest: RestLimits;
	/** Client addresses from X-Forwarded-For's last hop (a trusted proxy in front). */
	trustProxy: boolean;
}

/** The REST API's limits (server/http/RestLimits.ts): requests per window, by address and by caller. */
export interface RestLimits {
	windowMs: number;
	requestsPerAddress: number;
	dsrPerCaller: number;
	changesPerCaller: number;
	meetingsPerCaller: number;
}

/** The REST limits when nothing is configured. */
export const DEFAULT_REST_LIMITS: RestLimits = {
	windowMs: 60_000,
	requestsPerAddress: 1200,
	dsrPerCaller: 30,
	changesPerCaller: 30,
	meetingsPerCaller: 300,
};

export interface GatewayLimits {
	maxConnectionsPerAddress: number;
	connectsPerAddressPerSecond: number;
	maxGuestConnectionsPerAddress: number;
	maxGuestConnections: number;
	requestsPerAddressPerSecond: number;
	requestsPerSocketPerSecond: number;
	bytesPerAddressPerSecond: number;
	maxMessageBytes: number;
	lobbyMax: number;
	passcodeFailuresPerAddress: number;
	passcodeLockoutAfter: number;
}

/** The limits when nothing is configured (tests and embedders that build a config by hand). */
export const DEFAULT_LIMITS: GatewayLimits = {
	maxConnectionsPerAddress: 32,
	connectsPerAddressPerSecond: 5,
	maxGuestConnectionsPerAddress: 8,
	maxGuestConnections: 256,
	requestsPerAddressPerSecond: 100,
	requestsPerSocketPerSecond: 30,
	bytesPerAddressPerSecond: 256 * 1024,
	maxMessageBytes: 64 * 1024,
	lobbyMax: 50,
	passcodeFailuresPerAddress: 3,
	passcodeLockoutAfter: 20,
};

/** Reads and validates the configuration; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
	const parsed = EnvSchema.safeParse(env);
	if (!parsed.success) {
		const lines = parsed.error.issues.map((i) => `  ${i.path.join(".") || "(env)"}: ${i.message}`);
		throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
	}
	const e = parsed.data;
	const workerBin = e.MEDIASOUP_WORKER_BIN ?? mediasoup.workerBin;
	try {
		accessSync(workerBin, fsConstants.X_OK);
	} catch (cause) {
		throw new ConfigError(
			`the mediasoup worker binary ${workerBin} is not an executable file; run scripts/setup.sh to build it (or set MEDIASOUP_WORKER_BIN)`,
			{ cause },
		);
	}
	return {
		http: {
			host: e.CONSENTRY_HTTP_HOST,
			port: e.CONSENTRY_HTTP_PORT,
			...(e.CONSENTRY_TLS_CERT_FILE && e.CONSENTRY_TLS_KEY_FILE
				? { tls: { certFile: e.CONSENTRY_TLS_CERT_FILE, keyFile: e.CONSENTRY_TLS_KEY_FILE } }
				: {}),
		},
		rtc: {
			listenIp: e.CONSENTRY_RTC_LISTEN_IP,
			...(e.CONSENTRY_RTC_ANNOUNCED_ADDRESS ? { announcedAddress: e.CONSENTRY_RTC_ANNOUNCED_ADDRESS } : {}),
			minPort: e.CONSENTRY_RTC_MIN_PORT,
			maxPort: e.CONSENTRY_RTC_MAX_PORT,
			preferredVideoCodec: e.CONSENTRY_VIDEO_CODEC,
		},
		mediasoup: {
			workerBin,
			numWorkers: e.CONSENTRY_WORKERS ?? os.availableParallelism(),
		},
		logLevel: e.CONSENTRY_LOG_LEVEL,
		logs: {
			...(e.CONSENTRY_LOG_DIR ? { dir: e.CONSENTRY_LOG_DIR } : {}),
			retentionDays: e.CONSENTRY_LOG_RETENTION_DAYS,
		},
		retention: { intervalMs: Math.round(e.CONSENTRY_RETENTION_INTERVAL_MINUTES * 60_000) },
		privacy: {
			addressKeyFile:
				e.CONSENTRY_ADDRESS_KEY_FILE ??
				path.join(
					path.dirname(e.CONSENTRY_DB_FILE ?? path.join(projectRoot, "data", "consentry.sqlite")),
					"address-key.json",
				),
			addressKeyDays: e.CONSENTRY_ADDRESS_KEY_DAYS,
		},
		clientDir: e.CONSENTRY_CLIENT_DIR ?? defaultClientDir,
		dbFile: e.CONSENTRY_DB_FILE ?? path.join(projectRoot, "data", "consentry.sqlite"),
		...(e.CONSENTRY_DATABASE_URL ? { databaseUrl: e.CONSENTRY_DATABASE_URL } : {}),
		databaseTimeoutMs: e.CONSENTRY_DATABASE_TIMEOUT_MS,
		databasePoolSize: e.CONSENTRY_DATABASE_POOL_SIZE,
		...(e.CONSENTRY_TENANTS_FILE ? { tenantsFile: e.CONSENTRY_TENANTS_FILE } : {}),
		operator: {
			...(e.CONSENTRY_OPERATOR_KEYS_FILE ? { keysFile: e.CONSENTRY_OPERATOR_KEYS_FILE } : {}),
			pollMs: e.CONSENTRY_OPERATOR_POLL_MS,
		},
		audience: e.CONSENTRY_AUDIENCE,
		storage: {
			...(e.CONSENTRY_MASTER_KEY ? { masterKey: e.CONSENTRY_MASTER_KEY } : {}),
			allowPrivate: e.CONSENTRY_STORAGE_ALLOW_PRIVATE,
			allowHttp: e.CONSENTRY_STORAGE_ALLOW_HTTP,
		},
		recorder: {
			enabled: e.CONSENTRY_RECORDER,
			maxBufferedBytes: e.CONSENTRY_RECORDER_BUFFER_MIB * 1024 * 1024,
			segmentMinutes: e.CONSENTRY_RECORDING_SEGMENT_MINUTES,
			maxOutageMs: e.CONSENTRY_RECORDER_MAX_OUTAGE_SECONDS * 1000,
		},
		metrics: {
			enabled: e.CONSENTRY_METRICS,
			...(e.CONSENTRY_METRICS_TOKEN ? { token: e.CONSENTRY_METRICS_TOKEN } : {}),
		},
		limits: {
			maxConnectionsPerAddress: e.CONSENTRY_MAX_CONNECTIONS_PER_ADDRESS,
			connectsPerAddressPerSecond: e.CONSENTRY_CONNECTS_PER_ADDRESS_PER_SECOND,
			maxGuestConnectionsPerAddress: e.CONSENTRY_MAX_GUEST_CONNECTIONS_PER_ADDRESS,
			maxGuestConnections: e.CONSENTRY_MAX_GUEST_CONNECTIONS,
			requestsPerAddressPerSecond: e.CONSENTRY_REQUESTS_PER_ADDRESS_PER_SECOND,
			requestsPerSocketPerSecond: e.CONSENTRY_REQUESTS_PER_SOCKET_PER_SECOND,
			bytesPerAddressPerSecond: e.CONSENTRY_SIGNALING_KIB_PER_ADDRESS_PER_SECOND * 1024,
			maxMessageBytes: e.CONSENTRY_SIGNALING_MAX_MESSAGE_KIB * 1024,
			lobbyMax: e.CONSENTRY_LOBBY_MAX,
			passcodeFailuresPerAddress: e.CONSENTRY_PASSCODE_FAILURES_PER_ADDRESS,
			passcodeLockoutAfter: e.CONSENTRY_PASSCODE_LOCKOUT_AFTER,
		},
		rest: {
			windowMs: e.CONSENTRY_REST_WINDOW_SECONDS * 1000,
			requestsPerAddress: e.CONSENTRY_REST_REQUESTS_PER_ADDRESS,
			dsrPerCaller: e.CONSENTRY_REST_DSR_PER_CALLER,
			changesPerCaller: e.CONSENTRY_REST_CHANGES_PER_CALLER,
			meetingsPerCaller: e.CONSENTRY_REST_MEETINGS_PER_CALLER,
		},
		trustProxy: e.CONSENTRY_TRUST_PROXY,
		...(e.CONSENTRY_PUBLIC_URL && e.CONSENTRY_DATABASE_URL
			? {
					cluster: {
						publicUrl: e.CONSENTRY_PUBLIC_URL,
						heartbeatMs: e.CONSENTRY_NODE_HEARTBEAT_MS,
						deadMs: e.CONSENTRY_NODE_DEAD_MS,
					},
				}
			: {}),
		gatewayId:
			e.CONSENTRY_GATEWAY_ID ??
			os
				.hostname()
				.replace(/[^A-Za-z0-9._-]/g, "-")
				.slice(0, 64),
	};
}

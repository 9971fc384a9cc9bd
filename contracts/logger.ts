import { pino } from "pino";

export type Logger = pino.Logger;

/** Where a logger also writes its lines (the gateway's own log files, server/privacy/LogFiles.ts). */
export interface LogDestination {
	write(line: string): unknown;
}

/**
 * The process-wide logger. Logs are JSON lines on stdout; IP addresses are
 * personal data, so the log shipper must keep them at most 14 days (see
 * docs/privacy.md). With `files` (CONSENTRY_LOG_DIR), every line also goes there.
 */
export function createLogger(
	level: string = process.env.CONSENTRY_LOG_LEVEL ?? "info",
	files?: LogDestination,
): Logger {
	const opts = {
		level,
		base: { service: "consentry" },
		redact: {
			paths: ["req.headers.authorization", "req.headers.cookie", "*.token", "*.secret", "*.passcode"],
			censor: "[redacted]",
		},
	};
	if (!files) return pino(opts);
	// Both streams take every line the logger's level lets through (the level may change after the start).
	return pino(
		opts,
		pino.multistream([
			{ level: "trace", stream: process.stdout },
			{ level: "trace", stream: files },
		]),
	);
}

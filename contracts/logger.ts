import { pino } from "pino";

export type Logger = pino.Logger;

/**
 * The process-wide logger. Logs are JSON lines on stdout; IP addresses are
 * personal data, so the log shipper must keep them at most 14 days (see
 * docs/privacy.md). Nothing here writes log files itself.
 */
export function createLogger(level: string = process.env.CONSENTRY_LOG_LEVEL ?? "info"): Logger {
	return pino({
		level,
		base: { service: "consentry" },
		redact: {
			paths: ["req.headers.authorization", "req.headers.cookie", "*.token", "*.secret", "*.passcode"],
			censor: "[redacted]",
		},
	});
}

import { loadConfig } from "./config.js";
import { ConfigError } from "./errors.js";
import { Gateway } from "./Gateway.js";
import { createLogger } from "./logger.js";
import { LogFiles } from "./privacy/LogFiles.js";

let log = createLogger();

try {
	const config = loadConfig();
	log.level = config.logLevel;
	// Issue 14: CONSENTRY_LOG_DIR: every line also goes to daily files there, deleted by age (docs/privacy.md).
	const logFiles = config.logs.dir
		? new LogFiles({
				dir: config.logs.dir,
				retentionDays: config.logs.retentionDays,
				prefix: `consentry-${config.gatewayId}`,
			})
		: undefined;
	if (logFiles) log = createLogger(config.logLevel, logFiles);
	const gateway = await Gateway.create(config, log, logFiles ? { logFiles } : {});
	log.info({ url: gateway.url }, "consentry gateway listening");
	let stopping = false;
	const stop = (signal: string) => {
		if (stopping) return;
		stopping = true;
		log.info({ signal }, "shutting down");
		gateway.close().then(
			() => process.exit(0),
			(err: unknown) => {
				log.error({ err }, "error while shutting down");
				process.exit(1);
			},
		);
	};
	process.on("SIGINT", () => stop("SIGINT"));
	process.on("SIGTERM", () => stop("SIGTERM"));
} catch (err) {
	if (err instanceof ConfigError) {
		log.fatal(err.message);
	} else {
		log.fatal({ err }, "gateway failed to start");
	}
	process.exit(1);
}

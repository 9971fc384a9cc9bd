import { loadConfig } from "../../server/config.js";
import { Gateway } from "../../server/Gateway.js";
import { createLogger } from "../../server/logger.js";

/** Starts a real gateway (real mediasoup workers) on a free loopback port. */
export async function startGateway(env: Record<string, string> = {}): Promise<Gateway> {
	const config = loadConfig({
		...process.env,
		CONSENTRY_HTTP_HOST: "127.0.0.1",
		CONSENTRY_HTTP_PORT: "0",
		CONSENTRY_WORKERS: "1",
		...env,
	});
	return Gateway.create(config, createLogger(process.env.TEST_LOG_LEVEL ?? "silent"));
}

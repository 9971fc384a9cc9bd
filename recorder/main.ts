import { pino } from "pino";
import { ORPHAN_GRACE_MS, RECORDER_CONFIG_ENV, RecorderConfigSchema } from "../contracts/RecorderConfig.js";
import type { ChildMessage } from "../contracts/RecorderProtocol.js";
import { ffmpegGuards } from "./FfmpegProcess.js";
import { RecorderService } from "./RecorderService.js";

/**
 * The recorder child process (fork target of RecorderProcess). Logs JSON lines
 * to stderr. Exits after a `shutdown` message, on SIGTERM, or when the IPC
 * channel closes (the gateway died: within 10 s), each time after closing
 * every track gracefully. Writes nothing to disk.
 */

const log = pino(
	{
		level: "info",
		base: { service: "consentry-recorder", pid: process.pid },
		redact: { paths: ["*.credentials", "*.secretAccessKey", "*.sessionToken", "target"], censor: "[redacted]" },
	},
	pino.destination({ fd: 2, sync: true }),
);

const send = (message: ChildMessage): void => {
	if (!process.connected || !process.send) return;
	try {
		process.send(message, undefined, undefined, (err) => {
			if (err) log.warn({ err: err.message, type: message.type }, "could not send to the gateway");
		});
	} catch (err) {
		log.warn({ err, type: message.type }, "could not send to the gateway");
	}
};

function parseConfig() {
	let raw: unknown = {};
	try {
		raw = JSON.parse(process.env[RECORDER_CONFIG_ENV] ?? "{}");
	} catch {
		log.fatal(`${RECORDER_CONFIG_ENV} is not JSON`);
		process.exit(2);
	}
	const result = RecorderConfigSchema.safeParse(raw);
	if (!result.success) {
		log.fatal({ issues: result.error.issues }, `invalid ${RECORDER_CONFIG_ENV}`);
		process.exit(2);
	}
	return result.data;
}

if (!process.send) {
	log.fatal("the recorder must be started by the gateway (child_process.fork), not directly");
	process.exit(2);
}

const config = parseConfig();
log.level = config.logLevel;
const service = new RecorderService({ config, log, send });

let exiting = false;
// Orphaned (the gateway died): finish what can be finished within ORPHAN_GRACE_MS, then go; checkpoints cover the rest.

async function shutdownAndExit(why: string, code = 0, graceMs?: number): Promise<void> {
	if (exiting) return;
	exiting = true;
	log.info({ why }, "recorder stopping");
	const force = setTimeout(
		() => {
			log.error("graceful shutdown took too long; exiting (open uploads are left for recover)");
			process.exit(1);
		},
		graceMs ?? config.stopGraceMs + 2 * config.finishDeadlineMs + 5000,
	);
	await service.shutdown();
	clearTimeout(force);
	process.exit(code);
}

process.on("message", (raw: unknown) => {
	const type = (raw as { type?: unknown } | null)?.type;
	service.handle(raw);
	if (type === "shutdown") void shutdownAndExit("shutdown requested");
});
// The gateway died (even kill -9: the IPC channel closes with it): no recorder outlives its gateway.
process.on("disconnect", () => void shutdownAndExit("the gateway is gone (IPC channel closed)", 0, ORPHAN_GRACE_MS));
process.on("SIGTERM", () => void shutdownAndExit("SIGTERM"));
process.on("SIGINT", () => void shutdownAndExit("SIGINT"));
process.on("uncaughtException", (err) => {
	log.fatal({ err }, "uncaught exception; exiting (open uploads are left for recover)");
	process.exit(1);
});
process.on("unhandledRejection", (err) => log.error({ err }, "unhandled rejection"));

log.info({ guards: ffmpegGuards(config.ffmpegMemoryLimitBytes), config: { ...config } }, "recorder ready");
send({ type: "ready", pid: process.pid });

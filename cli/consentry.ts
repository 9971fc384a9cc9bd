#!/usr/bin/env node
// The customer's command line (npm bin `consentry`). Subcommands:
//   consentry verify …   check a session's or a meeting's folder in the customer's bucket, offline (docs/compliance.md)
//   consentry dsr …      data-subject requests (access, export, erasure) through the gateway's API (docs/privacy.md)
import "./quietWarnings.js";
import { DSR_USAGE, dsrCommand } from "./dsr/command.js";
import { VERIFY_USAGE, verifyCommand } from "./verify/command.js";

const USAGE = `usage: consentry <command> [options]

commands:
  verify    check a session's or a meeting's folder in your bucket, without the gateway (consentry verify --help)
  dsr       data-subject requests: access, export, erase a person (consentry dsr --help)`;

const io = { out: (t: string) => process.stdout.write(t), err: (t: string) => process.stderr.write(t) };

async function main(argv: string[]): Promise<number> {
	const [command, ...rest] = argv;
	switch (command) {
		case "verify":
			return verifyCommand(rest, io);
		case "dsr":
			return dsrCommand(rest, io);
		case "help":
		case "--help":
		case "-h":
			io.out(`${USAGE}\n\n${VERIFY_USAGE}\n\n${DSR_USAGE}\n`);
			return 0;
		default:
			io.err(`${command === undefined ? "no command given" : `unknown command: ${command}`}\n\n${USAGE}\n`);
			return 2;
	}
}

main(process.argv.slice(2)).then(
	(code) => {
		process.exitCode = code;
	},
	(err: unknown) => {
		io.err(`consentry: ${String(err)}\n`);
		process.exitCode = 2;
	},
);

// The audit trail from the command line (docs/audit.md):
//   node --import tsx scripts/audit.ts verify --db FILE [--tenant ID] [--anchor SEQ:HASH] [--json]
//   node --import tsx scripts/audit.ts verify --jsonl FILE [--json]
//   node --import tsx scripts/audit.ts export --db FILE --tenant ID --meeting ID [--out FILE]
//   node --import tsx scripts/audit.ts head   --db FILE --tenant ID
// The database is opened read-only. Exit codes: 0 intact (or done), 1 broken, 2 usage or I/O error.
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import BetterSqlite3 from "better-sqlite3";
import type { ChainHead } from "../server/audit/chain.js";
import { exportMeeting } from "../server/audit/meetingExport.js";
import { hasChain, type VerifyResult, verifyDatabase, verifyExport } from "../server/audit/verify.js";
import type { Database } from "../server/store/Database.js";

const USAGE = `usage:
  audit.ts verify --db FILE [--tenant ID] [--anchor SEQ:HASH] [--json]
  audit.ts verify --jsonl FILE [--json]
  audit.ts export --db FILE --tenant ID --meeting ID [--out FILE]
  audit.ts head   --db FILE --tenant ID`;

class UsageError extends Error {}

function openReadOnly(file: string): Database {
	let db: Database;
	try {
		db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
	} catch (err) {
		throw new UsageError(`cannot open ${file}: ${(err as Error).message}`);
	}
	if (!hasChain(db))
		throw new UsageError(`${file} has no audit chain yet (schema before migration 2): start the gateway once on it`);
	return db;
}

function parseAnchor(s: string): ChainHead {
	const m = /^(\d+):([0-9a-f]{64})$/.exec(s);
	if (!m) throw new UsageError(`--anchor must be SEQ:HASH (a position and its 64-hex hash), not ${s}`);
	return { seq: Number(m[1]), hash: m[2] as string };
}

function report(r: VerifyResult, what: string): string {
	if (r.ok)
		return `OK      ${what}: ${r.entries} entries verified${r.head ? `, last ${r.head.seq} ${r.head.hash}` : ""}`;
	const b = r.break;
	return [
		`BROKEN  ${what}: first broken link at entry ${b?.seq} (${b?.reason}) after ${r.entries} good entries`,
		`        ${b?.message}`,
		`        expected: ${b?.expected}`,
		`        found:    ${b?.found}`,
	].join("\n");
}

function main(argv: string[]): number {
	const [command, ...rest] = argv;
	const { values } = parseArgs({
		args: rest,
		options: {
			db: { type: "string" },
			jsonl: { type: "string" },
			tenant: { type: "string" },
			meeting: { type: "string" },
			anchor: { type: "string" },
			out: { type: "string" },
			json: { type: "boolean", default: false },
		},
		strict: true,
	});
	switch (command) {
		case "verify": {
			let results: VerifyResult[];
			let label: (r: VerifyResult) => string;
			if (values.jsonl !== undefined) {
				let text: string;
				try {
					text = readFileSync(values.jsonl, "utf8");
				} catch (err) {
					throw new UsageError(`cannot read ${values.jsonl}: ${(err as Error).message}`);
				}
				results = [verifyExport(text)];
				label = (r) => `export ${values.jsonl} (tenant ${r.tenantId})`;
			} else if (values.db !== undefined) {
				const db = openReadOnly(values.db);
				results = verifyDatabase(db, {
					...(values.tenant !== undefined ? { tenantId: values.tenant } : {}),
					...(values.anchor !== undefined ? { anchor: parseAnchor(values.anchor) } : {}),
				});
				db.close();
				if (results.length === 0) process.stdout.write("no entries\n");
				label = (r) => `tenant ${r.tenantId}`;
			} else throw new UsageError("verify needs --db FILE or --jsonl FILE");
			if (values.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
			else for (const r of results) process.stdout.write(`${report(r, label(r))}\n`);
			return results.every((r) => r.ok) ? 0 : 1;
		}
		case "export": {
			if (!values.db || !values.tenant || !values.meeting)
				throw new UsageError("export needs --db, --tenant and --meeting");
			const db = openReadOnly(values.db);
			let meeting = values.meeting;
			// Accept the join-code form (abcd-efgh-jkmn) of a meeting ID.
			const canonical = meeting.toLowerCase().replace(/[\s-]/g, "");
			if (canonical !== meeting && /^[0-9a-z]{12}$/.test(canonical)) {
				const hit = db
					.prepare("SELECT 1 FROM events WHERE tenant_id = ? AND meeting_id = ? LIMIT 1")
					.get(values.tenant, canonical);
				if (hit) meeting = canonical;
			}
			const text = exportMeeting(db, values.tenant, meeting);
			db.close();
			if (text.split("\n").length <= 2) process.stderr.write(`warning: no entries for meeting ${meeting}\n`);
			if (values.out) writeFileSync(values.out, text);
			else process.stdout.write(text);
			return 0;
		}
		case "head": {
			if (!values.db || !values.tenant) throw new UsageError("head needs --db and --tenant");
			const db = openReadOnly(values.db);
			const head = db
				.prepare("SELECT seq, hash FROM events WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1")
				.get(values.tenant) as ChainHead | undefined;
			db.close();
			process.stdout.write(head ? `${head.seq}:${head.hash}\n` : "no entries\n");
			return 0;
		}
		default:
			throw new UsageError(command ? `unknown command ${command}` : "no command");
	}
}

try {
	process.exitCode = main(process.argv.slice(2));
} catch (err) {
	const usage = err instanceof UsageError || String((err as { code?: string }).code).startsWith("ERR_PARSE_ARGS");
	process.stderr.write(`${(err as Error).message}\n${usage ? `${USAGE}\n` : ""}`);
	process.exitCode = 2;
}

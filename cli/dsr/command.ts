import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

/** Exit codes: done; the request is pending (an erasure whose bucket step must be retried); could not run. */
export const DSR_EXIT = { done: 0, pending: 3, failed: 2 } as const;

export const DSR_USAGE = `usage: consentry dsr <access|export|erase|status|retry> --gateway URL [options]

Data-subject requests of one person of your tenant, through the gateway's REST API (docs/privacy.md,
"Data-subject requests"). The token is your tenant's admin token (role admin), or the operator's with --tenant.

  access   what the gateway holds about the person, and where their data is in your bucket
  export   everything held, as one JSON document (consentry.dsr.export v1); --out FILE writes it there
  erase    erase the person (every table, their pseudonym secret); --delete-objects also removes their media
           objects and their chat/transcript lines from your bucket (with an erasure record per session)
  status   an erasure request's state (--request ID)
  retry    run a pending erasure's remaining steps again (--request ID)

  --gateway URL           the gateway (or CONSENTRY_GATEWAY)
  --token TOKEN           the bearer token (or CONSENTRY_TOKEN)
  --subject SUB | --pseudonym psn_…   the person: their token subject, or the pseudonym they were shown (guests)
  --delete-objects        erase: also in the bucket
  --reason TEXT           why (required for the operator)
  --tenant ID             the operator acts on this tenant (operator token)
  --request ID            status, retry
  --out FILE              export: write the document to FILE
Exit code: 0 done; 3 an erasure is still pending (retry it); 2 could not run or was refused.`;

interface Io {
	out(text: string): void;
	err(text: string): void;
}

/** `consentry dsr …`: calls the gateway's REST API; returns the exit code. */
export async function dsrCommand(argv: string[], io: Io, fetchImpl: typeof fetch = fetch): Promise<number> {
	let values: Record<string, string | boolean | undefined>;
	let positionals: string[];
	try {
		({ values, positionals } = parseArgs({
			args: argv,
			allowPositionals: true,
			strict: true,
			options: {
				gateway: { type: "string" },
				token: { type: "string" },
				subject: { type: "string" },
				pseudonym: { type: "string" },
				"delete-objects": { type: "boolean", default: false },
				reason: { type: "string" },
				tenant: { type: "string" },
				request: { type: "string" },
				out: { type: "string" },
				help: { type: "boolean", short: "h", default: false },
			},
		}));
	} catch (err) {
		io.err(`${(err as Error).message}\n\n${DSR_USAGE}\n`);
		return DSR_EXIT.failed;
	}
	const action = positionals[0];
	if (values.help || !action) {
		(values.help ? io.out : io.err)(`${DSR_USAGE}\n`);
		return values.help ? DSR_EXIT.done : DSR_EXIT.failed;
	}
	const gateway = String(values.gateway ?? process.env.CONSENTRY_GATEWAY ?? "").replace(/\/+$/, "");
	const token = String(values.token ?? process.env.CONSENTRY_TOKEN ?? "");
	if (!gateway || !token) {
		io.err(`--gateway and --token (or CONSENTRY_GATEWAY, CONSENTRY_TOKEN) are required\n\n${DSR_USAGE}\n`);
		return DSR_EXIT.failed;
	}
	const base = values.tenant ? `/api/operator/tenants/${encodeURIComponent(String(values.tenant))}/dsr` : "/api/dsr";
	const person =
		values.subject !== undefined
			? { subject: String(values.subject) }
			: values.pseudonym !== undefined
				? { pseudonym: String(values.pseudonym) }
				: undefined;
	const reason = values.reason === undefined ? {} : { reason: String(values.reason) };
	let method = "POST";
	let path: string;
	let body: unknown;
	switch (action) {
		case "access":
		case "export":
		case "erase":
			if (!person) {
				io.err(`${action}: --subject or --pseudonym names the person\n`);
				return DSR_EXIT.failed;
			}
			path = action === "erase" ? `${base}/erasures` : `${base}/${action}`;
			body =
				action === "erase"
					? { person, deleteObjects: values["delete-objects"] === true, ...reason }
					: { person, ...reason };
			break;
		case "status":
		case "retry":
			if (!values.request) {
				io.err(`${action}: --request ID names the erasure request\n`);
				return DSR_EXIT.failed;
			}
			path = `${base}/erasures/${encodeURIComponent(String(values.request))}${action === "retry" ? "/retry" : ""}`;
			method = action === "status" ? "GET" : "POST";
			body = action === "retry" ? reason : undefined;
			break;
		default:
			io.err(`unknown dsr action: ${action}\n\n${DSR_USAGE}\n`);
			return DSR_EXIT.failed;
	}
	let res: Response;
	try {
		res = await fetchImpl(`${gateway}${path}`, {
			method,
			headers: {
				authorization: `Bearer ${token}`,
				...(body !== undefined ? { "content-type": "application/json" } : {}),
			},
			...(body !== undefined ? { body: JSON.stringify(body) } : {}),
		});
	} catch (err) {
		io.err(`could not reach ${gateway}: ${(err as Error).message}\n`);
		return DSR_EXIT.failed;
	}
	const text = await res.text();
	if (!res.ok) {
		io.err(`${res.status} ${text}\n`);
		return DSR_EXIT.failed;
	}
	const pretty = `${JSON.stringify(JSON.parse(text), null, 2)}\n`;
	if (action === "export" && values.out) {
		writeFileSync(String(values.out), pretty);
		io.out(`export written to ${String(values.out)}\n`);
	} else io.out(pretty);
	const state = (JSON.parse(text) as { state?: unknown }).state;
	return state === "pending" ? DSR_EXIT.pending : DSR_EXIT.done;
}

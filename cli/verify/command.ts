import { parseArgs } from "node:util";
import { Bucket, BucketUnreachable } from "./bucket.js";
import { type FolderReport, type Found, surveyMeeting } from "./meetingFolder.js";
import { Findings, formatReport, type SessionReport } from "./report.js";
import { DEFAULT_LIMITS, type VerifyLimits, verifySession } from "./verifySession.js";
import { verifyTranscript } from "./verifyTranscript.js";

/**
 * Exit codes: everything verified; something failed verification; the verifier could not run; nothing wrong found,
 * but a session is unfinished (no manifest yet: not a pass, rerun after the meeting ends).
 */
export const EXIT = { verified: 0, failed: 1, couldNotRun: 2, unfinished: 3 } as const;
export type Outcome = "verified" | "failed" | "unfinished";

export const VERIFY_USAGE = `usage: consentry verify <s3://BUCKET/PATH | --bucket BUCKET --prefix PATH> [options]

PATH is a session's folder ({prefix}/{meetingId}/{sessionId}: a recording, or a transcription) or a meeting's
folder: every session in it is verified, and every other object in it is named (stray: in no session; a session
folder without its manifest: unfinished; a session the meeting's trail records, gone: deleted). With --session ID,
PATH is the storage prefix and the session is found under it.

  --endpoint URL            S3 endpoint (MinIO, R2, a local server…); default: AWS
  --region REGION           default: AWS_REGION, or us-east-1
  --profile NAME            AWS profile (otherwise the usual AWS environment / profile chain)
  --sse-c-key BASE64        the 32-byte SSE-C customer key, if the objects are encrypted with one
  --session ID              find this session under PATH (the storage target's prefix)
  --json                    print the report as JSON
  --concurrency N           objects hashed at once (default ${DEFAULT_LIMITS.concurrency})
  --slack-ms N              clock allowance in the time checks (default ${DEFAULT_LIMITS.slackMs})
  --max-manifest-bytes N, --max-audit-bytes N, --max-chat-bytes N, --max-objects N   caps (hostile buckets)

Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN), AWS_PROFILE, ~/.aws, … (AWS SDK v3).
Exit code: 0 every object verified; 1 verification failed (altered, missing, stray, deleted); 2 could not run (bad
arguments, bucket unreachable, nothing there); 3 unfinished: a session has no manifest yet (still recording, or its
node stopped before finishing it) and nothing else is wrong — not a pass: rerun after the meeting ends.`;

class UsageError extends Error {}

interface Io {
	out(text: string): void;
	err(text: string): void;
}

/** `consentry verify …`: returns the exit code. */
export async function verifyCommand(argv: string[], io: Io): Promise<number> {
	let bucket: Bucket | undefined;
	let json = false;
	try {
		const { values, positionals } = parseArgs({
			args: argv,
			allowPositionals: true,
			strict: true,
			options: {
				bucket: { type: "string" },
				prefix: { type: "string" },
				session: { type: "string" },
				endpoint: { type: "string" },
				region: { type: "string" },
				profile: { type: "string" },
				"sse-c-key": { type: "string" },
				json: { type: "boolean", default: false },
				concurrency: { type: "string" },
				"slack-ms": { type: "string" },
				"max-manifest-bytes": { type: "string" },
				"max-audit-bytes": { type: "string" },
				"max-chat-bytes": { type: "string" },
				"max-objects": { type: "string" },
				help: { type: "boolean", short: "h", default: false },
			},
		});
		json = values.json;
		if (values.help) {
			io.out(`${VERIFY_USAGE}\n`);
			return EXIT.verified;
		}
		let name = values.bucket;
		let path = values.prefix ?? "";
		if (positionals.length > 1) throw new UsageError(`one location, not ${positionals.length}`);
		if (positionals[0] !== undefined) {
			const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(positionals[0]);
			if (!m) throw new UsageError(`the location must be s3://BUCKET/PATH, not ${positionals[0]}`);
			if (name !== undefined || values.prefix !== undefined)
				throw new UsageError("give either s3://BUCKET/PATH or --bucket/--prefix, not both");
			name = m[1] as string;
			path = m[2] as string;
		}
		if (!name) throw new UsageError("which bucket? give s3://BUCKET/PATH or --bucket");
		path = path.replace(/^\/+|\/+$/g, "");
		if (values.endpoint !== undefined && !/^https?:\/\/[^/]+/.test(values.endpoint))
			throw new UsageError(`--endpoint must be an http(s) URL, not ${values.endpoint}`);
		if (values.session !== undefined && !/^[A-Za-z0-9_-]{1,128}$/.test(values.session))
			throw new UsageError(`--session must be a session id, not ${values.session}`);
		const limits: VerifyLimits = {
			concurrency: int(values.concurrency, "concurrency", DEFAULT_LIMITS.concurrency, 1, 64),
			slackMs: int(values["slack-ms"], "slack-ms", DEFAULT_LIMITS.slackMs, 0, 60_000),
			maxManifestBytes: int(
				values["max-manifest-bytes"],
				"max-manifest-bytes",
				DEFAULT_LIMITS.maxManifestBytes,
				1,
				2 ** 40,
			),
			maxAuditBytes: int(values["max-audit-bytes"], "max-audit-bytes", DEFAULT_LIMITS.maxAuditBytes, 1, 2 ** 31),
			maxChatBytes: int(values["max-chat-bytes"], "max-chat-bytes", DEFAULT_LIMITS.maxChatBytes, 1, 2 ** 31),
			maxObjects: int(values["max-objects"], "max-objects", DEFAULT_LIMITS.maxObjects, 1, 10_000_000),
		};
		bucket = new Bucket({
			bucket: name,
			...(values.endpoint ? { endpoint: values.endpoint } : {}),
			...(values.region ? { region: values.region } : {}),
			...(values.profile ? { profile: values.profile } : {}),
			...(values["sse-c-key"] ? { sseCustomerKey: values["sse-c-key"] } : {}),
		});
		const { sessions, folders } = await findSessions(bucket, path, values.session, limits);
		if (sessions.length === 0 && folders.every((f) => f.problems.length === 0))
			throw new NothingThere(
				values.session
					? `no session ${values.session} under s3://${name}/${path}`
					: `no session at s3://${name}/${path}/ (nothing there, nor in the folders below it; a storage prefix holds one folder per meeting: give a meeting's folder, or find a session with --session ID)`,
			);
		const reports: SessionReport[] = [];
		for (const s of sessions) reports.push(await verifyOne(bucket, s, limits));
		const outcome = outcomeOf(reports, folders);
		io.out(
			json
				? `${JSON.stringify({ ok: outcome === "verified", outcome, sessions: reports, folders }, null, 2)}\n`
				: formatReport(reports, folders),
		);
		return EXIT[outcome];
	} catch (err) {
		const known = err instanceof UsageError || err instanceof BucketUnreachable || err instanceof NothingThere;
		const message = known ? (err as Error).message : `unexpected error: ${(err as Error)?.stack ?? String(err)}`;
		if (json)
			io.out(`${JSON.stringify({ ok: false, outcome: "error", error: { code: codeOf(err), message } }, null, 2)}\n`);
		io.err(`consentry verify: ${message}\n${err instanceof UsageError ? `\n${VERIFY_USAGE}\n` : ""}`);
		return EXIT.couldNotRun;
	} finally {
		bucket?.destroy();
	}
}

class NothingThere extends Error {}

/**
 * One session. Whatever a hostile bucket holds, it ends as a report: an error the checks did not foresee fails the
 * session (fail closed) and is named; only an unreachable bucket stops the run.
 */
async function verifyOne(bucket: Bucket, s: Found, limits: VerifyLimits): Promise<SessionReport> {
	try {
		return s.kind === "recording"
			? await verifySession(bucket, s.prefix, limits)
			: await verifyTranscript(bucket, s.prefix, limits);
	} catch (err) {
		if (err instanceof BucketUnreachable) throw err;
		const f = new Findings();
		f.fail(
			"manifest",
			s.prefix,
			`the verifier could not finish on what this folder holds: ${String((err as Error)?.message ?? err).slice(0, 300)}`,
		);
		const parts = s.prefix.split("/");
		return {
			kind: s.kind,
			bucket: bucket.name,
			prefix: s.prefix,
			meeting: parts.at(-2) ?? null,
			session: parts.at(-1) ?? null,
			ok: false,
			checks: f.results(),
			problems: f.problems,
			stats: { objects: 0, bytes: 0, tracks: 0, persons: 0, auditEntries: 0, chatLines: 0 },
		};
	}
}

function codeOf(err: unknown): string {
	if (err instanceof UsageError) return "usage";
	if (err instanceof BucketUnreachable) return err.code;
	if (err instanceof NothingThere) return "no_session";
	return "internal";
}

function int(v: string | undefined, name: string, dflt: number, min: number, max: number): number {
	if (v === undefined) return dflt;
	const n = Number(v);
	if (!Number.isSafeInteger(n) || n < min || n > max)
		throw new UsageError(`--${name} must be an integer ${min}…${max}`);
	return n;
}

/**
 * The sessions to verify and the folders surveyed: a session's folder (PATH, or `--session ID` under PATH) is
 * surveyed alone within its meeting's folder; a meeting's folder as a whole (everything in it accounted for).
 */
async function findSessions(
	bucket: Bucket,
	path: string,
	session: string | undefined,
	limits: VerifyLimits,
): Promise<{ sessions: Found[]; folders: FolderReport[] }> {
	const base = path ? `${path}/` : "";
	const sessions: Found[] = [];
	const folders: FolderReport[] = [];
	const survey = async (meetingFolder: string, only?: string) => {
		const r = await surveyMeeting(bucket, meetingFolder, limits, only);
		sessions.push(...r.sessions);
		if (r.folder.objects > 0 || r.folder.problems.length > 0) folders.push(r.folder);
	};
	if (session !== undefined) {
		for (const meeting of await bucket.folders(base, 1_000_000)) {
			const here = await bucket.children(`${meeting}${session}/`, 1);
			if (here.objects.length || here.folders.length) await survey(meeting.replace(/\/$/, ""), session);
		}
		return { sessions, folders };
	}
	if (!path) return { sessions, folders };
	const here = await bucket.children(base, 100_000);
	const parent = path.split("/").slice(0, -1).join("/");
	const final = here.objects.some((k) => k === `${base}manifest.json` || k === `${base}transcript.json`);
	// A session's folder (finished, or not yet: objects and no folders below); else a meeting's.
	if (parent && (final || (here.objects.length > 0 && here.folders.length === 0)))
		await survey(parent, path.split("/").at(-1));
	else if (here.objects.length || here.folders.length) await survey(path);
	return { sessions, folders };
}

/** verified: every object under the folder is proven; failed: something breaks the proof; unfinished: a session has
 * no manifest yet and nothing else is wrong (not a pass: rerun after the meeting ends). */
function outcomeOf(reports: SessionReport[], folders: FolderReport[]): keyof typeof EXIT & Outcome {
	const problems = folders.flatMap((f) => f.problems);
	if (reports.some((r) => !r.ok) || problems.some((p) => p.severity === "fail")) return "failed";
	if (problems.some((p) => p.severity === "pending")) return "unfinished";
	return "verified";
}

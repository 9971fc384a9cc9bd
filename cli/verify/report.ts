import type { FolderReport } from "./meetingFolder.js";

/** What one check concluded. */
export type Status = "pass" | "fail" | "warn" | "skip";

/** The checks, in the order they are reported. */
export const CHECKS = {
	manifest: "manifest.json is present, well formed (schema v2) and names this session",
	listing: "the bucket holds exactly what the manifest lists (nothing added, nothing deleted)",
	objects: "every object's size and SHA-256 match the manifest",
	"audit-chain": "audit.jsonl's hash chain verifies and matches the manifest's anchor",
	"audit-objects": "every object the trail says was written is in the manifest, with the same size and SHA-256",
	coverage: "every track is covered by its person's answer to this session's notice, before its gate opened",
	"capture-time": "every track's first capture and every object's first frame come after the person's answer",
	unanswered: "nothing of a person without an answer exists (no track, no object, no chat line)",
} as const;

export type CheckId = keyof typeof CHECKS;

/** The same checks, as they apply to a transcription session's folder (transcript.json, transcript.vtt). */
export const TRANSCRIPT_CHECKS: Record<CheckId, string> = {
	manifest: "transcript.json is present, well formed and names this session",
	listing:
		"the folder holds only transcript.json and transcript.vtt (and checkpoint parts left beside them, each agreeing with transcript.json)",
	objects: "transcript.json and transcript.vtt match the size and SHA-256 the trail recorded for them",
	"audit-chain": "the meeting's latest audit.jsonl in the bucket verifies and covers this session",
	"audit-objects": "the trail records the final transcript objects of this session",
	coverage: "the session is in the trail, under the transcript's policy",
	"capture-time": "every transcript line starts after its speaker's answer to this session's notice",
	unanswered: "no transcript line of a person without an answer",
};

/** A failure (the session does not verify) or a warning (worth a look, not a failure), naming what. */
export interface Problem {
	check: CheckId;
	severity: "fail" | "warn";
	/** The object key, audit line or track it is about. */
	subject: string;
	message: string;
}

export interface CheckResult {
	id: CheckId;
	title: string;
	status: Status;
	/** Why it was skipped (a check it depends on could not run). */
	skipped?: string;
}

export interface SessionReport {
	kind: "recording" | "transcription";
	bucket: string;
	prefix: string;
	meeting: string | null;
	session: string | null;
	ok: boolean;
	checks: CheckResult[];
	problems: Problem[];
	stats: { objects: number; bytes: number; tracks: number; persons: number; auditEntries: number; chatLines: number };
}

/** Collects problems per check while a session is verified. */
export class Findings {
	readonly problems: Problem[] = [];
	readonly #skipped = new Map<CheckId, string>();
	readonly #limit: number;

	constructor(limit = 10_000) {
		this.#limit = limit;
	}

	fail(check: CheckId, subject: string, message: string): void {
		this.#add({ check, severity: "fail", subject, message });
	}

	warn(check: CheckId, subject: string, message: string): void {
		this.#add({ check, severity: "warn", subject, message });
	}

	skip(check: CheckId, why: string): void {
		if (!this.#skipped.has(check)) this.#skipped.set(check, why);
	}

	results(titles: Record<CheckId, string> = CHECKS): CheckResult[] {
		return (Object.keys(CHECKS) as CheckId[]).map((id) => {
			const mine = this.problems.filter((p) => p.check === id);
			const skipped = this.#skipped.get(id);
			const status: Status = mine.some((p) => p.severity === "fail")
				? "fail"
				: skipped !== undefined
					? "skip"
					: mine.length
						? "warn"
						: "pass";
			return { id, title: titles[id], status, ...(status === "skip" ? { skipped } : {}) };
		});
	}

	#add(p: Problem): void {
		if (this.problems.length < this.#limit) this.problems.push(p);
		else if (this.problems.length === this.#limit)
			this.problems.push({
				check: p.check,
				severity: "fail",
				subject: "…",
				message: "too many problems; the rest are not listed",
			});
	}
}

const MARK: Record<Status, string> = { pass: "PASS", fail: "FAIL", warn: "WARN", skip: "SKIP" };

/** The human report: one line per check, then every problem naming its object or line; then each meeting folder. */
export function formatReport(reports: SessionReport[], folders: FolderReport[] = []): string {
	const out: string[] = [];
	for (const r of reports) {
		out.push(
			`${r.ok ? "VERIFIED" : "NOT VERIFIED"}  s3://${r.bucket}/${r.prefix}/  (meeting ${r.meeting ?? "?"}, ${r.kind} session ${r.session ?? "?"})`,
		);
		if (r.kind === "transcription")
			out.push(`  ${r.stats.chatLines} transcript lines, ${r.stats.auditEntries} audit entries`);
		else
			out.push(
				`  ${r.stats.tracks} tracks of ${r.stats.persons} people, ${r.stats.objects} objects (${(r.stats.bytes / 1e6).toFixed(1)} MB), ${r.stats.auditEntries} audit entries, ${r.stats.chatLines} chat lines`,
			);
		for (const c of r.checks) {
			out.push(`  ${MARK[c.status]}  ${c.title}${c.skipped ? ` — not checked: ${c.skipped}` : ""}`);
			for (const p of r.problems.filter((x) => x.check === c.id))
				out.push(`        ${p.severity === "fail" ? "✗" : "!"} ${p.subject}: ${p.message}`);
		}
		out.push("");
	}
	for (const f of folders) {
		const fails = f.problems.filter((p) => p.severity === "fail").length;
		const pending = f.problems.filter((p) => p.severity === "pending").length;
		out.push(
			f.session === undefined
				? `${fails ? "NOT VERIFIED" : pending ? "UNFINISHED" : "VERIFIED"}  s3://${f.bucket}/${f.prefix}/  (the meeting's folder: ${f.objects} objects, ${f.sessions.finished} finished and ${f.sessions.unfinished} unfinished session folder(s); trail ${f.trail ?? "none in the bucket"})`
				: `${fails ? "NOT VERIFIED" : pending ? "UNFINISHED" : "VERIFIED"}  s3://${f.bucket}/${f.prefix}/  (the session's folder: ${f.objects} objects, ${f.sessions.unfinished ? "unfinished" : "finished"}; trail ${f.trail ?? "none in the bucket"})`,
		);
		if (f.problems.length === 0)
			out.push(
				"  PASS  nothing stray, unfinished or deleted: every object is in a finished session's folder, every session the trail records is there",
			);
		for (const p of f.problems)
			out.push(`  ${p.severity === "fail" ? "✗" : p.severity === "pending" ? "…" : "!"} ${p.subject}: ${p.message}`);
		out.push("");
	}
	const failed = reports.filter((r) => !r.ok).length;
	const problems = folders.flatMap((f) => f.problems);
	const folderFails = problems.filter((p) => p.severity === "fail").length;
	const unfinished = problems.filter((p) => p.severity === "pending").length;
	if (failed || folderFails)
		out.push(
			`${failed} of ${reports.length} session(s) failed verification${folderFails ? `; ${folderFails} problem(s) in the folder (stray or deleted objects, deleted sessions)` : ""}.`,
		);
	else if (unfinished)
		out.push(
			`All ${reports.length} finished session(s) verified; ${unfinished} unfinished (no manifest yet — rerun after the meeting ends). Nothing wrong found so far, nothing proven for the unfinished ones.`,
		);
	else out.push(`All ${reports.length} session(s) verified.`);
	return `${out.join("\n")}\n`;
}

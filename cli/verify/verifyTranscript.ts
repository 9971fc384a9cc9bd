import { z } from "zod";
import { answersIn } from "../../server/audit/notices.js";
import type { Bucket, Listed } from "./bucket.js";
import { afterErasures, isErasureFile, readErasures } from "./erasures.js";
import { Findings, type SessionReport, TRANSCRIPT_CHECKS } from "./report.js";
import { checkParts, partNumber } from "./transcriptParts.js";
import { type Entry, iso, lineOf, parseExport, safeVerifyExport, type VerifyLimits } from "./verifySession.js";

const isoTime = z.iso.datetime({ offset: true });

/** transcript.json (server/transcription/TranscriptionService.ts), the fields the verifier checks. */
export const TranscriptSchema = z.looseObject({
	kind: z.literal("consentry.transcript"),
	version: z.literal(1),
	meeting: z.string().min(1),
	session: z.string().min(1),
	policy: z.looseObject({ name: z.enum(["notice", "explicit-consent"]), version: z.number() }),
	startedAt: isoTime,
	entries: z
		.array(z.looseObject({ speaker: z.string().min(1), start: isoTime, end: isoTime, text: z.string() }))
		.max(10_000_000),
});

const NAMES = ["transcript.json", "transcript.vtt"] as const;

/**
 * Verifies a transcription session's folder, `{prefix}/{meetingId}/{sessionId}` holding transcript.json and
 * transcript.vtt, against the meeting's latest audit export in the bucket (the gateway writes one beside the
 * transcript at the session's end, and one with each recording session: the longest chain is taken). Every line's speaker must have answered this
 * session's notice before the line; the transcript objects must be the ones the trail recorded.
 */
export async function verifyTranscript(bucket: Bucket, prefix: string, limits: VerifyLimits): Promise<SessionReport> {
	const f = new Findings();
	const parts = prefix.split("/");
	const folderSession = parts.at(-1) ?? "";
	const folderMeeting = parts.at(-2) ?? "";
	const meetingFolder = parts.slice(0, -1).join("/");
	const stats = { objects: 0, bytes: 0, tracks: 0, persons: 0, auditEntries: 0, chatLines: 0 };
	let meeting: string | null = folderMeeting || null;
	const report = (): SessionReport => {
		const checks = f.results(TRANSCRIPT_CHECKS);
		return {
			kind: "transcription",
			bucket: bucket.name,
			prefix,
			meeting,
			session: folderSession || null,
			ok: checks.every((c) => c.status !== "fail" && c.status !== "skip"),
			checks,
			problems: f.problems,
			stats,
		};
	};

	const listing = await bucket.list(`${prefix}/`, limits.maxObjects);
	for (const o of listing.objects)
		if (
			!NAMES.some((n) => o.key === `${prefix}/${n}`) &&
			o.key !== `${prefix}/audit.jsonl` &&
			!isErasureFile(prefix, o.key) &&
			partNumber(o.key.slice(prefix.length + 1)) === undefined
		)
			f.fail("listing", o.key, `added: in the bucket (${o.size} bytes), not part of a transcript`);
	for (const n of NAMES)
		if (!listing.objects.some((o) => o.key === `${prefix}/${n}`))
			f.fail("listing", `${prefix}/${n}`, "deleted: missing");

	const key = `${prefix}/transcript.json`;
	const read = await bucket.read(key, limits.maxManifestBytes);
	let transcript: z.infer<typeof TranscriptSchema> | undefined;
	if (!read) f.fail("manifest", key, "missing");
	else if ("tooLarge" in read) f.fail("manifest", key, `larger than ${limits.maxManifestBytes} bytes: not read`);
	else {
		let json: unknown;
		try {
			json = JSON.parse(read.bytes.toString("utf8"));
		} catch (err) {
			f.fail("manifest", key, `not JSON (${(err as Error).message})`);
		}
		const p = json === undefined ? undefined : TranscriptSchema.safeParse(json);
		if (p && !p.success)
			for (const i of p.error.issues.slice(0, 500))
				f.fail("manifest", `${key} ${i.path.length ? i.path.join(".") : "(root)"}`, i.message);
		if (p?.success) {
			transcript = p.data;
			meeting = p.data.meeting;
			stats.chatLines = p.data.entries.length;
			stats.persons = new Set(p.data.entries.map((e) => e.speaker)).size;
			if (p.data.session !== folderSession || p.data.meeting !== folderMeeting)
				f.fail(
					"manifest",
					key,
					`names meeting ${p.data.meeting}, session ${p.data.session}, but sits in ${folderMeeting}/${folderSession}`,
				);
		}
	}
	// Checkpoint parts left beside the final transcript (its gateway stopped before deleting them): each must agree.
	const partObjects = listing.objects.filter((o) => partNumber(o.key.slice(prefix.length + 1)) !== undefined);
	if (partObjects.length) {
		if (!transcript)
			f.fail(
				"listing",
				`${prefix}/`,
				`${partObjects.length} checkpoint part(s) not checked: no usable transcript.json`,
			);
		else
			for (const p of await checkParts(bucket, prefix, partObjects, limits, transcript))
				f.fail("listing", p.subject, p.message);
	}
	if (!transcript) {
		for (const c of ["objects", "audit-chain", "audit-objects", "coverage", "capture-time", "unanswered"] as const)
			f.skip(c, "no usable transcript.json");
		return report();
	}

	// The meeting's latest audit export in the bucket (the longest meeting chain).
	let best: { key: string; text: string; seq: number } | undefined;
	const all = await bucket.list(`${meetingFolder}/`, limits.maxObjects);
	for (const o of all.objects) {
		if (!o.key.endsWith("/audit.jsonl")) continue;
		const r = await bucket.read(o.key, limits.maxAuditBytes);
		if (!r || "tooLarge" in r) continue;
		const text = r.bytes.toString("utf8");
		const parsed = parseExport(text);
		const head = parsed.header?.meetingHead as { seq?: unknown } | null | undefined;
		const seq = typeof head?.seq === "number" ? head.seq : 0;
		if (parsed.header?.meeting === transcript.meeting && (!best || seq > best.seq)) best = { key: o.key, text, seq };
	}
	if (!best) {
		f.fail(
			"audit-chain",
			`${meetingFolder}/`,
			"no audit.jsonl of this meeting in the bucket: the transcript can't be checked against the trail",
		);
		for (const c of ["objects", "audit-objects", "coverage", "capture-time", "unanswered"] as const)
			f.skip(c, "no audit export of this meeting");
		return report();
	}
	const chain = safeVerifyExport(best.text);
	if (!chain.ok && chain.break)
		f.fail(
			"audit-chain",
			`${best.key} ${chain.break.seq ? `entry ${chain.break.seq}` : "header"}${lineOf(best.text, chain.break.seq)}`,
			`${chain.break.reason}: ${chain.break.message}`,
		);
	const entries = parseExport(best.text).entries;
	stats.auditEntries = entries.length;
	// Data-subject erasures (docs/privacy.md): the rewrites of transcript.json/.vtt their records anchor are accepted.
	const listedMap = new Map<string, Listed>(listing.objects.map((o) => [o.key, o]));
	const erasures = await readErasures(
		bucket,
		prefix,
		listedMap,
		limits,
		f,
		parseExport(best.text).header?.meetingHead ?? null,
	);
	const S = transcript.session;
	const mine = entries.filter((x) => x.e.data.sessionId === S && x.e.data.kind === "transcription");
	const sub = (x: Entry) => `${best?.key} entry ${x.e.seq} (${x.e.type}, line ${x.line})`;
	const on = mine.find((x) => x.e.type === "session.on");
	if (!on) {
		f.fail(
			"audit-chain",
			best.key,
			`the meeting's latest audit export has no session.on for transcription session ${S}`,
		);
		for (const c of ["objects", "audit-objects", "coverage", "capture-time", "unanswered"] as const)
			f.skip(c, "the audit export does not cover this session");
		return report();
	}
	const p = on.e.data.policy as { name?: unknown; version?: unknown } | undefined;
	if (p?.name !== transcript.policy.name || p?.version !== transcript.policy.version)
		f.fail(
			"coverage",
			sub(on),
			`the session ran under ${String(p?.name)} v${String(p?.version)}, transcript.json says ${transcript.policy.name} v${transcript.policy.version}`,
		);

	// The transcript objects, against what the trail recorded at the session's end.
	for (const n of NAMES) {
		const k = `${prefix}/${n}`;
		const w = mine.filter((x) => x.e.type === "storage.object_written" && x.e.data.key === k).at(-1);
		const got = listing.objects.some((o) => o.key === k) ? await bucket.hash(k) : undefined;
		if (got) {
			stats.objects++;
			stats.bytes += got.size;
		}
		if (!w) {
			f.warn(
				"audit-objects",
				k,
				"the trail in the bucket does not record it (written after the meeting's last audit export): its lines are checked, its bytes are not anchored",
			);
			continue;
		}
		const want = afterErasures(k, { size: Number(w.e.data.size), sha256: String(w.e.data.sha256) }, erasures);
		if (want.mismatch) f.fail("objects", k, want.mismatch);
		else if (got && (got.size !== want.size || got.sha256 !== want.sha256))
			f.fail(
				"objects",
				k,
				`${got.size} bytes, SHA-256 ${got.sha256}; the trail recorded ${String(w.e.data.size)} bytes, ${String(w.e.data.sha256)} (${sub(w)}): changed`,
			);
	}

	// Every line of a person who answered, after their answer.
	const consentOnly = transcript.policy.name === "explicit-consent";
	const answered = new Map<string, Entry>();
	const declined = new Set<string>();
	for (const x of mine) {
		for (const a of answersIn(x.e))
			if ((!consentOnly || a.type === "consent.given") && !answered.has(a.person)) answered.set(a.person, x);
		if (x.e.type === "consent.declined" && x.e.actor) declined.add(x.e.actor);
	}
	transcript.entries.forEach((e, i) => {
		const subject = `${key} entries.${i}`;
		const a = answered.get(e.speaker);
		if (!a)
			f.fail(
				"unanswered",
				subject,
				`a line of ${e.speaker}, who never answered this session's notice${declined.has(e.speaker) ? " (they declined it)" : ""}`,
			);
		else if (Date.parse(e.start) < Date.parse(a.e.at) - limits.slackMs)
			f.fail(
				"capture-time",
				subject,
				`starts at ${e.start}, before ${e.speaker} answered (${sub(a)} at ${iso(Date.parse(a.e.at))})`,
			);
	});
	return report();
}

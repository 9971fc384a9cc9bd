import type { Bucket, Listed } from "./bucket.js";
import { isErasureFile } from "./erasures.js";
import { checkParts, partNumber } from "./transcriptParts.js";
import { type Entry, lineOf, parseExport, safeVerifyExport, type VerifyLimits } from "./verifySession.js";

/**
 * The meeting folder as a whole (`{prefix}/{meetingId}/`): every object in it is in a session folder, every session
 * folder is finished (its manifest.json, or its final transcript.json) or named as unfinished (a transcription's
 * checkpoint parts all there, from the first to the last: cli/verify/transcriptParts.ts), and every session the
 * meeting's trail in the bucket records as written here still has its folder. The sessions themselves are verified
 * one by one (verifySession, verifyTranscript); this is what lies between them.
 */

/** A finished session's folder, to verify on its own. */
export type Found = { kind: "recording" | "transcription"; prefix: string };

/**
 * What the folder check found: `fail` breaks the proof (exit 1); `pending` is a session not finished yet, nothing
 * wrong found (exit 3 when nothing fails); `warn` is worth a look.
 */
export interface FolderProblem {
	severity: "fail" | "pending" | "warn";
	/** stray: an object no session accounts for; deleted: gone though the trail records it; unfinished: no manifest yet. */
	kind: "stray" | "deleted" | "unfinished" | "trail";
	/** The object key, or the session folder (ending in `/`). */
	subject: string;
	message: string;
}

export interface FolderReport {
	bucket: string;
	/** The meeting folder, or with `session` the session's folder, no trailing slash. */
	prefix: string;
	/** Set when one session's folder was checked (within its meeting's folder), not the whole meeting folder. */
	session?: string;
	/** Every object under it. */
	objects: number;
	/** Finished session folders (verified one by one), unfinished ones. */
	sessions: { finished: number; unfinished: number };
	/** The audit export the trail checks used (the meeting's latest in the bucket), or null if there is none. */
	trail: string | null;
	problems: FolderProblem[];
}

/** Names the recorder and the transcriber give what they write in a session folder while it runs. */
const OBJECT_NAME = /^[A-Za-z0-9_-]{1,128}-(audio|camera|screen)-[1-9]\d{0,8}\.(webm|mkv)$/;
const CHECKPOINT_NAME = /^\d{1,16}-\d{1,12}\.ckpt$/;
const SESSION_FILES = new Set(["chat.jsonl", "audit.jsonl", "transcript.json", "transcript.vtt"]);
/** A header line of an audit export is well under this; the longest chain is found from the headers alone. */
const HEADER_BYTES = 256 * 1024;

const END_TYPES = new Set(["session.off", "session.paused"]);

/**
 * Surveys `{meetingFolder}/` (or, with `only`, the one session folder `{meetingFolder}/{only}/`): lists it once,
 * names what is stray, unfinished or deleted, and returns the finished sessions to verify.
 */
export async function surveyMeeting(
	bucket: Bucket,
	meetingFolder: string,
	limits: VerifyLimits,
	only?: string,
): Promise<{ sessions: Found[]; folder: FolderReport; meetingLike: boolean }> {
	const problems: FolderProblem[] = [];
	const base = `${meetingFolder}/`;
	const listing = await bucket.list(base, limits.maxObjects);
	if (listing.truncated)
		problems.push({
			severity: "fail",
			kind: "stray",
			subject: base,
			message: `more than ${limits.maxObjects} objects: the rest were not listed, nor checked (raise --max-objects)`,
		});

	// Group by session folder; what lies directly in the meeting folder belongs to none.
	const folders = new Map<string, Listed[]>();
	for (const o of listing.objects) {
		const rest = o.key.slice(base.length);
		const slash = rest.indexOf("/");
		if (slash < 0) {
			if (only === undefined)
				problems.push({
					severity: "fail",
					kind: "stray",
					subject: o.key,
					message: `stray: ${o.size} bytes directly in the meeting folder, in no session's folder (the gateway writes only into session folders)`,
				});
			continue;
		}
		const sid = rest.slice(0, slash);
		if (only !== undefined && sid !== only) continue;
		const list = folders.get(sid);
		if (list) list.push(o);
		else folders.set(sid, [o]);
	}

	// A session's folder holds objects right in it; a folder whose sub-folders hold only folders is a storage prefix
	// (one folder per meeting), not a meeting's folder.
	const meetingLike = [...folders].some(([sid, objects]) =>
		objects.some((o) => !o.key.slice(base.length + sid.length + 1).includes("/")),
	);
	if (!meetingLike && only === undefined)
		return {
			sessions: [],
			meetingLike,
			folder: {
				bucket: bucket.name,
				prefix: meetingFolder,
				objects: 0,
				sessions: { finished: 0, unfinished: 0 },
				trail: null,
				problems: [],
			},
		};

	const trail = await latestTrail(bucket, listing.objects, meetingFolder, limits);
	const known = trail ? trailSessions(trail.entries, bucket.name, base) : new Map<string, TrailSession>();

	const sessions: Found[] = [];
	let unfinished = 0;
	for (const [sid, objects] of folders) {
		const folder = `${base}${sid}`;
		const has = (name: string) => objects.find((o) => o.key === `${folder}/${name}`);
		const t = known.get(sid);
		if (has("manifest.json")) {
			sessions.push({ kind: "recording", prefix: folder });
			continue;
		}
		const transcript = has("transcript.json");
		const parts = objects.filter((o) => partNumber(o.key.slice(folder.length + 1)) !== undefined);
		if (transcript) {
			const checkpoint = await transcriptCheckpoint(bucket, transcript.key, limits);
			if (!checkpoint) {
				sessions.push({ kind: "transcription", prefix: folder });
				if (!has("audit.jsonl"))
					problems.push({
						severity: "fail",
						kind: "deleted",
						subject: `${folder}/audit.jsonl`,
						message:
							"deleted: missing (the gateway writes the meeting's trail beside every final transcript; it can be missing without tampering only if its gateway stopped between the two writes)",
					});
				continue;
			}
			unfinished++;
			problems.push(
				t?.end
					? {
							severity: "fail",
							kind: "deleted",
							subject: transcript.key,
							message: `a checkpoint (written ${checkpoint}), not the final transcript, though the trail records the session ended (${where(trail, t.end)}): the final transcript was replaced — or its gateway stopped while writing it (then rerun after the gateway restarts: it finishes the session from the bucket)`,
						}
					: {
							severity: "pending",
							kind: "unfinished",
							subject: `${folder}/`,
							message: `transcription session still being written (transcript.json is a checkpoint of ${checkpoint}): no final transcript yet — rerun after the meeting ends`,
						},
			);
		} else if (parts.length) {
			// A transcription session's checkpoints: no final transcript.json yet.
			unfinished++;
			const last = Math.max(0, ...parts.map((o) => o.lastModified ?? 0));
			const lastWritten = last ? `, the last written ${new Date(last).toISOString()}` : "";
			problems.push(
				t?.end
					? {
							severity: "fail",
							kind: "deleted",
							subject: `${folder}/transcript.json`,
							message: `deleted: no transcript.json (${parts.length} checkpoint part(s)), though the trail records this transcription session ended (${where(trail, t.end)}) — or its gateway stopped while writing it (then rerun after the gateway restarts: it finishes the session from the bucket)`,
						}
					: {
							severity: "pending",
							kind: "unfinished",
							subject: `${folder}/`,
							message: `transcription session still being written (${parts.length} checkpoint part(s)${lastWritten}): no final transcript yet — rerun after the meeting ends`,
						},
			);
			for (const p of await checkParts(bucket, folder, parts, limits))
				problems.push({
					severity: "fail",
					kind: p.kind === "deleted" ? "deleted" : "stray",
					subject: p.subject,
					message: p.message,
				});
		} else {
			unfinished++;
			const last = Math.max(0, ...objects.map((o) => o.lastModified ?? 0));
			const lastWritten = last ? `, last written ${new Date(last).toISOString()}` : "";
			problems.push(
				t?.end
					? {
							severity: "fail",
							kind: "deleted",
							subject: `${folder}/manifest.json`,
							message: `deleted: no manifest.json, though the trail records this ${t.kind} session ended (${where(trail, t.end)}) — or its gateway stopped while writing it (then rerun after the gateway restarts: it finishes the session from the bucket)`,
						}
					: {
							severity: "pending",
							kind: "unfinished",
							subject: `${folder}/`,
							message: `no manifest yet — rerun after the meeting ends (${t ? `${t.kind} session` : "a session"} still recording, or its node stopped and has not finished it yet: ${objects.length} object(s)${lastWritten})`,
						},
			);
		}
		// What an unfinished session may hold: the recorder's objects and checkpoints, the session's own files.
		for (const o of objects) {
			const name = o.key.slice(folder.length + 1);
			if (
				!(
					OBJECT_NAME.test(name) ||
					CHECKPOINT_NAME.test(name) ||
					partNumber(name) !== undefined ||
					SESSION_FILES.has(name) ||
					isErasureFile(folder, o.key)
				)
			)
				problems.push({
					severity: "fail",
					kind: "stray",
					subject: o.key,
					message: `stray: ${o.size} bytes in an unfinished session's folder, not an object a capture session writes`,
				});
		}
	}

	// The trail the checks above relied on: a recording's is checked with its session (its manifest anchors it), a
	// transcription's by verifyTranscript; any other is checked here.
	if (trail?.broken && !sessions.some((x) => trail.key.startsWith(`${x.prefix}/`)))
		problems.push({ severity: "fail", kind: "trail", subject: trail.key, message: trail.broken });
	// Every other copy of the trail in the folder(s) checked: the meeting's one chain, so the same entry at each place
	// as in the latest (a copy rewritten to differ, or a latest forged to hide a session, shows here); its own chain
	// verified unless a manifest anchors it (its session's audit-chain check does that).
	if (trail && !trail.broken)
		for (const objects of folders.values())
			for (const o of objects) {
				if (!o.key.endsWith("/audit.jsonl") || o.key === trail.key) continue;
				const anchored = objects.some((x) => x.key === o.key.replace(/audit\.jsonl$/, "manifest.json"));
				await checkTrailCopy(bucket, o.key, trail, !anchored, limits, problems);
			}

	// Sessions the trail records as written here, whose folder is gone.
	for (const [sid, t] of known) {
		if (folders.has(sid) || (only !== undefined && sid !== only)) continue;
		if (t.elsewhere && !t.written) continue; // it wrote to another bucket or prefix
		if (t.end)
			problems.push({
				severity: "fail",
				kind: "deleted",
				subject: `${base}${sid}/`,
				message: `deleted: the trail records ${t.kind} session ${sid} (${where(trail, t.on)}, ended ${where(trail, t.end)}${t.written ? `, ${t.written} object(s) written in this folder` : ""}), the bucket holds nothing of it`,
			});
		else if (t.written)
			problems.push({
				severity: "fail",
				kind: "deleted",
				subject: `${base}${sid}/`,
				message: `deleted: the trail records ${t.written} object(s) of ${t.kind} session ${sid} written in this folder, the bucket holds nothing of it`,
			});
		else {
			unfinished++;
			problems.push({
				severity: "pending",
				kind: "unfinished",
				subject: `${base}${sid}/`,
				message: `no manifest yet — rerun after the meeting ends (the trail records ${t.kind} session ${sid} started, ${where(trail, t.on)}, and nothing of it yet; nothing of it is in the bucket: if the meeting has ended, its folder was deleted)`,
			});
		}
	}

	return {
		meetingLike,
		sessions: sessions.sort((a, b) => a.prefix.localeCompare(b.prefix)),
		folder: {
			bucket: bucket.name,
			prefix: only === undefined ? meetingFolder : `${base}${only}`,
			...(only !== undefined ? { session: only } : {}),
			objects: only === undefined ? listing.objects.length : [...folders.values()].flat().length,
			sessions: { finished: sessions.length, unfinished },
			trail: trail?.key ?? null,
			problems,
		},
	};
}

interface TrailSession {
	kind: string;
	on: Entry;
	end?: Entry;
	/** Objects the trail records written in this bucket under this meeting folder. */
	written: number;
	/** Objects it wrote to another bucket or prefix. */
	elsewhere: number;
}

/** The sessions of the meeting's trail, by id, with their end and the objects they wrote. */
function trailSessions(entries: Entry[], bucketName: string, base: string): Map<string, TrailSession> {
	const out = new Map<string, TrailSession>();
	for (const x of entries) {
		const sid = x.e.data.sessionId;
		if (typeof sid !== "string" || !/^[A-Za-z0-9_-]{1,128}$/.test(sid)) continue;
		if (x.e.type === "session.on" && !out.has(sid))
			out.set(sid, { kind: String(x.e.data.kind ?? "recording"), on: x, written: 0, elsewhere: 0 });
		const s = out.get(sid);
		if (!s) continue;
		if (END_TYPES.has(x.e.type) && !s.end) s.end = x;
		if (x.e.type === "storage.object_written") {
			const key = x.e.data.key;
			const here =
				(x.e.data.bucket === undefined || x.e.data.bucket === bucketName) &&
				typeof key === "string" &&
				key.startsWith(`${base}${sid}/`);
			if (here) s.written++;
			else s.elsewhere++;
		}
	}
	return out;
}

function where(trail: { key: string; text: string } | undefined, x: Entry): string {
	return `${trail?.key ?? "audit.jsonl"} entry ${x.e.seq}, ${x.e.type} at ${x.e.at}${trail ? lineOf(trail.text, x.e.seq) : ""}`;
}

/**
 * The meeting's latest audit export in the bucket: every session writes one (the meeting's trail so far) into its
 * folder; the longest meeting chain is found from their header lines, then read whole and its chain verified.
 */
async function latestTrail(
	bucket: Bucket,
	objects: Listed[],
	meetingFolder: string,
	limits: VerifyLimits,
): Promise<{ key: string; text: string; entries: Entry[]; broken?: string } | undefined> {
	const meetingId = meetingFolder.split("/").at(-1);
	let best: { key: string; seq: number } | undefined;
	for (const o of objects) {
		if (!o.key.endsWith("/audit.jsonl")) continue;
		const head = await bucket.range(o.key, 0, Math.min(o.size, HEADER_BYTES));
		const nl = head?.indexOf(0x0a) ?? -1;
		if (!head || nl < 0) continue;
		let h: { kind?: unknown; meeting?: unknown; meetingHead?: { seq?: unknown } | null };
		try {
			h = JSON.parse(head.subarray(0, nl).toString("utf8"));
		} catch {
			continue;
		}
		const seq = typeof h.meetingHead?.seq === "number" ? h.meetingHead.seq : 0;
		if (h.kind === "consentry.audit.export" && h.meeting === meetingId && (!best || seq > best.seq))
			best = { key: o.key, seq };
	}
	if (!best) return undefined;
	const read = await bucket.read(best.key, limits.maxAuditBytes);
	if (!read || "tooLarge" in read)
		return {
			key: best.key,
			text: "",
			entries: [],
			broken: read ? `larger than ${limits.maxAuditBytes} bytes: not read (raise --max-audit-bytes)` : "vanished",
		};
	const text = read.bytes.toString("utf8");
	const chain = safeVerifyExport(text);
	return {
		key: best.key,
		text,
		entries: parseExport(text).entries,
		...(!chain.ok && chain.break
			? {
					broken: `the meeting's latest trail in the bucket does not verify: ${chain.break.reason}: ${chain.break.message} (entry ${chain.break.seq}${lineOf(text, chain.break.seq)})`,
				}
			: {}),
	};
}

/** A copy of the meeting's trail besides the latest: its chain (unless anchored elsewhere), and the latest's beginning. */
async function checkTrailCopy(
	bucket: Bucket,
	key: string,
	latest: { key: string; entries: Entry[] },
	verifyChain: boolean,
	limits: VerifyLimits,
	problems: FolderProblem[],
): Promise<void> {
	const read = await bucket.read(key, limits.maxAuditBytes);
	if (!read || "tooLarge" in read) {
		if (verifyChain)
			problems.push({
				severity: "fail",
				kind: "trail",
				subject: key,
				message: read
					? `larger than ${limits.maxAuditBytes} bytes: not read (raise --max-audit-bytes)`
					: "vanished while checked",
			});
		return;
	}
	const text = read.bytes.toString("utf8");
	if (verifyChain) {
		const chain = safeVerifyExport(text);
		if (!chain.ok && chain.break) {
			problems.push({
				severity: "fail",
				kind: "trail",
				subject: `${key} ${chain.break.seq ? `entry ${chain.break.seq}` : "header"}${lineOf(text, chain.break.seq)}`,
				message: `${chain.break.reason}: ${chain.break.message}`,
			});
			return;
		}
	}
	const hashes = new Map(latest.entries.map((x) => [x.e.seq, x.hash]));
	const differs = parseExport(text).entries.find((x) => hashes.has(x.e.seq) && hashes.get(x.e.seq) !== x.hash);
	if (differs)
		problems.push({
			severity: "fail",
			kind: "trail",
			subject: `${key} entry ${differs.e.seq} (line ${differs.line})`,
			message: `not the entry the meeting's latest trail (${latest.key}) holds at that place: one of the two was rewritten`,
		});
}

/** When transcript.json is a checkpoint (`checkpointedAt`, no `endedAt`): when it was written. */
async function transcriptCheckpoint(bucket: Bucket, key: string, limits: VerifyLimits): Promise<string | undefined> {
	const read = await bucket.read(key, limits.maxManifestBytes);
	if (!read || "tooLarge" in read) return undefined; // verifyTranscript reports it
	try {
		const t = JSON.parse(read.bytes.toString("utf8")) as { checkpointedAt?: unknown; endedAt?: unknown };
		return typeof t.checkpointedAt === "string" && t.endedAt === undefined ? t.checkpointedAt : undefined;
	} catch {
		return undefined;
	}
}

import { TRANSCRIPT_PART_NAME } from "../../server/transcription/TranscriptTypes.js";
import type { Bucket, Listed } from "./bucket.js";
import type { VerifyLimits } from "./verifySession.js";

/**
 * A transcription session's checkpoint parts (`transcript.part-NNNNNN.json`, server/transcription/TranscriptWriter.ts):
 * while the session runs, numbered from 1 with no gap, each with what arrived since the one before; once the final
 * transcript.json is written they are deleted, and any left (the gateway stopped before deleting them) must agree with
 * it. The trail does not record them (they are checkpoints): what is checked is that none is missing, foreign or
 * altered against the final transcript.
 */

/** The part's number, when `name` (relative to the session folder) is a part's. */
export function partNumber(name: string): number | undefined {
	const m = TRANSCRIPT_PART_NAME.exec(name);
	return m ? Number(m[1]) : undefined;
}

export interface PartProblem {
	/** deleted: a part missing from the numbering; changed: a part that is not what the gateway wrote. */
	kind: "deleted" | "changed";
	subject: string;
	message: string;
}

/** An entry as the parts and transcript.json both hold it. */
interface EntryLike {
	speaker?: unknown;
	start?: unknown;
	end?: unknown;
	text?: unknown;
}

const entryKey = (e: EntryLike) => JSON.stringify([e.speaker, e.start, e.end, e.text]);

/**
 * Checks the parts in `folder` (`{prefix}/{meetingId}/{sessionId}`): each is a part of this session with the number
 * its name says; without `final` (a session still being written), none is missing from 1 to the last; with `final`
 * (the transcript.json beside them), every entry of each is in it.
 */
export async function checkParts(
	bucket: Bucket,
	folder: string,
	parts: Listed[],
	limits: VerifyLimits,
	final?: { entries: EntryLike[] },
): Promise<PartProblem[]> {
	const problems: PartProblem[] = [];
	const segments = folder.split("/");
	const session = segments.at(-1);
	const meeting = segments.at(-2);
	const numbered = parts
		.map((o) => ({ o, n: partNumber(o.key.slice(folder.length + 1)) as number }))
		.sort((a, b) => a.n - b.n);
	if (!final) {
		const have = new Set(numbered.map((p) => p.n));
		const last = numbered.at(-1)?.n ?? 0;
		const missing: number[] = [];
		for (let n = 1; n <= last && missing.length < 100; n++) if (!have.has(n)) missing.push(n);
		for (const n of missing)
			problems.push({
				kind: "deleted",
				subject: `${folder}/transcript.part-${String(n).padStart(6, "0")}.json`,
				message: `deleted: checkpoint part ${n} of ${last} is missing (the gateway writes them one after the other and deletes none before the final transcript)`,
			});
	}
	const inFinal = final ? new Set(final.entries.map(entryKey)) : undefined;
	let next = 0;
	const worker = async () => {
		while (next < numbered.length) {
			const { o, n } = numbered[next++] as { o: Listed; n: number };
			const read = await bucket.read(o.key, limits.maxManifestBytes);
			if (!read) continue; // deleted while checked: the gateway finishing the session
			const bad = (message: string) => problems.push({ kind: "changed", subject: o.key, message });
			if ("tooLarge" in read) {
				bad(`larger than ${limits.maxManifestBytes} bytes: not read`);
				continue;
			}
			let p: { kind?: unknown; part?: unknown; meeting?: unknown; session?: unknown; entries?: unknown };
			try {
				p = JSON.parse(read.bytes.toString("utf8"));
			} catch (err) {
				bad(`not JSON (${(err as Error).message}): not a checkpoint part the gateway wrote`);
				continue;
			}
			if (p?.kind !== "consentry.transcript.part" || p.part !== n || !Array.isArray(p.entries)) {
				bad(`not checkpoint part ${n} as the gateway writes it (kind, part number, entries)`);
				continue;
			}
			if (p.meeting !== meeting || p.session !== session) {
				bad(`names meeting ${String(p.meeting)}, session ${String(p.session)}, but sits in ${meeting}/${session}`);
				continue;
			}
			const strays = (p.entries as EntryLike[]).filter((e) => inFinal && !inFinal.has(entryKey(e ?? {})));
			if (strays.length)
				bad(
					`${strays.length} of its ${p.entries.length} entries are not in the final transcript.json beside it (first: ${String(strays[0]?.speaker)} at ${String(strays[0]?.start)}): a checkpoint left after the final write must agree with it`,
				);
		}
	};
	await Promise.all(Array.from({ length: Math.min(limits.concurrency, numbered.length) }, worker));
	return problems.sort((a, b) => a.subject.localeCompare(b.subject));
}

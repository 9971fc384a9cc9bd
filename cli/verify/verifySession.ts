import { z } from "zod";
import type { ChainEntry } from "../../server/audit/chain.js";
import { answersIn, type NoticeAnswer, sentNotices } from "../../server/audit/notices.js";
import { verifyExport } from "../../server/audit/verify.js";
import type { Bucket, Listed } from "./bucket.js";
import { afterErasures, isErasureFile, readErasures } from "./erasures.js";
import { ChatLineSchema, ManifestSchema, type VerifiedManifest } from "./manifestSchema.js";
import { type CheckId, Findings, type SessionReport } from "./report.js";

export interface VerifyLimits {
	/** Largest manifest.json / audit.jsonl / chat.jsonl read (bytes). */
	maxManifestBytes: number;
	maxAuditBytes: number;
	maxChatBytes: number;
	/** Most keys listed under one session's folder, and under a meeting's folder (its folder check). */
	maxObjects: number;
	/** Objects hashed at once. */
	concurrency: number;
	/** Allowance for clock estimates (sender clock offset, transit) in the time checks, ms. */
	slackMs: number;
}

export const DEFAULT_LIMITS: VerifyLimits = {
	maxManifestBytes: 64 * 1024 * 1024,
	maxAuditBytes: 256 * 1024 * 1024,
	maxChatBytes: 64 * 1024 * 1024,
	maxObjects: 200_000,
	concurrency: 4,
	slackMs: 1000,
};

/** How far before its arrival the gateway accepts a click, and how far after (CaptureService: CLICK_*). */
const CLICK_MAX_AGE_MS = 30_000;
const CLICK_SKEW_MS = 2_000;
/** `person`'s answer among those entry `x` records (its own entry, or a line of a notices.acknowledged). */
export function answerOf(x: Entry, person: string): NoticeAnswer | undefined {
	return answersIn(x.e).find((a) => a.person === person);
}
const CHECKPOINT_NAME = /^\d{1,16}-\d{1,12}\.ckpt$/;
/**
 * `{person}-{kind}-{seq}.webm` (Opus, VP8) or `.mkv` (H.264, Matroska), as the recorder names a track's objects
 * (contracts/RecorderProtocol.ts, objectKey).
 */
const OBJECT_NAME = /^([A-Za-z0-9_-]{1,128})-(audio|camera|screen)-([1-9]\d{0,8})\.(webm|mkv)$/;

export interface Entry {
	line: number;
	hash: string;
	e: ChainEntry;
}

/**
 * Verifies one recording session in the customer's bucket with nothing but the bucket: `prefix` is its folder,
 * `{prefix}/{meetingId}/{sessionId}` (no trailing slash). Never throws for what the bucket holds (a hostile bucket is
 * reported on); throws BucketUnreachable when the bucket can't be read at all.
 */
export async function verifySession(
	bucket: Bucket,
	prefix: string,
	limits: VerifyLimits = DEFAULT_LIMITS,
): Promise<SessionReport> {
	const f = new Findings();
	const parts = prefix.split("/");
	const folderSession = parts.at(-1) ?? "";
	const folderMeeting = parts.at(-2) ?? "";
	const stats = { objects: 0, bytes: 0, tracks: 0, persons: 0, auditEntries: 0, chatLines: 0 };
	const report = (manifest?: VerifiedManifest): SessionReport => {
		const checks = f.results();
		return {
			kind: "recording",
			bucket: bucket.name,
			prefix,
			meeting: manifest?.meeting ?? (folderMeeting || null),
			session: manifest?.session ?? (folderSession || null),
			ok: checks.every((c) => c.status !== "fail" && c.status !== "skip"),
			checks,
			problems: f.problems,
			stats,
		};
	};
	const all: CheckId[] = [
		"listing",
		"objects",
		"audit-chain",
		"audit-objects",
		"coverage",
		"capture-time",
		"unanswered",
	];

	// What the bucket holds under the session's folder.
	const listing = await bucket.list(`${prefix}/`, limits.maxObjects);
	if (listing.truncated)
		f.fail("listing", `${prefix}/`, `more than ${limits.maxObjects} objects: only the first ones were checked`);
	const listed = new Map<string, Listed>(listing.objects.map((o) => [o.key, o]));

	// manifest.json: bounded, JSON, schema.
	const manifestKey = `${prefix}/manifest.json`;
	const manifest = await readManifest(bucket, manifestKey, limits, f);
	if (!manifest) {
		for (const c of all) f.skip(c, "no usable manifest.json");
		for (const o of listed.values()) if (o.key !== manifestKey) stats.objects++;
		return report();
	}
	if (manifest.session !== folderSession || manifest.meeting !== folderMeeting)
		f.fail(
			"manifest",
			manifestKey,
			`names meeting ${manifest.meeting}, session ${manifest.session}, but sits in ${folderMeeting}/${folderSession}`,
		);
	stats.tracks = manifest.tracks.length;
	stats.persons = new Set(manifest.tracks.map((t) => t.person)).size;
	const trackPersons = new Set(manifest.tracks.map((t) => t.person));
	for (const p of manifest.persons)
		if (!trackPersons.has(p)) f.fail("manifest", `persons: ${p}`, "listed among the persons but has no track");
	for (const p of trackPersons)
		if (!manifest.persons.includes(p)) f.fail("manifest", `persons: ${p}`, "has a track but is not among the persons");

	// Every key the manifest names, where it must be.
	const expected = new Map<string, { size: number; sha256: string | null; what: string }>();
	const expect = (key: string, size: number, sha256: string | null, what: string) => {
		if (!key.startsWith(`${prefix}/`)) f.fail("manifest", key, `${what} is outside this session's folder`);
		else if (expected.has(key)) f.fail("manifest", key, `listed twice (${expected.get(key)?.what} and ${what})`);
		else expected.set(key, { size, sha256, what });
	};
	expect(manifest.audit.key, manifest.audit.size, manifest.audit.sha256, "audit.jsonl");
	expect(manifest.chat.key, manifest.chat.size, manifest.chat.sha256, "chat.jsonl");
	for (const t of manifest.tracks) {
		for (const o of t.objects) {
			expect(o.key, o.size, o.sha256, `object of track ${t.trackId}`);
			const name = OBJECT_NAME.exec(o.key.slice(prefix.length + 1));
			if (!name || name[1] !== t.person || name[2] !== t.kind || Number(name[3]) !== o.seq)
				f.fail(
					"manifest",
					o.key,
					`is not named ${t.person}-${t.kind}-${o.seq}.webm (or .mkv) as its track and seq say`,
				);
			if (o.sha256 === null && !o.recovered)
				f.fail("manifest", o.key, "has no SHA-256 though it is not a recovered object");
		}
	}

	// Data-subject erasures (docs/privacy.md): each record, anchored by its tombstone in the chain, lists the objects
	// it removed and the ones it rewrote without the person's lines; exactly those changes are accepted.
	const erasures = await readErasures(bucket, prefix, listed, limits, f, manifest.audit.meetingHead);
	const erased = new Set<string>();
	let chatLinesErased = 0;
	for (const [key, x] of expected) {
		const now = afterErasures(key, x, erasures);
		if (now.mismatch) f.fail("listing", key, now.mismatch);
		else if (now.removed) erased.add(key);
		else if (now.sha256 !== x.sha256 || now.size !== x.size) {
			expected.set(key, { ...x, size: now.size, sha256: now.sha256, what: `${x.what} (rewritten by an erasure)` });
			if (key === manifest.chat.key) chatLinesErased = now.linesRemoved;
		}
	}

	// Nothing added, nothing deleted. A checkpoint the recorder left behind is no addition when every byte in it is a
	// copy of the listed objects' bytes (checked below, once those are verified).
	const leftovers: Listed[] = [];
	for (const o of listed.values()) {
		if (o.key === manifestKey || expected.has(o.key) || isErasureFile(prefix, o.key)) continue;
		if (CHECKPOINT_NAME.test(o.key.slice(prefix.length + 1))) leftovers.push(o);
		else f.fail("listing", o.key, `added: in the bucket (${o.size} bytes) but not in the manifest`);
	}
	for (const [key, x] of expected)
		if (!listed.has(key) && !listing.truncated && !erased.has(key))
			f.fail("listing", key, `deleted: the manifest lists this ${x.what}, the bucket does not hold it`);
	for (const key of erased)
		if (listed.has(key)) f.fail("listing", key, "an erasure record says it was removed, yet the bucket holds it");

	// Sizes and SHA-256 of everything listed, streamed.
	await pool([...expected], limits.concurrency, async ([key, x]) => {
		if (erased.has(key) || (!listed.has(key) && !listing.truncated)) return; // erased, or reported as deleted
		const got = await bucket.hash(key);
		if (!got) return f.fail("objects", key, "could not be read: it does not exist");
		stats.objects++;
		stats.bytes += got.size;
		if (got.size !== x.size) f.fail("objects", key, `size ${got.size} bytes, the manifest says ${x.size}`);
		if (x.sha256 === null)
			f.warn("objects", key, "recovered object without a SHA-256 in the manifest: size checked only");
		else if (got.sha256 !== x.sha256)
			f.fail("objects", key, `SHA-256 ${got.sha256} is not the manifest's ${x.sha256}: its bytes were changed`);
	});

	for (const o of leftovers) await checkCheckpoint(bucket, o, expected, limits, f);

	// audit.jsonl: the chain, then its entries.
	const auditRead = await bucket.read(manifest.audit.key, limits.maxAuditBytes);
	let entries: Entry[] | undefined;
	if (!auditRead) f.fail("audit-chain", manifest.audit.key, "missing: nothing can be checked against the trail");
	else if ("tooLarge" in auditRead)
		f.fail(
			"audit-chain",
			manifest.audit.key,
			`larger than ${limits.maxAuditBytes} bytes: not read (raise --max-audit-bytes)`,
		);
	else {
		const text = auditRead.bytes.toString("utf8");
		const chain = safeVerifyExport(text);
		if (!chain.ok && chain.break) {
			const b = chain.break;
			f.fail(
				"audit-chain",
				`${manifest.audit.key} ${b.seq ? `entry ${b.seq}` : "header"}${lineOf(text, b.seq)}`,
				`${b.reason}: ${b.message}`,
			);
		}
		const parsed = parseExport(text);
		entries = parsed.entries;
		stats.auditEntries = entries.length;
		if (parsed.header) {
			if (parsed.header.tenant !== manifest.tenant || parsed.header.meeting !== manifest.meeting)
				f.fail(
					"audit-chain",
					manifest.audit.key,
					`belongs to ${String(parsed.header.tenant)}/${String(parsed.header.meeting)}, the manifest to ${manifest.tenant}/${manifest.meeting}`,
				);
			if (!sameHead(parsed.header.chainHead, manifest.audit.chainHead))
				f.fail("audit-chain", manifest.audit.key, "its chain head is not the one the manifest anchors");
			if (!sameHead(parsed.header.meetingHead, manifest.audit.meetingHead))
				f.fail("audit-chain", manifest.audit.key, "its meeting head is not the one the manifest anchors");
		}
	}

	// chat.jsonl.
	const chatRead = await bucket.read(manifest.chat.key, limits.maxChatBytes);
	const chat: { line: number; at: number; from: string | null }[] = [];
	if (chatRead && "tooLarge" in chatRead)
		f.fail("unanswered", manifest.chat.key, `larger than ${limits.maxChatBytes} bytes: its lines were not checked`);
	else if (chatRead) {
		const lines = chatRead.bytes.toString("utf8").split("\n");
		for (const [i, l] of lines.entries()) {
			if (l.trim() === "") continue;
			let v: unknown;
			try {
				v = JSON.parse(l);
			} catch {
				f.fail("unanswered", `${manifest.chat.key} line ${i + 1}`, "not JSON");
				continue;
			}
			const p = ChatLineSchema.safeParse(v);
			if (!p.success) {
				f.fail("unanswered", `${manifest.chat.key} line ${i + 1}`, `not a chat line: ${issues(p.error)}`);
				continue;
			}
			chat.push({ line: i + 1, at: Date.parse(p.data.at), from: p.data.from });
		}
		stats.chatLines = chat.length;
		if (chat.length !== manifest.chat.messages - chatLinesErased)
			f.fail(
				"manifest",
				manifest.chat.key,
				`holds ${chat.length} lines, the manifest says ${manifest.chat.messages} messages${chatLinesErased ? ` of which ${chatLinesErased} erased` : ""}`,
			);
	}

	if (!entries) {
		for (const c of ["audit-objects", "coverage", "capture-time", "unanswered"] as const)
			f.skip(c, "no readable audit.jsonl");
		return report(manifest);
	}
	checkAgainstTrail(manifest, entries, chat, listed, prefix, limits, f);
	return report(manifest);
}

/**
 * A checkpoint left in the session's folder (`{ms}-{n}.ckpt`: a JSON index line naming, per piece, the object, its
 * offset and size, then the pieces; recorder/CheckpointWriter.ts). It adds nothing when every piece is byte for byte
 * the same range of an object the manifest lists (whose SHA-256 is checked): then it is only a warning (delete it).
 */
async function checkCheckpoint(
	bucket: Bucket,
	o: Listed,
	expected: Map<string, { size: number; sha256: string | null; what: string }>,
	limits: VerifyLimits,
	f: Findings,
): Promise<void> {
	const added = (why: string) => f.fail("listing", o.key, `added: a checkpoint not in the manifest, ${why}`);
	const read = await bucket.read(o.key, limits.maxChatBytes);
	if (!read || "tooLarge" in read) return added(read ? "too large to check" : "that vanished while checked");
	const nl = read.bytes.indexOf(0x0a);
	let index: unknown;
	try {
		index = JSON.parse(read.bytes.subarray(0, nl < 0 ? undefined : nl).toString("utf8"));
	} catch {
		return added("whose index line is not JSON");
	}
	const p = CheckpointIndexSchema.safeParse(index);
	if (!p.success || nl < 0) return added("whose index is not a checkpoint's");
	const body = read.bytes.subarray(nl + 1);
	let covered = 0;
	for (const e of p.data.entries) {
		const x = expected.get(e.key);
		if (!x?.what.startsWith("object")) return added(`holding bytes of ${e.key}, which the manifest does not list`);
		if (e.at + e.size > body.length || e.offset + e.size > x.size)
			return added(`whose piece of ${e.key} lies outside it or outside that object`);
		const same = await bucket.range(e.key, e.offset, e.offset + e.size);
		if (!same?.equals(body.subarray(e.at, e.at + e.size)))
			return added(`whose piece of ${e.key} (offset ${e.offset}, ${e.size} bytes) is not that object's bytes`);
		covered += e.size;
	}
	if (covered !== body.length) return added(`holding ${body.length - covered} bytes no piece accounts for`);
	f.warn(
		"listing",
		o.key,
		"a checkpoint the recorder left behind: every byte in it is a copy of listed objects' bytes (it may be deleted)",
	);
}

const CheckpointIndexSchema = z.looseObject({
	v: z.literal(1),
	entries: z
		.array(
			z.looseObject({
				key: z.string(),
				offset: z.number().int().nonnegative(),
				size: z.number().int().nonnegative(),
				at: z.number().int().nonnegative(),
			}),
		)
		.max(100_000),
});

async function readManifest(
	bucket: Bucket,
	key: string,
	limits: VerifyLimits,
	f: Findings,
): Promise<VerifiedManifest | undefined> {
	const read = await bucket.read(key, limits.maxManifestBytes);
	if (!read) {
		f.fail("manifest", key, "missing");
		return undefined;
	}
	if ("tooLarge" in read) {
		f.fail("manifest", key, `larger than ${limits.maxManifestBytes} bytes: not read (raise --max-manifest-bytes)`);
		return undefined;
	}
	let json: unknown;
	try {
		json = JSON.parse(read.bytes.toString("utf8"));
	} catch (err) {
		f.fail("manifest", key, `not JSON (${(err as Error).message})`);
		return undefined;
	}
	const parsed = ManifestSchema.safeParse(json);
	if (!parsed.success) {
		for (const i of parsed.error.issues.slice(0, 500))
			f.fail("manifest", `${key} ${i.path.length ? i.path.join(".") : "(root)"}`, i.message);
		return undefined;
	}
	return parsed.data;
}

/** The cross-checks between the manifest, the bucket's chat log and the trail. */
function checkAgainstTrail(
	m: VerifiedManifest,
	entries: Entry[],
	chat: { line: number; at: number; from: string | null }[],
	listed: Map<string, Listed>,
	prefix: string,
	limits: VerifyLimits,
	f: Findings,
): void {
	const S = m.session;
	const slack = limits.slackMs;
	const mine = entries.filter((x) => x.e.data.sessionId === S && (x.e.data.kind ?? "recording") === "recording");
	const at = (x: Entry) => Date.parse(x.e.at);
	const sub = (x: Entry) => `audit entry ${x.e.seq} (${x.e.type}, line ${x.line})`;

	// The session itself, and its policy.
	const on = mine.find((x) => x.e.type === "session.on");
	if (!on) f.fail("coverage", `session ${S}`, "audit.jsonl has no session.on for this session");
	else {
		const p = on.e.data.policy as { name?: unknown; version?: unknown } | undefined;
		if (p?.name !== m.policy.name || p?.version !== m.policy.version)
			f.fail(
				"coverage",
				sub(on),
				`the session ran under policy ${String(p?.name)} v${String(p?.version)}, the manifest says ${m.policy.name} v${m.policy.version}`,
			);
	}
	const consentOnly = m.policy.name === "explicit-consent";

	// Who answered (first answer per person), who declined or withdrew, the notices sent.
	// (An answer is its person's own entry, or one of several in a notices.acknowledged: server/audit/notices.ts.)
	const answered = new Map<string, Entry>();
	for (const x of mine)
		for (const a of answersIn(x.e))
			if ((!consentOnly || a.type === "consent.given") && !answered.has(a.person)) answered.set(a.person, x);
	const declined = new Map<string, Entry>();
	const withdrawn = new Map<string, Entry>();
	for (const x of mine) {
		if (x.e.type === "consent.declined" && x.e.actor) declined.set(x.e.actor, x);
		if (x.e.type === "consent.withdrawn" && x.e.actor && !withdrawn.has(x.e.actor)) withdrawn.set(x.e.actor, x);
	}
	const notices = new Map<string, { x: Entry; person: string }>();
	for (const x of mine) for (const n of sentNotices(x.e)) notices.set(n.noticeId, { x, person: n.person });

	// notRecorded must be exactly who declined (a manifest edited to hide a decline, or to invent one).
	for (const p of declined.keys())
		if (!m.notRecorded.includes(p))
			f.fail(
				"unanswered",
				p,
				`declined this session's notice (${sub(declined.get(p) as Entry)}) but the manifest's notRecorded omits them`,
			);
	for (const p of m.notRecorded)
		if (!declined.has(p))
			f.fail("unanswered", p, "in the manifest's notRecorded, but the trail has no decline of theirs");

	// Objects the trail says were written, against the manifest.
	const manifestObjects = new Map(m.tracks.flatMap((t) => t.objects.map((o) => [o.key, { o, t }] as const)));
	const writtenKeys = new Set<string>();
	for (const x of mine) {
		if (x.e.type !== "storage.object_written" || x.e.data.manifest === true) continue;
		const key = String(x.e.data.key);
		writtenKeys.add(key);
		const got = manifestObjects.get(key);
		if (!got) {
			f.fail(
				"audit-objects",
				key,
				`${sub(x)} says it was written (track ${String(x.e.data.trackId)}), the manifest does not list it: a track or object was hidden`,
			);
			continue;
		}
		if (Number(x.e.data.size) !== got.o.size)
			f.fail("audit-objects", key, `${sub(x)} says ${String(x.e.data.size)} bytes, the manifest ${got.o.size}`);
		if (typeof x.e.data.sha256 === "string" && x.e.data.sha256 !== got.o.sha256)
			f.fail("audit-objects", key, `${sub(x)} says SHA-256 ${x.e.data.sha256}, the manifest ${String(got.o.sha256)}`);
	}
	for (const key of manifestObjects.keys())
		if (!writtenKeys.has(key))
			f.warn(
				"audit-objects",
				key,
				"no storage.object_written entry for it in audit.jsonl (an object recovered after a crash has none)",
			);

	// Gates opened in the trail, each with its track in the manifest.
	const gates = mine.filter((x) => x.e.type === "gate.opened");
	for (const g of gates) {
		const producerId = String(g.e.data.producerId);
		if (m.tracks.some((t) => t.producerId === producerId)) continue;
		const wrote = mine.some((x) => x.e.type === "storage.object_written" && x.e.data.trackId === `${S}_${producerId}`);
		if (wrote)
			f.fail(
				"audit-objects",
				sub(g),
				`the gate opened for producer ${producerId} of ${String(g.e.data.person)} and objects were written, but the manifest has no track for it: a track was hidden`,
			);
		else
			f.warn(
				"audit-objects",
				sub(g),
				`the gate opened for producer ${producerId} of ${String(g.e.data.person)}; no track recorded it`,
			);
	}

	// Each track: covered by its person's answer, then its gate, then its first frame.
	for (const t of m.tracks) {
		const tid = `track ${t.trackId} (${t.person} ${t.kind})`;
		const answer = answered.get(t.person);
		if (declined.has(t.person) && !answer)
			f.fail(
				"unanswered",
				tid,
				`${t.person} declined this session's notice (${sub(declined.get(t.person) as Entry)}) and was recorded`,
			);
		if (!answer) {
			f.fail(
				"unanswered",
				tid,
				`${t.person} never answered this session's notice${consentOnly ? " with consent" : ""} in audit.jsonl, yet has a track${t.objects.length ? ` with ${t.objects.length} object(s)` : ""}`,
			);
			f.fail("coverage", tid, "no answer of this person in the trail covers it");
			continue;
		}
		const cb = t.coveredBy;
		const proof = cb ? entries.find((x) => x.e.seq === cb.seq) : undefined;
		if (!cb) f.fail("coverage", tid, "coveredBy is null: the manifest names no answer for it");
		else if (!proof || proof.hash !== cb.hash)
			f.fail(
				"coverage",
				tid,
				`coveredBy names entry ${cb.seq} with hash ${cb.hash.slice(0, 12)}…, which audit.jsonl does not hold`,
			);
		else if (
			!answerOf(proof, t.person) ||
			proof.e.type !== cb.type ||
			proof.e.data.sessionId !== S ||
			proof.e.at !== cb.at ||
			(consentOnly && proof.e.type !== "consent.given")
		)
			f.fail(
				"coverage",
				tid,
				`coveredBy names ${sub(proof)}, which is not ${t.person}'s ${consentOnly ? "consent to" : "answer to"} this session's notice`,
			);
		// The answer that opened this track's gate (a person who left and came back answered again), else their first.
		const covering =
			proof && cb && proof.hash === cb.hash && answerOf(proof, t.person) && proof.e.data.sessionId === S
				? proof
				: answer;
		const A = at(covering);
		const sent = notices.get(answerOf(covering, t.person)?.noticeId ?? "");
		const notice = sent?.person === t.person ? sent.x : undefined;
		if (!notice)
			f.fail("coverage", tid, `the answer (${sub(covering)}) answers no notice sent to ${t.person} in this session`);
		const gate = gates.find((g) => g.e.data.producerId === t.producerId && g.e.data.person === t.person);
		if (!gate) f.fail("coverage", tid, `no gate.opened for producer ${t.producerId} of ${t.person} in audit.jsonl`);
		else if (gate.e.seq < answer.e.seq)
			f.fail("coverage", tid, `its gate opened (${sub(gate)}) before the answer (${sub(answer)})`);

		// Times: capture on the sender's clock, frames on the gateway's.
		const N = notice ? at(notice) : A;
		const c = t.capture;
		const objectsWithFrames = t.objects.filter((o) => o.frames === undefined || o.frames > 0);
		if (!c) {
			if (objectsWithFrames.length)
				f.warn(
					"capture-time",
					tid,
					"no capture account (the recorder died with the track): objects checked against the gate's opening only",
				);
			const floor = gate ? at(gate) : A;
			for (const o of t.objects)
				if (Date.parse(o.startedAt) < floor - slack)
					f.fail(
						"capture-time",
						o.key,
						`starts at ${o.startedAt}, before ${t.person}'s gate opened (${new Date(floor).toISOString()})`,
					);
		} else {
			const off = c.clockOffsetMs;
			if (c.clickAt !== null) {
				if (c.firstCaptureAt !== null && c.firstCaptureAt < c.clickAt)
					f.fail(
						"capture-time",
						tid,
						`first capture at ${iso(c.firstCaptureAt)} is before the click at ${iso(c.clickAt)} (sender's clock)`,
					);
				if (off !== null) {
					const click = c.clickAt - off; // on the gateway's clock
					if (click < N - CLICK_SKEW_MS - slack)
						f.fail(
							"capture-time",
							tid,
							`the click (${iso(click)}, gateway clock) is before the notice was sent to ${t.person} (${notice ? sub(notice) : "?"} at ${iso(N)})`,
						);
					if (click > A + CLICK_SKEW_MS + slack)
						f.fail(
							"capture-time",
							tid,
							`the click (${iso(click)}) is after the answer reached the gateway (${sub(answer)} at ${iso(A)})`,
						);
					if (click < A - CLICK_MAX_AGE_MS - slack)
						f.fail(
							"capture-time",
							tid,
							`the click (${iso(click)}) is more than ${CLICK_MAX_AGE_MS / 1000} s before the answer (${sub(answer)} at ${iso(A)}): the gateway refuses such clicks`,
						);
				}
			}
			const floor = c.clickAt !== null && off !== null ? Math.max(c.clickAt - off, N - CLICK_SKEW_MS) : A;
			for (const o of t.objects) {
				if (c.clickAt !== null && o.firstCaptureAt !== undefined && o.firstCaptureAt < c.clickAt)
					f.fail(
						"capture-time",
						o.key,
						`first frame captured at ${iso(o.firstCaptureAt)}, before ${t.person}'s click at ${iso(c.clickAt)} (sender's clock)`,
					);
				if (
					o.firstCaptureAt !== undefined &&
					o.firstFrameAt !== undefined &&
					off !== null &&
					Math.abs(o.firstFrameAt - (o.firstCaptureAt - off)) > 1
				)
					f.fail(
						"capture-time",
						o.key,
						`firstFrameAt ${o.firstFrameAt} is not firstCaptureAt − clockOffsetMs (${o.firstCaptureAt - off}): edited`,
					);
				if (o.firstFrameAt !== undefined && o.firstFrameAt < floor - slack)
					f.fail(
						"capture-time",
						o.key,
						`first frame at ${iso(o.firstFrameAt)} (gateway clock), before ${t.person}'s answer covered it (from ${iso(floor)}; ${sub(answer)})`,
					);
				if (
					o.firstFrameAt === undefined &&
					(o.frames ?? 1) > 0 &&
					Date.parse(o.startedAt) < (gate ? at(gate) : A) - slack
				)
					f.fail("capture-time", o.key, `starts at ${o.startedAt}, before ${t.person}'s gate opened`);
			}
		}
		const w = withdrawn.get(t.person);
		if (w)
			for (const o of t.objects)
				if (Date.parse(o.startedAt) > at(w) + slack)
					f.fail("unanswered", o.key, `starts after ${t.person} withdrew (${sub(w)})`);
	}

	// Every object in the folder, whatever the manifest says, belongs to someone who answered.
	for (const o of listed.values()) {
		const name = OBJECT_NAME.exec(o.key.slice(prefix.length + 1));
		if (!name) continue;
		const person = name[1] as string;
		if (!answered.has(person))
			f.fail(
				"unanswered",
				o.key,
				`an object of ${person}, who never answered this session's notice${declined.has(person) ? " (they declined it)" : ""}`,
			);
	}

	// When each person was covered: from each answer until that connection left, withdrew, or the session ended.
	const covered = new Map<string, [number, number][]>();
	const sessionEnd = mine.find((x) => x.e.type === "session.off" || x.e.type === "session.paused");
	const leaves = new Map<unknown, Entry[]>();
	for (const y of entries)
		if (y.e.type === "person.left" || (y.e.type === "consent.withdrawn" && y.e.data.sessionId === S))
			leaves.set(y.e.data.peerId, [...(leaves.get(y.e.data.peerId) ?? []), y]);
	for (const x of mine)
		for (const a of answersIn(x.e)) {
			if (consentOnly && a.type !== "consent.given") continue;
			const end = leaves.get(a.peerId)?.find((y) => y.e.seq > x.e.seq);
			const to = Math.min(
				end ? at(end) : Number.POSITIVE_INFINITY,
				sessionEnd ? at(sessionEnd) : Number.POSITIVE_INFINITY,
			);
			covered.set(a.person, [...(covered.get(a.person) ?? []), [at(x), to]]);
		}

	// Every chat line is of someone covered at that moment.
	for (const l of chat) {
		const subject = `${m.chat.key} line ${l.line}`;
		if (l.from === null) {
			f.warn("unanswered", subject, "a line without a sender");
			continue;
		}
		const a = answered.get(l.from);
		if (!a)
			f.fail(
				"unanswered",
				subject,
				`a chat line of ${l.from}, who never answered this session's notice${declined.has(l.from) ? " (they declined it)" : ""}`,
			);
		else if (l.at < at(a) - slack)
			f.fail("unanswered", subject, `said at ${iso(l.at)}, before ${l.from} answered (${sub(a)} at ${a.e.at})`);
		else if (!(covered.get(l.from) ?? []).some(([from, to]) => l.at >= from - slack && l.at <= to + slack))
			f.fail(
				"unanswered",
				subject,
				`said at ${iso(l.at)}, when no answer of ${l.from} covered them (their answering connection had left or the session was paused; they had not answered again)`,
			);
		const w = withdrawn.get(l.from);
		if (w && l.at > at(w) + slack) f.fail("unanswered", subject, `said after ${l.from} withdrew (${sub(w)})`);
	}
}

/** verifyExport, for a hostile file: what it can't even walk (e.g. JSON nested too deep to hash) is a broken chain. */
export function safeVerifyExport(text: string): ReturnType<typeof verifyExport> {
	try {
		return verifyExport(text);
	} catch (err) {
		return {
			ok: false,
			tenantId: "",
			entries: 0,
			head: null,
			break: {
				seq: 0,
				reason: "format",
				expected: "a well-formed consentry audit export",
				found: String((err as Error)?.message ?? err).slice(0, 200),
				message: `it could not be verified at all (${String((err as Error)?.message ?? err).slice(0, 200)})`,
			},
		};
	}
}

export function parseExport(text: string): { header?: Record<string, unknown>; entries: Entry[] } {
	const lines = text.split("\n");
	let header: Record<string, unknown> | undefined;
	const entries: Entry[] = [];
	lines.forEach((l, i) => {
		if (l.trim() === "") return;
		try {
			const v = JSON.parse(l) as Record<string, unknown>;
			if (i === 0 && v.kind === "consentry.audit.export") header = v;
			else if (
				v.kind === "entry" &&
				typeof v.hash === "string" &&
				typeof v.entry === "object" &&
				v.entry !== null &&
				typeof (v.entry as ChainEntry).seq === "number" &&
				typeof (v.entry as ChainEntry).data === "object" &&
				(v.entry as ChainEntry).data !== null &&
				typeof (v.entry as ChainEntry).at === "string"
			)
				entries.push({ line: i + 1, hash: v.hash, e: v.entry as ChainEntry });
		} catch {
			// the chain check reports it
		}
	});
	return header ? { header, entries } : { entries };
}

/** " (line N)" for the entry at chain position `seq` in an export, when it can be found. */
export function lineOf(text: string, seq: number): string {
	if (!seq) return " (line 1)";
	const i = text.split("\n").findIndex((l) => l.includes(`"seq":${seq},`));
	return i > 0 ? ` (line ${i + 1})` : "";
}

export function sameHead(a: unknown, b: unknown): boolean {
	const x = a as { seq?: unknown; hash?: unknown } | null | undefined;
	const y = b as { seq?: unknown; hash?: unknown } | null | undefined;
	if (!x || !y) return (x ?? null) === (y ?? null);
	return x.seq === y.seq && x.hash === y.hash;
}

export function iso(ms: number): string {
	return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}

function issues(e: { issues: { path: PropertyKey[]; message: string }[] }): string {
	return e.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
}

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
	let next = 0;
	const worker = async () => {
		while (next < items.length) {
			const i = next++;
			await fn(items[i] as T);
		}
	};
	await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
}

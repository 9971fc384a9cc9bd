/**
 * The notices and answers a trail entry records, whatever its shape. A notice sent to one person (at a join) is a
 * `notice.sent`; the notices of a session's start, to everyone in the meeting at that moment, are one `notices.sent`
 * carrying them all in `data.recipients` (a start in a 500-person meeting writes 2 entries, not 501). An answer is a
 * `notice.acknowledged` or `consent.given` whose actor is the person; acknowledgements that waited for the meeting's
 * commit in flight are one `notices.acknowledged` carrying them in `data.answers` (CaptureService's coalesceAnswers).
 * Every reader of the trail (`consentry verify`, the recording's coveredBy, playback evidence, metrics, the engine's
 * language, access exports) asks {@link sentNotices} and {@link answersIn}, so every shape — and trails written
 * before the many-person entries existed — reads the same.
 */

/** One notice sent to one person, as the trail records it. */
export interface SentNotice {
	noticeId: string;
	/** The person (a pseudonym in a stored entry, a person key before it is stored). */
	person: string;
	peerId: string;
	kind: string;
	sessionId: string;
	via: string;
	locale?: string;
	/** SHA-256 of the exact notice text sent (title, body, disclaimer) in that locale. */
	textSha256?: string;
	consentRequired?: boolean;
}

/** What a `notices.sent` entry's data holds (person keys become pseudonyms when stored, as everywhere). */
export interface NoticesSentData {
	kind: string;
	sessionId: string;
	via: "session_start";
	consentRequired: boolean;
	/** The notice text's SHA-256 per locale sent. */
	texts: Record<string, string>;
	recipients: { person: string; peerId: string; noticeId: string; locale: string }[];
}

type Data = Record<string, unknown>;
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** The notices `entry` records as sent: none for any other type of entry. */
export function sentNotices(entry: { type: string; data: Data }): SentNotice[] {
	const d = entry.data;
	if (entry.type === "notice.sent") {
		const noticeId = str(d.noticeId);
		const person = str(d.person);
		if (!noticeId || !person) return [];
		return [
			{
				noticeId,
				person,
				peerId: str(d.peerId) ?? "",
				kind: str(d.kind) ?? "recording",
				sessionId: str(d.sessionId) ?? "",
				via: str(d.via) ?? "",
				...(str(d.locale) ? { locale: str(d.locale) } : {}),
				...(str(d.textSha256) ? { textSha256: str(d.textSha256) } : {}),
				...(typeof d.consentRequired === "boolean" ? { consentRequired: d.consentRequired } : {}),
			},
		];
	}
	if (entry.type !== "notices.sent" || !Array.isArray(d.recipients)) return [];
	const texts = (d.texts && typeof d.texts === "object" ? d.texts : {}) as Data;
	const out: SentNotice[] = [];
	for (const r of d.recipients as unknown[]) {
		if (!r || typeof r !== "object") continue;
		const x = r as Data;
		const noticeId = str(x.noticeId);
		const person = str(x.person);
		if (!noticeId || !person) continue;
		const locale = str(x.locale);
		const textSha256 = locale ? str(texts[locale]) : undefined;
		out.push({
			noticeId,
			person,
			peerId: str(x.peerId) ?? "",
			kind: str(d.kind) ?? "recording",
			sessionId: str(d.sessionId) ?? "",
			via: str(d.via) ?? "session_start",
			...(locale ? { locale } : {}),
			...(textSha256 ? { textSha256 } : {}),
			...(typeof d.consentRequired === "boolean" ? { consentRequired: d.consentRequired } : {}),
		});
	}
	return out;
}

/** Types of entry that record notices sent ({@link sentNotices} reads them). */
export const NOTICE_SENT_TYPES = ["notice.sent", "notices.sent"] as const;

/** One person's answer to a notice, as the trail records it. */
export interface NoticeAnswer {
	type: "notice.acknowledged" | "consent.given";
	/** The person (a pseudonym in a stored entry). */
	person: string;
	peerId: string;
	noticeId: string;
	kind: string;
	sessionId: string;
}

/** What a `notices.acknowledged` entry's data holds. */
export interface NoticesAcknowledgedData {
	kind: string;
	sessionId: string;
	policy: { name: string; version: number };
	answers: { person: string; peerId: string; noticeId: string }[];
}

/**
 * The answers `entry` records: a `notice.acknowledged` or `consent.given` of one person (its actor), or every answer of
 * a `notices.acknowledged` — acknowledgements that reached the gateway while the meeting's previous entries were being
 * committed, recorded together in one entry (`data.answers`). None for any other type of entry.
 */
export function answersIn(entry: { type: string; actor?: string | null; data: Data }): NoticeAnswer[] {
	const d = entry.data;
	if (entry.type === "notice.acknowledged" || entry.type === "consent.given") {
		if (!entry.actor) return [];
		return [
			{
				type: entry.type,
				person: entry.actor,
				peerId: str(d.peerId) ?? "",
				noticeId: str(d.noticeId) ?? "",
				kind: str(d.kind) ?? "recording",
				sessionId: str(d.sessionId) ?? "",
			},
		];
	}
	if (entry.type !== "notices.acknowledged" || !Array.isArray(d.answers)) return [];
	const out: NoticeAnswer[] = [];
	for (const a of d.answers as unknown[]) {
		if (!a || typeof a !== "object") continue;
		const x = a as Data;
		const person = str(x.person);
		if (!person) continue;
		out.push({
			type: "notice.acknowledged",
			person,
			peerId: str(x.peerId) ?? "",
			noticeId: str(x.noticeId) ?? "",
			kind: str(d.kind) ?? "recording",
			sessionId: str(d.sessionId) ?? "",
		});
	}
	return out;
}

/** Types of entry that record answers ({@link answersIn} reads them). */
export const ANSWER_TYPES = ["notice.acknowledged", "notices.acknowledged", "consent.given"] as const;

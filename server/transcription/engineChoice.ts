import type { TranscriptionEngineSpec } from "../../contracts/RecorderProtocol.js";
import type { EventLog } from "../audit/EventLog.js";
import { NOTICE_SENT_TYPES, sentNotices } from "../audit/notices.js";

/** The locales a person joins with. */
export type PersonLocale = "en" | "fr";

/**
 * The engine for one person: the tenant's engine, with the language (and, for Vosk, the server of that language)
 * the tenant set for the locale the person chose (`languages`), else the tenant's default language.
 */
export function engineForPerson(
	spec: TranscriptionEngineSpec,
	locale: PersonLocale | undefined,
): TranscriptionEngineSpec {
	if (!locale) return spec;
	if (spec.type === "vosk") {
		const l = spec.languages?.[locale];
		return l ? { ...spec, endpoint: l.endpoint, languageCode: l.languageCode } : spec;
	}
	if (spec.type === "openai") {
		const l = spec.languages?.[locale];
		return l ? { ...spec, languageCode: l } : spec;
	}
	return spec;
}

/** The locale the person's notice of this session was sent in (the one they joined with), from the trail. */
export async function personLocale(
	events: EventLog,
	where: { tenantId: string; meetingId: string; sessionId: string; peerId: string },
): Promise<PersonLocale | undefined> {
	const sent = await Promise.all(
		NOTICE_SENT_TYPES.map((type) =>
			events.list({ tenantId: where.tenantId, meetingId: where.meetingId, type, limit: 100_000 }),
		),
	);
	const mine = sent
		.flat()
		.sort((a, b) => a.seq - b.seq)
		.flatMap((e) => sentNotices(e))
		.findLast((n) => n.sessionId === where.sessionId && n.peerId === where.peerId);
	const locale = mine?.locale;
	return locale === "en" || locale === "fr" ? locale : undefined;
}

const host = (url: string) => {
	try {
		return new URL(url).host;
	} catch {
		return url;
	}
};

/** Which engine transcribes, in words, for the notice (in the person's locale). */
export function engineLabel(spec: TranscriptionEngineSpec, locale: PersonLocale): string {
	const fr = locale === "fr";
	switch (spec.type) {
		case "pocketsphinx":
			return fr
				? "pocketsphinx, sur le serveur de ce service de réunion"
				: "pocketsphinx, on this meeting service's own server";
		case "aws":
			return fr
				? `Amazon Transcribe, dans le compte AWS de l'organisation (région ${spec.region})`
				: `Amazon Transcribe, in the organisation's AWS account (region ${spec.region})`;
		case "vosk": {
			const langs = [spec.languageCode, ...Object.values(spec.languages ?? {}).map((l) => l.languageCode)];
			const hosts = [
				...new Set([spec.endpoint, ...Object.values(spec.languages ?? {}).map((l) => l.endpoint)].map(host)),
			];
			return fr
				? `Vosk, sur le serveur de l'organisation (${hosts.join(", ")} ; ${[...new Set(langs)].join(", ")})`
				: `Vosk, on the organisation's own server (${hosts.join(", ")}; ${[...new Set(langs)].join(", ")})`;
		}
		case "openai":
			return fr
				? `${spec.model}, sur le serveur de reconnaissance vocale choisi par l'organisation (${host(spec.endpoint)})`
				: `${spec.model}, on the speech-to-text server the organisation chose (${host(spec.endpoint)})`;
	}
}

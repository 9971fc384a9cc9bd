import { createHash } from "node:crypto";
import { engineLabel } from "../transcription/engineChoice.js";
import type { CaptureKind, Locale, NoticeText, PolicyName, TenantCapture, TenantTexts } from "./CaptureTypes.js";

type Texts = Required<TenantTexts>;

/** Built-in texts; a tenant overrides any of them per locale in the tenants file (`capture.texts`). */
export const DEFAULT_TEXTS: Record<Locale, Texts> = {
	en: {
		recording: {
			title: "This meeting is being recorded",
			body: "The host started recording. Your voice, video and shared screen are recorded from now on and stored by the organisation that runs this meeting. If you do not want to be recorded, leave the meeting.",
		},
		recordingConsent: {
			title: "Do you consent to being recorded?",
			body: "The host wants to record this meeting. Your voice, video and shared screen are recorded only if you consent, and stored by the organisation that runs this meeting. Until you answer, your microphone and camera are held. If you decline, you leave the meeting.",
		},
		transcription: {
			title: "This meeting is being transcribed",
			body: "Someone turned on transcription. What you say is sent to a speech-to-text engine from now on, and the transcript is stored by the organisation that runs this meeting. If you do not want to be transcribed, leave the meeting.",
		},
		transcriptionConsent: {
			title: "Do you consent to being transcribed?",
			body: "Someone wants to transcribe this meeting. What you say is sent to a speech-to-text engine only if you consent. Until you answer, your microphone and camera are held. If you decline, you leave the meeting.",
		},
		transcriptionDisclaimer:
			"Transcripts are made by a machine: they may be incomplete or wrong, and may attribute words to the wrong moment.",
	},
	fr: {
		recording: {
			title: "Cette réunion est enregistrée",
			body: "L’hôte a lancé l’enregistrement. Votre voix, votre vidéo et votre écran partagé sont enregistrés à partir de maintenant et conservés par l’organisation qui tient cette réunion. Si vous ne souhaitez pas être enregistré, quittez la réunion.",
		},
		recordingConsent: {
			title: "Acceptez-vous d’être enregistré\u202f?",
			body: "L’hôte souhaite enregistrer cette réunion. Votre voix, votre vidéo et votre écran partagé ne sont enregistrés que si vous y consentez, et sont conservés par l’organisation qui tient cette réunion. Tant que vous n’avez pas répondu, votre micro et votre caméra sont suspendus. Si vous refusez, vous quittez la réunion.",
		},
		transcription: {
			title: "Cette réunion est transcrite",
			body: "Quelqu’un a activé la transcription. Ce que vous dites est envoyé à un moteur de reconnaissance vocale à partir de maintenant, et la transcription est conservée par l’organisation qui tient cette réunion. Si vous ne souhaitez pas être transcrit, quittez la réunion.",
		},
		transcriptionConsent: {
			title: "Acceptez-vous d’être transcrit\u202f?",
			body: "Quelqu’un souhaite transcrire cette réunion. Ce que vous dites n’est envoyé à un moteur de reconnaissance vocale que si vous y consentez. Tant que vous n’avez pas répondu, votre micro et votre caméra sont suspendus. Si vous refusez, vous quittez la réunion.",
		},
		transcriptionDisclaimer:
			"Les transcriptions sont faites par une machine\u00a0: elles peuvent être incomplètes ou erronées, et mal situer certains mots dans le temps.",
	},
};

/** Who receives what is captured (every notice ends with it). */
const STORED_IN: Record<Locale, string> = {
	en: "Stored in: the organisation's own storage bucket (this meeting service keeps no copy).",
	fr: "Conservé dans\u00a0: le stockage de l’organisation (ce service de réunion n’en garde aucune copie).",
};

export interface ResolvedNoticeText extends NoticeText {
	disclaimer?: string;
	/** SHA-256 of the exact text shown (title, body, disclaimer): the trail records it, so the wording is provable. */
	sha256: string;
}

/** The text a person sees for a session of `kind` under `policy`, in their locale, the tenant's wording first. */
export function noticeText(
	tenant: TenantCapture,
	kind: CaptureKind,
	policy: PolicyName,
	locale: Locale,
): ResolvedNoticeText {
	const own = tenant.texts[locale] ?? {};
	const base = DEFAULT_TEXTS[locale];
	const key = policy === "explicit-consent" ? (`${kind}Consent` as const) : kind;
	const chosen = own[key] ?? base[key];
	// Every notice names who receives what is captured: the organisation's own bucket, and for transcription the
	// engine the person's speech goes to (for a cloud engine its provider and region). Part of the hashed text.
	const storedIn = STORED_IN[locale];
	const text =
		kind === "transcription"
			? {
					...chosen,
					body: `${chosen.body} ${locale === "fr" ? "Moteur" : "Engine"}: ${engineLabel(tenant.transcriptionEngine, locale)}. ${storedIn}`,
				}
			: { ...chosen, body: `${chosen.body} ${storedIn}` };
	const disclaimer =
		kind === "transcription" ? (own.transcriptionDisclaimer ?? base.transcriptionDisclaimer) : undefined;
	const sha256 = createHash("sha256")
		.update(JSON.stringify([text.title, text.body, disclaimer ?? null]))
		.digest("hex");
	return { ...text, ...(disclaimer ? { disclaimer } : {}), sha256 };
}

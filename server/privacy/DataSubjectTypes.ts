import { z } from "zod";
import type { HeldRows } from "../store/DataSubjectRepository.js";

/**
 * Who a data-subject request is about: a person of the caller's tenant by their token subject (`sub`), or a guest
 * (or anyone) by the pseudonym the gateway showed them (`psn_…`). Never in a URL: requests are POST bodies, so no
 * subject lands in an access log.
 */
export const DsrPersonSchema = z.union([
	z.object({ subject: z.string().min(1).max(256) }).strict(),
	z.object({ pseudonym: z.string().regex(/^psn_[0-9a-f]{64}$/, "a pseudonym is psn_ and 64 hex digits") }).strict(),
]);
export type DsrPerson = z.infer<typeof DsrPersonSchema>;

export const DsrAccessSchema = z.object({ person: DsrPersonSchema }).strict().meta({ id: "DsrAccessRequest" });

export const DsrErasureSchema = z
	.object({
		person: DsrPersonSchema,
		/** Also remove their media objects and their chat/transcript lines from the customer's bucket. */
		deleteObjects: z.boolean().default(false),
		reason: z.string().trim().min(1).max(500).optional(),
	})
	.strict()
	.meta({ id: "DsrErasureRequest" });

/** The operator's requests: the same, with the reason every operator action carries. */
export const OperatorDsrAccessSchema = z
	.object({ person: DsrPersonSchema, reason: z.string().trim().min(1).max(500) })
	.strict();
export const OperatorDsrErasureSchema = z
	.object({
		person: DsrPersonSchema,
		deleteObjects: z.boolean().default(false),
		reason: z.string().trim().min(1).max(500),
	})
	.strict();

export const DsrRequestParams = z.object({ requestId: z.string().regex(/^dsr_[0-9a-f]{32}$/) });

/** Who asked: the customer's admin (by their person key) or the operator (by their subject). */
export type DsrRequester = { role: "admin"; tenantId: string; subject: string } | { role: "operator"; subject: string };

export const EXPORT_KIND = "consentry.dsr.export";
export const EXPORT_VERSION = 1;
export const ERASURE_RECORD_KIND = "consentry.dsr.erasure";
export const ERASURE_RECORD_VERSION = 1;

/** One object in the customer's bucket that holds the person's data, and how the gateway found it. */
export interface BucketPointer {
	key: string;
	/** `media` (a track's WebM object), `chat` (chat.jsonl lines), `transcript` (transcript.json / .vtt lines). */
	holds: "media" | "chat" | "transcript";
	meetingId: string;
	sessionId: string;
	/** `manifest`: named by the session's manifest.json / transcript.json; `listing`: found by its name alone. */
	foundBy: "manifest" | "listing";
	size?: number;
	/** chat / transcript: how many of its lines are theirs (1-based line numbers in chat.jsonl). */
	lines?: number;
	lineNumbers?: number[];
}

/** The audit entries naming the person (by pseudonym), as the chain holds them. */
export interface ExportedEntry {
	seq: number;
	at: string;
	meetingId: string | null;
	type: string;
	actor: string | null;
	data: Record<string, unknown>;
	hash: string;
	/**
	 * Others' details left out of this copy: a `notices.sent` entry (a session's notices to everyone at its start)
	 * keeps only the person's own line of `data.recipients`, a `notices.acknowledged` (answers committed together)
	 * only theirs of `data.answers`; `omitted` counts the others. `hash` is the stored entry's: it verifies against
	 * the full entry in an audit export of the chain, not against this copy.
	 */
	omitted?: { recipients?: number; answers?: number };
}

/**
 * The export: one JSON document, `kind` + `version` say how to read it (docs/privacy.md, "Data-subject requests").
 * `held: false` is the "nothing held" answer: the same shape, every list empty.
 */
export interface DsrExport {
	kind: typeof EXPORT_KIND;
	version: typeof EXPORT_VERSION;
	tenant: string;
	generatedAt: string;
	person: { subject: string | null; pseudonym: string | null; guest: boolean };
	held: boolean;
	store: HeldRows;
	audit: { entries: ExportedEntry[]; truncated: boolean };
	/** Meetings the person appears in (hosted, or named by an entry). */
	meetings: string[];
	bucket: {
		state: "listed" | "no_storage_target" | "unreachable" | "not_applicable";
		bucket: string | null;
		error?: string;
		objects: BucketPointer[];
	};
}

/** The steps of an erasure (a `dsr_requests` row's `steps`), resumable in this order. */
export interface ErasureSteps {
	/** Every store table and the pseudonym secret, in one transaction. */
	store: boolean;
	/** The customer's bucket: `not_asked` (deleteObjects false), else pending until each session is done. */
	bucket: "not_asked" | "pending" | "done";
	/** `meetingId/sessionId` of every capture session finished in the bucket. */
	sessionsDone: string[];
	/** Meetings whose sessions the bucket step goes through (fixed at the store step: the chain is unlinkable after). */
	meetings: string[];
	/** Rows erased per table (from the store step). */
	rows?: Record<string, number>;
	/** Objects removed and objects rewritten in the bucket so far. */
	objectsRemoved?: number;
	objectsRewritten?: number;
}

/** The answer to an erasure request (and to its status / retry). */
export interface ErasureView {
	requestId: string;
	state: "pending" | "done";
	deleteObjects: boolean;
	steps: ErasureSteps;
	/** Why it is still pending (e.g. `bucket_unreachable`): retry finishes it. */
	error: string | null;
	createdAt: string;
	updatedAt: string;
}

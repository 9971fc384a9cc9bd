import { z } from "zod";

/** The events a customer's webhook endpoint receives (docs/webhooks.md). */
export const WEBHOOK_EVENTS = [
	"meeting.started",
	"meeting.ended",
	"recording.started",
	"recording.paused",
	"recording.stopped",
	/** A recording session's objects and manifest are in the bucket: keys, sizes, SHA-256. */
	"recording.ready",
	/** A transcription session's transcript.json and transcript.vtt are in the bucket. */
	"transcript.ready",
	"consent.declined",
	"operator.action",
	/** Sent on request (POST /api/webhook/ping) to check the endpoint and the signature check. */
	"ping",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

/** What the Customer's administrator sends to `PUT /api/webhook`. */
export const WebhookSettingsSchema = z
	.object({
		/** Where events are POSTed: https (http only where the operator allows it), no credentials in it. */
		url: z
			.url({ protocol: /^https?$/ })
			.max(2048)
			// zod runs this check even when the URL check above failed: an unparsable URL is that check's issue, not a throw.
			.refine((u) => {
				const url = URL.parse(u);
				return !url || (!url.username && !url.password);
			}, "must not contain credentials"),
		/** Which events to send (default: all). */
		events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).max(WEBHOOK_EVENTS.length).optional(),
		/** The signing secret, if the customer wants to choose it (otherwise the gateway makes one). */
		secret: z.string().min(32).max(256).optional(),
		/** Make a new signing secret (answered once). */
		rotateSecret: z.boolean().optional(),
	})
	.strict();
export type WebhookSettingsInput = z.infer<typeof WebhookSettingsSchema>;

export const DELIVERY_STATES = ["pending", "delivered", "failed", "cancelled"] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

export const DeliveriesQuerySchema = z
	.object({
		state: z.enum(DELIVERY_STATES).optional(),
		limit: z.coerce.number().int().min(1).max(500).default(100),
		/** Deliveries with an id below this one (paging backwards). */
		before: z.coerce.number().int().positive().optional(),
	})
	.strict();

/** The body of every webhook request. */
export interface WebhookPayload {
	/** Stable per event: the same id on every retry (deduplicate on it). */
	id: string;
	type: WebhookEventType;
	/** When it happened (the audit entry's time). */
	createdAt: string;
	tenant: string;
	meetingId: string | null;
	data: Record<string, unknown>;
	/** The audit entry it comes from (seq + hash in the tenant's chain), null for a ping. */
	audit: { seq: number; hash: string } | null;
}

/** The tenant's webhook settings as shown (never the secret). */
export interface WebhookView {
	url: string;
	events: WebhookEventType[];
	createdAt: string;
	updatedAt: string;
}

/** One row of the delivery log. */
export interface DeliveryView {
	id: number;
	eventId: string;
	event: WebhookEventType;
	meetingId: string | null;
	state: DeliveryState;
	attempts: number;
	createdAt: string;
	nextAttemptAt: string | null;
	deliveredAt: string | null;
	lastStatus: number | null;
	lastError: string | null;
	lastDurationMs: number | null;
}

export interface WebhookRetryPolicy {
	/** First retry after this long (ms); each next one waits twice as long. Default 2000. */
	firstDelayMs: number;
	/** Never more than this between attempts (ms). Default 1 h. */
	maxDelayMs: number;
	/** Give up once the event is this old (ms). Default 24 h. */
	giveUpAfterMs: number;
	/** One attempt may take this long (connect + answer, ms). Default 10 s. */
	timeoutMs: number;
}

export const DEFAULT_RETRY: WebhookRetryPolicy = {
	firstDelayMs: 2000,
	maxDelayMs: 3600_000,
	giveUpAfterMs: 24 * 3600_000,
	timeoutMs: 10_000,
};

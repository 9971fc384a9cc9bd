import { z } from "zod";
import { storageTargetSchema } from "../../contracts/StorageTargetTypes.js";
import { IdParams } from "../http/MeetingsApi.js";
import { LinkParams } from "../http/TranscriptsApi.js";
import { ScheduleMeetingSchema } from "../meetings/MeetingTypes.js";
import { DeliveriesQuerySchema, WEBHOOK_EVENTS, WebhookSettingsSchema } from "../webhooks/WebhookTypes.js";

/**
 * Every HTTP route the gateway serves, described for the OpenAPI document: the request schemas are the zod
 * schemas the handlers validate with (imported from where they live); responses are described here. A route
 * registered on the gateway but missing here fails test/openapi.test.ts.
 */

export type Auth = "none" | "host" | "admin" | "member" | "metrics";

export interface RouteDoc {
	method: "GET" | "POST" | "PUT" | "DELETE";
	/** Fastify's form: `/api/meetings/:id`. */
	url: string;
	summary: string;
	description?: string;
	tag: string;
	auth: Auth;
	params?: z.ZodObject;
	query?: z.ZodObject;
	body?: z.ZodType;
	/** Status → description (and the body's schema when it is JSON with a known shape). */
	responses: Record<number, { description: string; schema?: z.ZodType; contentType?: string }>;
}

export const ErrorSchema = z
	.object({
		code: z.string().describe("Stable, machine-readable error code, e.g. `invalid_request`, `meeting_not_found`."),
		message: z.string().describe("For humans."),
		issues: z
			.array(z.object({ path: z.string(), message: z.string() }))
			.optional()
			.describe("invalid_request: each failing field."),
	})
	.meta({ id: "Error" });

const MeetingViewSchema = z
	.object({
		id: z.string(),
		tenantId: z.string(),
		hostSubject: z.string(),
		title: z.string(),
		scheduledFor: z.string().optional(),
		state: z.enum(["scheduled", "live", "ended"]),
		joinCode: z.string().describe("The ID as people type it: `abcd-efgh-jkmn`."),
		joinUrl: z.string(),
	})
	.loose()
	.meta({ id: "Meeting" });

const WebhookViewSchema = z
	.object({
		url: z.string(),
		events: z.array(z.enum(WEBHOOK_EVENTS)),
		createdAt: z.string(),
		updatedAt: z.string(),
		secret: z.string().optional().describe("The signing secret: only when it was just made (shown once)."),
	})
	.meta({ id: "Webhook" });

const DeliverySchema = z
	.object({
		id: z.number().int(),
		eventId: z.string(),
		event: z.enum(WEBHOOK_EVENTS),
		meetingId: z.string().nullable(),
		state: z.enum(["pending", "delivered", "failed", "cancelled"]),
		attempts: z.number().int(),
		createdAt: z.string(),
		nextAttemptAt: z.string().nullable(),
		deliveredAt: z.string().nullable(),
		lastStatus: z.number().int().nullable(),
		lastError: z.string().nullable(),
		lastDurationMs: z.number().int().nullable(),
	})
	.meta({ id: "WebhookDelivery" });

const PasscodeLockoutSchema = z
	.object({ locked: z.boolean(), failures: z.number().int(), since: z.string().optional() })
	.meta({ id: "PasscodeLockout" });

const common = {
	400: { description: "Invalid request (`invalid_request`, with the failing fields).", schema: ErrorSchema },
	401: { description: "No token, or a bad or expired one.", schema: ErrorSchema },
	403: { description: "The token's role may not do this.", schema: ErrorSchema },
};

export const ROUTES: RouteDoc[] = [
	{
		method: "GET",
		url: "/healthz",
		summary: "Liveness: the gateway answers, with its media workers and rooms",
		tag: "operations",
		auth: "none",
		responses: {
			200: {
				description: "Up.",
				schema: z.object({ ok: z.literal(true), workers: z.number().int(), rooms: z.number().int() }),
			},
		},
	},
	{
		method: "GET",
		url: "/metrics",
		summary: "Prometheus metrics (docs/metrics.md)",
		description:
			"Loopback connections not through a proxy only, unless CONSENTRY_METRICS_TOKEN is set: then `Authorization: Bearer <token>` from anywhere.",
		tag: "operations",
		auth: "metrics",
		responses: {
			200: { description: "Prometheus text format.", contentType: "text/plain" },
			401: { description: "A token is configured and this is not it.", schema: ErrorSchema },
			404: { description: "Not from loopback (and no token configured).", schema: ErrorSchema },
		},
	},
	{
		method: "POST",
		url: "/api/meetings",
		summary: "Schedule a meeting",
		tag: "meetings",
		auth: "host",
		body: ScheduleMeetingSchema,
		responses: { 201: { description: "Scheduled.", schema: MeetingViewSchema }, ...common },
	},
	{
		method: "GET",
		url: "/api/meetings",
		summary: "The host's meetings",
		tag: "meetings",
		auth: "host",
		responses: {
			200: { description: "Newest first.", schema: z.object({ meetings: z.array(MeetingViewSchema) }) },
			...common,
		},
	},
	{
		method: "GET",
		url: "/api/meetings/:id",
		summary: "One of the host's meetings",
		tag: "meetings",
		auth: "host",
		params: IdParams,
		responses: {
			200: { description: "The meeting.", schema: MeetingViewSchema },
			...common,
			404: { description: "`meeting_not_found` (also for another host's meeting).", schema: ErrorSchema },
		},
	},
	{
		method: "POST",
		url: "/api/meetings/:id/start",
		summary: "Start (go live); one live meeting per host",
		tag: "meetings",
		auth: "host",
		params: IdParams,
		responses: {
			200: { description: "Live.", schema: MeetingViewSchema },
			...common,
			404: { description: "`meeting_not_found`.", schema: ErrorSchema },
			409: { description: "`host_has_live_meeting`, naming it.", schema: ErrorSchema },
		},
	},
	{
		method: "POST",
		url: "/api/meetings/:id/end",
		summary: "End the meeting: everyone leaves, recording and transcription stop",
		tag: "meetings",
		auth: "host",
		params: IdParams,
		responses: {
			200: { description: "Ended.", schema: MeetingViewSchema },
			...common,
			404: { description: "`meeting_not_found`.", schema: ErrorSchema },
		},
	},
	{
		method: "GET",
		url: "/api/meetings/:id/events",
		summary: "The meeting's hash-chained audit entries (persons as pseudonyms; docs/audit.md)",
		tag: "meetings",
		auth: "host",
		params: IdParams,
		responses: {
			200: { description: "In chain order.", schema: z.object({ events: z.array(z.object({}).loose()) }) },
			...common,
			404: { description: "`meeting_not_found`.", schema: ErrorSchema },
		},
	},
	{
		method: "GET",
		url: "/api/meetings/:id/passcode-lockout",
		summary: "Wrong passcodes counted for the meeting, and whether guests' passcode joins are locked out",
		tag: "meetings",
		auth: "host",
		params: IdParams,
		responses: {
			200: { description: "The lockout state (docs/security.md).", schema: PasscodeLockoutSchema },
			...common,
			404: { description: "`meeting_not_found`.", schema: ErrorSchema },
		},
	},
	{
		method: "DELETE",
		url: "/api/meetings/:id/passcode-lockout",
		summary: "Lift the passcode lockout (audited as passcode.unlocked; hosts in the meeting are told)",
		tag: "meetings",
		auth: "host",
		params: IdParams,
		responses: {
			200: { description: "The lockout state after lifting it.", schema: PasscodeLockoutSchema },
			...common,
			404: { description: "`meeting_not_found`.", schema: ErrorSchema },
		},
	},
	{
		method: "GET",
		url: "/api/meetings/:id/public",
		summary: "What a join page needs to know (no token)",
		tag: "meetings",
		auth: "none",
		params: IdParams,
		responses: {
			200: {
				description: "Public facts.",
				schema: z.object({
					joinCode: z.string(),
					title: z.string(),
					state: z.enum(["scheduled", "live", "ended"]),
					needsPasscode: z.boolean(),
					allowGuests: z.boolean(),
					lobby: z.boolean(),
					locale: z.enum(["en", "fr"]).optional(),
					privacyNoticeUrl: z.string().optional().describe("The organisation's own privacy notice (tenant setting)."),
				}),
			},
			404: { description: "`meeting_not_found`.", schema: ErrorSchema },
		},
	},
	{
		method: "GET",
		url: "/t/:id",
		summary: "The transcript page (HTML; it calls GET /api/transcripts/{id} with the person's sign-in)",
		tag: "transcripts",
		auth: "none",
		params: LinkParams,
		responses: { 200: { description: "The browser client's page.", contentType: "text/html" } },
	},
	{
		method: "GET",
		url: "/api/transcripts/:id",
		summary: "Open a transcript link: short-lived presigned URLs to the transcript in the customer's bucket (audited)",
		tag: "transcripts",
		auth: "member",
		params: LinkParams,
		responses: {
			200: {
				description: "Presigned URLs.",
				schema: z.object({
					meeting: z.object({ id: z.string(), title: z.string() }),
					sessionId: z.string(),
					expiresAt: z.string(),
					disclaimer: z.string(),
					files: z.object({ json: z.string(), vtt: z.string() }),
					urlsExpireInSeconds: z.number().int(),
				}),
			},
			...common,
			404: { description: "`link_not_found`.", schema: ErrorSchema },
			409: { description: "`no_storage_target`, `presign_unavailable` (SSE-C).", schema: ErrorSchema },
			410: { description: "`link_revoked`, `link_expired`.", schema: ErrorSchema },
		},
	},
	{
		method: "DELETE",
		url: "/api/transcripts/:id",
		summary: "Revoke a transcript link (the meeting's host)",
		tag: "transcripts",
		auth: "host",
		params: LinkParams,
		responses: {
			200: { description: "Revoked.", schema: z.object({ revoked: z.literal(true) }) },
			...common,
			404: { description: "`link_not_found`.", schema: ErrorSchema },
		},
	},
	{
		method: "PUT",
		url: "/api/storage-target",
		summary: "Register the customer's bucket (endpoint guard, preflight, credentials sealed)",
		tag: "storage",
		auth: "admin",
		body: storageTargetSchema({ allowHttp: true }),
		responses: {
			200: {
				description: "Saved after a passing preflight.",
				schema: z.object({
					saved: z.literal(true),
					preflight: z.object({ latencyMs: z.number(), probeDeleted: z.boolean() }),
				}),
			},
			...common,
			422: {
				description:
					"Refused endpoint or failed preflight: `endpoint_forbidden`, `no_such_bucket`, `bad_credentials`, `wrong_region`, `kms_denied`, `endpoint_unreachable`, …",
				schema: ErrorSchema,
			},
			503: { description: "`storage_unconfigured`: the operator set no master key.", schema: ErrorSchema },
		},
	},
	{
		method: "GET",
		url: "/api/storage-target",
		summary: "The customer's bucket, without secrets",
		tag: "storage",
		auth: "admin",
		responses: {
			200: { description: "The target.", schema: z.object({}).loose() },
			...common,
			404: { description: "`no_storage_target`.", schema: ErrorSchema },
		},
	},
	{
		method: "DELETE",
		url: "/api/storage-target",
		summary: "Remove the customer's bucket",
		tag: "storage",
		auth: "admin",
		responses: {
			200: { description: "Removed.", schema: z.object({ removed: z.literal(true) }) },
			...common,
			404: { description: "`no_storage_target`.", schema: ErrorSchema },
		},
	},
	{
		method: "PUT",
		url: "/api/webhook",
		summary: "Set the customer's webhook endpoint (docs/webhooks.md)",
		tag: "webhooks",
		auth: "admin",
		body: WebhookSettingsSchema,
		responses: {
			200: { description: "Saved; `secret` only when it was just made.", schema: WebhookViewSchema },
			...common,
			422: { description: "`endpoint_forbidden`, `endpoint_unresolvable`.", schema: ErrorSchema },
			503: { description: "`webhooks_unconfigured`: the operator set no master key.", schema: ErrorSchema },
		},
	},
	{
		method: "GET",
		url: "/api/webhook",
		summary: "The webhook endpoint (never the secret)",
		tag: "webhooks",
		auth: "admin",
		responses: {
			200: { description: "The settings.", schema: WebhookViewSchema },
			...common,
			404: { description: "`no_webhook`.", schema: ErrorSchema },
		},
	},
	{
		method: "DELETE",
		url: "/api/webhook",
		summary: "Remove the webhook endpoint (pending deliveries are cancelled)",
		tag: "webhooks",
		auth: "admin",
		responses: {
			200: { description: "Removed.", schema: z.object({ removed: z.literal(true) }) },
			...common,
			404: { description: "`no_webhook`.", schema: ErrorSchema },
		},
	},
	{
		method: "POST",
		url: "/api/webhook/ping",
		summary: "Queue a `ping` event to the endpoint",
		tag: "webhooks",
		auth: "admin",
		responses: {
			202: { description: "Queued.", schema: z.object({ queued: z.literal(true), deliveryId: z.number().int() }) },
			...common,
			404: { description: "`no_webhook`.", schema: ErrorSchema },
		},
	},
	{
		method: "GET",
		url: "/api/webhook/deliveries",
		summary: "The delivery log, newest first",
		tag: "webhooks",
		auth: "admin",
		query: DeliveriesQuerySchema,
		responses: {
			200: { description: "Deliveries.", schema: z.object({ deliveries: z.array(DeliverySchema) }) },
			...common,
		},
	},
	{
		method: "GET",
		url: "/api/openapi.json",
		summary: "This document (OpenAPI 3.1)",
		tag: "operations",
		auth: "none",
		responses: { 200: { description: "The OpenAPI document.", schema: z.object({}).loose() } },
	},
	{
		method: "GET",
		url: "/api/docs",
		summary: "This document as a page (Swagger UI, served by the gateway)",
		tag: "operations",
		auth: "none",
		responses: { 200: { description: "HTML.", contentType: "text/html" } },
	},
	{
		method: "GET",
		url: "/api/docs/init.js",
		summary: "The docs page's script (Swagger UI's assets are under /api/docs/assets/)",
		tag: "operations",
		auth: "none",
		responses: { 200: { description: "JavaScript.", contentType: "text/javascript" } },
	},
];

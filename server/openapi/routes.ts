import { z } from "zod";
import { storageTargetSchema } from "../../contracts/StorageTargetTypes.js";
import { BODY_LIMIT_BYTES, MAX_PARAM_LENGTH } from "../http/clientErrors.js";
import { IdParams } from "../http/MeetingsApi.js";
import { LinkParams, LinkQuery } from "../http/TranscriptsApi.js";
import { ScheduleMeetingSchema } from "../meetings/MeetingTypes.js";
import { ActionsQuery, LiveMeetingsQuery } from "../operator/OperatorApi.js";
import {
	ChatParams,
	CreateTenantSchema,
	LinkIdParams,
	MeetingParams,
	OperatorMeetingSchema,
	ReasonSchema,
	RevocationSchema,
	SecurityHoldSchema,
	SubjectParams,
	TenantParams,
	UpdateTenantSchema,
	WarningSchema,
} from "../operator/OperatorTypes.js";
import {
	DsrAccessSchema,
	DsrErasureSchema,
	DsrRequestParams,
	OperatorDsrAccessSchema,
	OperatorDsrErasureSchema,
} from "../privacy/DataSubjectTypes.js";
import { SessionParams } from "../recording/PlaybackTypes.js";
import { DeliveriesQuerySchema, WEBHOOK_EVENTS, WebhookSettingsSchema } from "../webhooks/WebhookTypes.js";

/**
 * Every HTTP route the gateway serves, described for the OpenAPI document: the request schemas are the zod
 * schemas the handlers validate with (imported from where they live); responses are described here. A route
 * registered on the gateway but missing here fails test/openapi.test.ts.
 */

export type Auth = "none" | "host" | "admin" | "member" | "metrics" | "operator";

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
		retryAfterSec: z
			.number()
			.int()
			.optional()
			.describe("rate_limited: seconds until trying again may succeed (as the Retry-After header)."),
	})
	.meta({ id: "Error" });

/** Every route but /healthz may answer this (docs/security.md, "REST API"). */
export const RATE_LIMITED = {
	description:
		"`rate_limited`: too many requests from this address (or, on data-subject requests, storage and webhook changes and meeting creation, from this caller) in the window; the `Retry-After` header says when to try again.",
	schema: ErrorSchema,
};

/**
 * What the gateway refuses before any handler runs (server/http/clientErrors.ts, jsonBodies.ts), whatever the route:
 * openApiDocument adds each to every route it applies to (a route's own description of the status wins).
 */
export const REFUSED_BEFORE_HANDLER: Record<"body" | "params" | "paramsOnGet", RouteDoc["responses"]> = {
	/** Every method but GET reads a body, whether or not the route takes one. */
	body: {
		413: {
			description: `\`body_too_large\`: the request body is larger than ${BODY_LIMIT_BYTES / 1024} KiB (however it is sent, chunked too).`,
			schema: ErrorSchema,
		},
		415: {
			description: "`unsupported_media_type`: a request body that is not `application/json`.",
			schema: ErrorSchema,
		},
	},
	/** A route with path parameters. */
	params: {
		400: {
			description:
				"`invalid_url`: a malformed percent-escape in the path; `invalid_request`: a path parameter holds a NUL or a lone surrogate.",
			schema: ErrorSchema,
		},
		414: {
			description: `\`url_too_long\`: a path parameter is longer than ${MAX_PARAM_LENGTH} characters.`,
			schema: ErrorSchema,
		},
	},
	/**
	 * A GET with path parameters: where the gateway serves the client's files (a catch-all GET route), a path whose
	 * parameter is too long for this route is the files' instead, and no such file exists.
	 */
	paramsOnGet: {
		404: {
			description: `\`not_found\`: a path parameter is longer than ${MAX_PARAM_LENGTH} characters and the gateway serves the client's files (no such page).`,
			schema: ErrorSchema,
		},
	},
};

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

const TenantViewSchema = z
	.object({
		id: z.string(),
		name: z.string(),
		state: z.enum(["active", "suspended", "terminated"]),
		reason: z.string().nullable(),
		keys: z.array(z.object({ kid: z.string().optional(), alg: z.enum(["HS256", "RS256", "ES256"]) })),
		locale: z.enum(["en", "fr"]).optional(),
		capture: z.object({}).loose().optional(),
	})
	.meta({ id: "Tenant" });

const ActionResultSchema = z
	.object({ changed: z.boolean().describe("false: it was so already (idempotent).") })
	.loose();

const OperatorActionSchema = z
	.object({
		seq: z.number().int(),
		at: z.string(),
		meetingId: z.string().nullable(),
		operator: z.string().describe("Who: the operator person (their token's `sub`)."),
		action: z.string().describe("What: `tenant.suspend`, `meeting.end`, `user.suspend`, `token.revoke`, …"),
		reason: z.string(),
		hash: z.string().describe("The entry's hash in the tenant's chain (docs/audit.md)."),
	})
	.loose()
	.meta({ id: "OperatorAction" });

const operatorCommon = {
	400: { description: "Invalid request (`invalid_request`, with the failing fields).", schema: ErrorSchema },
	401: { description: "No operator token, or a bad or expired one (a security event).", schema: ErrorSchema },
	403: { description: "`operator_only`: a tenant's token (any role).", schema: ErrorSchema },
	503: { description: "`operator_unconfigured`: no CONSENTRY_OPERATOR_KEYS_FILE.", schema: ErrorSchema },
};
const tenantNotFound = { 404: { description: "`tenant_not_found`.", schema: ErrorSchema } };
const meetingNotFound = { 404: { description: "`meeting_not_found`.", schema: ErrorSchema } };

const OPERATOR_ROUTES: RouteDoc[] = [
	{
		method: "GET",
		url: "/operator",
		summary: "The operator console (HTML; it calls the operator API with the operator's token)",
		tag: "operator",
		auth: "none",
		responses: { 200: { description: "The browser client's page.", contentType: "text/html" } },
	},
	{
		method: "GET",
		url: "/api/operator/tenants",
		summary: "Every tenant (never a key's secret)",
		tag: "operator",
		auth: "operator",
		responses: {
			200: { description: "Tenants.", schema: z.object({ tenants: z.array(TenantViewSchema) }) },
			...operatorCommon,
		},
	},
	{
		method: "POST",
		url: "/api/operator/tenants",
		summary: "Create a tenant (takes effect in every gateway process within a second)",
		tag: "operator",
		auth: "operator",
		body: CreateTenantSchema,
		responses: {
			201: { description: "Created.", schema: TenantViewSchema },
			...operatorCommon,
			409: { description: "`tenant_exists`.", schema: ErrorSchema },
		},
	},
	{
		method: "GET",
		url: "/api/operator/tenants/:tenantId",
		summary: "One tenant",
		tag: "operator",
		auth: "operator",
		params: TenantParams,
		responses: { 200: { description: "The tenant.", schema: TenantViewSchema }, ...operatorCommon, ...tenantNotFound },
	},
	{
		method: "PUT",
		url: "/api/operator/tenants/:tenantId",
		summary: "Change a tenant: name, keys (rotate with an overlap: old and new `kid` together), capture, locale",
		tag: "operator",
		auth: "operator",
		params: TenantParams,
		body: UpdateTenantSchema,
		responses: {
			200: { description: "The tenant now.", schema: TenantViewSchema },
			...operatorCommon,
			...tenantNotFound,
		},
	},
	{
		method: "DELETE",
		url: "/api/operator/tenants/:tenantId",
		summary: "Delete a tenant: its meetings end, its tokens stop working; its audit chain stays",
		tag: "operator",
		auth: "operator",
		params: TenantParams,
		body: ReasonSchema,
		responses: { 200: { description: "Deleted.", schema: ActionResultSchema }, ...operatorCommon, ...tenantNotFound },
	},
	...(["suspend", "reinstate", "terminate"] as const).flatMap((action): RouteDoc[] => [
		{
			method: "POST",
			url: `/api/operator/tenants/:tenantId/${action}`,
			summary:
				action === "suspend"
					? "Suspend a tenant: sessions out within a second, meetings ended, new tokens refused (`account_suspended`)"
					: action === "reinstate"
						? "Reinstate a suspended tenant"
						: "Terminate a tenant (final: it can only be deleted afterwards)",
			tag: "operator",
			auth: "operator",
			params: TenantParams,
			body: ReasonSchema,
			responses: {
				200: { description: "Done (or so already).", schema: ActionResultSchema },
				...operatorCommon,
				...tenantNotFound,
				409: { description: "`tenant_terminated`.", schema: ErrorSchema },
			},
		},
		{
			method: "POST",
			url: `/api/operator/tenants/:tenantId/users/:subject/${action}`,
			summary:
				action === "suspend"
					? "Suspend a person (tenant + subject): sessions out, their meetings ended, new tokens refused"
					: action === "reinstate"
						? "Reinstate a suspended person"
						: "Terminate a person's account (final)",
			tag: "operator",
			auth: "operator",
			params: SubjectParams,
			body: ReasonSchema,
			responses: {
				200: { description: "Done (or so already).", schema: ActionResultSchema },
				...operatorCommon,
				...tenantNotFound,
				409: { description: "`account_terminated`.", schema: ErrorSchema },
			},
		},
	]),
	{
		method: "POST",
		url: "/api/operator/tenants/:tenantId/revocations",
		summary: "Revoke one token (`jti`) or every token of a subject issued before a time; live sessions with it go",
		tag: "operator",
		auth: "operator",
		params: TenantParams,
		body: RevocationSchema,
		responses: {
			200: { description: "Done (or so already).", schema: ActionResultSchema },
			...operatorCommon,
			...tenantNotFound,
		},
	},
	{
		method: "GET",
		url: "/api/operator/tenants/:tenantId/actions",
		summary: "The operator's actions on a tenant, from its audit chain",
		tag: "operator",
		auth: "operator",
		params: TenantParams,
		query: ActionsQuery,
		responses: {
			200: { description: "Oldest first.", schema: z.object({ actions: z.array(OperatorActionSchema) }) },
			...operatorCommon,
			...tenantNotFound,
		},
	},
	{
		method: "POST",
		url: "/api/operator/tenants/:tenantId/wipe",
		summary: "Wipe a terminated tenant: every row of theirs goes; their chain keeps one tenant.wiped entry (issue 14)",
		description:
			"The tenant's meetings, seats, storage target, webhooks, links, blocks, warnings and pseudonym secrets are deleted; its audit chain is cut to one `operator.action` `tenant.wiped` entry that keeps the operator's `tenant.*` actions on it (with their hashes), then a `chain.checkpoint` (docs/privacy.md). Resumable.",
		tag: "operator",
		auth: "operator",
		params: TenantParams,
		body: ReasonSchema,
		responses: {
			200: {
				description: "Wiped (`entries`: chain entries purged by this call).",
				schema: z.object({ changed: z.boolean(), entries: z.number().int() }),
			},
			...operatorCommon,
			...tenantNotFound,
			409: { description: "`tenant_not_terminated`: terminate the tenant first.", schema: ErrorSchema },
		},
	},
	{
		method: "GET",
		url: "/api/operator/security-hold",
		summary: "The security hold on log files in force (or null) and the last holds",
		tag: "operator",
		auth: "operator",
		responses: {
			200: { description: "`hold` and `history`." },
			...operatorCommon,
		},
	},
	{
		method: "PUT",
		url: "/api/operator/security-hold",
		summary: "Set the security hold: security log files are kept past their 14 days until `until` (≤ 90 days)",
		description:
			"Audited as an `operator.action` (`security_hold.set`) in the gateway-wide chain `_gateway`. Replaces a hold in force. Lapses by itself at `until`.",
		tag: "operator",
		auth: "operator",
		body: SecurityHoldSchema,
		responses: {
			200: { description: "The hold set." },
			...operatorCommon,
			400: {
				description: "`hold_too_long` (over 90 days), `hold_until_past`, or `invalid_request`.",
				schema: ErrorSchema,
			},
		},
	},
	{
		method: "DELETE",
		url: "/api/operator/security-hold",
		summary: "Lift the security hold now (audited); expired security log files go at the next sweep",
		tag: "operator",
		auth: "operator",
		body: ReasonSchema,
		responses: {
			200: { description: "`changed: false`: there was no hold in force.", schema: z.object({ changed: z.boolean() }) },
			...operatorCommon,
		},
	},
	{
		method: "GET",
		url: "/api/operator/meetings",
		summary: "Live meetings across tenants: metadata only (tenant, host pseudonym, size, started, capture state)",
		tag: "operator",
		auth: "operator",
		query: LiveMeetingsQuery,
		responses: {
			200: { description: "Live meetings.", schema: z.object({ meetings: z.array(OperatorMeetingSchema) }) },
			...operatorCommon,
			...tenantNotFound,
		},
	},
	{
		method: "GET",
		url: "/api/operator/meetings/:id",
		summary: "One meeting's details (metadata only)",
		tag: "operator",
		auth: "operator",
		params: MeetingParams,
		responses: {
			200: { description: "The meeting.", schema: z.object({}).loose() },
			...operatorCommon,
			...meetingNotFound,
		},
	},
	{
		method: "POST",
		url: "/api/operator/meetings/:id/end",
		summary: 'End a meeting now: everyone sees "ended by the service operator" and the reason',
		tag: "operator",
		auth: "operator",
		params: MeetingParams,
		body: ReasonSchema,
		responses: {
			200: { description: "Ended (or was not live).", schema: ActionResultSchema },
			...operatorCommon,
			...meetingNotFound,
		},
	},
	{
		method: "POST",
		url: "/api/operator/meetings/:id/disable",
		summary: "Disable a meeting ID: it can't start or be joined (`meeting_disabled`); a live one ends",
		tag: "operator",
		auth: "operator",
		params: MeetingParams,
		body: ReasonSchema,
		responses: {
			200: { description: "Disabled (or was).", schema: ActionResultSchema },
			...operatorCommon,
			...meetingNotFound,
		},
	},
	{
		method: "POST",
		url: "/api/operator/meetings/:id/enable",
		summary: "Re-enable a disabled meeting ID",
		tag: "operator",
		auth: "operator",
		params: MeetingParams,
		body: ReasonSchema,
		responses: {
			200: { description: "Enabled (or was).", schema: ActionResultSchema },
			...operatorCommon,
			...meetingNotFound,
		},
	},
	{
		method: "POST",
		url: "/api/operator/tenants/:tenantId/warnings",
		summary:
			"Warn a person (`subject`) or a whole tenant: shown now or at their next connection, until acknowledged (recorded)",
		tag: "operator",
		auth: "operator",
		params: TenantParams,
		body: WarningSchema,
		responses: {
			201: { description: "Issued.", schema: z.object({ changed: z.literal(true), id: z.string() }) },
			...operatorCommon,
			...tenantNotFound,
		},
	},
	{
		method: "POST",
		url: "/api/operator/meetings/:id/chat/:messageId/remove",
		summary: "Remove a chat message: off every screen; marked removed in the recording's chat log from now on",
		tag: "operator",
		auth: "operator",
		params: ChatParams,
		body: ReasonSchema,
		responses: { 200: { description: "Removed.", schema: ActionResultSchema }, ...operatorCommon, ...meetingNotFound },
	},
	{
		method: "POST",
		url: "/api/operator/meetings/:id/stop-share",
		summary: "Stop every screen share of a meeting",
		tag: "operator",
		auth: "operator",
		params: MeetingParams,
		body: ReasonSchema,
		responses: { 200: { description: "Stopped.", schema: ActionResultSchema }, ...operatorCommon, ...meetingNotFound },
	},
	{
		method: "POST",
		url: "/api/operator/transcript-links/:linkId/revoke",
		summary: "Revoke a transcript link (`/t/{id}`)",
		tag: "operator",
		auth: "operator",
		params: LinkIdParams,
		body: ReasonSchema,
		responses: {
			200: { description: "Revoked (or was).", schema: ActionResultSchema },
			...operatorCommon,
			404: { description: "`link_not_found`.", schema: ErrorSchema },
		},
	},
	{
		method: "GET",
		url: "/api/operator-actions",
		summary: "What the service operator did to this customer (their admin; the same entries as in the audit export)",
		tag: "operator",
		auth: "admin",
		query: ActionsQuery,
		responses: {
			200: { description: "Oldest first.", schema: z.object({ actions: z.array(OperatorActionSchema) }) },
			...common,
		},
	},
];

/** Data-subject requests (issue #14; docs/privacy.md, "Data-subject requests"). */
const DsrExportSchema = z
	.object({
		kind: z.literal("consentry.dsr.export"),
		version: z.literal(1),
		tenant: z.string(),
		generatedAt: z.string(),
		person: z.object({ subject: z.string().nullable(), pseudonym: z.string().nullable(), guest: z.boolean() }),
		held: z.boolean().describe("false: nothing held (every list empty; the same answer as for an unknown person)."),
		store: z.object({}).loose().describe("Rows of the gateway's tables naming the person, per table."),
		audit: z.object({ entries: z.array(z.object({}).loose()), truncated: z.boolean() }),
		meetings: z.array(z.string()),
		bucket: z
			.object({
				state: z.enum(["listed", "no_storage_target", "unreachable", "not_applicable"]),
				bucket: z.string().nullable(),
				error: z.string().optional(),
				objects: z.array(
					z.object({
						key: z.string(),
						holds: z.enum(["media", "chat", "transcript"]),
						meetingId: z.string(),
						sessionId: z.string(),
						foundBy: z.enum(["manifest", "listing"]),
						size: z.number().optional(),
						lines: z.number().optional(),
						lineNumbers: z.array(z.number()).optional(),
					}),
				),
			})
			.describe("Pointers to every object in the customer's bucket holding their media, chat or transcript lines."),
	})
	.meta({ id: "DsrExport" });
const DsrAccessViewSchema = z
	.object({
		kind: z.literal("consentry.dsr.access"),
		version: z.literal(1),
		requestId: z.string(),
		tenant: z.string(),
		person: z.object({}).loose(),
		held: z.boolean(),
		counts: z.record(z.string(), z.number()),
		meetings: z.array(z.string()),
		bucket: z.object({}).loose(),
	})
	.meta({ id: "DsrAccess" });
const ErasureViewSchema = z
	.object({
		requestId: z.string(),
		state: z.enum(["pending", "done"]),
		deleteObjects: z.boolean(),
		steps: z.object({
			store: z.boolean(),
			bucket: z.enum(["not_asked", "pending", "done"]),
			sessionsDone: z.array(z.string()),
			meetings: z.array(z.string()),
			rows: z.record(z.string(), z.number()).optional(),
			objectsRemoved: z.number().optional(),
			objectsRewritten: z.number().optional(),
		}),
		error: z.string().nullable().describe("Why it is still pending (`bucket_unreachable: …`): a retry finishes it."),
		createdAt: z.string(),
		updatedAt: z.string(),
	})
	.meta({ id: "DsrErasure" });
const liveConflict = {
	409: {
		description: "`person_in_live_meeting`: a meeting they host or are in is live; end it first.",
		schema: ErrorSchema,
	},
};
const erasureResponses = {
	200: { description: "Done: every step finished.", schema: ErasureViewSchema },
	202: {
		description: "Pending: the store part is done; the bucket step failed (`error`); retry.",
		schema: ErasureViewSchema,
	},
};
const requestNotFound = {
	404: { description: "`dsr_request_not_found` (also another tenant's).", schema: ErrorSchema },
};
const OperatorDsrParams = TenantParams.extend(DsrRequestParams.shape);

const DSR_ROUTES: RouteDoc[] = [
	{
		method: "POST",
		url: "/api/dsr/access",
		summary:
			"Access request: what the gateway holds about a person of the tenant, and where their data is in the bucket",
		tag: "privacy",
		auth: "admin",
		body: DsrAccessSchema,
		responses: {
			200: { description: "The answer (held false: nothing held).", schema: DsrAccessViewSchema },
			...common,
		},
	},
	{
		method: "POST",
		url: "/api/dsr/export",
		summary: "Export: everything held about the person as one JSON document (versioned schema)",
		tag: "privacy",
		auth: "admin",
		body: DsrAccessSchema,
		responses: { 200: { description: "The export (an attachment).", schema: DsrExportSchema }, ...common },
	},
	{
		method: "POST",
		url: "/api/dsr/erasures",
		summary: "Erase a person: every table, their pseudonym secret, optionally their objects and lines in the bucket",
		tag: "privacy",
		auth: "admin",
		body: DsrErasureSchema,
		responses: { ...erasureResponses, ...common, ...liveConflict },
	},
	{
		method: "GET",
		url: "/api/dsr/erasures/:requestId",
		summary: "An erasure request's state and steps",
		tag: "privacy",
		auth: "admin",
		params: DsrRequestParams,
		responses: { 200: { description: "The request.", schema: ErasureViewSchema }, ...common, ...requestNotFound },
	},
	{
		method: "POST",
		url: "/api/dsr/erasures/:requestId/retry",
		summary: "Run a pending erasure's remaining steps again (idempotent)",
		tag: "privacy",
		auth: "admin",
		params: DsrRequestParams,
		responses: { ...erasureResponses, ...common, ...requestNotFound },
	},
	{
		method: "POST",
		url: "/api/operator/tenants/:tenantId/dsr/access",
		summary: "The operator's access request on a tenant's person (an operator.action in the tenant's chain)",
		tag: "operator",
		auth: "operator",
		params: TenantParams,
		body: OperatorDsrAccessSchema,
		responses: {
			200: { description: "The answer.", schema: DsrAccessViewSchema },
			...operatorCommon,
			...tenantNotFound,
		},
	},
	{
		method: "POST",
		url: "/api/operator/tenants/:tenantId/dsr/export",
		summary: "The operator's export of a tenant's person",
		tag: "operator",
		auth: "operator",
		params: TenantParams,
		body: OperatorDsrAccessSchema,
		responses: { 200: { description: "The export.", schema: DsrExportSchema }, ...operatorCommon, ...tenantNotFound },
	},
	{
		method: "POST",
		url: "/api/operator/tenants/:tenantId/dsr/erasures",
		summary: "The operator erases a tenant's person",
		tag: "operator",
		auth: "operator",
		params: TenantParams,
		body: OperatorDsrErasureSchema,
		responses: { ...erasureResponses, ...operatorCommon, ...tenantNotFound, ...liveConflict },
	},
	{
		method: "GET",
		url: "/api/operator/tenants/:tenantId/dsr/erasures/:requestId",
		summary: "An erasure request of the tenant",
		tag: "operator",
		auth: "operator",
		params: OperatorDsrParams,
		responses: {
			200: { description: "The request.", schema: ErasureViewSchema },
			...operatorCommon,
			...requestNotFound,
		},
	},
	{
		method: "POST",
		url: "/api/operator/tenants/:tenantId/dsr/erasures/:requestId/retry",
		summary: "The operator retries a pending erasure",
		tag: "operator",
		auth: "operator",
		params: OperatorDsrParams,
		body: ReasonSchema,
		responses: { ...erasureResponses, ...operatorCommon, ...requestNotFound },
	},
];

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
					node: z
						.object({ id: z.string(), url: z.string() })
						.optional()
						.describe("Cluster: the node a live meeting lives on; a client connects its signaling there."),
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
		description:
			"While the session runs, `live` lists the transcript so far: its checkpoint parts (`transcript.part-NNNNNN.json`, each holding the lines since the one before) after the cursor `after`, at most `limit` per answer, each presigned. A page follows the meeting by asking again with `after=live.next` (at once when `live.more`, else after `live.pollSeconds`) until `ready` turns true; then the final files replace the parts (which are deleted). An opening (no `after`) is audited as `transcript.link_opened`; a poll with `after` only when the node has not audited that person's opening of the link in the last 15 minutes.",
		tag: "transcripts",
		auth: "member",
		params: LinkParams,
		query: LinkQuery,
		responses: {
			200: {
				description: "Presigned URLs.",
				schema: z.object({
					meeting: z.object({ id: z.string(), title: z.string() }),
					sessionId: z.string(),
					expiresAt: z.string(),
					disclaimer: z.string(),
					files: z.object({ json: z.string(), vtt: z.string() }),
					ready: z
						.boolean()
						.describe("false while the session still runs: transcript.json and .vtt are written at its end"),
					live: z
						.object({
							after: z.number().int().describe("The cursor asked with (0: from the first part)."),
							parts: z
								.array(z.object({ part: z.number().int(), url: z.string() }))
								.describe(
									"Parts numbered above `after`, in order, each with a presigned URL; a number skipped is a part missing from the bucket.",
								),
							next: z.number().int().describe("The cursor to ask with next: the last part listed, or `after`."),
							more: z.boolean().describe("More parts are already there: ask again at once with `after=next`."),
							pollSeconds: z.number().int().describe("Otherwise ask again after this long."),
						})
						.nullable()
						.describe(
							"While the session runs (`ready` false): the transcript so far, a page of checkpoint parts; null once ready.",
						),
					urlsExpireInSeconds: z.number().int(),
				}),
			},
			...common,
			404: { description: "`link_not_found`.", schema: ErrorSchema },
			409: { description: "`no_storage_target`, `presign_unavailable` (SSE-C).", schema: ErrorSchema },
			410: { description: "`link_revoked`, `link_expired`.", schema: ErrorSchema },
			502: { description: "`storage_unavailable`: the bucket could not be reached.", schema: ErrorSchema },
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
		method: "GET",
		url: "/recordings/:id",
		summary: "A meeting's recordings page (HTML; it calls GET /api/meetings/{id}/recordings with the person's sign-in)",
		tag: "recordings",
		auth: "none",
		params: IdParams,
		responses: { 200: { description: "The browser client's page.", contentType: "text/html" } },
	},
	{
		method: "GET",
		url: "/r/:sessionId",
		summary:
			"The playback page of a recording session (HTML; it calls GET /api/recordings/{sessionId} with the person's sign-in)",
		tag: "recordings",
		auth: "none",
		params: SessionParams,
		responses: { 200: { description: "The browser client's page.", contentType: "text/html" } },
	},
	{
		method: "GET",
		url: "/api/recordings/:sessionId",
		summary:
			"Open a recording for playback: its manifest, short-lived presigned URLs to every object, the overlapping transcript, the evidence (audited)",
		tag: "recordings",
		auth: "member",
		params: SessionParams,
		responses: {
			200: {
				description: "The manifest, presigned URLs by object key, transcript lines and the evidence panel.",
				schema: z
					.object({
						meeting: z.object({ id: z.string(), title: z.string() }),
						sessionId: z.string(),
						startedAt: z.string(),
						endedAt: z.string().nullable(),
						expiresAt: z.string(),
						manifest: z.object({ kind: z.string(), tracks: z.array(z.unknown()) }).loose(),
						urls: z.record(z.string(), z.string()),
						files: z.object({ manifest: z.string(), audit: z.string().nullable(), chat: z.string().nullable() }),
						transcript: z
							.object({ lines: z.array(z.unknown()) })
							.loose()
							.nullable(),
						evidence: z.object({ persons: z.array(z.unknown()), holes: z.array(z.unknown()) }).loose(),
						urlsExpireInSeconds: z.number().int(),
					})
					.meta({ id: "Playback" }),
			},
			...common,
			404: { description: "`recording_not_found`.", schema: ErrorSchema },
			409: {
				description:
					"`recording_in_progress`, `no_storage_target`, `presign_unavailable` (SSE-C), `recording_missing`.",
				schema: ErrorSchema,
			},
			410: { description: "`recording_revoked`, `recording_expired`.", schema: ErrorSchema },
			422: { description: "`recording_unreadable` (a manifest this gateway did not write).", schema: ErrorSchema },
			502: { description: "`storage_unavailable`, `storage_access_denied`.", schema: ErrorSchema },
		},
	},
	{
		method: "GET",
		url: "/api/meetings/:id/recordings",
		summary: "A meeting's recording sessions and their playback pages (the host and the people who were in it)",
		tag: "recordings",
		auth: "member",
		params: IdParams,
		responses: {
			200: {
				description: "Oldest first; `ready`: the session's files are written and its page opens.",
				schema: z.object({
					recordings: z.array(
						z.object({
							sessionId: z.string(),
							startedAt: z.string(),
							endedAt: z.string().nullable(),
							ready: z.boolean(),
							revoked: z.boolean(),
							expiresAt: z.string(),
							page: z.string().describe("`/r/{sessionId}`"),
						}),
					),
				}),
			},
			...common,
			404: { description: "`meeting_not_found`.", schema: ErrorSchema },
		},
	},
	{
		method: "DELETE",
		url: "/api/recordings/:sessionId",
		summary: "Revoke a recording's playback page (the meeting's host)",
		tag: "recordings",
		auth: "host",
		params: SessionParams,
		responses: {
			200: { description: "Revoked.", schema: z.object({ revoked: z.literal(true) }) },
			...common,
			404: { description: "`recording_not_found`.", schema: ErrorSchema },
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
	...OPERATOR_ROUTES,
	...DSR_ROUTES,
];

import { locale, type MessageKey, type Params, t, tMaybe } from "./i18n/index.js";
import { SignalingError } from "./Signaling.js";

/**
 * What the person sees for each way a meeting can refuse or end: a title, a message and which
 * actions make sense. Titles and messages come from the catalogues (`error.<code>.title`,
 * `error.<code>`), so they follow the page's language; the gateway's own message (English) is
 * shown only for a code the catalogues don't know, in an English page.
 */
export type ErrorAction =
	/** Back to the join page, values kept (fix the ID, name or passcode). */
	| "back"
	/** Try `join` again as is. */
	| "retry"
	/** The same as `retry`, worded for someone who was in the meeting. */
	| "rejoin"
	/** `join` again with `takeOverHostSeat: true`. */
	| "takeOver"
	/** Forget the sign-in token and go back to the join page as a guest. */
	| "guest";

export interface ErrorInfo {
	title: string;
	message: string;
	actions: ErrorAction[];
}

const ACTIONS: Record<string, ErrorAction[]> = {
	meeting_not_found: ["back"],
	meeting_not_started: ["retry", "back"],
	meeting_locked: ["retry", "back"],
	meeting_full: ["retry", "back"],
	meeting_closed: ["back"],
	removed: [],
	wrong_passcode: ["back"],
	guests_not_allowed: ["back"],
	host_seat_taken: ["takeOver", "back"],
	host_has_live_meeting: ["retry", "back"],
	in_another_lobby: ["retry", "back"],
	already_joined: ["retry"],
	name_required: ["back"],
	invalid_request: ["back"],
	wrong_tenant: ["guest"],
	token_wrong_meeting: ["guest"],
	connection_failed: ["retry", "back"],
	connection_lost: ["rejoin"],
	reconnect: ["rejoin"],
	rate_limited: ["retry", "back"],
	timeout: ["retry", "back"],
	media_unavailable: ["retry", "back"],
	// Ejections (`ejected` event reasons).
	denied: [],
	meeting_ended: [],
	host_seat_taken_over: [],
	operator: [],
	account_suspended: [],
	meeting_disabled: ["back"],
	declined_capture: ["rejoin"],
	node_fenced: ["rejoin"],
};

const isTokenCode = (code: string) => code.startsWith("token_") || code === "unknown_tenant";

/**
 * The screen for a refusal or an ejection with this code. `details` are the error's extra fields:
 * when they fill every placeholder of `error.<code>.named`, that more precise message is used.
 */
export function errorInfo(code: string, serverMessage = "", details: Record<string, unknown> = {}): ErrorInfo {
	const token = isTokenCode(code) || code === "wrong_tenant";
	const title = tMaybe(`error.${code}.title`) ?? (token ? t("error.token.title") : t("error.default.title"));
	const message =
		named(code, details) ?? tMaybe(`error.${code}`) ?? (token ? t("error.token") : fallback(code, serverMessage));
	const actions = ACTIONS[code] ?? (token ? ["guest"] : ["retry", "back"]);
	return { title, message, actions };
}

function named(code: string, details: Record<string, unknown>): string | undefined {
	const params: Params = {};
	for (const [k, v] of Object.entries(details)) if (typeof v === "string" || typeof v === "number") params[k] = v;
	const text = tMaybe(`error.${code}.named`, params);
	return text && !/\{\w+\}/.test(text) ? text : undefined;
}

/** A failed request's error in words for the person, in the page's language. */
export function errorText(err: unknown): string {
	if (err instanceof SignalingError) {
		return named(err.code, err.details) ?? tMaybe(`error.${err.code}`) ?? fallback(err.code, err.message);
	}
	return fallback("", err instanceof Error ? err.message : String(err));
}

function fallback(code: string, serverMessage: string): string {
	if (serverMessage && locale() === "en") return serverMessage;
	return code ? t("error.withCode", { code }) : t("error.default");
}

export const ACTION_LABEL: Record<ErrorAction, MessageKey> = {
	back: "action.back",
	retry: "action.retry",
	rejoin: "action.rejoin",
	takeOver: "action.takeOver",
	guest: "action.guest",
};

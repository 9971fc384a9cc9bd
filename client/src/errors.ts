/**
 * What the person sees for each way a meeting can refuse or end: a title, and which actions make
 * sense. The message itself is the gateway's (it knows the details); `fallback` covers the rare
 * case where there is none.
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
	fallback: string;
	actions: ErrorAction[];
}

const TOKEN: ErrorInfo = {
	title: "Your sign-in link is not valid",
	fallback: "The link you used to join could not be verified. Ask the organiser for a new one.",
	actions: ["guest"],
};

const CATALOG: Record<string, ErrorInfo> = {
	meeting_not_found: {
		title: "Meeting not found",
		fallback: "No meeting has this ID. Check the ID you were given.",
		actions: ["back"],
	},
	meeting_not_started: {
		title: "The host has not started this meeting yet",
		fallback: "Try again in a moment.",
		actions: ["retry", "back"],
	},
	meeting_locked: {
		title: "This meeting is locked",
		fallback: "The host locked this meeting; nobody new can join.",
		actions: ["retry", "back"],
	},
	meeting_full: { title: "This meeting is full", fallback: "This meeting is full.", actions: ["retry", "back"] },
	removed: {
		title: "You were removed from this meeting",
		fallback: "The host removed you from this meeting; you cannot rejoin it.",
		actions: [],
	},
	wrong_passcode: { title: "Wrong passcode", fallback: "That passcode is not right.", actions: ["back"] },
	guests_not_allowed: {
		title: "This meeting needs a sign-in link",
		fallback: "This meeting needs a sign-in link from its organisation.",
		actions: ["back"],
	},
	host_seat_taken: {
		title: "You are already in a meeting on another device",
		fallback: "Your host seat is in use on another device.",
		actions: ["takeOver", "back"],
	},
	host_has_live_meeting: {
		title: "You already have a live meeting",
		fallback: "A host can hold only one meeting at a time: end the other one first.",
		actions: ["retry", "back"],
	},
	name_required: { title: "Enter your name", fallback: "Enter your name to join.", actions: ["back"] },
	invalid_request: { title: "Check the details", fallback: "Something in the form is not valid.", actions: ["back"] },
	wrong_tenant: { title: "This link is for another organisation", fallback: TOKEN.fallback, actions: ["guest"] },
	token_wrong_meeting: { title: "This link is for another meeting", fallback: TOKEN.fallback, actions: ["guest"] },
	token_expired: { ...TOKEN, title: "Your sign-in link has expired" },
	token_not_yet_valid: { ...TOKEN, title: "Your sign-in link is not valid yet" },
	connection_failed: {
		title: "Cannot reach the meeting server",
		fallback: "Check your connection.",
		actions: ["retry", "back"],
	},
	connection_lost: {
		title: "Connection lost",
		fallback: "The connection to the meeting server dropped.",
		actions: ["rejoin"],
	},
	reconnect: {
		title: "The meeting's media connection was interrupted",
		fallback: "Rejoin to continue.",
		actions: ["rejoin"],
	},
	rate_limited: { title: "Too many attempts", fallback: "Wait a moment, then try again.", actions: ["retry", "back"] },
	timeout: { title: "The meeting server did not answer", fallback: "Try again.", actions: ["retry", "back"] },
	// Ejections (`ejected` event reasons).
	denied: { title: "The host did not let you in", fallback: "The host did not let you in.", actions: [] },
	meeting_ended: { title: "The meeting has ended", fallback: "The host ended the meeting.", actions: [] },
	host_seat_taken_over: {
		title: "You continued on another device",
		fallback: "You took over your host seat on another device; this one left the meeting.",
		actions: [],
	},
	operator: { title: "The meeting was closed", fallback: "The operator closed this meeting.", actions: [] },
	declined_capture: {
		title: "You left because of the recording",
		fallback:
			"You declined the recording or transcription notice, so you left the meeting. Nothing more of yours is captured.",
		actions: ["rejoin"],
	},
};

export function errorInfo(code: string): ErrorInfo {
	const known = CATALOG[code];
	if (known) return known;
	if (code.startsWith("token_") || code === "unknown_tenant") return TOKEN;
	return {
		title: "Could not join the meeting",
		fallback: "Something went wrong. Try again.",
		actions: ["retry", "back"],
	};
}

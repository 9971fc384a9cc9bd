import { z } from "zod";
import { PolicyName } from "../compliance/CaptureTypes.js";

export const MeetingSettingsSchema = z.object({
	/** Newcomers wait in the lobby until the host admits them (guests always do). */
	lobby: z.boolean().default(true),
	/** People without a token may join with the meeting ID and passcode (into the lobby). */
	allowGuests: z.boolean().default(false),
	maxParticipants: z.number().int().min(2).max(500).default(100),
	/** Who may share their screen. */
	screenShare: z.enum(["host", "all"]).default("all"),
	chat: z.boolean().default(true),
	/** Overrides the tenant's recording/transcription policy for this meeting (e.g. all-party consent). */
	capturePolicy: PolicyName.optional(),
});
export type MeetingSettings = z.infer<typeof MeetingSettingsSchema>;

/** Passcodes anyone would try first. */
const COMMON_PASSCODES = new Set([
	"password",
	"passcode",
	"passw0rd",
	"qwerty",
	"qwertz",
	"azerty",
	"letmein",
	"welcome",
	"meeting",
	"iloveyou",
	"admin",
	"secret",
	"abc123",
	"123abc",
	"123123",
	"121212",
	"112233",
	"123321",
	"654321",
	"696969",
	"159753",
	"147258",
	"147852",
	"102030",
]);

/** Why a passcode a host sets is too easy to guess, or undefined (docs/security.md#passcodes). */
export function weakPasscodeReason(p: string): string | undefined {
	if (p.length < 6) return "passcodes have at least 6 characters";
	if (new Set(p).size === 1) return "a passcode can't be one character repeated";
	const codes = [...p].map((c) => c.charCodeAt(0));
	const steps = new Set(codes.slice(1).map((c, i) => c - (codes[i] ?? 0)));
	if (steps.size === 1 && (steps.has(1) || steps.has(-1))) return "a passcode can't be a run like 123456 or abcdef";
	if (COMMON_PASSCODES.has(p.toLowerCase())) return "that passcode is among the first ones anyone would try";
	return undefined;
}

export const ScheduleMeetingSchema = z.object({
	title: z.string().trim().min(1).max(200),
	scheduledFor: z.iso.datetime({ offset: true }).optional(),
	passcode: z
		.string()
		.max(32)
		.regex(/^[\x21-\x7e]+$/, "passcodes are printable ASCII without spaces")
		.superRefine((p, ctx) => {
			const reason = weakPasscodeReason(p);
			if (reason) ctx.addIssue({ code: "custom", message: `weak passcode: ${reason}` });
		})
		.optional(),
	settings: MeetingSettingsSchema.partial().default({}),
});
export type ScheduleMeeting = z.input<typeof ScheduleMeetingSchema>;

export type MeetingState = "scheduled" | "live" | "ended";

export interface Meeting {
	id: string;
	tenantId: string;
	hostSubject: string;
	title: string;
	scheduledFor: string | null;
	settings: MeetingSettings;
	hasPasscode: boolean;
	state: MeetingState;
	locked: boolean;
	createdAt: string;
	startedAt: string | null;
	endedAt: string | null;
}

/** What the REST API returns for a meeting. */
export interface MeetingView extends Meeting {
	/** The ID as people type it: `abcd-efgh-jkmn`. */
	joinCode: string;
	joinUrl: string;
}

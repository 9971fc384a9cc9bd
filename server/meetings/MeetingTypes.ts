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

export const ScheduleMeetingSchema = z.object({
	title: z.string().trim().min(1).max(200),
	scheduledFor: z.iso.datetime({ offset: true }).optional(),
	passcode: z
		.string()
		.min(4)
		.max(32)
		.regex(/^[\x21-\x7e]+$/, "passcodes are printable ASCII without spaces")
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

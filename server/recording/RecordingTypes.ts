import type {
	CaptureSummaryWire,
	CloseTime,
	HoleEntry,
	ObjectWritten,
	TrackKind,
	TrackStats,
} from "../../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import type { TapTrack } from "../capture/TapOwnerTypes.js";
import type { CapturePolicy, CaptureSession, SessionContinuation } from "../compliance/CaptureTypes.js";
import type { RecorderProcess } from "./RecorderProcess.js";

/** The recorder process the gateway drives (./RecorderProcess.ts). */
export type Recorder = Pick<
	RecorderProcess,
	| "alive"
	| "openTrack"
	| "closeTrack"
	| "closeTrackWithCapture"
	| "senderReport"
	| "recover"
	| "restart"
	| "on"
	| "off"
	| "once"
>;

/** One producer recorded in one session (its life from open to close: TapOwner). */
export interface TrackRecord extends TapTrack {
	/** The person's pseudonym (the object keys and the manifest name nobody). */
	person: string;
	kind: TrackKind;
	codec?: { mimeType: string; clockRate: number; channels?: number | undefined };
	/** When media started flowing to the recorder (set again once it does), and when it stopped. */
	openedAt: string;
	closedAt?: string;
	closeReason?: string;
	objects: ObjectWritten[];
	/** Every stretch of this track known not to be in the bucket. */
	holes: HoleEntry[];
	/** The recorder's count of its frames (absent when the recorder died with it). */
	stats?: TrackStats;
	/** What the per-packet capture gate did (issue 11), from the recorder at close. */
	capture?: CaptureSummaryWire;
	/** Its objects' seq start at firstSeq (a block of its own: see SEQ_BLOCK). */
	firstSeq: number;
	/** When capture ended (the click that closed the gate, or the gateway's time; issue 11), sent to the recorder. */
	closeAt?: CloseTime;
}

/** One line of `chat.jsonl`: its sender by pseudonym only (never their display name). */
export interface ChatLine {
	at: string;
	from: string | null;
	/** Empty once the service operator removed the message (`removed` says when and why). */
	text: string;
	removed?: { at: string; by: "operator"; reason: string };
}

/** One recording session in progress. */
export interface SessionRecord {
	session: CaptureSession;
	tenantId: string;
	meetingId: string;
	target: StorageTarget;
	tracks: TrackRecord[];
	/** How many tracks each `{person}-{kind}` had in this session (their seq blocks). */
	seqBlocks: Map<string, number>;
	chat: ChatLine[];
	/** The chat message ID of each line of `chat` (the operator removes messages by ID). */
	chatIds: string[];
	/** chat.jsonl is brought up to date in the bucket shortly after each message (it survives a crash). */
	chatTimer?: NodeJS.Timeout;
	endedAt?: string;
	endReason?: string;
}

export const MANIFEST_KIND = "consentry.recording.manifest";
export const MANIFEST_VERSION = 2;

export interface ManifestTrack {
	trackId: string;
	person: string;
	kind: TrackKind;
	producerId: string;
	codec: TrackRecord["codec"] | null;
	openedAt: string;
	closedAt: string | null;
	closeReason: string | null;
	/** The trail entry that covers this track: the person's acknowledgement (or consent) of this session. */
	coveredBy: { type: string; seq: number; hash: string; at: string } | null;
	/** Frames that reached the recorder, and frames in the objects (null: unknown, the recorder died with the track). */
	framesReceived: number | null;
	framesWritten: number | null;
	/** Every stretch of the track not in the bucket, wall-clock, with its cause (network loss, overflow, crash…). */
	holes: HoleEntry[];
	/**
	 * The per-packet capture gate (issue 11; docs/compliance.md), times as Unix ms on the sender's clock: the click
	 * that opened the gate, the close (the click that ended capture — pause, stop, leave, decline — or the gateway's
	 * own close time mapped to the sender's clock where nobody clicked), the capture times of the first and last
	 * packet recorded (first ≥ click and last ≤ close, always), the sender clock's offset from the gateway's (sender −
	 * gateway), and the packets dropped. Absent: unknown (the recorder died with the track).
	 */
	capture?: {
		clickAt: number | null;
		closeAt: number | null;
		firstCaptureAt: number | null;
		lastCaptureAt: number | null;
		clockOffsetMs: number | null;
		packetsBeforeClick: number;
		packetsAfterClose: number;
		packetsUndated: number;
		senderReports: number;
		/** Steps of the sender's clock seen in its reports (each packet is dated by the latest report). */
		clockSteps: number;
		/** The least capture → arrival delay of any recorded packet (gateway clock, ms): equal across aligned tracks. */
		minTransitMs: number | null;
	};
	objects: {
		key: string;
		seq: number;
		size: number;
		sha256: string | null;
		startedAt: string;
		endedAt: string;
		truncated?: boolean;
		recovered?: boolean;
		frames?: number;
		/** Its first frame's capture time on the sender's clock (Unix ms), and on the gateway's clock (the session's one clock: line tracks up with it). */
		firstCaptureAt?: number;
		/** The sender clock's offset around this object's first frame (reports within ±15 s): firstFrameAt uses it. */
		clockOffsetMs?: number;
		firstFrameAt?: number;
	}[];
}

/** `manifest.json`, next to a session's objects in the customer's bucket. */
export interface Manifest {
	kind: typeof MANIFEST_KIND;
	version: typeof MANIFEST_VERSION;
	tenant: string;
	meeting: string;
	session: string;
	policy: CapturePolicy;
	startedAt: string;
	endedAt: string;
	endReason: string;
	/**
	 * Cluster (issue 12): this session continues `session`, which its meeting's lost node held (`cause: node_lost`):
	 * the stretch between that session's last saved frames (its `node_lost` holes) and this one's first is the gap.
	 */
	continues?: SessionContinuation;
	persons: string[];
	/**
	 * Pseudonyms of the people who declined this session's notice (consent.declined in the trail): present, never
	 * recorded in it — no track, no chat line (with `onDecline: "stay-unrecorded"` they stayed in the meeting).
	 */
	notRecorded: string[];
	tracks: ManifestTrack[];
	chat: { key: string; size: number; sha256: string; messages: number };
	audit: { key: string; size: number; sha256: string; chainHead: unknown; meetingHead: unknown };
	disclaimer: string;
}

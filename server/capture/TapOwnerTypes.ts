import type { SenderReportMessage } from "../../contracts/RecorderProtocol.js";
import type { CaptureService, TapChange } from "../compliance/CaptureService.js";
import type { CaptureKind } from "../compliance/CaptureTypes.js";
import type { Logger } from "../logger.js";
import type { RecorderProcess } from "../recording/RecorderProcess.js";
import type { RoomRegistry } from "../sfu/RoomRegistry.js";
import type { PlainTap } from "./PlainTap.js";

/** One RTCP sender report of a producer, as the recorder takes it. */
export type SenderReport = Omit<SenderReportMessage, "type" | "trackId" | "requestId">;

/** Where one tap's track stands. `open`: the recorder has its stream (media flows once the gate is re-checked). */
export type TapTrackState = "opening" | "open" | "closing" | "closed";

/** What the tap owner keeps of every track; a sink's own record of a track extends it. */
export interface TapTrack {
	/** `{sessionId}_{producerId}`. */
	readonly trackId: string;
	/** The tap it carries (reopened from it after a recorder restart). */
	readonly tap: TapChange;
	readonly peerId: string;
	readonly producerId: string;
	state: TapTrackState;
	/** A close that arrived while the track was opening: applied once it is open (nothing flows before). */
	closeRequested?: string;
	/** The media leaving the SFU for the recorder. */
	media?: PlainTap;
	/** Resolves once the track is closed and its sink finished it (its last bytes are in the bucket). */
	readonly settled: Promise<void>;
}

/**
 * What a capture sink (recording, transcription) does with a tap; the tap owner does the rest (when, in what order,
 * after what check). Every method gets the sink's own track record.
 */
export interface TapSink<T extends TapTrack> {
	readonly kind: CaptureKind;
	/** Whether this sink takes the tap at all (e.g. transcription: microphones only). */
	accepts(tap: TapChange): boolean;
	/** The sink's record of a new track, from the owner's base; undefined: nothing to do (no session, no person). */
	create(tap: TapChange, base: TapTrack): T | undefined | Promise<T | undefined>;
	/** Opens the track's stream in the recorder; resolves to the ports the media goes to. */
	open(track: T, media: PlainTap): Promise<{ rtpPort: number; rtcpPort: number }>;
	/** Media flows to the recorder from now on. */
	started?(track: T): void;
	/**
	 * The track ends: its media is already stopped. Close its stream in the recorder when `opened` (the recorder
	 * flushes and finishes its objects before this resolves). `reason`: the gate's, or `open_failed`, `producer_closed`…
	 * `change`: the gate's closing tap when the gate closed it (absent: the session ended, the sink failed…).
	 */
	close(track: T, reason: string, opened: boolean, change?: TapChange): Promise<void>;
	/** The recorder died with this track (at `at`, Unix ms); the owner reopens its tap once the recorder is back. */
	lost?(track: T, at: number): void;
	/** A sender report of the track's producer (they date its packets: issue 11); absent: the sink takes none. */
	senderReport?(track: T, sr: SenderReport): void;
}

export interface TapOwnerOptions<T extends TapTrack> {
	capture: CaptureService;
	rooms: RoomRegistry;
	recorder: Pick<RecorderProcess, "alive" | "on" | "once"> | undefined;
	sink: TapSink<T>;
	/**
	 * After a recorder crash: brings the recorder back (restart, recovery) and says whether it is; the lost taps the
	 * gate still allows are reopened after. Absent: the owner waits for the recorder's next `ready`.
	 */
	afterCrash?: (lost: T[]) => Promise<boolean>;
	log: Logger;
}

/** One media frame reassembled from RTP: what goes into the container as one block. */
export interface Frame {
	/**
	 * The codec's frame: a VP8 frame (RFC 7741 payloads joined, descriptors removed), one Opus packet, or an H.264
	 * access unit in AVCC form (each NAL unit after its 4-byte length; a key frame starts with its SPS and PPS).
	 */
	data: Buffer;
	/** A VP8 key frame; every Opus packet is one. */
	key: boolean;
	/**
	 * The frame's time on the track's clock (codec clock units, e.g. 90 kHz), continuous for the whole track: RTP
	 * timestamps unwrapped across 2³² and rebased when the stream restarts (SSRC change, sequence jump).
	 */
	timestamp: number;
	/** As sent: the 32-bit RTP timestamp and SSRC of the stream it came in (to map it through sender reports). */
	rtpTimestamp: number;
	ssrc: number;
	/** Sequence numbers of its first and last packet. */
	firstSeq: number;
	lastSeq: number;
	/** Wall clock (ms) when its last packet arrived. */
	receivedAt: number;
	/** VP8 and H.264 key frames: the picture size (VP8: the frame header; H.264: the SPS). */
	width?: number;
	height?: number;
	/** H.264 key frames: the SPS and PPS it was encoded with (the container's decoder configuration). */
	parameterSets?: { sps: Buffer; pps: Buffer };
}

/** A stretch of media that will not be in the recording, as wall-clock ms, with why. */
export interface Hole {
	from: number;
	to: number;
	cause: "network_loss" | "overflow" | "storage_outage" | "recorder_crash" | "gateway_crash";
	/** Frames known to be missing in it, when that is known. */
	frames?: number;
}

export interface DepacketizerStats {
	/** RTP packets taken in (of the expected payload type). */
	packets: number;
	/** Sequence numbers given up on (never arrived within the jitter window). */
	lostPackets: number;
	/** Packets that came after their place was given up, or twice. */
	latePackets: number;
	/** Complete frames reassembled and passed on. */
	frames: number;
	/** Frames thrown away: incomplete (a packet lost), or unusable until the next key frame. */
	droppedFrames: number;
	/** Stream restarts (SSRC change or sequence jump). */
	restarts: number;
}

export interface DepacketizerOptions {
	codec: "opus" | "vp8" | "h264";
	/** H.264: the SDP's `sprop-parameter-sets` (base64 SPS/PPS), used until the stream sends its own. */
	spropParameterSets?: string | undefined;
	/** Codec clock rate (48000 Opus, 90000 VP8 and H.264). */
	clockRate: number;
	/** How long a missing packet is waited for (reordering, retransmission) before it counts as lost. */
	jitterMs: number;
	/** Packets held at most while waiting (then the oldest gap is given up). */
	maxHeldPackets?: number;
	/** Each complete frame, in order. */
	onFrame: (frame: Frame) => void;
	/** The stream cannot go on until a key frame (video after a loss or a restart). */
	onKeyframeNeeded: () => void;
	/** A stretch of media lost on the way (reported once media flows again, or at flush). */
	onHole: (hole: Hole) => void;
	/** Wall clock in ms (tests pass their own). */
	now?: () => number;
}

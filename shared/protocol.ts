/**
 * The signaling protocol between the browser client and the gateway, shared by
 * both sides. Client → server messages are requests with an acknowledgement
 * (socket.io ack); server → client messages are events. Every request body is
 * validated on the server with the zod schema below before any handler runs.
 */
import { z } from "zod";

const Id = z.string().min(1).max(128);
/** At most `n` keys: bounds the loose objects and records below (the server also bounds every body before zod). */
const maxKeys = (n: number) => (o: object) => Object.keys(o).length <= n;
/**
 * An object with known fields that passes others through (mediasoup's RTP types grow new fields), but at most
 * `extra` unknown keys, each a scalar: nothing nested or binary rides along to the media layer unchecked.
 */
const Loose = <T extends z.ZodRawShape>(shape: T, extra = 8) => {
	const n = Object.keys(shape).length + extra;
	return z
		.looseObject(shape)
		.catchall(z.union([z.string().max(256), z.number(), z.boolean(), z.null()]))
		.refine(maxKeys(n), `at most ${n} fields`);
};

export const MediaSource = z.enum(["mic", "camera", "screen"]);
export type MediaSource = z.infer<typeof MediaSource>;

/** What a capture session feeds: a recording (the customer's bucket) or a transcription engine. */
export const CaptureKind = z.enum(["recording", "transcription"]);
export type CaptureKind = z.infer<typeof CaptureKind>;

const DtlsParameters = z.object({
	role: z.enum(["auto", "client", "server"]).optional(),
	fingerprints: z
		.array(
			z.object({
				algorithm: z.enum(["sha-1", "sha-224", "sha-256", "sha-384", "sha-512"]),
				value: z.string().min(1).max(256),
			}),
		)
		.min(1)
		.max(8),
});

const RtcpFeedback = z.object({ type: z.string().max(64), parameter: z.string().max(64).optional() });
/** Codec parameters (`profile-level-id`, `apt`…): at most 32, flat. */
const Parameters = z
	.record(z.string().max(64), z.union([z.string().max(256), z.number()]))
	.refine(maxKeys(32), "at most 32 codec parameters")
	.optional();

/** What mediasoup stores as a 32-bit unsigned integer (SSRCs, bitrates, clock rates). */
const U32 = z.number().int().nonnegative().max(0xffffffff);

const RtpCodecParameters = Loose({
	mimeType: z.string().max(64),
	payloadType: z.number().int().min(0).max(127),
	clockRate: U32.positive(),
	channels: z.number().int().positive().max(8).optional(),
	parameters: Parameters,
	rtcpFeedback: z.array(RtcpFeedback).max(32).optional(),
});

/** Shape-checked here; mediasoup's ORTC layer then validates the semantics. */
const RtpParameters = Loose({
	mid: z.string().max(32).optional(),
	codecs: z.array(RtpCodecParameters).min(1).max(32),
	headerExtensions: z
		.array(Loose({ uri: z.string().max(256), id: z.number().int().min(1).max(255), parameters: Parameters }))
		.max(32)
		.optional(),
	encodings: z
		.array(
			Loose({
				ssrc: U32.optional(),
				rid: z.string().max(32).optional(),
				codecPayloadType: z.number().int().min(0).max(127).optional(),
				scalabilityMode: z.string().max(16).optional(),
				maxBitrate: U32.optional(),
				maxFramerate: z.number().nonnegative().max(1000).optional(),
				scaleResolutionDownBy: z.number().min(1).max(1024).optional(),
				dtx: z.boolean().optional(),
				rtx: z.object({ ssrc: U32 }).optional(),
			}),
		)
		.max(8)
		.optional(),
	rtcp: Loose({ cname: z.string().max(256).optional(), reducedSize: z.boolean().optional() }).optional(),
});

const RtpCapabilities = Loose({
	codecs: z
		.array(
			Loose({
				kind: z.enum(["audio", "video"]),
				mimeType: z.string().max(64),
				clockRate: U32.positive(),
				preferredPayloadType: z.number().int().min(0).max(127).optional(),
				channels: z.number().int().positive().max(8).optional(),
				parameters: Parameters,
				rtcpFeedback: z.array(RtcpFeedback).max(32).optional(),
			}),
		)
		.max(64)
		.optional(),
	headerExtensions: z
		.array(Loose({ uri: z.string().max(256), preferredId: z.number().int().min(1).max(255) }))
		.max(64)
		.optional(),
});

/** Request bodies, one schema per request name. */
/**
 * When the person clicked (acknowledge / consent), Unix ms on the clock the browser stamps its RTP with (its wall
 * clock: `Date.now()`): the recorder drops every packet captured before it (issue 11). Optional for older clients
 * (the gate then opens at the answer's arrival, as before); the server refuses one in the future, long past, or
 * before the notice was sent.
 */
const ClickedAt = z.number().finite().positive().optional();

export const RequestSchemas = {
	/**
	 * Join a live meeting. Identity comes from the socket's handshake token (host or
	 * participant) or, without one, the person is a guest (needs the passcode, waits
	 * in the lobby). A host whose seat is held elsewhere may take it over.
	 */
	join: z.object({
		meetingId: z
			.string()
			.min(1)
			.max(64)
			.regex(/^[A-Za-z0-9 -]+$/, "meeting IDs contain letters, digits and dashes only"),
		displayName: z.string().trim().min(1).max(64).optional(),
		passcode: z.string().max(64).optional(),
		takeOverHostSeat: z.boolean().optional(),
		/** The language the person reads notices in; the server sends notice texts in it. */
		locale: z.enum(["en", "fr"]).optional(),
		/**
		 * The client's clock (Date.now()) when it sent the join: gives the gateway that clock's offset, so the click
		 * times of its answers (on the same clock, the one its RTP sender reports use) are checked whatever its skew.
		 */
		clientTime: ClickedAt,
	}),
	createWebRtcTransport: z.object({ direction: z.enum(["send", "recv"]) }),
	connectWebRtcTransport: z.object({ transportId: Id, dtlsParameters: DtlsParameters }),
	setRtpCapabilities: z.object({ rtpCapabilities: RtpCapabilities }),
	produce: z.object({
		transportId: Id,
		kind: z.enum(["audio", "video"]),
		rtpParameters: RtpParameters,
		source: MediaSource,
	}),
	closeProducer: z.object({ producerId: Id }),
	pauseProducer: z.object({ producerId: Id }),
	resumeProducer: z.object({ producerId: Id }),
	resumeConsumer: z.object({ consumerId: Id }),
	/**
	 * How this person shows a video they receive: off screen (`visible: false`) the server stops forwarding it;
	 * on screen it is forwarded at `spatialLayer` (0 smallest … 2 full size, for simulcast senders).
	 */
	viewConsumer: z.object({
		consumerId: Id,
		visible: z.boolean(),
		spatialLayer: z.number().int().min(0).max(2).optional(),
	}),
	chat: z.object({ text: z.string().trim().min(1).max(2000) }),
	// Host controls: the server checks the caller is the meeting's host.
	admit: z.object({ peerId: Id }),
	deny: z.object({ peerId: Id }),
	lock: z.object({ locked: z.boolean() }),
	mute: z.object({ peerId: Id, kind: z.enum(["audio", "video"]) }),
	stopScreenShare: z.object({ peerId: Id }),
	remove: z.object({ peerId: Id }),
	/** Names (or un-names) a co-host: they may turn recording on, pause and stop it, and see who is covered. */
	setCoHost: z.object({ peerId: Id, coHost: z.boolean() }),
	endMeeting: z.object({}),
	/** The person acknowledges a warning the service operator gave them (`operatorWarning`); recorded. */
	acknowledgeWarning: z.object({ warningId: Id }),
	/** `clickedAt`: the click on "Leave" (Date.now()): nothing of theirs captured after it is kept (issue 11). */
	leave: z.object({ clickedAt: ClickedAt }),
	/** Raises or lowers your own hand. */
	raiseHand: z.object({ raised: z.boolean() }),
	/** The host lowers someone's hand (answered their question). */
	lowerHand: z.object({ peerId: Id }),
	// Recording / transcription (the notice gate). Only the host turns recording on, pauses or stops it.
	startCapture: z.object({ kind: CaptureKind }),
	/** `clickedAt`: the host's click (Date.now()): nothing captured after it is kept (issue 11). */
	pauseCapture: z.object({ kind: CaptureKind, clickedAt: ClickedAt }),
	stopCapture: z.object({ kind: CaptureKind, clickedAt: ClickedAt }),
	/** The client put the notice on screen (sent when the modal renders). */
	noticeShown: z.object({ noticeId: Id }),
	/** The person dismissed the notice. Under `notice`, this opens their gate. */
	acknowledgeNotice: z.object({ noticeId: Id, clickedAt: ClickedAt }),
	/** "I consent" (required under `explicit-consent`). */
	consent: z.object({ noticeId: Id, clickedAt: ClickedAt }),
	/**
	 * The person declines (or withdraws consent): nothing more of theirs is captured in this session; they leave the
	 * meeting, unless the tenant lets them stay unrecorded (`onDecline: "stay-unrecorded"`).
	 */
	decline: z.object({ noticeId: Id, clickedAt: ClickedAt }),
	/** The host lifts the passcode lockout (too many wrong passcodes were tried): guests may use the passcode again. */
	liftPasscodeLockout: z.object({}),
} as const;

export type RequestName = keyof typeof RequestSchemas;
export type RequestData<N extends RequestName> = z.input<(typeof RequestSchemas)[N]>;

export interface ProducerInfo {
	id: string;
	kind: "audio" | "video";
	source: MediaSource;
	paused: boolean;
}

export type PeerRole = "host" | "participant" | "guest";

/** How well a person's media reaches the gateway (from mediasoup's producer scores). */
export type ConnectionQuality = "good" | "fair" | "poor";

export interface PeerInfo {
	id: string;
	displayName: string;
	role: PeerRole;
	producers: ProducerInfo[];
	/** Known once the person sends media. */
	quality?: ConnectionQuality;
}

export interface LobbyEntry {
	peerId: string;
	displayName: string;
	guest: boolean;
	since: string;
}

/** Where a meeting's passcode attempts stand (to its host). */
export interface PasscodeLockout {
	/** Guests' passcode joins are refused, even with the right passcode, until the host lifts the lockout. */
	locked: boolean;
	/** Wrong passcodes counted since the last lift (or within the last hour). */
	failures: number;
	/** When the lockout began (locked only). */
	since?: string;
}

export interface MeetingInfo {
	id: string;
	joinCode: string;
	title: string;
	locked: boolean;
	chat: boolean;
	screenShare: "host" | "all";
}

/** What `join` answers: in the room, or waiting in the lobby. */
/** A raised hand: who, and since when (ISO time). */
export interface RaisedHand {
	peerId: string;
	since: string;
}

export type JoinResult =
	| {
			status: "joined";
			peerId: string;
			role: PeerRole;
			meeting: MeetingInfo;
			routerRtpCapabilities: unknown;
			peers: PeerInfo[];
			lobby: LobbyEntry[];
			/** Peer IDs of the co-hosts the host named. */
			coHosts: string[];
			/** Raised hands, first raised first. */
			hands?: RaisedHand[];
			/** Recording / transcription as they stand now. */
			capture: CaptureStatus[];
			/**
			 * Notices this person must see before publishing any media: a session is running.
			 * The server refuses `produce` until each is acknowledged (or consented to).
			 */
			notices: NoticeView[];
			/** Who declined a running session and stayed, not captured (tenants with `onDecline: "stay-unrecorded"`). */
			notRecorded?: NotRecorded[];
			/** To the host, where the meeting has a passcode: how its attempts stand. */
			passcodeLockout?: PasscodeLockout;
			/**
			 * Cluster (issue 12 placement): the node this meeting lives on and the live nodes' URLs, where the client
			 * reconnects through if this node is lost (any of them redirects it to the meeting's new home).
			 */
			cluster?: { node: string; nodes: string[] };
	  }
	| { status: "lobby"; peerId: string; meeting: MeetingInfo };

/** What `join` answers: joined, in the lobby, or (cluster) sent to the node the meeting lives on. */
export type JoinAnswer = JoinResult | JoinRedirect;

/**
 * Cluster (issue 12 placement): the meeting lives on another node. The client opens a signaling connection to
 * `redirect.url` with the same token and sends the same join there; nothing was joined or recorded on this node.
 * Media then flows to that node's announced address. Checked with zod by the client before it follows it.
 */
export const JoinRedirectSchema = z.object({
	status: z.literal("redirect"),
	meetingId: z.string().min(1).max(64),
	redirect: z.object({
		url: z
			.string()
			.max(512)
			.regex(/^https?:\/\/[^/\s?#]+$/, "a node URL is http(s)://host[:port]"),
		node: z.string().min(1).max(64),
	}),
});
export type JoinRedirect = z.infer<typeof JoinRedirectSchema>;

/**
 * Cluster (issue 12): the same redirect, earlier. A client may name the meeting it is about to join in the signaling
 * handshake (`auth: { token, meetingId }`); a node where that live meeting does not live then refuses the connection
 * at once with this as the socket.io `connect_error` data, so the client reconnects to `redirect.url` without a
 * `join` round trip here. Without `meetingId` (or when the node can't tell) the join answers with `JoinRedirect` as
 * before. Checked with zod by the client before it follows it.
 */
export const ConnectRedirectSchema = z.object({
	code: z.literal("redirect"),
	message: z.string().max(500),
	meetingId: JoinRedirectSchema.shape.meetingId,
	redirect: JoinRedirectSchema.shape.redirect,
});
export type ConnectRedirect = z.infer<typeof ConnectRedirectSchema>;

export type CapturePolicyName = "notice" | "explicit-consent";

/** Where recording (or transcription) of a meeting stands, as every member sees it. */
export interface CaptureStatus {
	kind: CaptureKind;
	state: "off" | "on" | "paused";
	/** The running session (state `on`). */
	sessionId?: string;
	/** Display name of who turned it on, and when (state `on`). */
	startedBy?: string;
	since?: string;
	policy?: { name: CapturePolicyName; version: number };
}

/** The notice of one capture session, for one person. */
export interface NoticeView {
	id: string;
	sessionId: string;
	kind: CaptureKind;
	policy: { name: CapturePolicyName; version: number };
	/** Who turned it on (display name) and since when. */
	startedBy: string;
	since: string;
	/** Explicit-consent policy: the person must press "I consent" (or leave). */
	consentRequired: boolean;
	/** The tenant's text, in the locale the person joined with. */
	locale: "en" | "fr";
	title: string;
	body: string;
	/** Shown for transcription: transcripts may be inaccurate. */
	disclaimer?: string;
	/**
	 * The tenant lets people decline and stay (`onDecline: "stay-unrecorded"`): declining keeps them in the meeting,
	 * never captured in this session. Absent: declining means leaving (the terms' rule).
	 */
	onDecline?: "stay-unrecorded";
	/** The customer's own privacy notice (tenant setting), linked from the notice. */
	privacyNoticeUrl?: string;
}

/** A person who declined a running session and stayed: present, never captured in it (everyone sees it). */
export interface NotRecorded {
	peerId: string;
	kind: CaptureKind;
	sessionId: string;
}

/** Where one person stands in the running session: what the host sees. */
export interface CoverageEntry {
	peerId: string;
	displayName: string;
	coverage: "pending" | "acknowledged" | "consented" | "declined";
	/** Captured now (their gate is open). */
	covered: boolean;
	/** Pending for longer than the policy's acknowledgement time: stays out of the capture. */
	overdue: boolean;
}

export interface ChatMessage {
	id: string;
	peerId: string;
	displayName: string;
	text: string;
	at: string;
}

export interface TransportInfo {
	id: string;
	iceParameters: unknown;
	iceCandidates: unknown[];
	dtlsParameters: unknown;
}

/** What each request answers on success. */
type Empty = Record<string, never>;

/** What each request answers on success. */
export interface ResponseMap {
	join: JoinAnswer;
	createWebRtcTransport: TransportInfo;
	connectWebRtcTransport: Empty;
	setRtpCapabilities: Empty;
	produce: { producerId: string };
	closeProducer: Empty;
	pauseProducer: Empty;
	resumeProducer: Empty;
	resumeConsumer: Empty;
	viewConsumer: Empty;
	chat: { id: string };
	admit: Empty;
	deny: Empty;
	lock: Empty;
	mute: Empty;
	stopScreenShare: Empty;
	remove: Empty;
	setCoHost: Empty;
	endMeeting: Empty;
	acknowledgeWarning: { acknowledged: boolean };
	leave: Empty;
	raiseHand: Empty;
	lowerHand: Empty;
	startCapture: CaptureStatus;
	pauseCapture: CaptureStatus;
	stopCapture: CaptureStatus;
	noticeShown: Empty;
	acknowledgeNotice: { coverage: CoverageEntry["coverage"] };
	consent: { coverage: CoverageEntry["coverage"] };
	/** `stayed`: the tenant lets people decline and stay, unrecorded; otherwise the gateway ejects them. */
	decline: { stayed: boolean };
	liftPasscodeLockout: PasscodeLockout;
}

export interface ErrorBody {
	code: string;
	message: string;
	/** `invalid_request`: the first few issues… */
	issues?: readonly { path: string; message: string }[];
	/** …and how many there were in all. */
	issueCount?: number;
}

export type Response<N extends RequestName> = { ok: true; data: ResponseMap[N] } | { ok: false; error: ErrorBody };

/** Server → client events. */
export interface ServerEvents {
	peerJoined: (peer: PeerInfo) => void;
	peerLeft: (e: { peerId: string }) => void;
	newConsumer: (e: {
		peerId: string;
		producerId: string;
		consumerId: string;
		kind: "audio" | "video";
		source: MediaSource;
		rtpParameters: unknown;
		producerPaused: boolean;
	}) => void;
	consumerClosed: (e: { consumerId: string }) => void;
	consumerPaused: (e: { consumerId: string }) => void;
	consumerResumed: (e: { consumerId: string }) => void;
	activeSpeaker: (e: { peerId: string | null }) => void;
	chatMessage: (m: ChatMessage) => void;
	/** The service operator removed a chat message: take it off the screen. */
	chatRemoved: (e: { id: string }) => void;
	/** A warning from the service operator: show it until the person acknowledges it (`acknowledgeWarning`). */
	operatorWarning: (e: { id: string; message: string; at: string }) => void;
	/** To hosts: who waits in the lobby now. */
	lobbyChanged: (e: { waiting: LobbyEntry[] }) => void;
	/** To hosts: the meeting's passcode joins were locked out (too many wrong passcodes), or the lockout was lifted. */
	passcodeLockout: (e: PasscodeLockout) => void;
	/** To a person in the lobby: the host let you in; send `join` again. */
	admitted: () => void;
	meetingLocked: (e: { locked: boolean }) => void;
	/** The host named or un-named a co-host (to everyone). */
	coHostChanged: (e: { peerId: string; coHost: boolean }) => void;
	/** A person's connection quality changed (their media as the gateway receives it; to everyone, them included). */
	connectionQuality: (e: { peerId: string; quality: ConnectionQuality }) => void;
	/** The raised hands changed: the whole queue, first raised first (to everyone). */
	handsChanged: (e: { hands: RaisedHand[] }) => void;
	/** The server closed one of your producers (the host stopped your screen share): stop sending it. */
	producerClosed: (e: { producerId: string; reason: "host_stopped_share" | "operator_stopped_share" }) => void;
	/** The host paused one of your producers. */
	mutedByHost: (e: { producerId: string; kind: "audio" | "video" }) => void;
	/**
	 * You are out of the meeting, and why: denied at the lobby, removed by the
	 * host, the meeting ended, or your host seat was taken over from another device.
	 */
	/** You are out. `operatorReason`: the service operator's words when they ended the meeting or suspended you. */
	ejected: (e: { reason: EjectReason; message: string; operatorReason?: string }) => void;
	/** The gateway lost this meeting's media worker: rejoin to continue. */
	reconnect: (e: { reason: string }) => void;
	/**
	 * To every member: recording or transcription changed state (on, paused, off). Not sent for a session's start to
	 * the members who got its `captureNotice`: the notice says it (one message per person instead of two).
	 */
	captureState: (s: CaptureStatus & { reason?: string; message?: string }) => void;
	/**
	 * To one person: a capture session started; show this notice (modal) and acknowledge it. It also tells them the
	 * session is on (the `captureState` with state `on` and the notice's kind, sessionId, startedBy, since, policy).
	 */
	captureNotice: (n: NoticeView) => void;
	/**
	 * A live caption: a segment of one person's speech from the transcription engine (partial while they speak,
	 * then final). Machine transcription: it may be incomplete or wrong.
	 */
	caption: (c: {
		sessionId: string;
		peerId: string;
		displayName: string;
		text: string;
		final: boolean;
		start: string;
	}) => void;
	/**
	 * The transcript of a transcription session will be at this path (`/t/{id}`) on the gateway: it opens for the
	 * host and the people who were in the meeting. Sent when the session starts and when it ends.
	 */
	transcriptLink: (e: { sessionId: string; path: string; expiresAt: string }) => void;
	/**
	 * To the hosts: part of a person's recorded track will be missing from the recording (network loss, the
	 * bucket down, a crash): which track, the wall-clock stretch and why. At most one every 10 s per track.
	 */
	recordingLoss: (e: {
		sessionId: string;
		peerId: string;
		displayName: string;
		track: "audio" | "camera" | "screen";
		from: string;
		to: string;
		cause: "network_loss" | "overflow" | "storage_outage" | "recorder_crash" | "gateway_crash" | "node_lost";
		frames?: number;
	}) => void;
	/**
	 * To the hosts: a person's track is not being captured, and why (issue 11). `capture_undatable`: their client
	 * sends no RTCP sender reports, so no packet's capture time can be established against their click: none of
	 * that track is recorded (or transcribed) until reports come.
	 */
	captureWarning: (e: {
		code: "capture_undatable";
		kind: CaptureKind;
		sessionId: string;
		peerId: string;
		displayName: string;
		track: "audio" | "camera" | "screen";
	}) => void;
	/** To hosts: who is and isn't covered by the running session. */
	captureCoverage: (e: { kind: CaptureKind; sessionId: string; entries: CoverageEntry[] }) => void;
	/**
	 * The server paused (held) or released your outgoing media: under explicit consent it is
	 * held until you consent. Don't resume held producers yourself; the server refuses it.
	 */
	mediaHeld: (e: { held: boolean; producerIds: string[] }) => void;
	/** To every member (tenants with `onDecline: "stay-unrecorded"`): who stays in the meeting without being captured. */
	notRecorded: (e: { persons: NotRecorded[] }) => void;
}

export type EjectReason =
	| "denied"
	| "removed"
	| "meeting_ended"
	| "host_seat_taken_over"
	/** The service operator ended the meeting (their reason comes along). */
	| "operator"
	/** The service operator suspended (or terminated) your account or your organisation's. */
	| "account_suspended"
	/** The service operator revoked the token this connection signed in with. */
	| "token_revoked"
	/** The person declined the recording/transcription notice or withdrew consent: their recourse is to leave. */
	| "declined_capture"
	/**
	 * Cluster: the node lost its database long enough that another node may have taken the meeting; it closed its
	 * rooms. Not final: reconnect through the other nodes (the meeting's new home takes you back without the lobby).
	 */
	| "node_fenced";

export type ClientEvents = {
	[N in RequestName]: (data: RequestData<N>, ack: (res: Response<N>) => void) => void;
};

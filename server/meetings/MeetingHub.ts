import { randomUUID } from "node:crypto";
import type { types as ms } from "mediasoup";
import type {
	CaptureKind,
	CaptureStatus,
	ChatMessage,
	EjectReason,
	JoinAnswer,
	JoinRedirect,
	LobbyEntry,
	MediaSource,
	MeetingInfo,
	PasscodeLockout,
} from "../../shared/protocol.js";
import type { EventLog, EventType } from "../audit/EventLog.js";
import type { Identity, TenantLimits } from "../auth/TenantTypes.js";
import { TokenVerifier } from "../auth/TokenVerifier.js";
import type { Placement } from "../cluster/Placement.js";
import type { CaptureService } from "../compliance/CaptureService.js";
import type { Coverage } from "../compliance/CaptureTypes.js";
import { AuthenticationError, ConflictError, ConsentryError, ForbiddenError, NotFoundError } from "../errors.js";
import type { Logger } from "../logger.js";
import { Peer } from "../sfu/Peer.js";
import type { RoomRegistry } from "../sfu/RoomRegistry.js";
import type { ClusterBus } from "../store/ClusterBus.js";
import { type Connection, personKey } from "./Connection.js";
import type { HostSeats } from "./HostSeats.js";
import type { MeetingStore } from "./MeetingStore.js";
import type { Meeting } from "./MeetingTypes.js";
import { formatMeetingId, parseMeetingId } from "./meetingId.js";
import { type PasscodeGuard, PasscodeLockedError } from "./PasscodeGuard.js";

/** In-process state of a live meeting: who is in, who waits. */
interface LiveState {
	members: Map<string, Connection>;
	lobby: Map<string, { conn: Connection; since: string }>;
	admitted: Set<string>;
	/** Persons (by key) who dropped out recently, and until when they may come straight back. */
	returning: Map<string, number>;
	/** Connections (peer IDs) the host named co-host. */
	coHosts: Set<string>;
	/** Raised hands (peer ID → since), in the order they were raised. */
	hands: Map<string, string>;
}

export interface MeetingHubOptions {
	store: MeetingStore;
	seats: HostSeats;
	events: EventLog;
	rooms: RoomRegistry;
	capture: CaptureService;
	/** Sees every chat message sent (the recording keeps the chat said while it runs). */
	onChat?: (meetingId: string, msg: ChatMessage, person: string) => void;
	log: Logger;
	/** How long a person who drops out may rejoin without the lobby or the lock stopping them (ms). */
	reconnectGraceMs?: number;
	/** People one meeting's lobby holds at once (default 50). Waiting never takes a seat in the meeting. */
	lobbyMax?: number;
	/** Limits passcode guessing (per meeting and per address, in the store). */
	passcodes: PasscodeGuard;
	/**
	 * What the operator decided (server/operator): a disabled meeting ID can't start or be joined
	 * (`meeting_disabled`); a person cut off while joining is refused (`account_suspended`, `token_revoked`).
	 */
	access?: {
		meetingDisabled(meetingId: string): Promise<boolean>;
		cutOff(identity: Connection["identity"]): string | undefined;
		/** The operator's limits of a tenant (applied on the next start or join). */
		limits(tenantId: string): TenantLimits | undefined;
		/** Live meetings the tenant holds now, in the store (all processes). */
		liveMeetings(tenantId: string): Promise<number>;
		/** The operator's warnings this person has not acknowledged yet (sent when they connect). */
		pendingWarnings(identity: Connection["identity"]): Promise<{ id: string; message: string; at: string }[]>;
		/** Records the person's acknowledgement (404 `warning_not_found` when it is not theirs). */
		acknowledgeWarning(identity: Connection["identity"], warningId: string): Promise<boolean>;
	};
	/** Where this process has people (restart hygiene: a restarted process ends what its previous run left live). */
	presence?: { enter(meetingId: string): Promise<void>; leave(meetingId: string): Promise<void> };
	/** Events between the nodes sharing the store (a seat taken over elsewhere ejects its holder here). */
	bus?: ClusterBus;
	/**
	 * Cluster (issue 12 placement): which node each meeting's router lives on. A join for a meeting placed elsewhere
	 * is answered with a redirect there; unset (one node, SQLite) every meeting lives here.
	 */
	placement?: Placement;
}

const EJECT_MESSAGES: Record<EjectReason, string> = {
	denied: "The host did not let you in.",
	removed: "The host removed you from this meeting.",
	meeting_ended: "The host ended the meeting.",
	host_seat_taken_over: "You took over your host seat on another device; this one left the meeting.",
	operator: "The service operator ended this meeting.",
	account_suspended: "Your account was suspended by the service operator.",
	token_revoked: "Your sign-in was revoked by the service operator; sign in again.",
	node_fenced:
		"This server lost its database, so another server continues the meeting: you are being reconnected there.",
	declined_capture:
		"You declined to be recorded or transcribed, so you left the meeting. Nothing more of yours was captured.",
};

/**
 * The meeting rules the terms set, enforced on the server: who may join (live
 * meeting, tenant, token scope, passcode, guests, lock, capacity, removal), the
 * lobby, the single host seat, host controls and chat. Media goes through the
 * meeting's Room; every decision that matters is recorded in the event log.
 */
export class MeetingHub {
	readonly #store: MeetingStore;
	readonly #seats: HostSeats;
	readonly #events: EventLog;
	readonly #rooms: RoomRegistry;
	readonly #capture: CaptureService;
	readonly #onChat: MeetingHubOptions["onChat"];
	readonly #log: Logger;
	readonly #live = new Map<string, LiveState>();
	/** Meetings with people here, as last read from the store (at a join; lock and end keep it current). */
	readonly #meetings = new Map<string, Meeting>();
	readonly #bus: ClusterBus | undefined;
	readonly #placement: Placement | undefined;
	readonly #connections = new Map<string, Connection>();
	readonly #graceMs: number;
	readonly #lobbyMax: number;
	readonly #passcodes: PasscodeGuard;
	readonly #access: MeetingHubOptions["access"];
	readonly #presence: MeetingHubOptions["presence"];
	/** Meetings this process recorded its presence in (meeting_presence). */
	readonly #present = new Set<string>();
	/** When (performance.now()) this process last ended each meeting: a join under way since then is refused. */
	readonly #endedAt = new Map<string, number>();

	constructor(options: MeetingHubOptions) {
		this.#passcodes = options.passcodes;
		this.#access = options.access;
		this.#presence = options.presence;
		this.#graceMs = options.reconnectGraceMs ?? 30_000;
		this.#lobbyMax = options.lobbyMax ?? 50;
		this.#store = options.store;
		this.#seats = options.seats;
		this.#events = options.events;
		this.#bus = options.bus;
		this.#placement = options.placement;
		this.#bus?.subscribe((m) => {
			if (m.type === "host_seat.taken_over") {
				const old = this.#connections.get(m.connectionId);
				if (old) this.#eject(old, "host_seat_taken_over");
			} else if (m.type === "meeting.ended" && m.from !== this.#nodeId) {
				// Ended in the store on another node (a REST call there): this node's people and captures end here.
				this.#endHere(m.meetingId, m.actor, m.reason, m.operatorReason, m.captureReason);
			} else if (m.type === "passcode.unlocked" && m.from !== this.#nodeId) {
				this.#passcodes
					.status(m.meetingId)
					.then((now) => this.#notifyHosts(m.meetingId, "passcodeLockout", now))
					.catch((err: unknown) => this.#log.warn({ err }, "passcode lockout not read (the store is unavailable)"));
			}
		});
		this.#rooms = options.rooms;
		this.#capture = options.capture;
		this.#onChat = options.onChat;
		this.#log = options.log.child({ component: "MeetingHub" });
	}

	connected(conn: Connection): void {
		this.#connections.set(conn.id, conn);
		// The operator's warnings this person has not acknowledged: shown as soon as they are here.
		if (conn.identity.role !== "guest" && this.#access) {
			this.#access
				.pendingWarnings(conn.identity)
				.then((ws) => {
					for (const w of ws) if (this.#connections.has(conn.id)) conn.notify("operatorWarning", w);
				})
				.catch((err: unknown) => this.#log.warn({ err }, "operator warnings not read (the store is unavailable)"));
		}
	}

	/** The person acknowledges an operator warning (recorded in the store and the tenant's chain). */
	async acknowledgeWarning(conn: Connection, warningId: string): Promise<{ acknowledged: boolean }> {
		if (conn.identity.role === "guest" || !this.#access) {
			throw new NotFoundError("warning_not_found", "There is no such warning for you.");
		}
		return { acknowledged: await this.#access.acknowledgeWarning(conn.identity, warningId) };
	}

	/** Sends an event to every connection of this process whose identity matches (operator warnings). */
	notifyWhere(
		match: (identity: Connection["identity"]) => boolean,
		event: "operatorWarning",
		payload: { id: string; message: string; at: string },
	): number {
		let n = 0;
		for (const c of this.#connections.values()) {
			if (!match(c.identity)) continue;
			c.notify(event, payload);
			n++;
		}
		return n;
	}

	/** The operator removed a chat message: off every screen in this process. */
	removeChat(meetingId: string, messageId: string): void {
		for (const m of this.#live.get(meetingId)?.members.values() ?? []) m.notify("chatRemoved", { id: messageId });
	}

	/** The operator stopped every screen share of a meeting held here. Returns how many were stopped. */
	stopScreenShares(meetingId: string): number {
		let n = 0;
		for (const member of this.#live.get(meetingId)?.members.values() ?? []) {
			for (const p of member.peer?.producers.values() ?? []) {
				if (p.appData.source !== "screen") continue;
				p.close();
				member.notify("producerClosed", { producerId: p.id, reason: "operator_stopped_share" });
				n++;
			}
		}
		return n;
	}

	/**
	 * The connection dropped: out of the lobby/room, seat released. A member (not a
	 * guest, who has no stable identity) may come back within the grace period
	 * without waiting in the lobby again or being stopped by the lock.
	 */
	disconnected(conn: Connection): void {
		if (conn.state === "joined" && conn.meetingId && conn.identity.role !== "guest") {
			this.#liveState(conn.meetingId).returning.set(personKey(conn), Date.now() + this.#graceMs);
		}
		void this.leave(conn);
		this.#connections.delete(conn.id);
	}

	/**
	 * Cluster: the redirect a join for `meetingId` would get here because the meeting lives on another live node, or
	 * undefined (one node, unknown or not live meeting, not placed elsewhere, a token for another tenant or meeting:
	 * the join then answers as usual). The join's first check, run at the signaling handshake when the client names
	 * the meeting there, so a client that reached the wrong node is sent on before a `join` round trip.
	 */
	async redirectFor(identity: Identity, meetingId: string): Promise<JoinRedirect | undefined> {
		const id = this.#placement ? parseMeetingId(meetingId) : undefined;
		// Its room is here: no store round trip before the connection (the join checks everything as usual).
		if (!id || this.#rooms.get(id)) return undefined;
		const [found, placed] = await Promise.all([this.#store.find(id), this.#placement?.peek(id)]);
		if (!found || !placed || placed.local || found.state !== "live") return undefined;
		if (identity.role !== "guest") {
			if (identity.tenantId !== found.tenantId) return undefined;
			if (identity.meetingScope && identity.meetingScope !== found.id) return undefined;
		}
		return { status: "redirect", meetingId: found.id, redirect: { url: placed.url, node: placed.nodeId } };
	}

	async join(
		conn: Connection,
		req: {
			meetingId: string;
			displayName?: string | undefined;
			passcode?: string | undefined;
			takeOverHostSeat?: boolean | undefined;
			locale?: "en" | "fr" | undefined;
			clientTime?: number | undefined;
		},
	): Promise<JoinAnswer> {
		if (conn.state === "joined") throw new ConflictError("already_joined", "This connection already joined a meeting.");
		const joinStarted = performance.now();
		if (req.clientTime !== undefined) conn.clockOffsetMs = Date.now() - req.clientTime;
		const id = parseMeetingId(req.meetingId);
		// The meeting and (cluster) where it lives, read together: a redirect costs this node one round trip.
		const [found, placed] = id
			? await Promise.all([this.#store.find(id), this.#placement?.peek(id)])
			: [undefined, undefined];
		if (!found) throw new NotFoundError("meeting_not_found", "No meeting has this ID. Check the ID you were given.");
		let meeting: Meeting = found;
		if (placed && !placed.local && found.state === "live") {
			// Lives on another node: everything else (access, passcode, lobby, seat) is decided there.
			if (conn.identity.role !== "guest") TokenVerifier.assertScope(conn.identity, found.tenantId, found.id);
			return { status: "redirect", meetingId: found.id, redirect: { url: placed.url, node: placed.nodeId } };
		}
		if (await this.#access?.meetingDisabled(found.id)) {
			throw new ForbiddenError("meeting_disabled", "The service operator disabled this meeting.");
		}
		if (conn.state === "lobby" && conn.meetingId !== meeting.id) {
			throw new ConflictError("in_another_lobby", "This connection is waiting in another meeting's lobby.");
		}
		const identity = conn.identity;
		const guest = identity.role === "guest";
		if (!guest) TokenVerifier.assertScope(identity, meeting.tenantId, meeting.id);
		const isHost =
			identity.role === "host" && identity.tenantId === meeting.tenantId && identity.subject === meeting.hostSubject;
		const displayName = req.displayName ?? conn.displayName ?? identity.displayName;
		if (!displayName) throw new ConsentryError("name_required", "Enter your name to join.", 400);
		const actor = personKey(conn);

		const limits = this.#access?.limits(meeting.tenantId);
		if (isHost && meeting.state !== "live") {
			await this.assertMayStart(meeting.tenantId);
			meeting = await this.#store.start(meeting.id); // may 409: one live meeting per host
			this.#record("meeting.started", meeting, actor, { via: "join" });
		}
		if (meeting.state !== "live") {
			throw new ConflictError(
				"meeting_not_started",
				"The host has not started this meeting yet. Try again in a moment.",
			);
		}
		if (await this.#store.isRemoved(meeting.id, actor)) {
			throw new ForbiddenError("removed", "The host removed you from this meeting; you cannot rejoin it.");
		}
		// Cluster: the first join places the meeting (least loaded live node); a dead home is taken over here.
		const home = this.#placement ? (placed ?? (await this.#placement.home(meeting.id))) : undefined;
		if (home && !home.local) {
			return { status: "redirect", meetingId: meeting.id, redirect: { url: home.url, node: home.nodeId } };
		}
		if (
			limits?.maxMeetingMinutes !== undefined &&
			meeting.startedAt &&
			Date.now() - Date.parse(meeting.startedAt) > limits.maxMeetingMinutes * 60_000
		) {
			throw new ForbiddenError(
				"meeting_too_long",
				"This meeting ran past its organisation's time limit; nobody new can join.",
			);
		}
		if (guest) {
			if (!meeting.settings.allowGuests || limits?.guests === false) {
				throw new ForbiddenError("guests_not_allowed", "This meeting needs a sign-in link from its organisation.");
			}
			await this.#checkPasscode(conn, meeting, req.passcode, actor);
		}
		const live = this.#liveState(meeting.id);
		// Members of a meeting re-homed here (its node was lost) come back as if returning within the grace period.
		const returning = (live.returning.get(actor) ?? 0) > Date.now();
		if (returning) live.returning.delete(actor);
		if (!isHost && meeting.locked && !returning && !live.admitted.has(conn.peerId)) {
			throw new ForbiddenError("meeting_locked", "The host locked this meeting; nobody new can join.");
		}
		// Waiting in the lobby never takes a seat: the participant cap counts the people in the meeting only, and the
		// lobby has a cap of its own.
		const needsLobby = !isHost && (meeting.settings.lobby || guest) && !returning && !live.admitted.has(conn.peerId);
		if (needsLobby && conn.state !== "lobby" && live.lobby.size >= this.#lobbyMax) {
			throw new ForbiddenError(
				"lobby_full",
				"Too many people are waiting to be let into this meeting right now. Try again in a few minutes.",
			);
		}
		if (
			!isHost &&
			!needsLobby &&
			live.members.size >= Math.min(meeting.settings.maxParticipants, limits?.maxParticipants ?? Infinity)
		) {
			throw new ForbiddenError("meeting_full", "This meeting is full.");
		}

		if (isHost) {
			const holder = req.takeOverHostSeat
				? await this.#seats.takeOver(meeting.tenantId, identity.subject, conn.id, meeting.id)
				: await this.#seats.claim(meeting.tenantId, identity.subject, conn.id, meeting.id);
			if (holder && !req.takeOverHostSeat) {
				this.#record("host_seat.refused", meeting, actor, { connection: conn.id, heldBy: holder.connectionId });
				throw new ConflictError(
					"host_seat_taken",
					"Your host seat is in use on another device. Take it over to continue here (the other device will leave).",
					{ heldSince: holder.takenAt, meetingId: holder.meetingId },
				);
			}
			if (holder) {
				this.#record("host_seat.taken_over", meeting, actor, { from: holder.connectionId, to: conn.id });
				const old = this.#connections.get(holder.connectionId);
				if (old) this.#eject(old, "host_seat_taken_over");
				// The old holder is on another node (or gone): the node holding it ejects it.
				else
					this.#bus
						?.publish({ type: "host_seat.taken_over", connectionId: holder.connectionId })
						.catch((err: unknown) => this.#log.warn({ err }, "could not tell the other nodes of a seat take-over"));
			} else {
				this.#record("host_seat.taken", meeting, actor, { connection: conn.id });
			}
		}

		this.#meetings.set(meeting.id, meeting);
		conn.meetingId = meeting.id;
		conn.displayName = displayName;
		conn.role = isHost ? "host" : guest ? "guest" : "participant";
		if (needsLobby) {
			if (conn.state !== "lobby") {
				conn.state = "lobby";
				live.lobby.set(conn.peerId, { conn, since: new Date().toISOString() });
				this.#record("lobby.entered", meeting, actor, { peerId: conn.peerId, guest });
				this.#notifyLobby(meeting.id);
			}
			return { status: "lobby", peerId: conn.peerId, meeting: this.#info(meeting) };
		}

		if (this.#presence && !this.#present.has(meeting.id)) {
			this.#present.add(meeting.id);
			await this.#presence.enter(meeting.id);
		}
		const room = await this.#rooms.getOrCreate(meeting.id);
		// The operator may have cut this person off (or ended the meeting) while the join was under way.
		const cut = this.#access?.cutOff(identity);
		if (cut === "token_revoked") throw new AuthenticationError(cut, "This token was revoked.");
		if (cut) throw new ForbiddenError(cut, "Your account is suspended by the service operator.");
		if ((this.#endedAt.get(meeting.id) ?? -1) >= joinStarted) {
			throw new ConflictError("meeting_not_started", "The meeting ended while you were joining.");
		}
		if (live.lobby.delete(conn.peerId)) this.#notifyLobby(meeting.id);
		const peer = new Peer({ id: conn.peerId, displayName, role: conn.role, notify: conn.notify });
		room.addPeer(peer);
		conn.state = "joined";
		conn.peer = peer;
		conn.room = room;
		live.members.set(conn.peerId, conn);
		conn.onRoomClose = () => {
			// The media side went away under them (e.g. its worker died): they may rejoin straight away.
			if (conn.identity.role !== "guest") live.returning.set(actor, Date.now() + this.#graceMs);
			live.members.delete(conn.peerId);
			this.#captureLeft(meeting.id, conn.peerId);
			conn.onRoomClose = undefined;
			this.#reset(conn);
		};
		room.once("close", conn.onRoomClose);
		this.#record("person.joined", meeting, actor, { peerId: conn.peerId, role: conn.role });
		// Running sessions' notices come with the join: the client shows them before it publishes anything.
		const { capture, notices, notRecorded } = await this.#capture.joined(meeting, conn, req.locale ?? "en");
		return {
			status: "joined",
			peerId: peer.id,
			role: conn.role,
			meeting: this.#info(meeting),
			routerRtpCapabilities: room.router.rtpCapabilities,
			peers: [...room.peers.values()].filter((p) => p !== peer).map((p) => p.info()),
			lobby: isHost ? this.#lobbyEntries(meeting.id) : [],
			coHosts: [...live.coHosts],
			hands: handQueue(live),
			capture,
			notices,
			...(notRecorded ? { notRecorded } : {}),
			...(isHost && meeting.hasPasscode ? { passcodeLockout: await this.#passcodes.status(meeting.id) } : {}),
			...(this.#placement ? { cluster: { node: this.#placement.nodeId, nodes: this.#placement.nodeUrls() } } : {}),
		};
	}

	/**
	 * A guest's passcode, limited: counted before it is checked (per address with backoff, per meeting with a
	 * lockout the host lifts), every wrong one in the trail, the host told when the lockout begins.
	 */
	async #checkPasscode(conn: Connection, meeting: Meeting, passcode: string | undefined, actor: string): Promise<void> {
		if (!meeting.hasPasscode) return;
		if (!passcode) throw new ForbiddenError("wrong_passcode", "This meeting needs a passcode.");
		const address = conn.address ?? "unknown";
		try {
			await this.#passcodes.reserve(meeting.id, address);
		} catch (err) {
			if (err instanceof PasscodeLockedError && err.lockedNow) await this.#passcodeLocked(meeting, actor);
			throw err;
		}
		if (await this.#store.checkPasscode(meeting.id, passcode)) {
			await this.#passcodes.succeeded(meeting.id, address);
			return;
		}
		const { failures, locked } = await this.#passcodes.failed(meeting.id);
		this.#record("passcode.failed", meeting, actor, { failures });
		if (locked) await this.#passcodeLocked(meeting, actor);
		throw new ForbiddenError("wrong_passcode", "That passcode is not right.");
	}

	async #passcodeLocked(meeting: Meeting, actor: string): Promise<void> {
		const status = await this.#passcodes.status(meeting.id);
		this.#record("passcode.locked", meeting, actor, { failures: status.failures });
		this.#log.warn({ meetingId: meeting.id, failures: status.failures }, "passcode joins locked out");
		this.#notifyHosts(meeting.id, "passcodeLockout", status);
	}

	/** Where the meeting's passcode attempts stand (for its host: REST). */
	passcodeStatus(meetingId: string): Promise<PasscodeLockout> {
		return this.#passcodes.status(meetingId);
	}

	/** Lifts the passcode lockout (the host, over REST or signaling); audited, hosts told. */
	async liftPasscodeLockout(meeting: Meeting, actor: string): Promise<PasscodeLockout> {
		const was = await this.#passcodes.status(meeting.id);
		await this.#passcodes.lift(meeting.id);
		const now = await this.#passcodes.status(meeting.id);
		if (was.locked) {
			this.#record("passcode.unlocked", meeting, actor, { failures: was.failures });
			this.#notifyHosts(meeting.id, "passcodeLockout", now);
			// Cluster: the meeting's hosts may be on another node (a REST call reached this one).
			if (this.#placement && this.#bus)
				this.#bus
					.publish({ type: "passcode.unlocked", meetingId: meeting.id, from: this.#placement.nodeId })
					.catch((err: unknown) => this.#log.warn({ err }, "passcode unlock not sent to the other nodes"));
		}
		return now;
	}

	/** The host lifts the passcode lockout from the meeting. */
	async liftPasscodeLockoutBy(host: Connection): Promise<PasscodeLockout> {
		const { meeting } = await this.#host(host);
		return this.liftPasscodeLockout(meeting, personKey(host));
	}

	/** Leaves at once; the returned promise settles when the host seat (if any) is released in the store. */
	async leave(conn: Connection, clickedAt?: number): Promise<void> {
		const meetingId = conn.meetingId;
		if (!meetingId) return;
		const live = this.#live.get(meetingId);
		if (conn.state === "lobby" && live?.lobby.delete(conn.peerId)) this.#notifyLobby(meetingId);
		if (conn.state === "joined") {
			this.#captureLeft(meetingId, conn.peerId, clickedAt);
			live?.members.delete(conn.peerId);
			live?.coHosts.delete(conn.peerId);
			if (live?.hands.delete(conn.peerId)) this.#notifyHands(live);
			conn.room?.removePeer(conn.peerId);
			const meeting = this.#meetings.get(meetingId);
			if (meeting) this.#record("person.left", meeting, personKey(conn), { peerId: conn.peerId });
		}
		const wasHost = conn.role === "host";
		this.#reset(conn);
		if (live) {
			const now = Date.now();
			for (const [key, until] of live.returning) if (until <= now) live.returning.delete(key);
			if (live.members.size + live.lobby.size + live.admitted.size + live.returning.size === 0) {
				this.#live.delete(meetingId);
				this.#meetings.delete(meetingId);
				this.#absent(meetingId);
			}
		}
		if (wasHost) {
			await this.#seats.release(conn.identity.tenantId, conn.identity.subject, conn.id).catch((err: unknown) => {
				this.#log.warn({ err, connection: conn.id }, "host seat not released (the store is unavailable)");
			});
		}
	}

	/** Screen sharing may be limited to the host; everything else any member may send. */
	assertMaySend(conn: Connection, source: MediaSource): void {
		const { meeting } = this.#member(conn);
		if (source === "screen" && meeting.settings.screenShare === "host" && conn.role !== "host") {
			throw new ForbiddenError("screen_share_not_allowed", "Only the host may share a screen in this meeting.");
		}
	}

	/** Publishes media: allowed sources only, and only once this person has seen any running session's notice. */
	async produce(
		conn: Connection,
		req: { transportId: string; kind: ms.MediaKind; rtpParameters: ms.RtpParameters; source: MediaSource },
	): Promise<{ producerId: string }> {
		this.assertMaySend(conn, req.source);
		const { meeting } = this.#member(conn);
		this.#capture.assertMayProduce(meeting.id, conn.peerId);
		const { peer, room } = this.#media(conn);
		const producerId = await room.produce(peer, req.transportId, req.kind, req.rtpParameters, req.source);
		await this.#capture.producerAdded(meeting.id, conn, peer.producer(producerId));
		return { producerId };
	}

	async pauseProducer(conn: Connection, producerId: string): Promise<void> {
		const { peer } = this.#media(conn);
		await peer.producer(producerId).pause();
		if (conn.meetingId) this.#capture.producerPaused(conn.meetingId, conn.peerId, producerId);
	}

	async resumeProducer(conn: Connection, producerId: string): Promise<void> {
		const { peer } = this.#media(conn);
		const producer = peer.producer(producerId);
		if (conn.meetingId) this.#capture.assertMayResume(conn.meetingId, conn.peerId);
		await producer.resume();
	}

	// Recording and transcription (the notice gate: server/compliance/) -----------------------------------------------

	/** Recording: the host or a co-host they named. Transcription: any member, unless the tenant restricts it likewise. */
	async startCapture(conn: Connection, kind: CaptureKind): Promise<CaptureStatus> {
		const meeting = await this.#captureController(conn, kind);
		if (this.#access?.limits(meeting.tenantId)?.[kind] === false) {
			throw new ForbiddenError(
				`${kind}_not_allowed`,
				`The service operator does not allow ${kind} for this organisation.`,
			);
		}
		return this.#capture.start(meeting, conn, kind);
	}

	async pauseCapture(conn: Connection, kind: CaptureKind, clickedAt?: number): Promise<CaptureStatus> {
		return this.#capture.pause(await this.#captureController(conn, kind), conn, kind, clickedAt);
	}

	async stopCapture(conn: Connection, kind: CaptureKind, clickedAt?: number): Promise<CaptureStatus> {
		return this.#capture.stop(await this.#captureController(conn, kind), conn, kind, "stopped", undefined, clickedAt);
	}

	/** The host names or un-names a co-host. */
	async setCoHost(host: Connection, peerId: string, coHost: boolean): Promise<void> {
		const { meeting, target } = await this.#hostOver(host, peerId);
		if (target === host) throw new ConsentryError("cannot_cohost_self", "You are the host already.", 400);
		const live = this.#liveState(meeting.id);
		if (live.coHosts.has(peerId) === coHost) return;
		if (coHost) live.coHosts.add(peerId);
		else live.coHosts.delete(peerId);
		this.#capture.setController(meeting.id, peerId, coHost);
		this.#record("host.cohost_set", meeting, personKey(host), { peerId, person: personKey(target), coHost });
		for (const m of live.members.values()) m.notify("coHostChanged", { peerId, coHost });
	}

	/** A member raises or lowers their own hand. */
	raiseHand(conn: Connection, raised: boolean): void {
		const { live } = this.#member(conn);
		if (live.hands.has(conn.peerId) === raised) return;
		if (raised) live.hands.set(conn.peerId, new Date().toISOString());
		else live.hands.delete(conn.peerId);
		this.#notifyHands(live);
	}

	/** The host lowers someone's hand. */
	async lowerHand(host: Connection, peerId: string): Promise<void> {
		const { meeting } = await this.#hostOver(host, peerId);
		const live = this.#liveState(meeting.id);
		if (live.hands.delete(peerId)) this.#notifyHands(live);
	}

	#notifyHands(live: LiveState): void {
		const hands = handQueue(live);
		for (const m of live.members.values()) m.notify("handsChanged", { hands });
	}

	// Answers to notices come in bursts (everyone at once when a session starts): they need the connection's
	// meeting, not a fresh read of the meeting from the store.

	// Each answers once the entry it made is committed (answers arriving together share one commit).

	async noticeShown(conn: Connection, noticeId: string): Promise<void> {
		await this.#capture.shown(joinedMeetingId(conn), conn, noticeId);
	}

	async acknowledgeNotice(conn: Connection, noticeId: string, clickedAt?: number): Promise<{ coverage: Coverage }> {
		return { coverage: await this.#capture.acknowledge(joinedMeetingId(conn), conn, noticeId, clickedAt) };
	}

	async consent(conn: Connection, noticeId: string, clickedAt?: number): Promise<{ coverage: Coverage }> {
		return { coverage: await this.#capture.consent(joinedMeetingId(conn), conn, noticeId, clickedAt) };
	}

	/** Declining (or withdrawing) leaves the meeting (the terms' one recourse), unless the tenant lets people stay. */
	async decline(conn: Connection, noticeId: string, clickedAt?: number): Promise<{ stayed: boolean }> {
		const { stayed } = await this.#capture.decline(joinedMeetingId(conn), conn, noticeId, clickedAt);
		if (!stayed) this.#eject(conn, "declined_capture");
		return { stayed };
	}

	chat(conn: Connection, text: string): { id: string } {
		const { meeting } = this.#member(conn);
		if (!meeting.settings.chat) throw new ForbiddenError("chat_disabled", "Chat is off in this meeting.");
		const msg: ChatMessage = {
			id: randomUUID(),
			peerId: conn.peerId,
			displayName: conn.displayName ?? "",
			text,
			at: new Date().toISOString(),
		};
		for (const member of this.#liveState(meeting.id).members.values()) member.notify("chatMessage", msg);
		this.#onChat?.(meeting.id, msg, personKey(conn));
		return { id: msg.id };
	}

	// Host controls ------------------------------------------------------------------------------------------------

	async admit(host: Connection, peerId: string): Promise<void> {
		const { meeting, live } = await this.#host(host);
		const waiting = live.lobby.get(peerId);
		if (!waiting) throw new NotFoundError("not_in_lobby", "That person is no longer waiting.");
		const cap = Math.min(
			meeting.settings.maxParticipants,
			this.#access?.limits(meeting.tenantId)?.maxParticipants ?? Infinity,
		);
		if (live.members.size >= cap) {
			throw new ConflictError("meeting_full", "The meeting is full: someone must leave before you let anyone in.");
		}
		live.admitted.add(peerId);
		live.lobby.delete(peerId);
		this.#record("lobby.admitted", meeting, personKey(host), { peerId, person: personKey(waiting.conn) });
		this.#notifyLobby(meeting.id);
		waiting.conn.state = "idle";
		waiting.conn.notify("admitted");
	}

	async deny(host: Connection, peerId: string): Promise<void> {
		const { meeting, live } = await this.#host(host);
		const waiting = live.lobby.get(peerId);
		if (!waiting) throw new NotFoundError("not_in_lobby", "That person is no longer waiting.");
		this.#record("lobby.denied", meeting, personKey(host), { peerId, person: personKey(waiting.conn) });
		this.#eject(waiting.conn, "denied");
	}

	async lock(host: Connection, locked: boolean): Promise<void> {
		const { meeting, live } = await this.#host(host);
		await this.#store.setLocked(meeting.id, locked);
		this.#meetings.set(meeting.id, { ...meeting, locked });
		this.#record(locked ? "host.locked" : "host.unlocked", meeting, personKey(host), {});
		for (const m of live.members.values()) m.notify("meetingLocked", { locked });
	}

	async mute(host: Connection, peerId: string, kind: ms.MediaKind): Promise<void> {
		const { meeting, target } = await this.#hostOver(host, peerId);
		for (const p of target.peer?.producers.values() ?? []) {
			if (p.kind !== kind || p.appData.source === "screen" || p.paused) continue;
			await p.pause();
			target.notify("mutedByHost", { producerId: p.id, kind });
		}
		this.#record("host.muted", meeting, personKey(host), { peerId, kind });
	}

	async stopScreenShare(host: Connection, peerId: string): Promise<void> {
		const { meeting, target } = await this.#hostOver(host, peerId);
		for (const p of target.peer?.producers.values() ?? []) {
			if (p.appData.source !== "screen") continue;
			p.close();
			target.notify("producerClosed", { producerId: p.id, reason: "host_stopped_share" });
		}
		this.#record("host.stopped_share", meeting, personKey(host), { peerId });
	}

	async remove(host: Connection, peerId: string): Promise<void> {
		const { meeting, live } = await this.#host(host);
		const target = live.members.get(peerId) ?? live.lobby.get(peerId)?.conn;
		if (!target) throw new NotFoundError("peer_not_found", "That person is not in this meeting.");
		if (target === host) throw new ConsentryError("cannot_remove_self", "Use Leave or End meeting instead.", 400);
		await this.#store.markRemoved(meeting.id, personKey(target));
		live.admitted.delete(peerId);
		live.returning.delete(personKey(target));
		this.#record("host.removed", meeting, personKey(host), { peerId, person: personKey(target) });
		this.#eject(target, "removed");
	}

	async endMeeting(host: Connection): Promise<void> {
		const { meeting } = await this.#host(host);
		await this.end(meeting.id, personKey(host));
	}

	/** Throws 409 `tenant_limit_reached` when the tenant holds as many live meetings as the operator allows. */
	async assertMayStart(tenantId: string): Promise<void> {
		const max = this.#access?.limits(tenantId)?.maxLiveMeetings;
		if (max === undefined || !this.#access) return;
		const live = await this.#access.liveMeetings(tenantId);
		if (live >= max) {
			throw new ConflictError(
				"tenant_limit_reached",
				`Your organisation may hold ${max} live meeting${max === 1 ? "" : "s"} at once; end one first.`,
				{ maxLiveMeetings: max },
			);
		}
	}

	/**
	 * Ends a meeting for everyone (host control, REST, the operator). Returns whether it was live. Idempotent: a
	 * meeting another process ended already still loses its people here (the operator's change feed calls this in
	 * every process). `operatorReason`: the operator's words, shown to everyone with the ejection; `captureReason`:
	 * why recordings and transcripts closed (their manifests say it).
	 */
	async end(
		meetingId: string,
		actor: string,
		reason: EjectReason = "meeting_ended",
		operatorReason?: string,
		captureReason = "meeting_ended",
	): Promise<boolean> {
		this.#endedAt.set(meetingId, performance.now());
		if (this.#endedAt.size > 10_000) this.#endedAt.delete(this.#endedAt.keys().next().value as string);
		const ended = await this.#store.end(meetingId);
		// Read before anyone is ejected: from here on nothing waits, so the host who ended it gets the answer before
		// their socket closes (ejected sockets close on the next turn of the event loop).
		const meeting = ended ? await this.#store.get(meetingId) : undefined;
		this.#endHere(meetingId, actor, reason, operatorReason, captureReason);
		this.#placement?.release(meetingId).catch((err: unknown) => {
			this.#log.warn({ err, meetingId }, "meeting placement not released (the store is unavailable)");
		});
		// Cluster: the meeting's room may live on another node (a REST call reached this one): that node acts too.
		if (this.#placement && this.#bus && (reason === "meeting_ended" || reason === "operator"))
			this.#bus
				.publish({
					type: "meeting.ended",
					meetingId,
					from: this.#placement.nodeId,
					actor,
					reason,
					...(operatorReason !== undefined ? { operatorReason } : {}),
					captureReason,
				})
				.catch((err: unknown) => this.#log.warn({ err, meetingId }, "meeting end not sent to the other nodes"));
		if (meeting)
			this.#record("meeting.ended", meeting, actor, {
				reason,
				...(operatorReason !== undefined ? { operatorReason } : {}),
			});
		return ended;
	}

	/** What ending a meeting does on this node: its people and those waiting ejected, captures ended, room closed. */
	#endHere(
		meetingId: string,
		actor: string,
		reason: EjectReason,
		operatorReason: string | undefined,
		captureReason: string,
	): void {
		this.#endedAt.set(meetingId, performance.now());
		const live = this.#live.get(meetingId);
		if (live) {
			for (const c of [...live.members.values(), ...[...live.lobby.values()].map((l) => l.conn)])
				this.#eject(c, reason, operatorReason);
			this.#live.delete(meetingId);
		}
		this.#meetings.delete(meetingId);
		this.#absent(meetingId);
		this.#capture
			.ended(meetingId, actor, captureReason)
			.catch((err: unknown) => this.#log.error({ err, meetingId }, "could not record the end of capture"));
		this.#rooms.get(meetingId)?.close();
	}

	/** Ejects every connection of this process whose identity matches (the operator cut them off). Returns how many. */
	ejectWhere(
		match: (identity: Connection["identity"]) => boolean,
		reason: EjectReason,
		operatorReason?: string,
	): number {
		let n = 0;
		for (const c of [...this.#connections.values()]) {
			if (!match(c.identity)) continue;
			this.#eject(c, reason, operatorReason);
			n++;
		}
		return n;
	}

	/**
	 * Cluster: this node became the home of a meeting whose node was lost. The people who were in it there (person
	 * keys; not guests, who have no stable identity) come back within the grace period without the lobby or the lock
	 * stopping them, as after a drop-out. Nobody else does.
	 */
	rehomed(meetingId: string, persons: readonly string[]): void {
		const live = this.#liveState(meetingId);
		for (const p of persons) live.returning.set(p, Date.now() + this.#graceMs);
	}

	/**
	 * Cluster fencing (issue 12): this node has not reached the store for the dead time, so another node may already
	 * be the home of its meetings. Every room here closes: its people (and those waiting) are ejected with
	 * `node_fenced` (the client reconnects through the nodes it knows and lands on the meeting's home), running
	 * captures end here (the new home continues them). Nothing is written to the store from here: the meeting is not
	 * ended and nobody "left" it. Returns the meetings closed.
	 */
	fence(): string[] {
		const ids = [
			...new Set([...this.#live.keys(), ...this.#meetings.keys(), ...this.#rooms.live().map((r) => r.meetingId)]),
		];
		for (const meetingId of ids) {
			const live = this.#live.get(meetingId);
			this.#meetings.delete(meetingId); // unknown here from now on: nothing is recorded for it by this node
			this.#live.delete(meetingId);
			this.#present.delete(meetingId);
			this.#capture.fenced(meetingId);
			for (const c of [...(live?.members.values() ?? []), ...[...(live?.lobby.values() ?? [])].map((l) => l.conn)])
				this.#eject(c, "node_fenced");
			this.#rooms.get(meetingId)?.close();
		}
		if (ids.length) this.#log.error({ meetings: ids }, "fenced: rooms closed, their people sent to the other nodes");
		return ids;
	}

	/** Meetings this process has people in (or waiting), with how many are in each. */
	localMeetings(): { meeting: Meeting; members: number; lobby: number }[] {
		return [...this.#meetings.values()].map((meeting) => {
			const live = this.#live.get(meeting.id);
			return { meeting, members: live?.members.size ?? 0, lobby: live?.lobby.size ?? 0 };
		});
	}

	get #nodeId(): string | undefined {
		return this.#placement?.nodeId;
	}

	#absent(meetingId: string): void {
		if (!this.#present.delete(meetingId)) return;
		this.#presence?.leave(meetingId).catch((err: unknown) => {
			this.#log.warn({ err, meetingId }, "meeting presence not cleared (the store is unavailable)");
		});
	}

	/** Who is waiting in a meeting's lobby (for hosts). */
	#lobbyEntries(meetingId: string): LobbyEntry[] {
		const live = this.#live.get(meetingId);
		return [...(live?.lobby.values() ?? [])].map(({ conn, since }) => ({
			peerId: conn.peerId,
			displayName: conn.displayName ?? "",
			guest: conn.identity.role === "guest",
			since,
		}));
	}

	#notifyHosts(meetingId: string, event: "passcodeLockout", payload: PasscodeLockout): void {
		const live = this.#live.get(meetingId);
		for (const m of live?.members.values() ?? []) if (m.role === "host") m.notify(event, payload);
	}

	#notifyLobby(meetingId: string): void {
		const live = this.#live.get(meetingId);
		if (!live) return;
		const waiting = this.#lobbyEntries(meetingId);
		for (const m of live.members.values()) if (m.role === "host") m.notify("lobbyChanged", { waiting });
	}

	#eject(conn: Connection, reason: EjectReason, operatorReason?: string): void {
		conn.notify("ejected", {
			reason,
			message: EJECT_MESSAGES[reason],
			...(operatorReason !== undefined ? { operatorReason } : {}),
		});
		void this.leave(conn);
		conn.disconnect();
	}

	#reset(conn: Connection): void {
		if (conn.room && conn.onRoomClose) conn.room.off("close", conn.onRoomClose);
		conn.onRoomClose = undefined;
		conn.state = "idle";
		conn.peer = undefined;
		conn.room = undefined;
	}

	#liveState(meetingId: string): LiveState {
		let s = this.#live.get(meetingId);
		if (!s) {
			s = {
				members: new Map(),
				lobby: new Map(),
				admitted: new Set(),
				returning: new Map(),
				coHosts: new Set(),
				hands: new Map(),
			};
			this.#live.set(meetingId, s);
		}
		return s;
	}

	#member(conn: Connection): { meeting: Meeting; live: LiveState } {
		if (conn.state !== "joined" || !conn.meetingId)
			throw new ConsentryError("not_joined", "Join a meeting first.", 409);
		// The meeting as this process last read it (at a join, kept up to date by its lock/end): what members do
		// needs its settings and identity, which never change, not a fresh read of the store.
		const meeting = this.#meetings.get(conn.meetingId);
		if (!meeting) throw new ConsentryError("not_joined", "Join a meeting first.", 409);
		return { meeting, live: this.#liveState(conn.meetingId) };
	}

	async #captureController(conn: Connection, kind: CaptureKind): Promise<Meeting> {
		const { meeting, live } = this.#member(conn);
		if (this.#capture.starters(meeting, kind) === "all") return meeting;
		if (live.coHosts.has(conn.peerId)) return meeting;
		if (conn.role !== "host") {
			throw new ForbiddenError("host_only", `Only the host, or a co-host the host named, can turn ${kind} on or off.`);
		}
		return (await this.#host(conn)).meeting;
	}

	#media(conn: Connection): { peer: Peer; room: NonNullable<Connection["room"]> } {
		if (conn.state !== "joined" || !conn.peer || !conn.room || conn.room.closed) {
			throw new ConsentryError("not_joined", "Join a meeting first.", 409);
		}
		return { peer: conn.peer, room: conn.room };
	}

	async #host(conn: Connection): Promise<{ meeting: Meeting; live: LiveState }> {
		const m = this.#member(conn);
		if (conn.role !== "host") throw new ForbiddenError("host_only", "Only the host can do that.");
		// The seat may have moved to another device, possibly on another gateway process sharing the store.
		if ((await this.#seats.holder(conn.identity.tenantId, conn.identity.subject))?.connectionId !== conn.id) {
			throw new ForbiddenError("host_seat_taken_over", "Your host seat was taken over on another device.");
		}
		return m;
	}

	async #hostOver(host: Connection, peerId: string): Promise<{ meeting: Meeting; target: Connection }> {
		const { meeting, live } = await this.#host(host);
		const target = live.members.get(peerId);
		if (!target) throw new NotFoundError("peer_not_found", "That person is not in this meeting.");
		return { meeting, target };
	}

	#info(m: Meeting): MeetingInfo {
		return {
			id: m.id,
			joinCode: formatMeetingId(m.id),
			title: m.title,
			locked: m.locked,
			chat: m.settings.chat,
			screenShare: m.settings.screenShare,
		};
	}

	/**
	 * Appends a meetings-core entry (not a gate decision: nothing waits for it). Entries of this process land in
	 * the chain in call order, before the capture entries that follow them; a failure is logged.
	 */
	/** The person is out of the capture at once (taps closed); the trail's entries follow, a failure logged. */
	#captureLeft(meetingId: string, peerId: string, clickedAt?: number): void {
		this.#capture
			.left(meetingId, peerId, clickedAt)
			.catch((err: unknown) => this.#log.error({ err, meetingId }, "could not record a person leaving the capture"));
	}

	#record(type: EventType, meeting: Meeting, actor: string, data: Record<string, unknown>): void {
		this.#events
			.append(type, { tenantId: meeting.tenantId, meetingId: meeting.id, actor, data })
			.catch((err: unknown) =>
				this.#log.error({ err, type, meetingId: meeting.id }, "could not append an audit entry"),
			);
		this.#log.debug({ type, meetingId: meeting.id, actor }, "event");
	}
}

function joinedMeetingId(conn: Connection): string {
	if (conn.state !== "joined" || !conn.meetingId) throw new ConsentryError("not_joined", "Join a meeting first.", 409);
	return conn.meetingId;
}

function handQueue(live: LiveState): { peerId: string; since: string }[] {
	return [...live.hands].map(([peerId, since]) => ({ peerId, since }));
}

import type {
	ConnectionQuality,
	JoinResult,
	LobbyEntry,
	MediaSource,
	MeetingInfo,
	PeerInfo,
	PeerRole,
	RaisedHand,
} from "../../../shared/protocol.js";
import { $, h } from "../dom.js";
import { errorText } from "../errors.js";
import { type MessageKey, onLocaleChange, t } from "../i18n/index.js";
import { fillDevices } from "../JoinView.js";
import { describeMediaError, LevelMeter, type LocalMedia } from "../LocalMedia.js";
import { MeetingSession, type RemoteTrack } from "../MeetingSession.js";
import { type Signaling, SignalingError } from "../Signaling.js";
import { Captions } from "./Captions.js";
import { Capture } from "./Capture.js";
import { Chat } from "./Chat.js";
import { Grid, type GridLayout, type TileSource } from "./Grid.js";
import { MutedHint } from "./MutedHint.js";
import { People, type Person } from "./People.js";

type Joined = Extract<JoinResult, { status: "joined" }>;

interface RemotePerson {
	id: string;
	displayName: string;
	role: PeerRole;
	mic?: RemoteTrack;
	camera?: RemoteTrack;
	screen?: RemoteTrack;
}

export interface MeetingHooks {
	/** The person pressed Leave. */
	leave(): void;
	/** The person declined a recording/transcription notice: the gateway is about to eject them. */
	declined(): void;
	/** The media connection failed for good: leave and join again. */
	mediaFailed(): void;
}

/** `produce` refusals that mean "answer the recording notice first". */
const GATED = new Set(["notice_pending", "consent_required"]);

const LAYOUT_KEY = "consentry.layout";

/** The video grid lives as long as the page (its pager and size watch): one instance for every meeting joined. */
let sharedGrid: Grid | undefined;
const gridPanel = (): Grid => {
	sharedGrid ??= new Grid($("#grid"), {
		nav: $("#grid-pager"),
		prev: $<HTMLButtonElement>("#page-prev"),
		next: $<HTMLButtonElement>("#page-next"),
		label: $("#page-label"),
	});
	return sharedGrid;
};

/** The chat panel's listeners live as long as the page: one instance for every meeting joined. */
let sharedChat: Chat | undefined;
const chatPanel = (): Chat => {
	sharedChat ??= new Chat($("#meeting-screen"));
	return sharedChat;
};

/**
 * One membership of a meeting as the person sees it: the grid, the toolbar (mic, camera, screen,
 * leave; lock and end for the host), the participant and lobby lists, chat and notices. Built
 * right after a `join` answered `joined`; `close()` tears everything down (the caller handles
 * the signaling connection).
 */
export class Meeting {
	readonly #signaling: Signaling;
	readonly #media: LocalMedia;
	readonly #hooks: MeetingHooks;
	readonly #selfId: string;
	readonly #role: PeerRole;
	readonly #selfName: string;
	readonly #info: MeetingInfo;
	readonly #routerRtpCapabilities: unknown;
	readonly #peers = new Map<string, RemotePerson>();
	/** Peer IDs the host named co-host. */
	readonly #coHosts = new Set<string>();
	readonly #grid = gridPanel();
	readonly #captions = new Captions();
	readonly #people: People;
	readonly #chat = chatPanel();
	readonly #capture: Capture;
	readonly #abort = new AbortController();
	readonly #unsubscribe: (() => void)[] = [];
	#session: MeetingSession | undefined;
	#screenTrack: MediaStreamTrack | undefined;
	#locked: boolean;
	#lobby: LobbyEntry[] = [];
	#hands: RaisedHand[] = [];
	/** Who declined a running session and stayed (peer IDs): shown as not recorded. */
	#notRecorded = new Set<string>();
	/** Each person's connection quality (this person's too), as the gateway measures it. */
	readonly #quality = new Map<string, ConnectionQuality>();
	#busy = new Set<string>();
	/** The host's "X is waiting in the lobby" notices, taken down once X is no longer waiting. */
	readonly #lobbyNotices = new Map<string, HTMLElement>();
	#statusKey: MessageKey | undefined;
	readonly #deviceMeter = new LevelMeter($<HTMLMeterElement>("#meeting-mic-level"));
	readonly #mutedHint = new MutedHint();
	#closed = false;
	/** Until `start()` finished, the status says "Joining…" whatever the transports do. */
	#started = false;

	/** Subscribes to the meeting's events at once (call this right after the `join` answer). */
	constructor(signaling: Signaling, joined: Joined, displayName: string, media: LocalMedia, hooks: MeetingHooks) {
		this.#signaling = signaling;
		this.#media = media;
		this.#hooks = hooks;
		this.#selfId = joined.peerId;
		this.#role = joined.role;
		this.#selfName = displayName;
		this.#info = joined.meeting;
		this.#routerRtpCapabilities = joined.routerRtpCapabilities;
		this.#locked = joined.meeting.locked;
		this.#people = new People($("#participants"), $("#lobby-panel"), $("#lobby-list"), {
			mute: (p, kind) => void this.#hostRequest(() => this.#signaling.request("mute", { peerId: p.id, kind })),
			stopScreenShare: (p) =>
				void this.#hostRequest(() => this.#signaling.request("stopScreenShare", { peerId: p.id })),
			remove: (p) => void this.#remove(p),
			setCoHost: (p, coHost) =>
				void this.#hostRequest(() => this.#signaling.request("setCoHost", { peerId: p.id, coHost })),
			admit: (e) => void this.#hostRequest(() => this.#signaling.request("admit", { peerId: e.peerId })),
			deny: (e) => void this.#hostRequest(() => this.#signaling.request("deny", { peerId: e.peerId })),
			lowerHand: (peerId) => void this.#hostRequest(() => this.#signaling.request("lowerHand", { peerId })),
		});
		this.#people.isHost = this.#role === "host";
		for (const p of joined.peers) {
			this.#peers.set(p.id, { id: p.id, displayName: p.displayName, role: p.role });
			if (p.quality) this.#quality.set(p.id, p.quality);
		}
		this.#lobby = joined.lobby;
		for (const id of joined.coHosts ?? []) this.#coHosts.add(id);
		this.#hands = joined.hands ?? [];
		for (const n of joined.notRecorded ?? []) this.#notRecorded.add(n.peerId);
		this.#capture = new Capture(signaling, joined, { declined: () => this.#hooks.declined() });
		this.#grid.onView = (peerId, source) => this.#applyView(peerId, source);
		this.#grid.setLayout(savedLayout());
		this.#subscribe();
	}

	/** Opens the media session, publishes the wanted microphone and camera, and shows the meeting. */
	async start(): Promise<void> {
		this.#renderShell();
		this.#status("meeting.status.joining");
		// A running recording's notice goes on screen first: nothing is published before it is answered.
		this.#capture.start();
		this.#session = await MeetingSession.start(this.#signaling, this.#routerRtpCapabilities, {
			trackAdded: (r) => this.#trackAdded(r),
			trackRemoved: (r) => this.#trackRemoved(r),
			trackPaused: (r) => this.#refresh(r.peerId),
			connectionState: (_d, state) => this.#connectionState(state),
		});
		if (this.#closed) {
			this.#session.close();
			return;
		}
		if (this.#capture.pending) this.#status("meeting.status.answerNotice");
		if (!(await this.#capture.settled()) || this.#closed) return;
		await this.#publishInitial();
		if (this.#closed) return;
		this.#started = true;
		this.#renderToolbar();
		this.#status("meeting.status.connected");
	}

	/** Tears down media and UI; safe to call more than once. */
	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		for (const off of this.#unsubscribe) off();
		this.#abort.abort();
		this.#capture.close();
		this.#captions.clear();
		this.#session?.close();
		this.#screenTrack?.stop();
		this.#screenTrack = undefined;
		this.#grid.clear();
		this.#people.clear();
		$("#hands-panel").hidden = true;
		$("#hands-list").replaceChildren();
		this.#chat.stop();
		$("#notices").replaceChildren();
		this.#lobbyNotices.clear();
		const dialog = $<HTMLDialogElement>("#confirm-dialog");
		if (dialog.open) dialog.close("cancel");
		const devices = $<HTMLDialogElement>("#devices-dialog");
		if (devices.open) devices.close();
		this.#deviceMeter.stop();
		this.#mutedHint.close();
		$("#meeting-screen").removeAttribute("data-interrupted");
		this.#status(undefined);
	}

	/** Says `leave` to the gateway, then closes. */
	async leave(): Promise<void> {
		const clickedAt = Date.now(); // the click on "Leave": nothing of this person captured after it is kept
		if (this.#signaling.open) await this.#signaling.request("leave", { clickedAt }, 3000).catch(() => undefined);
		this.close();
	}

	// Setup ---------------------------------------------------------------------------------------------------

	#subscribe(): void {
		const s = this.#signaling;
		this.#unsubscribe.push(
			s.on("peerJoined", (p) => this.#peerJoined(p)),
			s.on("peerLeft", ({ peerId }) => this.#peerLeft(peerId)),
			s.on("activeSpeaker", ({ peerId }) => {
				this.#grid.setSpeaker(peerId);
				this.#people.setSpeaker(peerId);
			}),
			s.on("chatMessage", (m) => this.#chat.add(m)),
			s.on("chatRemoved", ({ id }) => this.#chat.remove(id)),
			s.on("caption", (c) => this.#captions.add(c)),
			s.on("transcriptLink", ({ path }) => this.#captions.link(path)),
			s.on("lobbyChanged", ({ waiting }) => this.#lobbyChanged(waiting)),
			s.on("meetingLocked", ({ locked }) => {
				if (locked !== this.#locked) this.#notice(t(locked ? "notice.locked" : "notice.unlocked"));
				this.#locked = locked;
				this.#renderToolbar();
			}),
			s.on("handsChanged", ({ hands }) => this.#handsChanged(hands)),
			s.on("notRecorded", ({ persons }) => {
				const before = new Set(this.#notRecorded);
				this.#notRecorded = new Set(persons.map((n) => n.peerId));
				for (const id of new Set([...before, ...this.#notRecorded])) {
					if (id === this.#selfId) this.#refreshSelf();
					else this.#refresh(id);
				}
			}),
			s.on("connectionQuality", ({ peerId, quality }) => {
				this.#quality.set(peerId, quality);
				if (peerId === this.#selfId) this.#refreshSelf();
				else this.#refresh(peerId);
			}),
			s.on("mutedByHost", ({ producerId, kind }) => void this.#mutedByHost(producerId, kind)),
			s.on("coHostChanged", ({ peerId, coHost }) => {
				if (coHost) this.#coHosts.add(peerId);
				else this.#coHosts.delete(peerId);
				if (peerId === this.#selfId) {
					this.#notice(t(coHost ? "notice.madeCoHost" : "notice.noLongerCoHost"));
					this.#capture.setController(coHost);
					this.#refreshSelf();
				} else this.#refresh(peerId);
			}),
			s.on("producerClosed", ({ producerId }) => {
				if (this.#session?.producerSource(producerId) !== "screen") return;
				this.#notice(t("notice.screenStopped"));
				void this.#once("screen", () => this.#stopScreen());
			}),
			onLocaleChange(() => this.#relabel()),
		);
	}

	/** The language changed: every text this class wrote is written again. */
	#relabel(): void {
		if (this.#closed) return;
		this.#renderTitle();
		this.#grid.person(this.#selfId, this.#selfName, true);
		for (const p of this.#peers.values()) {
			this.#grid.person(p.id, p.displayName);
			this.#refresh(p.id);
		}
		if (this.#screenTrack) this.#grid.relabelScreen(this.#selfId, t("grid.yourScreen"));
		for (const p of this.#peers.values()) {
			if (p.screen) this.#grid.relabelScreen(p.id, t("grid.screenOf", { name: p.displayName }));
		}
		this.#people.renderLobby(this.#lobby);
		this.#renderHands();
		this.#refreshSelf();
		this.#status(this.#statusKey);
	}

	#renderTitle(): void {
		$("#meeting-title").textContent = this.#info.title;
		$("#meeting-code").textContent = t("meeting.code", { code: this.#info.joinCode });
		document.title = t("page.meetingTitle", { title: this.#info.title });
	}

	#renderShell(): void {
		this.#renderTitle();
		this.#grid.person(this.#selfId, this.#selfName, true);
		for (const p of this.#peers.values()) {
			this.#grid.person(p.id, p.displayName);
			this.#refresh(p.id);
		}
		this.#refreshSelf();
		this.#people.renderLobby(this.#lobby);
		this.#renderHands();
		this.#chat.start(this.#selfId, this.#info.chat, (text) => this.#signaling.request("chat", { text }));
		const on = (id: string, fn: () => unknown) =>
			$(id).addEventListener("click", () => void fn(), { signal: this.#abort.signal });
		on("#mic-button", () => this.#once("mic", () => this.#toggleMic()));
		on("#camera-button", () => this.#once("camera", () => this.#toggleCamera()));
		on("#screen-button", () =>
			this.#once("screen", () => (this.#screenTrack ? this.#stopScreen() : this.#shareScreen())),
		);
		on("#lock-button", () =>
			this.#once("lock", () =>
				this.#hostRequest(async () => {
					const locked = !this.#locked;
					await this.#signaling.request("lock", { locked });
					this.#locked = locked;
					this.#renderToolbar();
				}),
			),
		);
		on("#end-button", () => this.#endForAll());
		on("#devices-button", () => void this.#openDevices());
		const change = (id: string, fn: (value: string) => Promise<void>) =>
			$<HTMLSelectElement>(id).addEventListener(
				"change",
				(ev) => void this.#once("devices", () => fn((ev.target as HTMLSelectElement).value)),
				{ signal: this.#abort.signal },
			);
		change("#meeting-camera-select", (id) => this.#switchCamera(id));
		change("#meeting-mic-select", (id) => this.#switchMic(id));
		change("#meeting-speaker-select", async (id) => {
			this.#media.speakerDeviceId = id;
			await this.#grid.setSinkId(id);
		});
		$("#devices-dialog").addEventListener("close", () => this.#deviceMeter.stop(), { signal: this.#abort.signal });
		on("#hand-button", () =>
			this.#once("hand", () => this.#signaling.request("raiseHand", { raised: !this.#handUp() }).then(() => undefined)),
		);
		on("#layout-button", () => {
			const layout = this.#grid.layout === "grid" ? "speaker" : "grid";
			this.#grid.setLayout(layout);
			try {
				localStorage.setItem(LAYOUT_KEY, layout);
			} catch {
				// storage may be disabled: the choice holds for this meeting
			}
			this.#renderToolbar();
		});
		on("#leave-button", () => this.#hooks.leave());
		this.#renderToolbar();
	}

	async #publishInitial(): Promise<void> {
		const session = this.#session;
		if (!session) return;
		const errors: string[] = [];
		if (this.#media.micWanted && this.#media.mic && session.canSend("audio")) {
			await this.#publish("mic", this.#media.mic).catch((err: unknown) => errors.push(errorText(err)));
		}
		if (this.#media.cameraWanted && this.#media.camera && session.canSend("video")) {
			await this.#publish("camera", this.#media.camera).catch((err: unknown) => errors.push(errorText(err)));
		}
		for (const e of errors) this.#notice(t("notice.sendFailed", { message: e }));
		this.#refreshSelf();
	}

	/**
	 * Publishes a source. The gateway refuses it while a recording notice waits for this person's
	 * answer (a session may start between the join and now): wait for the answer, then try once more.
	 */
	async #publish(source: MediaSource, track: MediaStreamTrack): Promise<void> {
		const session = this.#session;
		if (!session) return;
		try {
			await session.publish(source, track);
		} catch (err) {
			if (!(err instanceof SignalingError && GATED.has(err.code))) throw err;
			if (!(await this.#capture.settled()) || this.#closed) return;
			await session.publish(source, track);
		}
	}

	/** The gateway holds this source until the person consents: it can't be turned back on meanwhile. */
	#held(source: MediaSource): boolean {
		const p = this.#session?.producer(source);
		if (!p || !this.#capture.isHeld(p.id)) return false;
		this.#notice(t(`notice.held.${source}`));
		return true;
	}

	#pausedByUs(source: MediaSource): void {
		const p = this.#session?.producer(source);
		if (p) this.#capture.pausedByUs(p.id);
	}

	// Remote people -----------------------------------------------------------------------------------------

	#peerJoined(p: PeerInfo): void {
		if (p.id === this.#selfId) return;
		const existing = this.#peers.get(p.id);
		this.#peers.set(p.id, { ...existing, id: p.id, displayName: p.displayName, role: p.role });
		this.#grid.person(p.id, p.displayName);
		this.#refresh(p.id);
	}

	#peerLeft(peerId: string): void {
		this.#peers.delete(peerId);
		this.#quality.delete(peerId);
		this.#grid.removePerson(peerId);
		this.#people.remove(peerId);
	}

	#trackAdded(r: RemoteTrack): void {
		let p = this.#peers.get(r.peerId);
		if (!p) {
			p = { id: r.peerId, displayName: "…", role: "participant" }; // the name follows with peerJoined
			this.#peers.set(r.peerId, p);
			this.#grid.person(p.id, p.displayName);
		}
		p[r.source] = r;
		if (r.source === "screen") this.#grid.screen(p.id, t("grid.screenOf", { name: p.displayName }), r.track);
		else this.#grid.setTrack(p.id, "camera", r.kind, r.track);
		this.#applyView(p.id, r.source === "screen" ? "screen" : "camera");
		this.#refresh(p.id);
	}

	#trackRemoved(r: RemoteTrack): void {
		const p = this.#peers.get(r.peerId);
		if (!p || p[r.source]?.consumerId !== r.consumerId) return;
		delete p[r.source];
		if (r.source === "screen") this.#grid.removeScreen(p.id);
		else this.#grid.setTrack(p.id, "camera", r.kind, undefined);
		this.#refresh(p.id);
	}

	/** Receives a person's video only while its tile is on screen, at the layer the tile's size needs. */
	#applyView(peerId: string, source: TileSource): void {
		const p = this.#peers.get(peerId);
		const track = source === "screen" ? p?.screen : p?.camera;
		const view = this.#grid.view(peerId, source);
		if (track?.kind !== "video" || !view) return;
		this.#session?.view(track.consumerId, view.visible, view.layer);
	}

	#refresh(peerId: string): void {
		const p = this.#peers.get(peerId);
		if (!p) return;
		const person: Person = {
			id: p.id,
			displayName: p.displayName,
			role: p.role,
			self: false,
			mic: !!p.mic && !p.mic.paused,
			camera: !!p.camera && !p.camera.paused,
			screen: !!p.screen,
			coHost: this.#coHosts.has(p.id),
			hand: this.#hands.some((e) => e.peerId === p.id),
			quality: this.#quality.get(p.id),
			notRecorded: this.#notRecorded.has(p.id),
		};
		this.#grid.setHand(p.id, person.hand ?? false);
		const quality = this.#quality.get(p.id);
		if (quality) this.#grid.setQuality(p.id, quality);
		this.#grid.setMicOff(p.id, !person.mic);
		this.#grid.setVideoOff(p.id, !person.camera);
		this.#people.render(person);
	}

	// Devices during the meeting -------------------------------------------------------------------------------

	async #openDevices(): Promise<void> {
		const dialog = $<HTMLDialogElement>("#devices-dialog");
		$("#devices-error").textContent = "";
		await this.#fillDevices();
		const speaker = $("#speaker-field");
		speaker.hidden =
			!("setSinkId" in HTMLMediaElement.prototype) || !$<HTMLSelectElement>("#meeting-speaker-select").options.length;
		this.#deviceMeter.watch(this.#media.mic);
		if (!dialog.open) dialog.showModal();
	}

	async #fillDevices(): Promise<void> {
		await fillDevices(this.#media, $("#meeting-camera-select"), "videoinput", this.#media.cameraDeviceId);
		await fillDevices(this.#media, $("#meeting-mic-select"), "audioinput", this.#media.micDeviceId);
		await fillDevices(this.#media, $("#meeting-speaker-select"), "audiooutput", this.#media.speakerDeviceId);
	}

	/** Another camera: sent in place of the old one (same producer) if the camera is on, else used when it is turned on. */
	async #switchCamera(deviceId: string): Promise<void> {
		this.#media.cameraDeviceId = deviceId;
		if (!this.#cameraOn()) return;
		let opened: Awaited<ReturnType<LocalMedia["open2"]>>;
		try {
			opened = await this.#media.open2("camera", deviceId);
		} catch (err) {
			$("#devices-error").textContent = describeMediaError(err, "camera");
			return;
		}
		await this.#session?.replaceTrack("camera", opened.track);
		opened.retire();
		this.#refreshSelf();
	}

	/** Another microphone: sent in place of the old one; a muted microphone stays muted. */
	async #switchMic(deviceId: string): Promise<void> {
		this.#media.micDeviceId = deviceId;
		if (!this.#media.mic && !this.#session?.producer("mic")) return;
		let opened: Awaited<ReturnType<LocalMedia["open2"]>>;
		try {
			opened = await this.#media.open2("mic", deviceId);
		} catch (err) {
			$("#devices-error").textContent = describeMediaError(err, "microphone");
			return;
		}
		const track = opened.track;
		const producer = this.#session?.producer("mic");
		if (producer) {
			if (producer.paused) track.enabled = false;
			await this.#session?.replaceTrack("mic", track);
		}
		opened.retire();
		this.#deviceMeter.watch(track);
		this.#refreshSelf();
	}

	#handUp(): boolean {
		return this.#hands.some((e) => e.peerId === this.#selfId);
	}

	#handsChanged(hands: RaisedHand[]): void {
		const before = new Set(this.#hands.map((e) => e.peerId));
		const now = new Set(hands.map((e) => e.peerId));
		this.#hands = hands;
		if (this.#role === "host") {
			for (const e of hands) {
				if (!before.has(e.peerId) && e.peerId !== this.#selfId)
					this.#notice(t("notice.handRaised", { name: this.#nameOf(e.peerId) }));
			}
		}
		for (const id of new Set([...before, ...now])) {
			if (id === this.#selfId) continue;
			this.#refresh(id);
		}
		this.#renderHands();
		this.#refreshSelf();
	}

	#nameOf(peerId: string): string {
		return peerId === this.#selfId ? this.#selfName : (this.#peers.get(peerId)?.displayName ?? "…");
	}

	#renderHands(): void {
		this.#people.renderHands(
			$("#hands-panel"),
			$("#hands-list"),
			this.#hands.map((e) => ({ ...e, name: this.#nameOf(e.peerId) })),
		);
	}

	#lobbyChanged(waiting: LobbyEntry[]): void {
		const before = new Set(this.#lobby.map((e) => e.peerId));
		const now = new Set(waiting.map((e) => e.peerId));
		this.#lobby = waiting;
		this.#people.renderLobby(waiting);
		// Admitted, denied or gone: their "is waiting" notice goes too.
		for (const [peerId, item] of this.#lobbyNotices) {
			if (now.has(peerId)) continue;
			item.remove();
			this.#lobbyNotices.delete(peerId);
		}
		if (this.#role !== "host") return;
		for (const e of waiting) {
			if (before.has(e.peerId)) continue;
			const item = this.#notice(t("notice.waiting", { name: e.displayName }), () =>
				this.#lobbyNotices.delete(e.peerId),
			);
			if (item) this.#lobbyNotices.set(e.peerId, item);
		}
	}

	// This person's own media -----------------------------------------------------------------------------------

	#micOn(): boolean {
		const p = this.#session?.producer("mic");
		return !!p && !p.paused;
	}

	#cameraOn(): boolean {
		const p = this.#session?.producer("camera");
		return !!p && !p.paused && !!p.track;
	}

	async #toggleMic(): Promise<void> {
		const session = this.#session;
		if (!session) return;
		if (this.#micOn()) {
			this.#media.micWanted = false;
			await session.pause("mic");
			this.#pausedByUs("mic");
		} else {
			this.#media.micWanted = true;
			let track = this.#media.mic;
			if (!track || track.readyState === "ended") {
				try {
					track = await this.#media.startMic();
				} catch (err) {
					this.#media.micWanted = false;
					this.#notice(describeMediaError(err, "microphone"));
					return;
				}
			}
			const producer = session.producer("mic");
			if (producer) {
				if (this.#held("mic")) return;
				if (producer.track !== track) await session.replaceTrack("mic", track);
				await session.resume("mic");
			} else {
				await this.#publish("mic", track);
			}
		}
		this.#refreshSelf();
	}

	async #toggleCamera(): Promise<void> {
		const session = this.#session;
		if (!session) return;
		if (this.#cameraOn()) {
			this.#media.cameraWanted = false;
			await this.#cameraOff();
		} else {
			if (this.#held("camera")) return;
			this.#media.cameraWanted = true;
			let track: MediaStreamTrack;
			try {
				track = await this.#media.startCamera();
			} catch (err) {
				this.#media.cameraWanted = false;
				this.#notice(describeMediaError(err, "camera"));
				return;
			}
			if (session.producer("camera")) {
				await session.replaceTrack("camera", track);
				await session.resume("camera");
			} else {
				await this.#publish("camera", track);
			}
		}
		this.#refreshSelf();
	}

	/** Camera off: nobody receives it any more and the camera itself stops (its light goes off). */
	async #cameraOff(serverPaused = false): Promise<void> {
		const session = this.#session;
		if (session && !serverPaused) {
			await session.pause("camera");
			this.#pausedByUs("camera");
		}
		await session?.replaceTrack("camera", null);
		this.#media.stopCamera();
		this.#refreshSelf();
	}

	async #mutedByHost(producerId: string, kind: "audio" | "video"): Promise<void> {
		const source = this.#session?.pausedByServer(producerId);
		if (!source) return;
		if (kind === "audio") {
			this.#media.micWanted = false;
			this.#notice(t("notice.mutedByHost"));
		} else {
			this.#media.cameraWanted = false;
			this.#notice(t("notice.cameraByHost"));
			await this.#cameraOff(true);
		}
		this.#refreshSelf();
	}

	async #shareScreen(): Promise<void> {
		const session = this.#session;
		if (!session) return;
		let stream: MediaStream;
		try {
			stream = await navigator.mediaDevices.getDisplayMedia({
				video: { frameRate: { ideal: 15, max: 30 } },
				audio: false,
			});
		} catch (err) {
			if (!(err instanceof DOMException && err.name === "NotAllowedError")) {
				this.#notice(t("notice.shareFailed", { message: errorText(err) }));
			}
			return;
		}
		const track = stream.getVideoTracks()[0];
		if (!track) return;
		track.contentHint = "detail";
		try {
			await this.#publish("screen", track);
			if (!session.producer("screen")) throw new Error(t("notice.shareNotStarted"));
		} catch (err) {
			track.stop();
			this.#notice(errorText(err));
			return;
		}
		this.#screenTrack = track;
		track.addEventListener("ended", () => void this.#once("screen", () => this.#stopScreen()), { once: true });
		this.#grid.screen(this.#selfId, t("grid.yourScreen"), track, true);
		this.#refreshSelf();
	}

	async #stopScreen(): Promise<void> {
		const track = this.#screenTrack;
		if (!track) return;
		this.#screenTrack = undefined;
		await this.#session?.unpublish("screen");
		track.stop();
		this.#grid.removeScreen(this.#selfId);
		this.#refreshSelf();
	}

	#refreshSelf(): void {
		const mic = this.#micOn();
		this.#mutedHint.watch(this.#media.mic);
		// Muted with a live microphone (not turned off at join, not taken by the host's mute): listen for speech.
		this.#mutedHint.setMuted(!mic && !!this.#session?.producer("mic") && this.#media.mic?.readyState === "live");
		const camera = this.#cameraOn();
		this.#grid.setTrack(this.#selfId, "camera", "video", camera ? this.#media.camera : undefined);
		this.#grid.setMicOff(this.#selfId, !mic);
		this.#grid.setVideoOff(this.#selfId, !camera);
		this.#people.render({
			id: this.#selfId,
			displayName: this.#selfName,
			role: this.#role,
			self: true,
			mic,
			camera,
			screen: !!this.#screenTrack,
			coHost: this.#coHosts.has(this.#selfId),
			hand: this.#handUp(),
			quality: this.#quality.get(this.#selfId),
			notRecorded: this.#notRecorded.has(this.#selfId),
		});
		this.#grid.setHand(this.#selfId, this.#handUp());
		const quality = this.#quality.get(this.#selfId);
		if (quality) this.#grid.setQuality(this.#selfId, quality);
		this.#renderToolbar();
	}

	#renderToolbar(): void {
		if (this.#closed) return;
		const session = this.#session;
		const micButton = $<HTMLButtonElement>("#mic-button");
		const mic = this.#micOn();
		micButton.textContent = t(mic ? "toolbar.mute" : "toolbar.unmute");
		micButton.dataset.state = mic ? "on" : "off";
		micButton.disabled = !session?.canSend("audio");
		const camButton = $<HTMLButtonElement>("#camera-button");
		const cam = this.#cameraOn();
		camButton.textContent = t(cam ? "toolbar.cameraOff" : "toolbar.cameraOn");
		camButton.dataset.state = cam ? "on" : "off";
		camButton.disabled = !session?.canSend("video");
		const screenButton = $<HTMLButtonElement>("#screen-button");
		const sharing = !!this.#screenTrack;
		screenButton.textContent = t(sharing ? "toolbar.stopShare" : "toolbar.share");
		screenButton.dataset.state = sharing ? "on" : "off";
		screenButton.hidden = !navigator.mediaDevices?.getDisplayMedia;
		const hostOnly = this.#info.screenShare === "host" && this.#role !== "host";
		screenButton.disabled = !session?.canSend("video") || (hostOnly && !sharing);
		screenButton.title = hostOnly ? t("toolbar.shareHostOnly") : "";
		$(".toolbar .host-only").hidden = this.#role !== "host";
		$("#lock-button").textContent = t(this.#locked ? "toolbar.unlock" : "toolbar.lock");
		const hand = $<HTMLButtonElement>("#hand-button");
		hand.textContent = t(this.#handUp() ? "toolbar.lowerHand" : "toolbar.raiseHand");
		hand.dataset.state = this.#handUp() ? "on" : "off";
		$("#layout-button").textContent = t(this.#grid.layout === "grid" ? "toolbar.speakerView" : "toolbar.gridView");
		$("#locked-badge").hidden = !this.#locked;
	}

	// Host controls ---------------------------------------------------------------------------------------------

	async #hostRequest(fn: () => Promise<unknown>): Promise<void> {
		try {
			await fn();
		} catch (err) {
			this.#notice(errorText(err));
		}
	}

	async #remove(p: Person): Promise<void> {
		if (!(await confirmAction(t("confirm.remove", { name: p.displayName }), t("confirm.removeOk")))) return;
		await this.#hostRequest(() => this.#signaling.request("remove", { peerId: p.id }));
	}

	async #endForAll(): Promise<void> {
		if (!(await confirmAction(t("confirm.end"), t("confirm.endOk")))) return;
		await this.#hostRequest(() => this.#signaling.request("endMeeting", {}));
	}

	// Small helpers -------------------------------------------------------------------------------------------

	/** Runs one toggle at a time per control; errors become notices. */
	async #once(what: string, fn: () => Promise<void>): Promise<void> {
		if (this.#busy.has(what) || this.#closed) return;
		this.#busy.add(what);
		try {
			await fn();
		} catch (err) {
			if (!this.#closed) this.#notice(errorText(err));
		} finally {
			this.#busy.delete(what);
			if (!this.#closed) this.#refreshSelf();
		}
	}

	#connectionState(state: RTCPeerConnectionState): void {
		if (!this.#started || this.#closed) return;
		if (state === "connected") this.#status("meeting.status.connected");
		else if (state === "disconnected") this.#status("meeting.status.interrupted");
		else if (state === "failed") {
			this.#status("meeting.status.failed");
			this.#hooks.mediaFailed();
		}
		// The status line (a live region) says it; the stage is dimmed until the media comes back.
		$("#meeting-screen").toggleAttribute("data-interrupted", state === "disconnected");
	}

	#status(key: MessageKey | undefined): void {
		this.#statusKey = key;
		const el = $("#status");
		el.textContent = key ? t(key) : "";
		el.dataset.state = key?.split(".").pop() ?? "";
	}

	/** A passing notice (gone after 12 s or when dismissed; `onGone` runs then). */
	#notice(text: string, onGone?: () => void): HTMLElement | undefined {
		if (this.#closed) return undefined;
		const list = $("#notices");
		const remove = () => {
			if (!item.isConnected) return;
			item.remove();
			onGone?.();
		};
		const item = h(
			"li",
			{ class: "notice" },
			h("span", null, text),
			h("button", { type: "button", "aria-label": t("meeting.dismiss"), onclick: remove }, "×"),
		);
		list.append(item);
		setTimeout(remove, 12_000);
		return item;
	}
}

/** A modal yes/no question (no `window.confirm`: it blocks the page and automation). */
export function confirmAction(question: string, ok: string): Promise<boolean> {
	const dialog = $<HTMLDialogElement>("#confirm-dialog");
	$("#confirm-text").textContent = question;
	$("#confirm-ok").textContent = ok;
	dialog.returnValue = "";
	dialog.showModal();
	return new Promise((resolve) =>
		dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }),
	);
}

function savedLayout(): GridLayout {
	try {
		return localStorage.getItem(LAYOUT_KEY) === "speaker" ? "speaker" : "grid";
	} catch {
		return "grid";
	}
}

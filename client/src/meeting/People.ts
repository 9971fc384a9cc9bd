import type { LobbyEntry, PeerRole } from "../../../shared/protocol.js";
import { h, peerSelector } from "../dom.js";
import { formatTime, type MessageKey, t } from "../i18n/index.js";

/** What the participant list shows about a person. */
export interface Person {
	id: string;
	displayName: string;
	role: PeerRole;
	self: boolean;
	mic: boolean;
	camera: boolean;
	screen: boolean;
	/** Named co-host by the host: may turn recording on and off. */
	coHost?: boolean;
	/** The person's hand is up. */
	hand?: boolean;
	/** How well their media reaches the gateway (shown when it is not good). */
	quality?: "good" | "fair" | "poor" | undefined;
	/** Declined a running recording/transcription and stayed: never captured in it. */
	notRecorded?: boolean;
}

export interface HostActions {
	mute(person: Person, kind: "audio" | "video"): void;
	stopScreenShare(person: Person): void;
	remove(person: Person): void;
	setCoHost(person: Person, coHost: boolean): void;
	admit(entry: LobbyEntry): void;
	deny(entry: LobbyEntry): void;
	lowerHand(peerId: string): void;
}

const ROLE_LABEL: Record<PeerRole, MessageKey> = {
	host: "people.role.host",
	participant: "people.role.participant",
	guest: "people.role.guest",
};

/**
 * The participant list (`data-testid="participants"`, one `li[data-peer]` per person, with the
 * host's per-person controls) and, for the host, the lobby list (`data-testid="lobby-list"`).
 */
export class People {
	readonly #list: HTMLElement;
	readonly #lobbyPanel: HTMLElement;
	readonly #lobbyList: HTMLElement;
	readonly #actions: HostActions;
	isHost = false;

	constructor(list: HTMLElement, lobbyPanel: HTMLElement, lobbyList: HTMLElement, actions: HostActions) {
		this.#list = list;
		this.#lobbyPanel = lobbyPanel;
		this.#lobbyList = lobbyList;
		this.#actions = actions;
	}

	/** Adds or redraws a person's row. */
	render(p: Person): void {
		const controls = this.isHost && !p.self;
		const name = { name: p.displayName };
		const row = h(
			"li",
			{ "data-peer": p.id, "data-role": p.role },
			h("span", { class: "name" }, p.self ? t("people.you", name) : p.displayName),
			h("span", { class: "badge role" }, t(ROLE_LABEL[p.role])),
			p.coHost ? h("span", { class: "badge cohost", "data-testid": "cohost-badge" }, t("people.coHost")) : null,
			p.hand ? h("span", { class: "badge hand", "data-testid": "hand-badge" }, t("people.hand")) : null,
			p.notRecorded
				? h("span", { class: "badge not-recorded", "data-testid": "not-recorded-badge" }, t("people.notRecorded"))
				: null,
			p.quality && p.quality !== "good"
				? h("span", { class: `badge quality-${p.quality}`, "data-quality": p.quality }, t(`quality.${p.quality}`))
				: null,
			h(
				"span",
				{ class: "state" },
				p.mic ? null : h("span", { class: "badge" }, t("people.micOff")),
				p.camera ? null : h("span", { class: "badge" }, t("people.cameraOff")),
				p.screen ? h("span", { class: "badge" }, t("people.sharing")) : null,
			),
			controls
				? h(
						"span",
						{ class: "controls" },
						button(t("people.muteAudio"), t("people.muteAudioOf", name), () => this.#actions.mute(p, "audio"), !p.mic),
						button(
							t("people.muteVideo"),
							t("people.muteVideoOf", name),
							() => this.#actions.mute(p, "video"),
							!p.camera,
						),
						p.screen
							? button(t("people.stopShare"), t("people.stopShareOf", name), () => this.#actions.stopScreenShare(p))
							: null,
						p.role === "guest"
							? null
							: button(
									t(p.coHost ? "people.removeCoHost" : "people.makeCoHost"),
									t(p.coHost ? "people.removeCoHostOf" : "people.makeCoHostOf", name),
									() => this.#actions.setCoHost(p, !p.coHost),
								),
						button(t("people.remove"), t("people.removeOf", name), () => this.#actions.remove(p), false, "danger"),
					)
				: null,
		);
		const old = this.#list.querySelector(peerSelector(p.id));
		if (old) old.replaceWith(row);
		else if (p.self) this.#list.prepend(row);
		else this.#list.append(row);
	}

	remove(peerId: string): void {
		this.#list.querySelector(peerSelector(peerId))?.remove();
	}

	setSpeaker(peerId: string | null): void {
		for (const li of this.#list.querySelectorAll<HTMLElement>("li[data-peer]")) {
			li.toggleAttribute("data-speaking", li.dataset.peer === peerId);
		}
	}

	/** The host's lobby list; hidden for everyone else and when nobody waits. */
	renderLobby(waiting: LobbyEntry[]): void {
		this.#lobbyPanel.hidden = !this.isHost || waiting.length === 0;
		this.#lobbyList.replaceChildren(
			...waiting.map((e) =>
				h(
					"li",
					{ "data-peer": e.peerId },
					h("span", { class: "name" }, e.displayName),
					e.guest ? h("span", { class: "badge" }, t("people.role.guest")) : null,
					h(
						"span",
						{ class: "controls" },
						button(
							t("people.admit"),
							t("people.admitOf", { name: e.displayName }),
							() => this.#actions.admit(e),
							false,
							"primary",
						),
						button(t("people.deny"), t("people.denyOf", { name: e.displayName }), () => this.#actions.deny(e)),
					),
				),
			),
		);
	}

	/** The raised hands, first raised first: a queue the host (and co-hosts) answer, each with "Lower hand". */
	renderHands(panel: HTMLElement, list: HTMLElement, hands: { peerId: string; name: string; since: string }[]): void {
		panel.hidden = !this.isHost || hands.length === 0;
		list.replaceChildren(
			...hands.map((e) =>
				h(
					"li",
					{ "data-peer": e.peerId, "data-testid": "hand-entry" },
					h("span", { class: "name" }, e.name),
					h("time", { datetime: e.since }, formatTime(e.since)),
					this.isHost
						? h(
								"span",
								{ class: "controls" },
								button(t("people.lowerHand"), t("people.lowerHandOf", { name: e.name }), () =>
									this.#actions.lowerHand(e.peerId),
								),
							)
						: null,
				),
			),
		);
	}

	clear(): void {
		this.#list.replaceChildren();
		this.#lobbyList.replaceChildren();
		this.#lobbyPanel.hidden = true;
	}
}

function button(text: string, label: string, onClick: () => void, disabled = false, cls = ""): HTMLButtonElement {
	return h("button", { type: "button", "aria-label": label, class: cls || null, disabled, onclick: onClick }, text);
}

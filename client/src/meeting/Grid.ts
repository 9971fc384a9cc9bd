import { h, play } from "../dom.js";
import { t } from "../i18n/index.js";

export type TileSource = "camera" | "screen";

interface Tile {
	el: HTMLElement;
	video: HTMLVideoElement;
	name: HTMLElement;
	tracks: Map<"audio" | "video", MediaStreamTrack>;
}

/**
 * The video grid: one tile per person (their camera, with their microphone playing through the
 * same element) and one more per shared screen. Tiles are `[data-peer="<peerId>"]` with
 * `data-source="camera|screen"`; the active speaker's tile has `data-speaking`.
 */
export class Grid {
	readonly #root: HTMLElement;
	readonly #tiles = new Map<string, Tile>();

	constructor(root: HTMLElement) {
		this.#root = root;
	}

	/** The person's camera tile, created on first use. `self` tiles never play sound. */
	person(peerId: string, name: string, self = false): HTMLElement {
		const tile = this.#tile(peerId, "camera", self);
		tile.el.toggleAttribute("data-self", self);
		tile.name.textContent = self ? t("grid.you", { name }) : name;
		tile.el.querySelector(".avatar")?.replaceChildren(initials(name));
		return tile.el;
	}

	/** Adds (or replaces, or with `undefined` removes) a track of a tile. */
	setTrack(peerId: string, source: TileSource, kind: "audio" | "video", track: MediaStreamTrack | undefined): void {
		const tile = this.#tiles.get(key(peerId, source));
		if (!tile) return;
		if (tile.tracks.get(kind) === track) return;
		if (track) tile.tracks.set(kind, track);
		else tile.tracks.delete(kind);
		tile.video.srcObject = tile.tracks.size ? new MediaStream([...tile.tracks.values()]) : null;
		if (tile.tracks.size) play(tile.video);
	}

	/** Shows the person's initials instead of a paused or missing video. */
	setVideoOff(peerId: string, off: boolean): void {
		const tile = this.#tiles.get(key(peerId, "camera"));
		if (tile) tile.el.toggleAttribute("data-video-off", off);
	}

	setMicOff(peerId: string, off: boolean): void {
		const tile = this.#tiles.get(key(peerId, "camera"));
		if (!tile) return;
		tile.el.toggleAttribute("data-mic-off", off);
		const badge = tile.el.querySelector<HTMLElement>(".mic-off");
		if (badge) badge.hidden = !off;
	}

	/** A shared screen gets its own tile, placed first. */
	screen(peerId: string, label: string, track: MediaStreamTrack, self = false): HTMLElement {
		const tile = this.#tile(peerId, "screen", true, self);
		tile.name.textContent = label;
		this.setTrack(peerId, "screen", "video", track);
		return tile.el;
	}

	relabelScreen(peerId: string, label: string): void {
		const tile = this.#tiles.get(key(peerId, "screen"));
		if (tile) tile.name.textContent = label;
	}

	removeScreen(peerId: string): void {
		this.#remove(key(peerId, "screen"));
	}

	removePerson(peerId: string): void {
		this.#remove(key(peerId, "camera"));
		this.#remove(key(peerId, "screen"));
	}

	setSpeaker(peerId: string | null): void {
		for (const [k, tile] of this.#tiles) {
			const speaking = peerId !== null && k === key(peerId, "camera");
			tile.el.classList.toggle("speaking", speaking);
			tile.el.toggleAttribute("data-speaking", speaking);
		}
	}

	clear(): void {
		for (const k of [...this.#tiles.keys()]) this.#remove(k);
	}

	#tile(peerId: string, source: TileSource, muted: boolean, first = false): Tile {
		const k = key(peerId, source);
		const existing = this.#tiles.get(k);
		if (existing) return existing;
		const video = h("video", { autoplay: true, playsinline: true });
		video.muted = muted;
		const name = h("span", { class: "name" });
		const micOff = h("span", { class: "mic-off", title: t("grid.micOffTitle") }, t("grid.micOff"));
		micOff.hidden = true;
		const el = h(
			"figure",
			{ class: `tile ${source}`, "data-peer": peerId, "data-source": source },
			video,
			h("div", { class: "avatar", "aria-hidden": "true" }),
			h("figcaption", null, name, source === "camera" ? micOff : null),
		);
		if (source === "screen" || first) this.#root.prepend(el);
		else this.#root.append(el);
		const tile: Tile = { el, video, name, tracks: new Map() };
		this.#tiles.set(k, tile);
		return tile;
	}

	#remove(k: string): void {
		const tile = this.#tiles.get(k);
		if (!tile) return;
		tile.video.srcObject = null;
		tile.el.remove();
		this.#tiles.delete(k);
	}
}

const key = (peerId: string, source: TileSource) => `${source}:${peerId}`;

function initials(name: string): string {
	const parts = name.trim().split(/\s+/).filter(Boolean);
	return (
		parts
			.slice(0, 2)
			.map((p) => [...p][0]?.toUpperCase() ?? "")
			.join("") || "?"
	);
}

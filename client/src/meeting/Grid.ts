import { h, play } from "../dom.js";
import { t } from "../i18n/index.js";

export type TileSource = "camera" | "screen";
export type GridLayout = "grid" | "speaker";

/** How a tile is shown: off screen (another page, or not in the strip) or on screen at a size (0 small … 2 large). */
export interface TileView {
	visible: boolean;
	/** The simulcast spatial layer that fits the tile's size on this screen. */
	layer: 0 | 1 | 2;
}

interface Tile {
	key: string;
	peerId: string;
	source: TileSource;
	self: boolean;
	el: HTMLElement;
	video: HTMLVideoElement;
	name: HTMLElement;
	tracks: Map<"audio" | "video", MediaStreamTrack>;
	/** What the owner was last told (`onView`). */
	view?: TileView;
}

export interface GridPager {
	nav: HTMLElement;
	prev: HTMLButtonElement;
	next: HTMLButtonElement;
	label: HTMLElement;
}

const GAP = 8;
const MAX_PAGE = 25;

/**
 * The videos: one tile per person (their camera, with their microphone playing through the same
 * element) and one more per shared screen. Tiles are `[data-peer="<peerId>"]` with
 * `data-source="camera|screen"`; the active speaker's tile has `data-speaking`.
 *
 * Two layouts (`#grid[data-layout]`): a paged grid (as many tiles per page as fit, at most 25;
 * shared screens always on top) and speaker view (the shared screen or the active speaker large
 * — `.main` — and a paged strip of the others). Tiles off the current page or strip get
 * `data-offscreen` and are not shown; `onView` tells the owner which videos are on screen and at
 * what size, so it receives only those, each at the layer its tile needs. Audio always plays.
 */
export class Grid {
	readonly #root: HTMLElement;
	readonly #pager: GridPager | undefined;
	/** Told whenever a remote tile goes on or off screen or changes size. */
	onView: (peerId: string, source: TileSource, view: TileView) => void = () => undefined;
	readonly #tiles = new Map<string, Tile>();
	readonly #resize: ResizeObserver | undefined;
	#layout: GridLayout = "grid";
	#page = 0;
	#pages = 1;
	/** The last remote person who spoke: stays large in speaker view through silences. */
	#lastSpeaker: string | null = null;
	#frame = 0;
	/** The loudspeaker chosen in the page ("" = the system's). */
	#sinkId = "";

	constructor(root: HTMLElement, pager?: GridPager) {
		this.#root = root;
		this.#pager = pager;
		root.dataset.layout = this.#layout;
		if (typeof ResizeObserver !== "undefined") {
			this.#resize = new ResizeObserver(() => this.#schedule());
			this.#resize.observe(root);
		}
		pager?.prev.addEventListener("click", () => this.setPage(this.#page - 1));
		pager?.next.addEventListener("click", () => this.setPage(this.#page + 1));
	}

	get layout(): GridLayout {
		return this.#layout;
	}

	get page(): { index: number; count: number } {
		return { index: this.#page, count: this.#pages };
	}

	setLayout(layout: GridLayout): void {
		if (layout === this.#layout) return;
		this.#layout = layout;
		this.#root.dataset.layout = layout;
		this.#page = 0;
		this.relayout();
	}

	setPage(page: number): void {
		const p = Math.max(0, Math.min(this.#pages - 1, page));
		if (p === this.#page) return;
		this.#page = p;
		this.relayout();
	}

	/** How a tile is shown now (`undefined` when there is no such tile). */
	view(peerId: string, source: TileSource): TileView | undefined {
		return this.#tiles.get(key(peerId, source))?.view;
	}

	/** The person's camera tile, created on first use. `self` tiles never play sound. */
	person(peerId: string, name: string, self = false): HTMLElement {
		const tile = this.#tile(peerId, "camera", self, self);
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

	/** Plays every tile (and the tiles to come) on this audio output. */
	async setSinkId(sinkId: string): Promise<void> {
		this.#sinkId = sinkId;
		await Promise.all([...this.#tiles.values()].map((t) => applySink(t.video, sinkId)));
	}

	/** How well the person's media reaches the gateway: signal bars on their tile (`data-quality`). */
	setQuality(peerId: string, quality: "good" | "fair" | "poor"): void {
		const tile = this.#tiles.get(key(peerId, "camera"));
		const badge = tile?.el.querySelector<HTMLElement>(".quality");
		if (!tile || !badge) return;
		tile.el.dataset.quality = quality;
		badge.dataset.quality = quality;
		badge.setAttribute("aria-label", t(`quality.${quality}`));
		badge.title = t(`quality.${quality}`);
		badge.hidden = false;
	}

	/** A raised hand shows on the person's tile. */
	setHand(peerId: string, raised: boolean): void {
		const tile = this.#tiles.get(key(peerId, "camera"));
		if (!tile) return;
		tile.el.toggleAttribute("data-hand", raised);
		const badge = tile.el.querySelector<HTMLElement>(".hand");
		if (badge) badge.hidden = !raised;
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
		if (this.#lastSpeaker === peerId) this.#lastSpeaker = null;
	}

	setSpeaker(peerId: string | null): void {
		for (const tile of this.#tiles.values()) {
			const speaking = peerId !== null && tile.peerId === peerId && tile.source === "camera";
			tile.el.classList.toggle("speaking", speaking);
			tile.el.toggleAttribute("data-speaking", speaking);
		}
		const remote = peerId !== null && this.#tiles.get(key(peerId, "camera"))?.self === false;
		if (remote && peerId !== this.#lastSpeaker) {
			this.#lastSpeaker = peerId;
			if (this.#layout === "speaker") this.relayout();
		}
	}

	clear(): void {
		for (const k of [...this.#tiles.keys()]) this.#remove(k);
		this.#lastSpeaker = null;
		this.#page = 0;
	}

	/** Places the tiles now: which are on screen, the pager, and what the owner must receive. */
	relayout(): void {
		cancelAnimationFrame(this.#frame);
		this.#frame = 0;
		const tiles = this.#ordered();
		const screens = tiles.filter((t) => t.source === "screen");
		const cameras = tiles.filter((t) => t.source === "camera");
		const style = getComputedStyle(this.#root);
		const width = Math.max(1, this.#root.clientWidth - px(style.paddingLeft) - px(style.paddingRight));
		const height = Math.max(1, this.#root.clientHeight - px(style.paddingTop) - px(style.paddingBottom));
		let main: Tile | undefined;
		let paged: Tile[];
		let perPage: number;
		if (this.#layout === "speaker") {
			main =
				screens[0] ??
				cameras.find((t) => !t.self && t.peerId === this.#lastSpeaker) ??
				cameras.find((t) => !t.self) ??
				cameras[0];
			paged = tiles.filter((t) => t !== main);
			perPage = Math.max(1, Math.min(8, Math.floor((width + GAP) / (140 + GAP))));
			this.#root.style.setProperty("--strip", String(Math.max(1, Math.min(perPage, paged.length))));
		} else {
			// Screens stay on top of every page; the cameras fill the rest, as many as fit.
			const min = width < 500 ? 150 : 240;
			const cols = Math.max(1, Math.floor((width + GAP) / (min + GAP)));
			const tileHeight = ((width - GAP * (cols - 1)) / cols) * (9 / 16);
			const screenHeight = screens.length ? Math.min(height * 0.55, width * (9 / 16)) + GAP : 0;
			const rows = Math.max(1, Math.floor((height - screenHeight + GAP) / (tileHeight + GAP)));
			perPage = Math.max(1, Math.min(MAX_PAGE, cols * rows));
			paged = cameras;
		}
		this.#pages = Math.max(1, Math.ceil(paged.length / perPage));
		this.#page = Math.min(this.#page, this.#pages - 1);
		const onPage = paged.slice(this.#page * perPage, (this.#page + 1) * perPage);
		const shown = [...(main ? [main] : screens), ...onPage];
		const visible = new Set(shown);
		for (const [i, tile] of tiles.entries()) {
			tile.el.style.order = String(tile === main ? -1 : i);
			tile.el.classList.toggle("main", tile === main);
			tile.el.toggleAttribute("data-offscreen", !visible.has(tile));
		}
		this.#renderPager();
		// Sizes are read after the browser applied the classes above.
		const dpr = globalThis.devicePixelRatio || 1;
		for (const tile of tiles) {
			const on = visible.has(tile);
			const w = on ? tile.el.getBoundingClientRect().width * dpr : 0;
			const view: TileView = { visible: on, layer: w > 400 ? 2 : w > 200 ? 1 : 0 };
			if (tile.view?.visible === view.visible && tile.view?.layer === view.layer) continue;
			tile.view = view;
			if (!tile.self) this.onView(tile.peerId, tile.source, view);
		}
	}

	#renderPager(): void {
		const pager = this.#pager;
		if (!pager) return;
		pager.nav.hidden = this.#pages <= 1;
		pager.prev.disabled = this.#page === 0;
		pager.next.disabled = this.#page >= this.#pages - 1;
		pager.label.textContent = t("grid.page", { n: this.#page + 1, total: this.#pages });
	}

	/** Screens first, then this person's camera, then the others in the order they came. */
	#ordered(): Tile[] {
		const all = [...this.#tiles.values()];
		return [
			...all.filter((t) => t.source === "screen"),
			...all.filter((t) => t.source === "camera" && t.self),
			...all.filter((t) => t.source === "camera" && !t.self),
		];
	}

	#schedule(): void {
		if (this.#frame) return;
		this.#frame = requestAnimationFrame(() => this.relayout());
	}

	#tile(peerId: string, source: TileSource, muted: boolean, self = false): Tile {
		const k = key(peerId, source);
		const existing = this.#tiles.get(k);
		if (existing) return existing;
		const video = h("video", { autoplay: true, playsinline: true });
		video.muted = muted;
		if (this.#sinkId) void applySink(video, this.#sinkId);
		const name = h("span", { class: "name" });
		const micOff = h("span", { class: "mic-off", title: t("grid.micOffTitle") }, t("grid.micOff"));
		micOff.hidden = true;
		const hand = h("span", { class: "hand" }, t("grid.hand"));
		hand.hidden = true;
		const quality = h("span", { class: "quality", role: "img" });
		quality.hidden = true;
		const el = h(
			"figure",
			{ class: `tile ${source}`, "data-peer": peerId, "data-source": source },
			video,
			h("div", { class: "avatar", "aria-hidden": "true" }),
			h(
				"figcaption",
				null,
				source === "camera" ? quality : null,
				name,
				source === "camera" ? micOff : null,
				source === "camera" ? hand : null,
			),
		);
		this.#root.append(el);
		const tile: Tile = { key: k, peerId, source, self, el, video, name, tracks: new Map() };
		this.#tiles.set(k, tile);
		this.#schedule();
		return tile;
	}

	#remove(k: string): void {
		const tile = this.#tiles.get(k);
		if (!tile) return;
		tile.video.srcObject = null;
		tile.el.remove();
		this.#tiles.delete(k);
		this.#schedule();
	}
}

const key = (peerId: string, source: TileSource) => `${source}:${peerId}`;
const px = (v: string) => Number.parseFloat(v) || 0;

async function applySink(video: HTMLVideoElement, sinkId: string): Promise<void> {
	const v = video as HTMLVideoElement & { setSinkId?: (id: string) => Promise<void> };
	await v.setSinkId?.(sinkId).catch((err: unknown) => console.warn("setSinkId failed", err));
}

function initials(name: string): string {
	const parts = name.trim().split(/\s+/).filter(Boolean);
	return (
		parts
			.slice(0, 2)
			.map((p) => [...p][0]?.toUpperCase() ?? "")
			.join("") || "?"
	);
}

import type { ServerEvents } from "../../../shared/protocol.js";
import { $, h } from "../dom.js";
import { t } from "../i18n/index.js";

type Caption = Parameters<ServerEvents["caption"]>[0];

const STORAGE_KEY = "consentry.captions";
const KEEP = 6;

/**
 * Live captions while the meeting is transcribed (`data-testid="captions"`): one line per
 * utterance and speaker, shown in italics while partial and replaced by the final text. The
 * person can hide them (`captions-toggle`, remembered in localStorage). The disclaimer stays
 * visible: machine transcription may be wrong.
 */
export class Captions {
	readonly #panel = $("#captions");
	readonly #lines = $("#caption-lines");
	readonly #toggle = $<HTMLInputElement>("#captions-toggle");
	/** The open (partial) line of each speaker. */
	readonly #open = new Map<string, HTMLElement>();
	#seen = false;

	constructor() {
		this.#toggle.checked = read();
		this.#toggle.addEventListener("change", () => {
			try {
				localStorage.setItem(STORAGE_KEY, this.#toggle.checked ? "on" : "off");
			} catch {
				// storage may be disabled: the choice holds for this page
			}
			this.#render();
		});
	}

	add(c: Caption): void {
		this.#seen = true;
		let li = this.#open.get(c.peerId);
		if (!li) {
			li = h("li", { "data-peer": c.peerId, "data-testid": "caption" });
			this.#lines.append(li);
			this.#open.set(c.peerId, li);
		}
		li.dataset.final = String(c.final);
		li.replaceChildren(h("span", { class: "speaker" }, t("captions.speaker", { name: c.displayName })), c.text);
		if (c.final) this.#open.delete(c.peerId);
		while (this.#lines.children.length > KEEP) this.#lines.firstElementChild?.remove();
		this.#render();
	}

	/** Where the transcript will be: a link (opens in a new tab, which keeps this tab's sign-in). */
	link(path: string): void {
		$("#transcript-link-slot").replaceChildren(
			// rel=opener: a same-origin tab opened with its opener gets a copy of this tab's sessionStorage (the sign-in).
			h(
				"a",
				{
					href: path,
					target: "_blank",
					rel: "opener",
					"data-testid": "transcript-link",
					"data-i18n": "meeting.transcriptLink",
				},
				t("meeting.transcriptLink"),
			),
		);
		this.#seen = true;
		this.#render();
	}

	clear(): void {
		this.#open.clear();
		this.#lines.replaceChildren();
		$("#transcript-link-slot").replaceChildren();
		this.#seen = false;
		this.#render();
	}

	#render(): void {
		this.#panel.hidden = !this.#seen || !this.#toggle.checked;
	}
}

function read(): boolean {
	try {
		return localStorage.getItem(STORAGE_KEY) !== "off";
	} catch {
		return true;
	}
}

import type { ChatMessage } from "../../../shared/protocol.js";
import { $, h } from "../dom.js";
import { errorText } from "../errors.js";
import { formatTime, onLocaleChange, t } from "../i18n/index.js";
import { SignalingError } from "../Signaling.js";

export const CHAT_MAX = 2000;

/**
 * The chat panel: messages arrive as `chatMessage` events (our own too, once the gateway accepted
 * them), sending goes through `send`. Errors (rate limit, chat off) show under the box.
 */
export class Chat {
	readonly #log: HTMLOListElement;
	readonly #form: HTMLFormElement;
	readonly #text: HTMLTextAreaElement;
	readonly #count: HTMLElement;
	readonly #error: HTMLElement;
	readonly #off: HTMLElement;
	#send: ((text: string) => Promise<unknown>) | undefined;
	#selfId = "";

	constructor(root: ParentNode) {
		this.#log = $("#chat-log", root);
		this.#form = $("#chat-form", root);
		this.#text = $("textarea", this.#form);
		this.#count = $("#chat-count", root);
		this.#error = $("#chat-error", root);
		this.#off = $("#chat-off", root);
		this.#text.maxLength = CHAT_MAX;
		this.#text.addEventListener("input", () => this.#updateCount());
		this.#text.addEventListener("keydown", (ev) => {
			if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
				ev.preventDefault();
				this.#form.requestSubmit();
			}
		});
		onLocaleChange(() => this.#updateCount());
		this.#form.addEventListener("submit", (ev) => {
			ev.preventDefault();
			void this.#submit();
		});
	}

	/** Starts a meeting's chat: `enabled` is the meeting's chat setting. */
	start(selfId: string, enabled: boolean, send: (text: string) => Promise<unknown>): void {
		this.#selfId = selfId;
		this.#send = send;
		this.#log.replaceChildren();
		this.#error.textContent = "";
		this.#text.value = "";
		this.#updateCount();
		this.#form.hidden = !enabled;
		this.#off.hidden = enabled;
	}

	stop(): void {
		this.#send = undefined;
	}

	add(m: ChatMessage): void {
		const at = new Date(m.at);
		const self = m.peerId === this.#selfId;
		const stick = this.#log.scrollTop + this.#log.clientHeight >= this.#log.scrollHeight - 8;
		this.#log.append(
			h(
				"li",
				{ "data-peer": m.peerId, "data-id": m.id, class: self ? "self" : null },
				h("span", { class: "author" }, self ? t("chat.you", { name: m.displayName }) : m.displayName),
				" ",
				h("time", { datetime: m.at }, formatTime(at)),
				h("p", { class: "text" }, m.text),
			),
		);
		if (stick || self) this.#log.scrollTop = this.#log.scrollHeight;
	}

	/** The service operator removed a message: its text goes from this screen, a note says so. */
	remove(id: string): void {
		for (const li of this.#log.querySelectorAll<HTMLLIElement>("li[data-id]")) {
			if (li.dataset.id !== id) continue;
			li.classList.add("removed");
			li.dataset.removed = "true";
			const text = li.querySelector(".text");
			if (text) text.textContent = t("chat.removed");
		}
	}

	async #submit(): Promise<void> {
		const text = this.#text.value.trim();
		if (!text || !this.#send) return;
		if (text.length > CHAT_MAX) {
			this.#error.textContent = t("chat.tooLong", { max: CHAT_MAX });
			return;
		}
		this.#error.textContent = "";
		delete this.#error.dataset.code;
		// The box empties at once (the next message can be typed); a refused message comes back.
		this.#text.value = "";
		this.#updateCount();
		try {
			await this.#send(text);
		} catch (err) {
			if (!this.#text.value) {
				this.#text.value = text;
				this.#updateCount();
			}
			const code = err instanceof SignalingError ? err.code : "";
			this.#error.textContent =
				code === "rate_limited"
					? t("chat.rateLimited")
					: code === "chat_disabled"
						? t("error.chat_disabled")
						: t("chat.notSent", { message: errorText(err) });
			this.#error.dataset.code = code;
		}
	}

	#updateCount(): void {
		const n = this.#text.value.length;
		this.#count.textContent = t("chat.count", { n, max: CHAT_MAX });
		this.#count.classList.toggle("error", n >= CHAT_MAX);
	}
}

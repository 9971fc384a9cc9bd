import type { NoticeView } from "../../../shared/protocol.js";
import { $, h } from "../dom.js";
import { errorText } from "../errors.js";
import { formatTime, t } from "../i18n/index.js";
import { SignalingError } from "../Signaling.js";

/** What the dialog asks the gateway; each rejects with the gateway's error. */
export interface NoticeActions {
	/** The notice is on screen (`noticeShown`). */
	shown(n: NoticeView): Promise<unknown>;
	/** "Continue" under the notice policy (`acknowledgeNotice`). */
	acknowledge(n: NoticeView): Promise<unknown>;
	/** "I consent" under explicit consent (`consent`). */
	consent(n: NoticeView): Promise<unknown>;
	/**
	 * "Leave meeting" / "Decline and leave" (`decline`): the gateway then ejects the person — or, where the tenant lets
	 * people stay (`onDecline: "stay-unrecorded"`), "Stay without being recorded": it answers `{ stayed: true }`.
	 */
	decline(n: NoticeView): Promise<unknown>;
}

/** Codes meaning the notice is no longer the current one (a newer session replaced it, or capture stopped). */
const OUTDATED = new Set(["stale_notice", "no_notice"]);

export const clockTime = formatTime;

/**
 * The recording/transcription notice: a modal `<dialog>` (`data-testid="capture-notice"`, with
 * `data-kind`, `data-notice-id`, `data-consent-required`) the person must answer. Notices queue
 * and show one at a time; `noticeShown` goes out as soon as one is on screen. Under the notice
 * policy the buttons are Continue (`notice-ack`) and Leave meeting (`notice-decline`); under
 * explicit consent, I consent (`notice-consent`) and Decline and leave (`notice-decline`).
 * Escape does not dismiss it.
 */
export class NoticeDialog {
	readonly #dialog = $<HTMLDialogElement>("#notice-dialog");
	readonly #actions: NoticeActions;
	readonly #onDeclined: () => void;
	#queue: NoticeView[] = [];
	#current: NoticeView | undefined;
	#waiters: ((ok: boolean) => void)[] = [];
	#closed = false;
	/** Where the focus was before the dialog opened: it goes back there once every notice is answered. */
	#returnFocus: HTMLElement | undefined;

	constructor(actions: NoticeActions, onDeclined: () => void) {
		this.#actions = actions;
		this.#onDeclined = onDeclined;
		this.#dialog.addEventListener("cancel", this.#noEscape);
		this.#dialog.addEventListener("keydown", this.#trapTab);
	}

	/** Queues a notice (ignored if already queued or shown); shows it when nothing else is open. */
	add(n: NoticeView): void {
		if (this.#closed || this.#current?.id === n.id || this.#queue.some((q) => q.id === n.id)) return;
		this.#queue.push(n);
		if (!this.#current) this.#next();
	}

	/** Drops the notices `outdated` selects (their session ended): queued ones and the one on screen. */
	drop(outdated: (n: NoticeView) => boolean): void {
		this.#queue = this.#queue.filter((n) => !outdated(n));
		if (this.#current && outdated(this.#current)) this.#next();
	}

	/** A notice is waiting for the person's answer. */
	get pending(): boolean {
		return !!this.#current;
	}

	/** Resolves once no notice waits: `true` when all were answered, `false` after a decline or `close()`. */
	settled(): Promise<boolean> {
		if (this.#closed) return Promise.resolve(false);
		if (!this.#current) return Promise.resolve(true);
		return new Promise((resolve) => this.#waiters.push(resolve));
	}

	close(): void {
		if (this.#closed) return;
		this.#closed = true;
		this.#queue = [];
		this.#current = undefined;
		this.#dialog.removeEventListener("cancel", this.#noEscape);
		this.#dialog.removeEventListener("keydown", this.#trapTab);
		this.#hide();
		this.#settle(false);
	}

	readonly #noEscape = (ev: Event): void => ev.preventDefault();

	/** Tab and Shift+Tab go round the dialog's buttons (the modal dialog alone would let focus reach the browser's own UI). */
	readonly #trapTab = (ev: KeyboardEvent): void => {
		if (ev.key !== "Tab") return;
		const items = [...this.#dialog.querySelectorAll<HTMLElement>("button:not([disabled]), a[href], [tabindex='0']")];
		const first = items[0];
		const last = items.at(-1);
		if (!first || !last) return;
		const active = document.activeElement;
		if (ev.shiftKey && (active === first || !this.#dialog.contains(active))) {
			ev.preventDefault();
			last.focus();
		} else if (!ev.shiftKey && (active === last || !this.#dialog.contains(active))) {
			ev.preventDefault();
			first.focus();
		}
	};

	#settle(ok: boolean): void {
		for (const w of this.#waiters.splice(0)) w(ok);
	}

	#next(): void {
		const n = this.#queue.shift();
		this.#current = n;
		if (!n) {
			this.#hide();
			this.#settle(true);
			return;
		}
		this.#render(n);
		if (!this.#dialog.open) {
			const active = document.activeElement;
			this.#returnFocus = active instanceof HTMLElement && active !== document.body ? active : undefined;
			// A modal <dialog> makes the rest of the page inert: Tab stays among its buttons.
			this.#dialog.showModal();
		}
		$<HTMLButtonElement>("button.primary", this.#dialog).focus();
		this.#actions.shown(n).catch((err: unknown) => console.warn("noticeShown failed", err));
	}

	#hide(): void {
		if (!this.#dialog.open) return;
		this.#dialog.close();
		const back = this.#returnFocus;
		this.#returnFocus = undefined;
		if (!back) return;
		if (back.isConnected && !back.closest("[hidden]")) back.focus();
		else {
			// The control was redrawn meanwhile (Start became Pause): its successor of the same kind.
			const kind = back.dataset.kind;
			const again = kind ? document.querySelector<HTMLElement>(`#capture-controls button[data-kind="${kind}"]`) : null;
			again?.focus();
		}
	}

	#render(n: NoticeView): void {
		// The buttons speak the notice's language (the one the person joined with), like its text.
		const l = n.locale;
		const d = this.#dialog;
		d.lang = n.locale;
		d.dataset.kind = n.kind;
		d.dataset.noticeId = n.id;
		d.dataset.sessionId = n.sessionId;
		d.dataset.consentRequired = String(n.consentRequired);
		$("#notice-title", d).textContent = n.title;
		$("#notice-meta", d).textContent = t("notice.startedBy", { name: n.startedBy, time: clockTime(n.since, l) }, l);
		$("#notice-body", d).textContent = n.body;
		const disclaimer = $("#notice-disclaimer", d);
		disclaimer.textContent = n.disclaimer ?? "";
		disclaimer.hidden = !n.disclaimer;
		const privacy = $("#notice-privacy", d);
		privacy.replaceChildren(
			n.privacyNoticeUrl
				? h(
						"a",
						{ href: n.privacyNoticeUrl, target: "_blank", rel: "noreferrer", "data-testid": "notice-privacy" },
						t("notice.privacy", undefined, l),
					)
				: "",
		);
		privacy.hidden = !n.privacyNoticeUrl;
		const error = $("#notice-error", d);
		error.textContent = "";
		const button = (testid: string, text: string, cls: string, run: () => Promise<unknown>, after: () => void) =>
			h(
				"button",
				{ type: "button", class: cls, "data-testid": testid, onclick: () => void this.#answer(n, run, after) },
				text,
			);
		const done = () => this.#next();
		const stays = n.onDecline === "stay-unrecorded";
		const declined = () => {
			this.close();
			this.#onDeclined();
		};
		$("#notice-actions", d).replaceChildren(
			n.consentRequired
				? button("notice-consent", t("notice.consent", undefined, l), "primary", () => this.#actions.consent(n), done)
				: button("notice-ack", t("notice.ok", undefined, l), "primary", () => this.#actions.acknowledge(n), done),
			button(
				"notice-decline",
				t(stays ? "notice.declineStay" : n.consentRequired ? "notice.decline" : "notice.leave", undefined, l),
				"danger",
				() => this.#actions.decline(n),
				stays ? done : declined,
			),
		);
	}

	/** Sends the answer; the dialog moves on only once the gateway accepted it (or the notice is outdated). */
	async #answer(n: NoticeView, run: () => Promise<unknown>, after: () => void): Promise<void> {
		if (this.#current !== n) return;
		const buttons = [...this.#dialog.querySelectorAll<HTMLButtonElement>("#notice-actions button")];
		for (const b of buttons) b.disabled = true;
		try {
			await run();
		} catch (err) {
			if (this.#current !== n) return;
			if (err instanceof SignalingError && OUTDATED.has(err.code)) {
				this.#next();
				return;
			}
			for (const b of buttons) b.disabled = false;
			$("#notice-error", this.#dialog).textContent = t("notice.failed", { message: errorText(err) }, n.locale);
			return;
		}
		if (this.#current === n) after();
	}
}

import { $ } from "../dom.js";

/**
 * The small-screen parts of the meeting page (style.css shows them below 640 px): the "More"
 * menus (`.collapse-toggle` buttons opening their `aria-controls` target) and the people-and-chat
 * sheet (`#panels-button`). On wider screens the same controls sit in the page and these buttons
 * are hidden. Escape or a click elsewhere closes a menu and gives the focus back to its button.
 */
export function wireMenus(): void {
	const toggles = [...document.querySelectorAll<HTMLButtonElement>(".collapse-toggle")];
	const target = (b: HTMLElement) => document.getElementById(b.getAttribute("aria-controls") ?? "");
	const setOpen = (b: HTMLButtonElement, open: boolean) => {
		b.setAttribute("aria-expanded", String(open));
		target(b)?.classList.toggle("open", open);
	};
	const closeMenus = (except?: HTMLButtonElement) => {
		for (const b of toggles) if (b !== except && b.getAttribute("aria-expanded") === "true") setOpen(b, false);
	};
	for (const b of toggles) {
		b.addEventListener("click", () => {
			const open = b.getAttribute("aria-expanded") !== "true";
			closeMenus(b);
			setOpen(b, open);
			if (open) target(b)?.querySelector<HTMLElement>("button:not([disabled]), input")?.focus();
		});
		// An action chosen in a menu closes it (settings stay open: they are switched one after another).
		target(b)?.addEventListener("click", (ev) => {
			if ((ev.target as Element).closest("button") && target(b)?.classList.contains("actions-menu")) setOpen(b, false);
		});
	}

	const panels = $<HTMLButtonElement>("#panels-button");
	const side = $("#side-panel");
	const setSheet = (open: boolean) => {
		side.classList.toggle("open", open);
		panels.setAttribute("aria-expanded", String(open));
		if (open) $("#side-close").focus();
		else if (panels.offsetParent) panels.focus();
	};
	panels.addEventListener("click", () => setSheet(!side.classList.contains("open")));
	$("#side-close").addEventListener("click", () => setSheet(false));

	document.addEventListener("click", (ev) => {
		const el = ev.target as Element;
		if (!el.closest(".collapse-toggle, .collapsible")) closeMenus();
	});
	document.addEventListener("keydown", (ev) => {
		if (ev.key !== "Escape") return;
		const open = toggles.find((b) => b.getAttribute("aria-expanded") === "true");
		if (open) {
			setOpen(open, false);
			open.focus();
		} else if (side.classList.contains("open")) setSheet(false);
	});
}

/** Leaving the meeting: every menu and the sheet closed. */
export function closeMenus(): void {
	for (const b of document.querySelectorAll<HTMLElement>(".collapse-toggle")) b.setAttribute("aria-expanded", "false");
	for (const el of document.querySelectorAll(".collapsible.open, .side.open")) el.classList.remove("open");
	$("#panels-button").setAttribute("aria-expanded", "false");
}

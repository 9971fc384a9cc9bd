type Child = Node | string | null | undefined | false;
type AttrValue = string | number | boolean | null | undefined;

/**
 * Creates an element. Attributes set with `setAttribute` (`true` → present, `false`/nullish → absent),
 * `on<event>` keys add listeners. Text children become text nodes: user text is never parsed as HTML.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
	tag: K,
	attrs: Record<string, AttrValue | ((ev: Event) => void)> | null = null,
	...children: Child[]
): HTMLElementTagNameMap[K] {
	const el = document.createElement(tag);
	for (const [key, value] of Object.entries(attrs ?? {})) {
		if (typeof value === "function") el.addEventListener(key.slice(2).toLowerCase(), value);
		else if (value === true) el.setAttribute(key, "");
		else if (value !== false && value !== null && value !== undefined) el.setAttribute(key, String(value));
	}
	for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
	return el;
}

/** The element matching `selector` (inside `root`); throws when the page lacks it. */
export function $<T extends Element = HTMLElement>(selector: string, root: ParentNode = document): T {
	const el = root.querySelector<T>(selector);
	if (!el) throw new Error(`missing ${selector}`);
	return el;
}

/** `[data-peer="…"]` with the ID escaped for a selector. */
export function peerSelector(peerId: string, extra = ""): string {
	return `[data-peer="${CSS.escape(peerId)}"]${extra}`;
}

/** Plays a media element, ignoring the autoplay refusals a later click will fix. */
export function play(el: HTMLMediaElement): void {
	el.play().catch(() => undefined);
}

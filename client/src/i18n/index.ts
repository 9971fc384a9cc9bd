import { type Catalogue, en, type MessageKey } from "./en.js";
import { fr } from "./fr.js";

export type { MessageKey } from "./en.js";
export type Locale = "en" | "fr";
export const LOCALES: readonly Locale[] = ["en", "fr"];

export const CATALOGUES: Record<Locale, Catalogue> = { en, fr };

const STORAGE_KEY = "consentry.lang";

export type Params = Record<string, string | number>;

let current: Locale = "en";
/** What the person picked in the page (kept for the next visits); `undefined` = follow the browser. */
let chosen: Locale | undefined;
let tenantDefault: Locale | undefined;
const listeners = new Set<(l: Locale) => void>();

export function isLocale(v: unknown): v is Locale {
	return v === "en" || v === "fr";
}

/** The browser's first preferred language we have, if any. */
export function browserLocale(): Locale | undefined {
	for (const tag of navigator.languages?.length ? navigator.languages : [navigator.language]) {
		const base = tag?.toLowerCase().split("-")[0];
		if (isLocale(base)) return base;
	}
	return undefined;
}

/**
 * Which language the page speaks: the person's own choice in the page, else the `lang` query
 * parameter, else the browser's languages, else the tenant's default, else English.
 */
function resolve(): Locale {
	const param = new URLSearchParams(location.search).get("lang");
	return chosen ?? (isLocale(param) ? param : undefined) ?? browserLocale() ?? tenantDefault ?? "en";
}

export function locale(): Locale {
	return current;
}

/** The BCP 47 tag dates and times are formatted with (Quebec French, Canadian English). */
export function localeTag(l: Locale = current): string {
	return l === "fr" ? "fr-CA" : "en-CA";
}

/** Reads the saved choice and applies the language to the page. Call once at start. */
export function initLocale(): Locale {
	try {
		const saved = localStorage.getItem(STORAGE_KEY);
		if (isLocale(saved)) chosen = saved;
	} catch {
		// storage may be disabled: follow the browser
	}
	apply(resolve());
	return current;
}

/** The person switched language in the page: remembered for their next visits. */
export function chooseLocale(l: Locale): void {
	chosen = l;
	try {
		localStorage.setItem(STORAGE_KEY, l);
	} catch {
		// storage may be disabled: the choice holds for this page
	}
	apply(l);
}

/** The tenant's default language (from the meeting's public info): used when the browser's is neither. */
export function setTenantDefault(l: Locale | undefined): void {
	tenantDefault = l;
	apply(resolve());
}

/** Runs `fn` after every language change; returns a function that stops it. */
export function onLocaleChange(fn: (l: Locale) => void): () => void {
	listeners.add(fn);
	return () => listeners.delete(fn);
}

function apply(l: Locale): void {
	const changed = l !== current || document.documentElement.lang !== l;
	current = l;
	document.documentElement.lang = l;
	translateDom(document);
	if (changed) for (const fn of [...listeners]) fn(l);
}

/**
 * The message `key` in the page's language (or `l`), with `{name}` placeholders filled in.
 * A key missing from a catalogue is a build error (the catalogues are typed) and a test failure.
 */
export function t(key: MessageKey, params?: Params, l: Locale = current): string {
	const text = CATALOGUES[l][key] ?? en[key];
	return params ? fill(text, params) : text;
}

/** `t` for a key built at run time (an error code): `undefined` when no catalogue has it. */
export function tMaybe(key: string, params?: Params, l: Locale = current): string | undefined {
	if (!Object.hasOwn(en, key)) return undefined;
	return t(key as MessageKey, params, l);
}

function fill(text: string, params: Params): string {
	return text.replace(/\{(\w+)\}/g, (m, name: string) => (name in params ? String(params[name]) : m));
}

/**
 * Fills the page's static texts: `data-i18n="key"` sets the element's text,
 * `data-i18n-attr="aria-label:key title:key"` sets attributes.
 */
export function translateDom(root: ParentNode): void {
	for (const el of root.querySelectorAll<HTMLElement>("[data-i18n]")) {
		el.textContent = t(el.dataset.i18n as MessageKey);
	}
	for (const el of root.querySelectorAll<HTMLElement>("[data-i18n-attr]")) {
		for (const pair of (el.dataset.i18nAttr ?? "").split(/\s+/).filter(Boolean)) {
			const [attr, key] = pair.split(":");
			if (attr && key) el.setAttribute(attr, t(key as MessageKey));
		}
	}
}

/** A clock time (14 h 05 in French, 2:05 p.m. in English). */
export function formatTime(at: string | Date | undefined, l: Locale = current): string {
	if (!at) return "";
	const d = at instanceof Date ? at : new Date(at);
	return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString(localeTag(l), { hour: "2-digit", minute: "2-digit" });
}

export function formatDate(at: string | Date): string {
	const d = at instanceof Date ? at : new Date(at);
	return Number.isNaN(d.getTime()) ? "" : d.toLocaleDateString(localeTag(), { dateStyle: "long" });
}

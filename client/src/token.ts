import type { ErrorBody } from "../../shared/protocol.js";

const STORAGE_KEY = "consentry.token";

/**
 * The sign-in token arrives in the URL fragment (`#token=<jwt>`), which browsers never send to
 * the server, so it stays out of HTTP logs. It is kept for this tab only (sessionStorage, so a
 * reload keeps it) and removed from the address bar so that a copied meeting link never carries it.
 */
export function takeToken(): string | undefined {
	const fragment = new URLSearchParams(location.hash.slice(1));
	const fromUrl = fragment.get("token");
	if (fromUrl !== null) {
		fragment.delete("token");
		const rest = fragment.toString();
		history.replaceState(history.state, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
		try {
			if (fromUrl) sessionStorage.setItem(STORAGE_KEY, fromUrl);
			else sessionStorage.removeItem(STORAGE_KEY);
		} catch {
			// storage may be disabled; the token still works for this page load
		}
		return fromUrl || undefined;
	}
	try {
		return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
	} catch {
		return undefined;
	}
}

export function forgetToken(): void {
	try {
		sessionStorage.removeItem(STORAGE_KEY);
	} catch {
		// nothing stored
	}
}

export interface TokenClaims {
	role?: "host" | "participant";
	name?: string;
	exp?: number;
}

/**
 * Reads the token's claims for display only (the name to prefill, "you join as host"). The
 * gateway verifies the token; nothing here trusts it.
 */
export function readClaims(token: string | undefined): TokenClaims | undefined {
	const payload = token?.split(".")[1];
	if (!payload) return undefined;
	try {
		const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
		const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
		const claims = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
		return {
			...(claims.role === "host" || claims.role === "participant" ? { role: claims.role } : {}),
			...(typeof claims.name === "string" ? { name: claims.name } : {}),
			...(typeof claims.exp === "number" ? { exp: claims.exp } : {}),
		};
	} catch {
		return undefined;
	}
}

/** What a page's one signed-in GET answered: its body, or the gateway's error code (`token_missing`, `network`). */
export type Fetched<T> = { ok: true; data: T } | { ok: false; code: string; message: string };

/** GET `url` with the person's own token (the /t/, /r/ and /recordings/ pages). */
export async function getWithToken<T>(url: string, token: string | undefined): Promise<Fetched<T>> {
	if (!token) return { ok: false, code: "token_missing", message: "" };
	let res: Response;
	try {
		res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
	} catch {
		return { ok: false, code: "network", message: "" };
	}
	const data = (await res.json().catch(() => ({}))) as T & Partial<ErrorBody>;
	if (!res.ok) return { ok: false, code: data.code ?? "error", message: data.message ?? "" };
	return { ok: true, data };
}

import fastifyHelmet from "@fastify/helmet";
import type { FastifyInstance } from "fastify";

/**
 * The Content-Security-Policy of every response: the gateway's own origin only. Scripts and styles are the built
 * client's files (no inline script or style, no eval); fetches and the signaling WebSocket go to the same origin
 * (`'self'` covers ws:/wss: to it); media is camera/microphone streams and WebRTC (not fetched, so not governed by
 * CSP) plus `blob:` for anything the client makes locally; no plugins, no frames, nobody may frame the gateway.
 */
export const CSP_DIRECTIVES = {
	defaultSrc: ["'self'"],
	scriptSrc: ["'self'"],
	styleSrc: ["'self'"],
	imgSrc: ["'self'", "data:", "blob:"],
	mediaSrc: ["'self'", "blob:"],
	connectSrc: ["'self'"],
	fontSrc: ["'self'"],
	workerSrc: ["'self'"],
	objectSrc: ["'none'"],
	frameSrc: ["'none'"],
	baseUri: ["'none'"],
	formAction: ["'self'"],
	frameAncestors: ["'none'"],
} as const;

/**
 * The gateway's CSP with one directive widened to one more origin (a page that reads the organisation's bucket:
 * playback's media, the transcript page's fetches), as helmet writes it; `upgrade-insecure-requests` when TLS.
 */
export function widenedCsp(directive: keyof typeof CSP_DIRECTIVES, origin: string | undefined, tls: boolean): string {
	const directives: Record<string, readonly string[]> = { ...CSP_DIRECTIVES };
	if (origin) directives[directive] = [...CSP_DIRECTIVES[directive], origin];
	const parts = Object.entries(directives).map(
		([k, v]) => `${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${v.join(" ")}`,
	);
	if (tls) parts.push("upgrade-insecure-requests");
	return parts.join(";");
}

/**
 * Security headers on every HTTP response, by @fastify/helmet (a maintained plugin, not hand-set headers): the CSP
 * above, `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, the
 * cross-origin isolation headers helmet sets by default, and — only when the gateway serves TLS itself —
 * `Strict-Transport-Security` and `upgrade-insecure-requests` (on plain http behind a proxy, the proxy sets HSTS).
 * Register before any route. socket.io's own HTTP answers (long-polling) get nosniff and frame denial from
 * `engineHeaders`.
 */
export async function registerSecurityHeaders(
	http: FastifyInstance,
	o: { tls: boolean; clusterUrls?: () => readonly string[] },
): Promise<void> {
	const clusterUrls = o.clusterUrls;
	await http.register(fastifyHelmet, {
		contentSecurityPolicy: {
			useDefaults: false,
			directives: {
				...CSP_DIRECTIVES,
				// Cluster (issue 12 placement): a join may be sent to another node; its signaling WebSocket is allowed.
				...(clusterUrls ? { connectSrc: ["'self'", () => clusterSources(clusterUrls())] } : {}),
				...(o.tls ? { upgradeInsecureRequests: [] } : {}),
			},
		},
		strictTransportSecurity: o.tls ? { maxAge: 31_536_000, includeSubDomains: true } : false,
		referrerPolicy: { policy: "no-referrer" },
		xFrameOptions: { action: "deny" },
		crossOriginResourcePolicy: { policy: "same-origin" },
		crossOriginOpenerPolicy: { policy: "same-origin" },
	});
}

/** The cluster's node URLs as CSP sources: each as given (http/https) and as its WebSocket (ws/wss) origin. */
export function clusterSources(urls: readonly string[]): string {
	const out = new Set<string>();
	for (const u of urls) {
		if (!/^https?:\/\/[^/\s;,']+$/.test(u)) continue; // only what the registry's format allows, nothing to inject
		out.add(u);
		out.add(u.replace(/^http/, "ws"));
	}
	return [...out].join(" ");
}

/** For socket.io's engine (`headers` / `initial_headers` events): what its own HTTP answers carry. */
export function engineHeaders(headers: Record<string, string>, tls: boolean): void {
	headers["X-Content-Type-Options"] = "nosniff";
	headers["X-Frame-Options"] = "DENY";
	headers["Referrer-Policy"] = "no-referrer";
	if (tls) headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains";
}

import http from "node:http";
import type { AddressInfo } from "node:net";

export interface ProxiedRequest {
	method: string;
	url: string;
	headers: http.IncomingHttpHeaders;
	/** What the proxy did: forwarded, or the fault it injected. */
	outcome: "forwarded" | number | "reset" | "blackhole";
}

/**
 * Decides per request: undefined forwards it, a status answers with that S3 error, "reset" drops the connection,
 * "blackhole" takes the request and never answers (nor closes).
 */
export type Fault = (req: http.IncomingMessage) => number | "reset" | "blackhole" | undefined;

export interface S3Proxy {
	endpoint: string;
	requests: ProxiedRequest[];
	fault: Fault | undefined;
	/** Refuses connections (the port closed: ECONNREFUSED) until called with false; open ones are dropped. */
	refuse(on: boolean): Promise<void>;
	close(): Promise<void>;
}

const ERROR_CODES: Record<number, string> = { 403: "AccessDenied", 500: "InternalError", 503: "SlowDown" };

/**
 * A pass-through HTTP proxy in front of a real S3 API (moto) that records
 * every request's headers and can inject errors: it shows what the client
 * really sent (moto itself does not check SSE-C headers).
 */
export async function startS3Proxy(upstream: string): Promise<S3Proxy> {
	const target = new URL(upstream);
	const proxy: S3Proxy = {
		endpoint: "",
		requests: [],
		fault: undefined,
		refuse: async () => undefined,
		close: async () => undefined,
	};
	const hanging = new Set<http.ServerResponse>();
	const server = http.createServer((req, res) => {
		const injected = proxy.fault?.(req);
		proxy.requests.push({
			method: req.method ?? "",
			url: req.url ?? "",
			headers: req.headers,
			outcome: injected ?? "forwarded",
		});
		if (injected === "reset") {
			req.socket.destroy();
			return;
		}
		if (injected === "blackhole") {
			hanging.add(res);
			return; // never read, never answered
		}
		if (typeof injected === "number") {
			req.resume();
			req.on("end", () => {
				const code = ERROR_CODES[injected] ?? "Error";
				res.writeHead(injected, { "content-type": "application/xml" });
				res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected</Message></Error>`);
			});
			return;
		}
		const up = http.request(
			{ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
			(upRes) => {
				res.writeHead(upRes.statusCode ?? 502, upRes.headers);
				upRes.pipe(res);
			},
		);
		up.on("error", () => req.socket.destroy());
		req.pipe(up);
	});
	await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
	const port = (server.address() as AddressInfo).port;
	proxy.endpoint = `http://127.0.0.1:${port}`;
	proxy.refuse = async (on) => {
		if (on) {
			await new Promise<void>((r) => {
				server.close(() => r());
				server.closeAllConnections();
			});
		} else if (!server.listening) await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
	};
	proxy.close = () =>
		new Promise<void>((r) => {
			for (const res of hanging) res.socket?.destroy();
			server.closeAllConnections();
			if (server.listening) server.close(() => r());
			else r();
		});
	return proxy;
}

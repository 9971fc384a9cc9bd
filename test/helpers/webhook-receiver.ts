import http from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedHook {
	headers: http.IncomingHttpHeaders;
	body: string;
	payload: { id: string; type: string; meetingId: string | null; data: Record<string, unknown> };
	at: number;
}

/** What the receiver does with a request: answer with a status, hang (never answer), or redirect. */
export type ReceiverBehaviour = (hook: ReceivedHook, index: number) => number | "hang" | { redirect: string };

/** A customer's webhook endpoint on loopback that records every request it gets. */
export interface WebhookReceiver {
	url: string;
	port: number;
	received: ReceivedHook[];
	/** Requests answered 2xx, in the order they were answered. */
	accepted: ReceivedHook[];
	behave(b: ReceiverBehaviour): void;
	stop(): Promise<void>;
}

export async function startWebhookReceiver(port = 0): Promise<WebhookReceiver> {
	let behaviour: ReceiverBehaviour = () => 200;
	const received: ReceivedHook[] = [];
	const accepted: ReceivedHook[] = [];
	const server = http.createServer((req, res) => {
		const chunks: Buffer[] = [];
		req.on("data", (c: Buffer) => chunks.push(c));
		req.on("end", () => {
			const body = Buffer.concat(chunks).toString("utf8");
			let payload: ReceivedHook["payload"];
			try {
				payload = JSON.parse(body);
			} catch {
				res.writeHead(400).end();
				return;
			}
			const hook = { headers: req.headers, body, payload, at: Date.now() };
			received.push(hook);
			const b = behaviour(hook, received.length - 1);
			if (b === "hang") return;
			if (typeof b === "object") {
				res.writeHead(302, { location: b.redirect }).end();
				return;
			}
			if (b >= 200 && b < 300) accepted.push(hook);
			res.writeHead(b, { "content-type": "text/plain" }).end(b < 300 ? "ok" : "no");
		});
	});
	await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
	const p = (server.address() as AddressInfo).port;
	return {
		url: `http://127.0.0.1:${p}/hooks`,
		port: p,
		received,
		accepted,
		behave: (b) => {
			behaviour = b;
		},
		stop: async () => {
			server.closeAllConnections();
			await new Promise((r) => server.close(r));
		},
	};
}

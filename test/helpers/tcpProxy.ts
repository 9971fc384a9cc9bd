import net from "node:net";

/** A TCP pass-through to `host:port` that a test can cut (a network partition between a process and a server). */
export interface TcpProxy {
	/** `127.0.0.1:<port>` to connect to instead of the upstream. */
	port: number;
	/** Cuts every open connection and drops each new one at once, until `restore()`. */
	cut(): void;
	restore(): void;
	close(): Promise<void>;
}

export async function startTcpProxy(upstream: { host: string; port: number }): Promise<TcpProxy> {
	const open = new Set<net.Socket>();
	let cut = false;
	const server = net.createServer((client) => {
		if (cut) {
			client.destroy();
			return;
		}
		const up = net.connect(upstream.port, upstream.host);
		open.add(client);
		open.add(up);
		const drop = () => {
			client.destroy();
			up.destroy();
			open.delete(client);
			open.delete(up);
		};
		client.on("error", drop).on("close", drop);
		up.on("error", drop).on("close", drop);
		client.pipe(up);
		up.pipe(client);
	});
	await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
	const port = (server.address() as net.AddressInfo).port;
	const cutAll = () => {
		cut = true;
		for (const s of open) s.destroy();
		open.clear();
	};
	return {
		port,
		cut: cutAll,
		restore() {
			cut = false;
		},
		async close() {
			cutAll();
			await new Promise<void>((r) => server.close(() => r()));
		},
	};
}

/** The same PostgreSQL URL through the proxy. */
export function viaProxy(databaseUrl: string, proxy: TcpProxy): string {
	const u = new URL(databaseUrl);
	u.hostname = "127.0.0.1";
	u.port = String(proxy.port);
	return u.toString();
}

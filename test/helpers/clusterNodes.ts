import { type ChildProcess, spawn } from "node:child_process";
import { type JoinAnswer, JoinRedirectSchema, type JoinResult } from "../../shared/protocol.js";
import { CROWD_ON_LOOPBACK } from "./gateway.js";
import { freePort } from "./ports.js";
import { connect, type RawClient } from "./signaling.js";
import { AUDIENCE, type TestTenant, writeTenantsFile } from "./tenants.js";
import { waitFor } from "./wait.js";

export type Joined = Extract<JoinResult, { status: "joined" }>;

/** A gateway node as its own OS process (server/main.ts through tsx: no build needed), so it can be killed with -9. */
export interface NodeProcess {
	id: string;
	url: string;
	child: ChildProcess;
	/** What it wrote to stderr (warnings and errors), for a failing test's message. */
	log: () => string;
	kill(signal?: NodeJS.Signals): void;
}

/** Starts a cluster node process on a free port with a public URL, on the PostgreSQL `databaseUrl`. */
export async function startNodeProcess(o: {
	id: string;
	databaseUrl: string;
	tenants: TestTenant[];
	env?: Record<string, string>;
}): Promise<NodeProcess> {
	const port = await freePort();
	const url = `http://127.0.0.1:${port}`;
	const child = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
		env: {
			...process.env,
			CONSENTRY_HTTP_HOST: "127.0.0.1",
			CONSENTRY_HTTP_PORT: String(port),
			CONSENTRY_WORKERS: "1",
			CONSENTRY_DATABASE_URL: o.databaseUrl,
			CONSENTRY_AUDIENCE: AUDIENCE,
			CONSENTRY_GATEWAY_ID: o.id,
			CONSENTRY_PUBLIC_URL: url,
			CONSENTRY_TENANTS_FILE: writeTenantsFile(o.tenants),
			CONSENTRY_LOG_LEVEL: "warn",
			...CROWD_ON_LOOPBACK,
			...o.env,
		},
		stdio: ["ignore", "ignore", "pipe"],
	});
	let stderr = "";
	child.stderr?.on("data", (d: Buffer) => {
		stderr = (stderr + d.toString()).slice(-20_000);
	});
	const exited = new Promise<never>((_, reject) =>
		child.once("exit", (code) => reject(new Error(`node ${o.id} exited (${code}): ${stderr}`))),
	);
	exited.catch(() => undefined);
	await Promise.race([
		waitFor(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok, 60_000, `node ${o.id} to answer`),
		exited,
	]);
	return {
		id: o.id,
		url,
		child,
		log: () => stderr,
		kill: (signal = "SIGKILL") => child.kill(signal),
	};
}

/** Stops a node process (SIGTERM: a clean stop), waiting for it to exit. */
export async function stopNodeProcess(n: NodeProcess | undefined): Promise<void> {
	if (!n || n.child.exitCode !== null || n.child.signalCode !== null) return;
	const gone = new Promise((r) => n.child.once("exit", r));
	n.child.kill("SIGTERM");
	await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
	if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill("SIGKILL");
}

/**
 * A bot's join as the browser client does it: on `url`, following the cluster's redirects (same token, same join).
 * Returns the connection it joined on and the answer; rejects with the refusal (body in `body`). `connected` sees each
 * connection before its join is sent (to listen to events that may come before the answer, e.g. a notice).
 */
export async function joinVia(
	url: string,
	token: string | undefined,
	body: Record<string, unknown>,
	connected?: (client: RawClient) => void,
): Promise<{ client: RawClient; answer: Joined | Extract<JoinResult, { status: "lobby" }>; hops: string[] }> {
	let client = await connect(url, token);
	connected?.(client);
	const hops: string[] = [];
	for (let i = 0; i < 4; i++) {
		const r = await client.req("join", body);
		if (!r.ok) {
			client.close();
			throw Object.assign(new Error(r.error.message), { body: r.error });
		}
		const a = r.data as JoinAnswer;
		if (a.status !== "redirect") return { client, answer: a, hops };
		const redirect = JoinRedirectSchema.parse(a);
		hops.push(redirect.redirect.node);
		client.close();
		client = await connect(redirect.redirect.url, token);
		connected?.(client);
	}
	client.close();
	throw new Error("too many redirects");
}

/**
 * What the browser client does when its node is lost: tries its nodes in turn (the one it was on, then the others it
 * was told of) every `everyMs` until a join succeeds. Resolves with the new connection and when it got in.
 */
export async function rejoin(
	urls: readonly string[],
	token: string | undefined,
	body: Record<string, unknown>,
	o: { everyMs?: number; timeoutMs?: number; connected?: (client: RawClient) => void } = {},
): Promise<{ client: RawClient; answer: Joined; at: number; tries: number }> {
	const deadline = Date.now() + (o.timeoutMs ?? 15_000);
	let tries = 0;
	let last: unknown;
	while (Date.now() < deadline) {
		const url = urls[tries % urls.length] as string;
		tries++;
		try {
			const j = await joinVia(url, token, body, o.connected);
			if (j.answer.status === "joined") return { client: j.client, answer: j.answer, at: Date.now(), tries };
			j.client.close();
		} catch (err) {
			last = err;
		}
		await new Promise((r) => setTimeout(r, o.everyMs ?? 250));
	}
	throw new Error(`could not rejoin: ${String((last as Error)?.message ?? last)}`);
}

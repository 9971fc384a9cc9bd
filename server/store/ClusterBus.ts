import { EventEmitter } from "node:events";
import pg from "pg";

/** A message between the gateway nodes sharing one store. */
export type ClusterMessage =
	| {
			/** A host seat moved: the node holding `connectionId` ejects it (issue 12: within 1 s, whatever node). */
			type: "host_seat.taken_over";
			connectionId: string;
	  }
	| {
			/**
			 * An operator action or tenant change was written to the change feed (`operator_changes`) at `seq`: every
			 * node reads the feed now instead of at its next poll (server/operator/TenantDirectory.ts).
			 */
			type: "operator.changed";
			seq: number;
	  }
	| {
			/**
			 * A meeting was ended in the store by a node that is not its home (e.g. the host's REST call reached another
			 * node): the node holding its room ejects its people with `reason` and closes its captures there.
			 */
			type: "meeting.ended";
			meetingId: string;
			/** The node that ended it (it acted on its own connections already). */
			from: string;
			actor: string;
			reason: "meeting_ended" | "operator";
			operatorReason?: string;
			captureReason: string;
	  }
	| {
			/** A meeting's passcode lockout was lifted on some node: the hosts in its room see the new state. */
			type: "passcode.unlocked";
			meetingId: string;
			from: string;
	  };

const CHANNEL = "consentry_cluster";

/**
 * Events between gateway nodes, over the store itself (no second engine): PostgreSQL's LISTEN/NOTIFY, one listening
 * connection per node (reconnected after a loss); on SQLite, within the process (the processes sharing a file on one
 * host get no cross-process events). Delivery is at most once and only to nodes listening at the time: use it to
 * act sooner on what the store already decided, never as the record.
 */
export abstract class ClusterBus {
	protected readonly emitter = new EventEmitter();

	static async open(opts: { url?: string; log?: { warn: (o: object, m: string) => void } }): Promise<ClusterBus> {
		if (!opts.url) return new LocalBus();
		const bus = new PostgresBus(opts.url, opts.log);
		await bus.start();
		return bus;
	}

	/** Calls `handler` with every message published by any node (this one too). Returns an unsubscribe. */
	subscribe(handler: (m: ClusterMessage) => void): () => void {
		this.emitter.on("message", handler);
		return () => this.emitter.off("message", handler);
	}

	abstract publish(m: ClusterMessage): Promise<void>;
	abstract close(): Promise<void>;
}

class LocalBus extends ClusterBus {
	async publish(m: ClusterMessage): Promise<void> {
		this.emitter.emit("message", m);
	}
	async close(): Promise<void> {}
}

class PostgresBus extends ClusterBus {
	readonly #url: string;
	readonly #log: { warn: (o: object, m: string) => void } | undefined;
	#listener: pg.Client | undefined;
	#publisher: pg.Client | undefined;
	#closed = false;
	#retry: NodeJS.Timeout | undefined;

	constructor(url: string, log?: { warn: (o: object, m: string) => void }) {
		super();
		this.#url = url;
		this.#log = log;
	}

	async start(): Promise<void> {
		const c = new pg.Client({
			connectionString: this.#url,
			connectionTimeoutMillis: 2000,
			fallback_application_name: "consentry-bus",
		});
		c.on("notification", (n) => {
			if (n.channel !== CHANNEL || !n.payload) return;
			try {
				this.emitter.emit("message", JSON.parse(n.payload) as ClusterMessage);
			} catch {
				// not ours
			}
		});
		const lost = (err?: unknown) => {
			if (this.#closed || this.#listener !== c) return;
			this.#listener = undefined;
			this.#log?.warn({ err }, "cluster bus: listening connection lost; reconnecting");
			this.#reconnect();
		};
		c.on("error", lost);
		c.on("end", () => lost());
		await c.connect();
		await c.query(`LISTEN ${CHANNEL}`);
		this.#listener = c;
	}

	/** Tries to listen again every second until it works (a failed attempt's client is not the listener). */
	#reconnect(): void {
		if (this.#closed) return;
		this.#retry = setTimeout(() => void this.start().catch(() => this.#reconnect()), 1000);
		this.#retry.unref();
	}

	async publish(m: ClusterMessage): Promise<void> {
		if (!this.#publisher) {
			const c = new pg.Client({
				connectionString: this.#url,
				connectionTimeoutMillis: 2000,
				query_timeout: 5000,
				fallback_application_name: "consentry-bus",
			});
			c.on("error", () => {
				if (this.#publisher === c) this.#publisher = undefined;
			});
			await c.connect();
			this.#publisher = c;
		}
		await this.#publisher.query("SELECT pg_notify($1, $2)", [CHANNEL, JSON.stringify(m)]);
	}

	async close(): Promise<void> {
		this.#closed = true;
		clearTimeout(this.#retry);
		await this.#listener?.end().catch(() => undefined);
		await this.#publisher?.end().catch(() => undefined);
	}
}

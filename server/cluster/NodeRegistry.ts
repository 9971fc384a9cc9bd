import type { Logger } from "../logger.js";
import type { PlacementRepository } from "../store/PlacementRepository.js";
import type { ClusterNode, NodeLoad } from "./ClusterTypes.js";

export interface NodeRegistryOptions {
	repo: PlacementRepository;
	nodeId: string;
	/** Where clients reach this node (CONSENTRY_PUBLIC_URL). */
	url: string;
	/** How often the heartbeat is written (ms). */
	heartbeatMs: number;
	/** A node without a heartbeat this long is dead (ms). */
	deadMs: number;
	/** This node's load now (read at each beat). */
	load: () => Promise<NodeLoad> | NodeLoad;
	/** Runs after each beat (placement's sweep for meetings of dead nodes). */
	afterBeat?: () => Promise<void>;
	/**
	 * Fencing: called once when this node's own heartbeat has not reached the store for `deadMs` (the others may
	 * count it dead and take its meetings), and `recovered` once it reaches the store again.
	 */
	onFenced?: () => void;
	onRecovered?: (fencedAt: number) => void;
	log: Logger;
	now?: () => number;
}

/**
 * This gateway as a node of the cluster (issue 12 placement): it registers in the store with its public URL and
 * writes a heartbeat with its load every `heartbeatMs`; a node without one for `deadMs` is dead. It keeps the live
 * nodes as of its last beat (for placement and the clients' fallback list). A node whose own heartbeat could not be
 * written for `deadMs` knows it may be counted dead by the others: `healthy` goes false and placement takes no new
 * meeting on it (partitioned from the store, it stops accepting new work instead of breaking the one-home rule).
 */
export class NodeRegistry {
	readonly nodeId: string;
	readonly url: string;
	readonly deadMs: number;
	readonly heartbeatMs: number;
	readonly #o: NodeRegistryOptions;
	readonly #now: () => number;
	/** When this run of the node started (ms): placements older than this on its ID are from a previous run. */
	readonly startedAt: number;
	#timer: NodeJS.Timeout | undefined;
	#lastBeat = 0;
	#nodes: ClusterNode[] = [];
	#beating: Promise<void> | undefined;
	#closed = false;
	#fenceTimer: NodeJS.Timeout | undefined;
	/** When this node fenced itself (ms), while it is fenced. */
	#fencedAt: number | undefined;
	/** How often the fence is checked: a quarter heartbeat (at most a quarter of the dead time). */
	readonly #checkEveryMs: number;

	private constructor(o: NodeRegistryOptions) {
		this.#o = o;
		this.nodeId = o.nodeId;
		this.url = o.url;
		this.deadMs = o.deadMs;
		this.heartbeatMs = o.heartbeatMs;
		this.#now = o.now ?? Date.now;
		this.startedAt = this.#now();
		this.#checkEveryMs = Math.max(50, Math.floor(Math.min(o.heartbeatMs, o.deadMs) / 4));
	}

	/** Registers the node (its first heartbeat, awaited) and starts beating. */
	static async start(o: NodeRegistryOptions): Promise<NodeRegistry> {
		const r = new NodeRegistry(o);
		await r.beat();
		r.#timer = setInterval(() => {
			if (!r.#beating) r.#beating = r.beat().finally(() => (r.#beating = undefined));
		}, o.heartbeatMs);
		r.#timer.unref();
		// The fence is watched apart from the beat: a write to an unreachable store can hang far longer than deadMs.
		r.#fenceTimer = setInterval(() => r.#checkFence(), r.#checkEveryMs);
		r.#fenceTimer.unref();
		return r;
	}

	/** Writes one heartbeat, reads the live nodes, then runs `afterBeat`. Failures are logged, never thrown. */
	async beat(): Promise<void> {
		if (this.#closed) return;
		const at = this.#now();
		try {
			const load = await this.#o.load();
			await this.#o.repo.beat({
				nodeId: this.nodeId,
				url: this.url,
				startedAt: this.startedAt,
				heartbeatAt: at,
				...load,
			});
			this.#lastBeat = at;
			this.#checkFence();
			const rows = await this.#o.repo.liveNodes(this.#now() - this.deadMs);
			this.#nodes = rows.map((r) => ({
				nodeId: r.nodeId,
				url: r.url,
				load: { meetings: r.meetings, peers: r.peers, cpu: r.cpu },
				placed: r.placed,
			}));
		} catch (err) {
			this.#o.log.warn({ err }, "cluster: heartbeat not written (the store is unreachable)");
			return;
		}
		await this.#o.afterBeat?.().catch((err: unknown) => this.#o.log.warn({ err }, "cluster: sweep failed"));
	}

	/** This node's heartbeat reached the store within `deadMs`: the others count it alive. */
	get healthy(): boolean {
		return !this.#closed && this.#fencedAt === undefined && this.#now() - this.#lastBeat < this.deadMs;
	}

	/** Whether this node fenced itself (its heartbeat missing for `deadMs`) and has not reached the store since. */
	get fenced(): boolean {
		return this.#fencedAt !== undefined;
	}

	/**
	 * Fences one check interval before the others may count this node dead (`deadMs` after the last heartbeat that
	 * reached the store, on the same clock), so its rooms are closed before another node can take their meetings.
	 * Lifted by the first heartbeat that starts after the fence and reaches the store.
	 */
	#checkFence(): void {
		if (this.#closed) return;
		if (this.#fencedAt === undefined && this.#now() - this.#lastBeat >= this.deadMs - this.#checkEveryMs) {
			this.#fencedAt = this.#now();
			this.#o.log.error(
				{ lastBeat: new Date(this.#lastBeat).toISOString(), deadMs: this.deadMs },
				"cluster: fenced: the store has not had this node's heartbeat for the dead time; its rooms close",
			);
			this.#o.onFenced?.();
		} else if (this.#fencedAt !== undefined && this.#lastBeat >= this.#fencedAt) {
			const fencedAt = this.#fencedAt;
			this.#fencedAt = undefined;
			this.#o.log.warn("cluster: the store is reachable again: this node takes work again");
			this.#o.onRecovered?.(fencedAt);
		}
	}

	/** The live nodes as of the last beat (this one included while healthy). */
	nodes(): readonly ClusterNode[] {
		return this.#nodes;
	}

	/** Reads the live nodes now (placement decides on these, not on the last beat's list). */
	async liveNodes(): Promise<ClusterNode[]> {
		const rows = await this.#o.repo.liveNodes(this.#now() - this.deadMs);
		return rows.map((r) => ({
			nodeId: r.nodeId,
			url: r.url,
			load: { meetings: r.meetings, peers: r.peers, cpu: r.cpu },
			placed: r.placed,
		}));
	}

	/** Stops beating and leaves the cluster (a clean stop: nobody places a meeting here any more). */
	async close(): Promise<void> {
		this.#closed = true;
		clearInterval(this.#timer);
		clearInterval(this.#fenceTimer);
		await this.#beating?.catch(() => undefined);
		await this.#o.repo.forget(this.nodeId).catch(() => undefined);
	}
}

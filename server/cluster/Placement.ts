import { StoreUnavailableError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { PlacementRepository, PlacementRow } from "../store/PlacementRepository.js";
import type { ClusterNode, Home, RehomeListener } from "./ClusterTypes.js";
import type { NodeRegistry } from "./NodeRegistry.js";

/**
 * Which node a meeting's router lives on (issue 12 placement; LiveKit does the same). The first join, on whatever
 * node it reaches, places the meeting on the least loaded live node (fewest meetings placed, then fewest people, then
 * least CPU) with an insert only one node can win; every later join reads the placement and, when it is elsewhere,
 * is answered with a redirect there. When a meeting's node stops beating (dead after `deadMs`), the first live node
 * that notices (its sweep after each heartbeat, or a join) moves the placement to itself with a compare-and-set on
 * the dead node's epoch, and becomes the meeting's home: its listeners continue what the dead node did.
 */
export class Placement {
	readonly #repo: PlacementRepository;
	readonly #registry: NodeRegistry;
	readonly #log: Logger;
	readonly #now: () => number;
	readonly #listeners: RehomeListener[] = [];
	/** Re-homings whose listeners still run: a join here waits for them (the lost node's seats released first). */
	readonly #pending = new Map<string, Promise<void>>();
	/** Meetings whose home's heartbeat is late: one wait for the verdict per meeting, shared by the joins asking. */
	readonly #verdicts = new Map<string, Promise<Row | undefined>>();

	constructor(o: { repo: PlacementRepository; registry: NodeRegistry; log: Logger; now?: () => number }) {
		this.#repo = o.repo;
		this.#registry = o.registry;
		this.#log = o.log.child({ component: "Placement" });
		this.#now = o.now ?? Date.now;
	}

	get nodeId(): string {
		return this.#registry.nodeId;
	}

	/** Called on this node each time it becomes the home of a meeting whose node died. */
	onRehomed(listener: RehomeListener): void {
		this.#listeners.push(listener);
	}

	/** The live nodes' URLs as of the last heartbeat (the client's list to reconnect through). */
	nodeUrls(): string[] {
		return this.#registry.nodes().map((n) => n.url);
	}

	/**
	 * Where the meeting lives when it is placed on a live node already (one query; nothing written). When that node's
	 * heartbeat is late (more than 1.5 beats old: it may be dying), waits for the verdict, at most until it would be
	 * dead: a fresh beat (it lives: the answer is a redirect there) or none (dead: undefined, and the join re-homes the
	 * meeting here). So a client reconnecting after its node died is let in as soon as the node counts dead, rather than
	 * sent to the dead node and left to its next retry.
	 */
	async peek(meetingId: string): Promise<Home | undefined> {
		let p: Row | undefined = await this.#repo.find(meetingId);
		if (p && this.#late(p)) p = await this.#verdict(meetingId);
		return p && this.#alive(p) ? await this.#home(p) : undefined;
	}

	/** Its node is another one, counted alive, but missed its last beat (or more). */
	#late(p: Row): boolean {
		return (
			p.nodeId !== this.nodeId &&
			this.#alive(p) &&
			this.#now() - (p.heartbeatAt ?? 0) > this.#registry.heartbeatMs * 1.5
		);
	}

	#verdict(meetingId: string): Promise<Row | undefined> {
		let v = this.#verdicts.get(meetingId);
		if (!v) {
			v = (async () => {
				const until = this.#now() + this.#registry.deadMs;
				const every = Math.max(50, Math.floor(this.#registry.heartbeatMs / 4));
				for (;;) {
					await new Promise((r) => setTimeout(r, every));
					const p = await this.#repo.find(meetingId);
					if (!p || !this.#late(p) || this.#now() >= until) return p;
				}
			})().finally(() => this.#verdicts.delete(meetingId));
			this.#verdicts.set(meetingId, v);
		}
		return v;
	}

	/**
	 * Where the meeting lives, placing (or re-homing) it when needed. A node that cannot write its own heartbeat
	 * takes no meeting: 503 `store_unavailable`, the client tries again (another node, or this one once it is back).
	 */
	async home(meetingId: string): Promise<Home> {
		for (let attempt = 0; attempt < 3; attempt++) {
			const p = await this.#repo.find(meetingId);
			if (p && this.#alive(p)) return await this.#home(p);
			if (!this.#registry.healthy) throw new StoreUnavailableError();
			if (!p) {
				const target = choose(await this.#registry.liveNodes(), this.nodeId);
				if (await this.#repo.claim(meetingId, target, this.#now()))
					this.#log.info({ meetingId, node: target }, "meeting placed");
				continue; // read what won
			}
			await this.#takeOver(p);
		}
		throw new StoreUnavailableError("The meeting's placement keeps changing; try again in a moment.");
	}

	/** Meetings placed on nodes that stopped beating: this node takes them (runs after each heartbeat). */
	async sweep(): Promise<void> {
		if (!this.#registry.healthy) return;
		for (const p of await this.#repo.orphaned(this.#now() - this.#registry.deadMs)) {
			if (p.nodeId === this.nodeId) continue; // our own row is fresh (we just beat): not orphaned
			await this.#takeOver(p);
		}
	}

	/**
	 * At start: meetings still placed on this node ID from its previous run (it died and came back before anyone took
	 * them) are taken again as re-homed, so what was running there continues here.
	 */
	async adoptOwn(startedAt: number): Promise<void> {
		for (const p of await this.#repo.on(this.nodeId)) {
			if (p.placedAt >= startedAt) continue;
			await this.#takeOver(p);
		}
	}

	/** Whether the meeting has a placement at all (restart hygiene leaves placed meetings to placement). */
	async placed(meetingId: string): Promise<boolean> {
		return (await this.#repo.find(meetingId)) !== undefined;
	}

	/** The meeting ended: its placement goes. */
	async release(meetingId: string): Promise<void> {
		await this.#repo.release(meetingId);
	}

	async #takeOver(p: PlacementRow): Promise<void> {
		const at = this.#now();
		if (!(await this.#repo.rehome(p, this.nodeId, at))) return; // another node was first
		const e = {
			meetingId: p.meetingId,
			from: p.nodeId,
			to: this.nodeId,
			epoch: p.epoch + 1,
		};
		this.#log.warn(e, "meeting re-homed here: its node was lost");
		const run = (async () => {
			for (const l of this.#listeners) {
				try {
					await l(e);
				} catch (err) {
					this.#log.error({ err, meetingId: p.meetingId }, "re-homing listener failed");
				}
			}
		})();
		this.#pending.set(p.meetingId, run);
		await run;
		if (this.#pending.get(p.meetingId) === run) this.#pending.delete(p.meetingId);
	}

	#alive(p: Row): boolean {
		if (p.nodeId === this.nodeId) return true; // our own: healthy or not, it is ours until another node takes it
		return p.heartbeatAt !== undefined && p.heartbeatAt >= this.#now() - this.#registry.deadMs;
	}

	async #home(p: PlacementRow & { url?: string }): Promise<Home> {
		if (p.nodeId === this.nodeId) {
			if (!this.#registry.healthy) throw new StoreUnavailableError();
			await this.#pending.get(p.meetingId);
			return { local: true, nodeId: p.nodeId, epoch: p.epoch };
		}
		return { local: false, nodeId: p.nodeId, url: p.url ?? "", epoch: p.epoch };
	}
}

/** A placement with its node's URL and last heartbeat, as `PlacementRepository.find` reads it. */
type Row = PlacementRow & { url?: string; heartbeatAt?: number };

/** The least loaded live node: fewest meetings placed, then fewest people, then least CPU, then by ID. */
export function choose(nodes: readonly ClusterNode[], self: string): string {
	const best = [...nodes].sort(
		(a, b) =>
			a.placed - b.placed ||
			a.load.peers - b.load.peers ||
			a.load.cpu - b.load.cpu ||
			(a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0),
	)[0];
	return best?.nodeId ?? self;
}

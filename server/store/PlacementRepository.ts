import type { Store } from "./Store.js";

/** A node of the cluster as the store knows it (table `cluster_nodes`). */
export interface NodeRow {
	nodeId: string;
	url: string;
	startedAt: number;
	heartbeatAt: number;
	meetings: number;
	peers: number;
	cpu: number;
}

/** Where a meeting's router lives (table `meeting_placements`). */
export interface PlacementRow {
	meetingId: string;
	nodeId: string;
	epoch: number;
	placedAt: number;
	cause: "placed" | "node_lost";
}

/**
 * The cluster's nodes and the meetings placed on them (issue 12 placement): all the SQL of `cluster_nodes` and
 * `meeting_placements`, on both engines. A placement is claimed by an insert the primary key lets only one node win;
 * a re-homing is a compare-and-set on the dead node's `(node_id, epoch)`, which again only one node wins.
 */
export class PlacementRepository {
	readonly #s: Store;

	constructor(store: Store) {
		this.#s = store;
	}

	/** Writes this node's heartbeat and load (registering it on the first call). */
	beat(n: Omit<NodeRow, "startedAt"> & { startedAt: number }): Promise<void> {
		return this.#s.guard(async () => {
			const row = {
				node_id: n.nodeId,
				url: n.url,
				started_at: n.startedAt,
				heartbeat_at: n.heartbeatAt,
				meetings: n.meetings,
				peers: n.peers,
				cpu: n.cpu,
			};
			await this.#s.db
				.insertInto("cluster_nodes")
				.values(row)
				.onConflict((oc) =>
					oc.column("node_id").doUpdateSet({
						url: row.url,
						started_at: row.started_at,
						heartbeat_at: row.heartbeat_at,
						meetings: row.meetings,
						peers: row.peers,
						cpu: row.cpu,
					}),
				)
				.execute();
		});
	}

	/** A node leaving on purpose (a clean stop): its row goes, so nobody places a meeting on it. */
	forget(nodeId: string): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db.deleteFrom("cluster_nodes").where("node_id", "=", nodeId).execute();
		});
	}

	/** Nodes whose heartbeat is at or after `since` (ms), with how many meetings are placed on each now. */
	liveNodes(since: number): Promise<(NodeRow & { placed: number })[]> {
		return this.#s.guard(async () => {
			const rows = await this.#s.db
				.selectFrom("cluster_nodes as n")
				.leftJoin("meeting_placements as p", "p.node_id", "n.node_id")
				.select(({ fn }) => [
					"n.node_id",
					"n.url",
					"n.started_at",
					"n.heartbeat_at",
					"n.meetings",
					"n.peers",
					"n.cpu",
					fn.count<number | string>("p.meeting_id").as("placed"),
				])
				.where("n.heartbeat_at", ">=", since)
				.groupBy(["n.node_id", "n.url", "n.started_at", "n.heartbeat_at", "n.meetings", "n.peers", "n.cpu"])
				.orderBy("n.node_id")
				.execute();
			return rows.map((r) => ({
				nodeId: r.node_id,
				url: r.url,
				startedAt: Number(r.started_at),
				heartbeatAt: Number(r.heartbeat_at),
				meetings: Number(r.meetings),
				peers: Number(r.peers),
				cpu: Number(r.cpu),
				placed: Number(r.placed),
			}));
		});
	}

	/** Where the meeting is placed, with its node's URL and last heartbeat (undefined heartbeat: the node is gone). */
	find(meetingId: string): Promise<(PlacementRow & { url?: string; heartbeatAt?: number }) | undefined> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.selectFrom("meeting_placements as p")
				.leftJoin("cluster_nodes as n", "n.node_id", "p.node_id")
				.select(["p.meeting_id", "p.node_id", "p.epoch", "p.placed_at", "p.cause", "n.url", "n.heartbeat_at"])
				.where("p.meeting_id", "=", meetingId)
				.executeTakeFirst();
			if (!r) return undefined;
			return {
				meetingId: r.meeting_id,
				nodeId: r.node_id,
				epoch: Number(r.epoch),
				placedAt: Number(r.placed_at),
				cause: r.cause,
				...(r.url !== null ? { url: r.url } : {}),
				...(r.heartbeat_at !== null ? { heartbeatAt: Number(r.heartbeat_at) } : {}),
			};
		});
	}

	/** Places the meeting on `nodeId` unless it is placed already. True when this call placed it. */
	claim(meetingId: string, nodeId: string, at: number): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.insertInto("meeting_placements")
				.values({ meeting_id: meetingId, node_id: nodeId, epoch: 1, placed_at: at, cause: "placed" })
				.onConflict((oc) => oc.column("meeting_id").doNothing())
				.executeTakeFirst();
			return Number(r.numInsertedOrUpdatedRows ?? 0) === 1;
		});
	}

	/**
	 * Moves the meeting from a node found dead to `nodeId`, if it is still where `from` says (compare-and-set on node
	 * and epoch): of several nodes trying at once, exactly one wins. True when this call moved it.
	 */
	rehome(from: PlacementRow, nodeId: string, at: number): Promise<boolean> {
		return this.#s.guard(async () => {
			const r = await this.#s.db
				.updateTable("meeting_placements")
				.set({ node_id: nodeId, epoch: from.epoch + 1, placed_at: at, cause: "node_lost" })
				.where("meeting_id", "=", from.meetingId)
				.where("node_id", "=", from.nodeId)
				.where("epoch", "=", from.epoch)
				.executeTakeFirst();
			return Number(r.numUpdatedRows) === 1;
		});
	}

	/** Placements whose node has no heartbeat since `since` (or no row at all): meetings to re-home. */
	orphaned(since: number, limit = 100): Promise<PlacementRow[]> {
		return this.#s.guard(async () => {
			const rows = await this.#s.db
				.selectFrom("meeting_placements as p")
				.leftJoin("cluster_nodes as n", "n.node_id", "p.node_id")
				.select(["p.meeting_id", "p.node_id", "p.epoch", "p.placed_at", "p.cause"])
				.where((eb) => eb.or([eb("n.node_id", "is", null), eb("n.heartbeat_at", "<", since)]))
				.orderBy("p.placed_at")
				.limit(limit)
				.execute();
			return rows.map((r) => ({
				meetingId: r.meeting_id,
				nodeId: r.node_id,
				epoch: Number(r.epoch),
				placedAt: Number(r.placed_at),
				cause: r.cause,
			}));
		});
	}

	/** Placements on one node (what it must hold). */
	on(nodeId: string): Promise<PlacementRow[]> {
		return this.#s.guard(async () => {
			const rows = await this.#s.db
				.selectFrom("meeting_placements")
				.selectAll()
				.where("node_id", "=", nodeId)
				.execute();
			return rows.map((r) => ({
				meetingId: r.meeting_id,
				nodeId: r.node_id,
				epoch: Number(r.epoch),
				placedAt: Number(r.placed_at),
				cause: r.cause,
			}));
		});
	}

	/** The meeting ended: its placement goes (whichever node ends it). */
	release(meetingId: string): Promise<void> {
		return this.#s.guard(async () => {
			await this.#s.db.deleteFrom("meeting_placements").where("meeting_id", "=", meetingId).execute();
		});
	}
}

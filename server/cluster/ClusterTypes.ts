/** A node's load as it reports it with each heartbeat (issue 12 placement). */
export interface NodeLoad {
	/** Meetings with a live room on this node. */
	meetings: number;
	/** People in those rooms. */
	peers: number;
	/** The node's mediasoup workers' CPU over the last beat, in cores (0 … workers). */
	cpu: number;
}

/** A live node of the cluster. */
export interface ClusterNode {
	nodeId: string;
	/** Where clients reach it (CONSENTRY_PUBLIC_URL). */
	url: string;
	load: NodeLoad;
	/** Meetings placed on it now (the store's count, current at once: placement's first criterion). */
	placed: number;
}

/** Where a meeting's router lives, as a join on this node sees it. */
export type Home =
	| { local: true; nodeId: string; epoch: number }
	| { local: false; nodeId: string; url: string; epoch: number };

/** What a node does when it becomes the home of a meeting whose node died (recordings to continue, the trail). */
export type RehomeListener = (e: {
	meetingId: string;
	from: string;
	to: string;
	epoch: number;
}) => Promise<void> | void;

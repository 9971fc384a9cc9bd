// A separate process with its own store connection(s), racing the others to start meetings.
// Usage: node --import tsx startRace.child.ts <db file | postgres://…> <id,id,...>  → prints {"started":n,"refused":n}
// On PostgreSQL its starts run concurrently (a pool of connections), as a gateway node's would.
import { ConflictError } from "../errors.js";
import { Store } from "../store/Store.js";
import { MeetingStore } from "./MeetingStore.js";

const [where, idList] = process.argv.slice(2) as [string, string];
const cluster = await Store.open(where.startsWith("postgres") ? { url: where } : { file: where });
const store = new MeetingStore(cluster);
let started = 0;
let refused = 0;
await Promise.all(
	idList.split(",").map(async (id) => {
		try {
			await store.start(id);
			started++;
		} catch (err) {
			if (!(err instanceof ConflictError)) throw err;
			refused++;
		}
	}),
);
await cluster.close();
process.stdout.write(JSON.stringify({ started, refused }));

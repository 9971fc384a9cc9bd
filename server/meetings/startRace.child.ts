// A separate process with its own database connection, racing the others to start meetings.
// Usage: node --import tsx startRace.child.ts <db file> <id,id,...>  → prints {"started":n,"refused":n}
import { ConflictError } from "../errors.js";
import { openDatabase } from "../store/Database.js";
import { MeetingStore } from "./MeetingStore.js";

const [file, idList] = process.argv.slice(2) as [string, string];
const store = new MeetingStore(openDatabase(file));
let started = 0;
let refused = 0;
for (const id of idList.split(",")) {
	try {
		store.start(id);
		started++;
	} catch (err) {
		if (!(err instanceof ConflictError)) throw err;
		refused++;
	}
}
process.stdout.write(JSON.stringify({ started, refused }));

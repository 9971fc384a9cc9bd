// A separate gateway process with its own database connection, appending to the same chains as the others.
// Usage: node --import tsx appendRace.child.ts <db file> <worker name> <count> <start at (epoch ms)> [pause every]
// Appends <count> entries (singles and batches of 5, two tenants, three meetings), pausing 1 ms every
// [pause every] entries (default 10; 0: never), then prints {"appended":n,"ms":<time from start>}.
import { openDatabase } from "../store/Database.js";
import { EventLog } from "./EventLog.js";

const [file, worker, countArg, startAt, pauseArg = "10"] = process.argv.slice(2) as [
	string,
	string,
	string,
	string,
	string?,
];
const pauseEvery = Number(pauseArg);
const log = new EventLog(openDatabase(file));
const count = Number(countArg);
while (Date.now() < Number(startAt)); // start together: maximal contention
const pause = new Int32Array(new SharedArrayBuffer(4));
let appended = 0;
while (appended < count) {
	const n = appended % 20 === 10 ? Math.min(5, count - appended) : 1;
	const items = Array.from({ length: n }, (_, k) => {
		const i = appended + k;
		return {
			type: "gate.opened" as const,
			tenantId: i % 4 === 3 ? "globex" : "acme",
			meetingId: `m${i % 3}`,
			actor: `acme:${worker}`,
			data: { worker, i },
		};
	});
	if (n === 1) log.append(items[0]?.type ?? "gate.opened", items[0] as (typeof items)[number]);
	else log.appendMany(items);
	appended += n;
	if (pauseEvery && appended % pauseEvery === 0) Atomics.wait(pause, 0, 0, 1); // let the others in now and then
}
process.stdout.write(JSON.stringify({ appended, ms: Date.now() - Number(startAt) }));

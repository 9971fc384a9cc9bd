// A separate gateway process with its own store connection, appending to the same chains as the others.
// Usage: node --import tsx appendRace.child.ts <db file | postgres:// URL> <worker name> <count> <start at (epoch ms)>
//        [pause every] [in flight] [tenants: two | one]
// Appends <count> entries (singles and batches of 5, two tenants, three meetings), pausing 1 ms every
// [pause every] entries (default 10; 0: never), with [in flight] appends outstanding at once (default 1: each
// awaited before the next; more: group commit batches them), to two tenants (one: all to acme), then prints
// {"appended":n,"ms":<time from start>,"commits":n,"cpuMs":<this process's CPU time from start>}.
import { Store } from "../store/Store.js";
import { EventLog } from "./EventLog.js";

const [where, worker, countArg, startAt, pauseArg = "10", inFlightArg = "1", tenants = "two"] = process.argv.slice(
	2,
) as [string, string, string, string, string?, string?, string?];
const pauseEvery = Number(pauseArg);
const inFlight = Number(inFlightArg);
const store = await Store.open(/^postgres/.test(where) ? { url: where } : { file: where });
const log = await EventLog.open(store);
const count = Number(countArg);
while (Date.now() < Number(startAt)); // start together: maximal contention
const cpu0 = process.cpuUsage();
let next = 0;
let appended = 0;
const lane = async (): Promise<void> => {
	while (next < count) {
		const first = next;
		const n = first % 20 === 10 ? Math.min(5, count - first) : 1;
		next += n;
		const items = Array.from({ length: n }, (_, k) => {
			const i = first + k;
			return {
				type: "gate.opened" as const,
				tenantId: i % 4 === 3 && tenants === "two" ? "globex" : "acme",
				meetingId: `m${i % 3}`,
				actor: `acme:${worker}`,
				data: { worker, i },
			};
		});
		if (n === 1) await log.append(items[0]?.type ?? "gate.opened", items[0] as (typeof items)[number]);
		else await log.appendMany(items);
		appended += n;
		if (pauseEvery && inFlight === 1 && appended % pauseEvery === 0) await new Promise((r) => setTimeout(r, 1));
	}
};
await Promise.all(Array.from({ length: inFlight }, lane));
const ms = Date.now() - Number(startAt);
await store.close();
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
	JSON.stringify({ appended, ms, commits: log.commits, cpuMs: Math.round((cpu.user + cpu.system) / 1000) }),
);

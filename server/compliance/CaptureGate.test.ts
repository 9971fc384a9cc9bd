import { spawnSync } from "node:child_process";
import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import type { NoticeView } from "../../shared/protocol.js";
import { postgresBinDir } from "../../test/helpers/postgres.js";
import { ENGINES, postgresServer } from "../../test/helpers/stores.js";
import { EventLog } from "../audit/EventLog.js";
import { ConsentryError } from "../errors.js";
import { createLogger } from "../logger.js";
import type { Connection } from "../meetings/Connection.js";
import type { Meeting } from "../meetings/MeetingTypes.js";
import { type Database, openDatabase } from "../store/Database.js";
import { type Engine, Store } from "../store/Store.js";
import { type CaptureProducer, CaptureService, type TapChange } from "./CaptureService.js";

/**
 * THE rule, property-tested on both engines with the real audit log and group commit: a tap opens only after the
 * entries that justify it (the person's acknowledgement or consent of that session, and the gate's opening) are
 * committed — seen, at the moment the tap is emitted, through a separate connection to the store. Operations come
 * in bursts without waiting for each other (answers arriving together share commits).
 */

const dirs: string[] = [];
afterAll(() => {
	for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A synchronous reader on another connection: what is committed now. */
interface CommittedReader {
	count(sqlText: string): number;
	close(): void;
}

async function storeWithReader(engine: Engine): Promise<{ store: Store; reader: CommittedReader }> {
	if (engine === "sqlite") {
		const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-gate-"));
		dirs.push(dir);
		const file = path.join(dir, "store.sqlite");
		const store = await Store.open({ file });
		const raw: Database = openDatabase(file);
		return {
			store,
			reader: {
				count: (q) => (raw.prepare(q).pluck().get() as number) ?? 0,
				close: () => raw.close(),
			},
		};
	}
	const url = await (await postgresServer()).createDatabase(`gate_${process.pid}_${Date.now()}`);
	const store = await Store.open({ url });
	const psql = path.join(postgresBinDir() as string, "psql");
	return {
		store,
		reader: {
			// psql is its own process and connection: it sees only what is committed.
			count: (q) => {
				const r = spawnSync(psql, ["-X", "-A", "-t", "-d", url, "-c", q], { encoding: "utf8" });
				if (r.status !== 0) throw new Error(r.stderr);
				return Number(r.stdout.trim());
			},
			close: () => undefined,
		},
	};
}

type Op =
	| { op: "start" }
	| { op: "stop" }
	| { op: "pause" }
	| { op: "ack"; who: number }
	| { op: "ackAll" }
	| { op: "consent"; who: number }
	| { op: "decline"; who: number }
	| { op: "produce"; who: number }
	| { op: "leave"; who: number };

const PEOPLE = 3;
const opArb: fc.Arbitrary<Op> = fc.oneof(
	{ weight: 2, arbitrary: fc.constant({ op: "start" as const }) },
	{ weight: 1, arbitrary: fc.constant({ op: "stop" as const }) },
	{ weight: 1, arbitrary: fc.constant({ op: "pause" as const }) },
	{ weight: 5, arbitrary: fc.record({ op: fc.constant("ack" as const), who: fc.nat(PEOPLE) }) },
	// Everyone answering at once: those that wait for a commit are recorded together (coalesceAnswers).
	{ weight: 4, arbitrary: fc.constant({ op: "ackAll" as const }) },
	{ weight: 2, arbitrary: fc.record({ op: fc.constant("consent" as const), who: fc.nat(PEOPLE) }) },
	{ weight: 1, arbitrary: fc.record({ op: fc.constant("decline" as const), who: fc.nat(PEOPLE) }) },
	{ weight: 3, arbitrary: fc.record({ op: fc.constant("produce" as const), who: fc.nat(PEOPLE) }) },
	{ weight: 1, arbitrary: fc.record({ op: fc.constant("leave" as const), who: fc.nat(PEOPLE) }) },
);
/** Bursts of operations fired together (not awaited one by one). */
const scenarioArb = fc.array(fc.array(opArb, { minLength: 1, maxLength: 6 }), { minLength: 2, maxLength: 6 });

describe.each(ENGINES)("the capture gate on the real audit log (%s)", (engine) => {
	it("opens a tap only once its acknowledgement (or consent) and its gate entry are committed", async () => {
		const { store, reader } = await storeWithReader(engine);
		const events = await EventLog.open(store);
		let m = 0;
		let opened = 0;
		await fc.assert(
			fc.asyncProperty(scenarioArb, fc.boolean(), async (bursts, explicit) => {
				const meetingId = `m${m++}`;
				const capture = new CaptureService({
					events,
					tenantCapture: () => undefined,
					log: createLogger("silent"),
					coverageDebounceMs: 5,
				});
				capture.registerSink("recording", { assertCanStart: async () => undefined });
				const violations: string[] = [];
				capture.on("tap", (t: TapChange) => {
					if (!t.open) return;
					opened++;
					const s = t.session.id;
					const covered = reader.count(
						`SELECT count(*) FROM events WHERE meeting_id = '${meetingId}' AND type IN ('notice.acknowledged', 'notices.acknowledged', 'consent.given')
						 AND data LIKE '%"peerId":"${t.peerId}"%' AND data LIKE '%"sessionId":"${s}"%'`,
					);
					const gate = reader.count(
						`SELECT count(*) FROM events WHERE meeting_id = '${meetingId}' AND type = 'gate.opened'
						 AND data LIKE '%"producerId":"${t.producer.id}"%' AND data LIKE '%"sessionId":"${s}"%'`,
					);
					if (covered === 0 || gate === 0)
						violations.push(`tap ${t.producer.id} of ${t.peerId} opened: covered ${covered}, gate entry ${gate}`);
				});
				const meeting = {
					id: meetingId,
					tenantId: "acme",
					hostSubject: "p0",
					settings: { capturePolicy: explicit ? "explicit-consent" : "notice" },
				} as unknown as Meeting;
				const notices = new Map<string, NoticeView>();
				let producers = 0;
				const conns: Connection[] = Array.from({ length: PEOPLE + 1 }, (_, i) => {
					const peerId = `peer${i}`;
					return {
						id: `gw:${peerId}`,
						peerId,
						identity: { tenantId: "acme", subject: `p${i}`, role: i === 0 ? "host" : "participant" },
						notify: ((event: string, view: NoticeView) => {
							if (event === "captureNotice") notices.set(peerId, view);
						}) as Connection["notify"],
						disconnect: () => undefined,
						state: "joined",
						meetingId,
						role: i === 0 ? "host" : "participant",
						peer: { producers: new Map() } as unknown as Connection["peer"],
					} as Connection;
				});
				const present = new Set<number>();
				const join = async (i: number) => {
					const c = conns[i] as Connection;
					present.add(i);
					const r = await capture.joined(meeting, c, "en");
					for (const n of r.notices) notices.set(c.peerId, n);
				};
				for (let i = 0; i <= PEOPLE; i++) await join(i);
				const host = conns[0] as Connection;
				const run = async (o: Op): Promise<unknown> => {
					const c = conns["who" in o ? o.who : 0] as Connection;
					const notice = notices.get(c.peerId);
					switch (o.op) {
						case "start":
							return capture.start(meeting, host, "recording");
						case "stop":
							return capture.stop(meeting, host, "recording");
						case "pause":
							return capture.pause(meeting, host, "recording");
						case "ack":
							return notice && capture.acknowledge(meetingId, c, notice.id);
						case "ackAll": {
							const all = await Promise.allSettled(
								conns.map((x) => {
									const n = notices.get(x.peerId);
									return n ? capture.acknowledge(meetingId, x, n.id) : undefined;
								}),
							);
							for (const r of all) if (r.status === "rejected" && !(r.reason instanceof ConsentryError)) throw r.reason;
							return;
						}
						case "consent":
							return notice && capture.consent(meetingId, c, notice.id);
						case "decline":
							return notice && capture.decline(meetingId, c, notice.id);
						case "produce": {
							if (!present.has("who" in o ? o.who : 0)) return;
							const producer = {
								id: `prod${producers++}`,
								appData: { source: "mic", peerId: c.peerId },
								observer: new EventEmitter(),
								paused: false,
								closed: false,
								pause: async () => undefined,
								resume: async () => undefined,
							} as unknown as CaptureProducer;
							(c.peer as unknown as { producers: Map<string, CaptureProducer> }).producers.set(producer.id, producer);
							return capture.producerAdded(meetingId, c, producer);
						}
						case "leave": {
							present.delete(o.who);
							await capture.left(meetingId, c.peerId);
							return join(o.who);
						}
					}
				};
				for (const burst of bursts) {
					const results = await Promise.allSettled(burst.map((o) => Promise.resolve().then(() => run(o))));
					for (const r of results) {
						// Refusals (a stale notice, already on, …) are the gate doing its job; anything else is a bug.
						if (r.status === "rejected" && !(r.reason instanceof ConsentryError)) throw r.reason;
					}
				}
				await capture.ended(meetingId, "acme:p0");
				expect(violations).toEqual([]);
			}),
			{ numRuns: engine === "postgres" ? 6 : 20, seed: 1201 },
		);
		expect(opened).toBeGreaterThan(0); // the scenarios did open taps
		// …and acknowledgements that waited for a commit were recorded together (coalesceAnswers) in some of them.
		expect(reader.count("SELECT count(*) FROM events WHERE type = 'notices.acknowledged'")).toBeGreaterThan(0);
		expect((await events.verify()).every((r) => r.ok)).toBe(true);
		reader.close();
		await store.close();
	}, 120_000);
});

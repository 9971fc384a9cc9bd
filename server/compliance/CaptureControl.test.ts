import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConflictError, NotFoundError } from "../errors.js";
import { CaptureControl } from "./CaptureControl.js";
import type { CapturePolicy, Notice } from "./CaptureTypes.js";

const notice: CapturePolicy = { name: "notice", version: 1, ackTimeoutMs: 30_000 };
const consent: CapturePolicy = { name: "explicit-consent", version: 3, ackTimeoutMs: 30_000 };

describe("CaptureControl: the state machine", () => {
	it("goes off → on → paused → on → off, each turn-on a new session", () => {
		const c = new CaptureControl("recording", "m1");
		const starts: string[] = [];
		const ends: string[] = [];
		c.on("sessionstart", (s) => starts.push(s.id));
		c.on("sessionend", (s, why) => ends.push(`${s.id}:${why}`));
		expect(c.state).toBe("off");
		const s1 = c.start("acme:host", notice);
		expect(c.state).toBe("on");
		expect(() => c.start("acme:host", notice)).toThrow(ConflictError);
		c.pause();
		expect(c.state).toBe("paused");
		expect(() => c.pause()).toThrow(ConflictError);
		const s2 = c.start("acme:host", notice);
		expect(s2.id).not.toBe(s1.id);
		c.stop();
		expect(c.state).toBe("off");
		expect(c.session).toBeUndefined();
		expect(starts).toEqual([s1.id, s2.id]);
		expect(ends).toEqual([`${s1.id}:paused`, `${s2.id}:stopped`]);
	});

	it("notifies everyone present and late joiners, and opens each gate only on that person's ack", () => {
		const c = new CaptureControl("recording", "m1");
		c.join("a");
		c.join("b");
		let notices: Notice[] = [];
		c.on("sessionstart", (_s, n) => {
			notices = n;
		});
		c.start("a", notice);
		expect(notices.map((n) => n.person).sort()).toEqual(["a", "b"]);
		expect(c.mayCapture("a")).toBe(false);
		const na = notices.find((n) => n.person === "a") as Notice;
		c.acknowledge("a", na.id);
		expect(c.mayCapture("a")).toBe(true);
		expect(c.mayCapture("b")).toBe(false);
		expect(c.uncovered()).toEqual([expect.objectContaining({ person: "b", coverage: "pending" })]);
		// b can't use a's notice; a late joiner gets their own notice before anything else.
		expect(() => c.acknowledge("b", na.id)).toThrow(ConflictError);
		const late = c.join("late") as Notice;
		expect(late.sessionId).toBe(c.session?.id);
		expect(c.mayCapture("late")).toBe(false);
		c.acknowledge("late", late.id);
		expect(c.mayCapture("late")).toBe(true);
		// An old session's notice is refused after a pause/resume.
		c.pause();
		expect(c.mayCapture("a")).toBe(false);
		expect(() => c.acknowledge("a", na.id)).toThrow(NotFoundError);
		c.start("a", notice);
		expect(() => c.acknowledge("a", na.id)).toThrow(ConflictError);
		expect(c.mayCapture("a")).toBe(false);
	});

	it("under explicit consent, an acknowledgement is not enough; declining or leaving closes the gate at once", () => {
		const c = new CaptureControl("transcription", "m1");
		c.join("host");
		let n: Notice[] = [];
		c.on("sessionstart", (_s, ns) => {
			n = ns;
		});
		const gates: string[] = [];
		c.on("gate", (g) => gates.push(`${g.person}:${g.open ? "open" : "closed"}:${g.reason}`));
		c.start("host", consent);
		const hn = n[0] as Notice;
		expect(hn.consentRequired).toBe(true);
		c.acknowledge("host", hn.id);
		expect(c.mayCapture("host")).toBe(false); // the host too must consent
		c.consent("host", hn.id);
		expect(c.mayCapture("host")).toBe(true);
		c.decline("host", hn.id); // withdrawal
		expect(c.mayCapture("host")).toBe(false);
		expect(gates).toEqual(["host:open:consented", "host:closed:declined"]);
	});

	it("opens a gate once: consenting after an acknowledgement (notice policy) opens nothing more", () => {
		// The property below found this (fast-check counterexample: join, start, ack, consent).
		const c = new CaptureControl("recording", "m1");
		c.join("p1");
		const gates: string[] = [];
		c.on("gate", (g) => gates.push(`${g.person}:${g.open ? "open" : "closed"}`));
		let n: Notice[] = [];
		c.on("sessionstart", (_s, ns) => {
			n = ns;
		});
		c.start("p1", notice);
		const pn = n[0] as Notice;
		c.acknowledge("p1", pn.id);
		c.consent("p1", pn.id);
		expect(gates).toEqual(["p1:open"]);
	});
});

type Op =
	| { t: "join"; p: number }
	| { t: "leave"; p: number }
	| { t: "ack"; p: number; stale: boolean }
	| { t: "consent"; p: number; stale: boolean }
	| { t: "decline"; p: number }
	| { t: "start"; policy: 0 | 1 }
	| { t: "pause" }
	| { t: "stop" };

const person = fc.integer({ min: 0, max: 3 });
const op: fc.Arbitrary<Op> = fc.oneof(
	fc.record({ t: fc.constant("join" as const), p: person }),
	fc.record({ t: fc.constant("leave" as const), p: person }),
	fc.record({ t: fc.constant("ack" as const), p: person, stale: fc.boolean() }),
	fc.record({ t: fc.constant("consent" as const), p: person, stale: fc.boolean() }),
	fc.record({ t: fc.constant("decline" as const), p: person }),
	fc.record({ t: fc.constant("start" as const), policy: fc.constantFrom(0 as const, 1 as const) }),
	fc.record({ t: fc.constant("pause" as const) }),
	fc.record({ t: fc.constant("stop" as const) }),
);

describe("CaptureControl: the gate never opens before the person's ack of the current session", () => {
	it("holds over random sequences of join/leave/ack/consent/decline/start/pause/stop, and its events track it", () => {
		fc.assert(
			fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
				const c = new CaptureControl("recording", "m");
				/** Notices each person was shown, newest last (what their client could acknowledge). */
				const shown = new Map<string, Notice[]>();
				const show = (n: Notice) => shown.set(n.person, [...(shown.get(n.person) ?? []), n]);
				c.on("sessionstart", (_s, ns) => ns.forEach(show));
				// What a recorder following the gate events would hold open: must always equal what mayCapture says.
				const tapped = new Set<string>();
				c.on("gate", (g) => {
					expect(tapped.has(g.person)).toBe(!g.open); // no double open, no close of something closed
					if (g.open) tapped.add(g.person);
					else tapped.delete(g.person);
				});
				// The model: who acknowledged/consented to which session, since their latest join.
				const okSince = new Map<string, { session: string; consented: boolean; declined: boolean }>();
				for (const o of ops) {
					const p = "p" in o ? `p${o.p}` : "";
					try {
						switch (o.t) {
							case "join": {
								okSince.delete(p);
								const n = c.join(p);
								if (n) show(n);
								break;
							}
							case "leave":
								okSince.delete(p);
								c.leave(p);
								break;
							case "ack":
							case "consent": {
								const list = shown.get(p) ?? [];
								const n = o.stale ? list[0] : list.at(-1);
								if (!n) break;
								if (o.t === "ack") c.acknowledge(p, n.id);
								else c.consent(p, n.id);
								const prev = okSince.get(p);
								if (prev?.session === n.sessionId && prev.declined) break;
								okSince.set(p, {
									session: n.sessionId,
									consented: o.t === "consent" || (prev?.session === n.sessionId && prev.consented),
									declined: false,
								});
								break;
							}
							case "decline": {
								const n = shown.get(p)?.at(-1);
								if (!n) break;
								c.decline(p, n.id);
								okSince.set(p, { session: n.sessionId, consented: false, declined: true });
								break;
							}
							case "start":
								c.start("p0", o.policy ? consent : notice);
								okSince.clear();
								break;
							case "pause":
								c.pause();
								okSince.clear();
								break;
							case "stop":
								c.stop();
								okSince.clear();
								break;
						}
					} catch (err) {
						if (
							!(
								err instanceof ConflictError ||
								err instanceof NotFoundError ||
								(err as { code?: string }).code === "declined"
							)
						) {
							throw err;
						}
					}
					// The invariant, for every person after every step.
					for (let i = 0; i < 4; i++) {
						const who = `p${i}`;
						expect(tapped.has(who)).toBe(c.mayCapture(who));
						if (!c.mayCapture(who)) continue;
						const ok = okSince.get(who);
						expect(ok?.session).toBe(c.session?.id);
						expect(ok?.declined).toBe(false);
						if (c.session?.policy.name === "explicit-consent") expect(ok?.consented).toBe(true);
					}
				}
			}),
			// The first example is the sequence that once opened a gate twice (ack then consent under `notice`).
			{
				numRuns: 2000,
				examples: [
					[
						[
							{ t: "join", p: 1 },
							{ t: "start", policy: 0 },
							{ t: "ack", p: 1, stale: false },
							{ t: "consent", p: 1, stale: false },
						],
					],
				],
			},
		);
	});
});

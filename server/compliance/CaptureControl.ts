import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { ConflictError, ForbiddenError, NotFoundError } from "../errors.js";
import type { CaptureKind, CapturePolicy, CaptureSession, CaptureState, Coverage, Notice } from "./CaptureTypes.js";

export type CaptureControlEvents = {
	/** A new session began (start or resume): every present person must be shown `notices`. */
	sessionstart: [session: CaptureSession, notices: Notice[]];
	/** The session ended (pause or stop). Every gate of it is closed. */
	sessionend: [session: CaptureSession, reason: "paused" | "stopped"];
	/** A person's gate for the current session opened or closed. */
	gate: [e: { session: CaptureSession; person: string; open: boolean; reason: string }];
};

interface PersonState {
	notice: Notice;
	coverage: Coverage;
}

/**
 * Recording (or transcription) of one meeting: the state machine
 * off → on → paused → on → … → off, where every turn-on opens a new session,
 * and the notice gate for that session. This is the one place that answers
 * "may this person's media be captured now?"; the recorder and the
 * transcriber ask it, and the UI shows what it says.
 *
 * Invariant (property-tested): `mayCapture(p)` is true only if p acknowledged
 * (or, under explicit consent, consented to) the notice of the *current*
 * session, after their latest join, and has not left, declined or withdrawn
 * since.
 */
export class CaptureControl extends EventEmitter<CaptureControlEvents> {
	readonly kind: CaptureKind;
	readonly meetingId: string;
	#state: CaptureState = "off";
	#session: CaptureSession | undefined;
	readonly #present = new Set<string>();
	readonly #people = new Map<string, PersonState>();

	constructor(kind: CaptureKind, meetingId: string) {
		super();
		this.kind = kind;
		this.meetingId = meetingId;
	}

	get state(): CaptureState {
		return this.#state;
	}

	get session(): CaptureSession | undefined {
		return this.#session;
	}

	/** Turns capture on (from off or paused): a new session, a new notice for everyone present. */
	start(by: string, policy: CapturePolicy): CaptureSession {
		if (this.#state === "on") throw new ConflictError("already_on", `${this.kind} is already on.`);
		const session: CaptureSession = {
			id: randomUUID(),
			kind: this.kind,
			meetingId: this.meetingId,
			policy,
			startedBy: by,
			startedAt: new Date().toISOString(),
		};
		this.#state = "on";
		this.#session = session;
		this.#people.clear();
		const notices = [...this.#present].map((p) => this.#issue(p));
		this.emit("sessionstart", session, notices);
		return session;
	}

	/** Pauses: the session ends, every gate closes; resuming opens a new session. */
	pause(): void {
		if (this.#state !== "on") throw new ConflictError("not_on", `${this.kind} is not on.`);
		this.#end("paused");
		this.#state = "paused";
	}

	stop(): void {
		if (this.#state === "off") return;
		if (this.#state === "on") this.#end("stopped");
		this.#state = "off";
		this.#session = undefined;
	}

	/** A person is now in the meeting. Returns the notice they must see first when a session runs. */
	join(person: string): Notice | undefined {
		this.#present.add(person);
		if (this.#state !== "on") return undefined;
		const existing = this.#people.get(person);
		if (existing) this.#close(person, "rejoined");
		return this.#issue(person);
	}

	leave(person: string): void {
		this.#close(person, "left");
		this.#present.delete(person);
		this.#people.delete(person);
	}

	/** The person's client showed the notice and they dismissed it. */
	acknowledge(person: string, noticeId: string): Coverage {
		const st = this.#current(person, noticeId);
		if (st.coverage === "pending") {
			st.coverage = "acknowledged";
			if (!st.notice.consentRequired) this.#open(person, "acknowledged");
		}
		return st.coverage;
	}

	/** Explicit consent ("I consent"). Under the notice policy an acknowledgement is enough; consent also counts. */
	consent(person: string, noticeId: string): Coverage {
		const st = this.#current(person, noticeId);
		if (st.coverage === "declined") throw new ForbiddenError("declined", "You declined; leave and rejoin to consent.");
		if (st.coverage !== "consented") {
			// Under the notice policy an acknowledgement may have opened the gate already: it opens once.
			const wasOpen = this.mayCapture(person);
			st.coverage = "consented";
			if (!wasOpen) this.#open(person, "consented");
		}
		return st.coverage;
	}

	/** The person declines (their recourse is to leave) or withdraws consent: out of the capture at once. */
	decline(person: string, noticeId: string): Coverage {
		const st = this.#current(person, noticeId);
		const wasOpen = this.mayCapture(person);
		st.coverage = "declined";
		if (wasOpen)
			this.emit("gate", { session: this.#session as CaptureSession, person, open: false, reason: "declined" });
		return st.coverage;
	}

	/**
	 * The proof of an answer could not be committed (the store failed): the person's coverage goes back from `from`
	 * (what the answer made it) to `to` (what it was), unless something changed it since. So nothing counts them
	 * covered without the proof — no new producer's gate, no chat line, no packet — and answering again writes it. No
	 * gate event: the failed answer's own gates were never opened (taps open only after the commit).
	 */
	revert(person: string, noticeId: string, from: Coverage, to: Coverage): void {
		const st = this.#state === "on" ? this.#people.get(person) : undefined;
		if (!st || st.notice.id !== noticeId || st.coverage !== from) return;
		st.coverage = to;
	}

	/** The single question the recorder and the transcriber ask. */
	mayCapture(person: string): boolean {
		if (this.#state !== "on" || !this.#present.has(person)) return false;
		const st = this.#people.get(person);
		if (!st) return false;
		return st.notice.consentRequired
			? st.coverage === "consented"
			: st.coverage === "acknowledged" || st.coverage === "consented";
	}

	coverage(person: string): Coverage | undefined {
		return this.#people.get(person)?.coverage;
	}

	/** Who is in the meeting but not (yet) covered by the current session: the host sees this list. */
	uncovered(): { person: string; coverage: Coverage; since: string }[] {
		if (this.#state !== "on") return [];
		return [...this.#present]
			.filter((p) => !this.mayCapture(p))
			.map((p) => {
				const st = this.#people.get(p);
				return { person: p, coverage: st?.coverage ?? "pending", since: st?.notice.since ?? "" };
			});
	}

	/** The notice a person must currently see, if any (e.g. to resend after a reconnect). */
	noticeFor(person: string): Notice | undefined {
		return this.#state === "on" ? this.#people.get(person)?.notice : undefined;
	}

	#issue(person: string): Notice {
		const session = this.#session as CaptureSession;
		const notice: Notice = {
			id: randomUUID(),
			sessionId: session.id,
			kind: this.kind,
			person,
			policy: session.policy,
			startedBy: session.startedBy,
			since: session.startedAt,
			consentRequired: session.policy.name === "explicit-consent",
		};
		this.#people.set(person, { notice, coverage: "pending" });
		return notice;
	}

	#current(person: string, noticeId: string): PersonState {
		const st = this.#state === "on" ? this.#people.get(person) : undefined;
		if (!st || !this.#present.has(person)) {
			throw new NotFoundError("no_notice", `No ${this.kind} notice is pending for you.`);
		}
		if (st.notice.id !== noticeId) {
			throw new ConflictError("stale_notice", "That notice is from an earlier session; acknowledge the current one.");
		}
		return st;
	}

	#open(person: string, reason: string): void {
		this.emit("gate", { session: this.#session as CaptureSession, person, open: true, reason });
	}

	#close(person: string, reason: string): void {
		if (this.mayCapture(person)) {
			this.emit("gate", { session: this.#session as CaptureSession, person, open: false, reason });
		}
	}

	#end(reason: "paused" | "stopped"): void {
		const session = this.#session as CaptureSession;
		for (const p of this.#present) this.#close(p, reason);
		this.#people.clear();
		this.emit("sessionend", session, reason);
	}
}

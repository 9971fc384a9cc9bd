import { describe, expect, it } from "vitest";
import type { AppendInput, EventType } from "../audit/EventLog.js";
import { coalesceAnswers } from "./CaptureService.js";

type Item = AppendInput & { type: EventType };
const where = { tenantId: "acme", meetingId: "m1" };
const policy = { name: "notice", version: 1 };
const ack = (p: string, session = "s1"): Item => ({
	type: "notice.acknowledged",
	...where,
	actor: `acme:${p}`,
	data: { kind: "recording", sessionId: session, noticeId: `n-${p}`, peerId: `peer-${p}`, policy },
});
const gate = (p: string): Item => ({
	type: "gate.opened",
	...where,
	data: { person: `acme:${p}`, producerId: `pr-${p}` },
});
const other = (type: EventType): Item => ({ type, ...where, data: { kind: "recording", sessionId: "s1" } });

describe("coalesceAnswers", () => {
	it("records a run of acknowledgements as one entry, each person's gates after it, in order", () => {
		const out = coalesceAnswers([[ack("a"), gate("a")], [ack("b")], [ack("c"), gate("c"), gate("c")]]);
		expect(out.map((i) => i.type)).toEqual(["notices.acknowledged", "gate.opened", "gate.opened", "gate.opened"]);
		expect(out[0]).toEqual({
			type: "notices.acknowledged",
			...where,
			data: {
				kind: "recording",
				sessionId: "s1",
				policy,
				answers: ["a", "b", "c"].map((p) => ({ person: `acme:${p}`, peerId: `peer-${p}`, noticeId: `n-${p}` })),
			},
		});
		expect(out.slice(1).map((i) => i.data?.person)).toEqual(["acme:a", "acme:c", "acme:c"]);
	});

	it("moves nothing else: other entries split the runs; a run of one stays as it was; sessions never mix", () => {
		const ops = [
			[ack("a")],
			[other("notice.shown")],
			[ack("b"), gate("b")],
			[ack("c")],
			[other("session.off")],
			[ack("d", "s2")],
			[ack("e", "s3")],
		];
		const out = coalesceAnswers(ops);
		expect(out.map((i) => i.type)).toEqual([
			"notice.acknowledged",
			"notice.shown",
			"notices.acknowledged",
			"gate.opened",
			"session.off",
			"notice.acknowledged",
			"notice.acknowledged",
		]);
		expect(out[0]).toBe(ops[0]?.[0]);
		expect(coalesceAnswers([[ack("a")]])).toEqual([ack("a")]);
		// An operation that is not just an acknowledgement and its gates is never merged.
		expect(coalesceAnswers([[ack("a")], [ack("b"), other("gate.closed")]]).map((i) => i.type)).toEqual([
			"notice.acknowledged",
			"notice.acknowledged",
			"gate.closed",
		]);
	});
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Gateway } from "../server/Gateway.js";
import type { JoinResult, NoticeView } from "../shared/protocol.js";
import { saveStorageTarget, startBucket, storageEnv, type TestBucket } from "./helpers/bucket.js";
import { api, startGateway } from "./helpers/gateway.js";
import { type PostgresServer, startPostgres } from "./helpers/postgres.js";
import { codeOf, connect, type RawClient } from "./helpers/signaling.js";
import { testTenant } from "./helpers/tenants.js";

/**
 * PostgreSQL down under a running gateway (docs/architecture.md, "The store"): new starts and joins answer
 * `store_unavailable` quickly, the meeting in progress goes on (its people still talk: chat, media), and once the
 * engine is back everything resumes.
 */
describe("the gateway when PostgreSQL stops answering", () => {
	const acme = testTenant("acme");
	let pg: PostgresServer;
	let gw: Gateway;
	const open: RawClient[] = [];

	beforeAll(async () => {
		pg = await startPostgres();
		gw = await startGateway({
			tenants: [acme],
			env: { CONSENTRY_DATABASE_URL: await pg.createDatabase("outage"), CONSENTRY_DATABASE_TIMEOUT_MS: "2000" },
		});
	});
	afterAll(async () => {
		for (const c of open) c.close();
		pg?.resume();
		await gw?.close();
		await pg?.stop();
	});

	it("refuses new joins and starts with store_unavailable within seconds, keeps the live meeting, then resumes", async () => {
		const m = (await api(gw, "POST", "/api/meetings", acme.token("hana"), { title: "t", settings: { lobby: false } }))
			.body as { id: string };
		const host = await connect(gw.url, acme.token("hana"));
		const pia = await connect(gw.url, acme.token("pia", "participant"));
		open.push(host, pia);
		expect(((await host.call("join", { meetingId: m.id, displayName: "Hana" })) as JoinResult).status).toBe("joined");
		expect(((await pia.call("join", { meetingId: m.id, displayName: "Pia" })) as JoinResult).status).toBe("joined");
		const other = (await api(gw, "POST", "/api/meetings", acme.token("olga"), { title: "o" })).body as { id: string };

		pg.pause();
		try {
			const t0 = Date.now();
			const kim = await connect(gw.url, acme.token("kim", "participant"));
			open.push(kim);
			expect(codeOf(await kim.req("join", { meetingId: m.id, displayName: "Kim" }))).toBe("store_unavailable");
			const start = await api(gw, "POST", `/api/meetings/${other.id}/start`, acme.token("olga"));
			expect([start.status, start.body.code]).toEqual([503, "store_unavailable"]);
			expect(Date.now() - t0).toBeLessThan(12_000); // each within the store's query timeout (2 s here)
			// The meeting in progress goes on: its people still reach each other.
			const said = pia.next("chatMessage");
			await host.call("chat", { text: "still here" });
			expect(((await said) as { text: string }).text).toBe("still here");
		} finally {
			pg.resume();
		}
		// Back up: joins work again.
		const lou = await connect(gw.url, acme.token("lou", "participant"));
		open.push(lou);
		expect(((await lou.call("join", { meetingId: m.id, displayName: "Lou" })) as JoinResult).status).toBe("joined");
	}, 60_000);
});

/**
 * Acknowledgements waiting for the meeting's commit when PostgreSQL stops answering (CaptureService commits them
 * together): every one answers `store_unavailable` within the store's timeout, at once — not one timeout after the
 * other — and nobody's gate opens. Back up, answering again opens the gates.
 */
describe("acknowledgements waiting for a commit when PostgreSQL stops answering", () => {
	const acme = testTenant("acme");
	const PEOPLE = 8;
	let pg: PostgresServer;
	let bucket: TestBucket;
	let gw: Gateway;
	const open: RawClient[] = [];

	beforeAll(async () => {
		pg = await startPostgres();
		bucket = await startBucket("acme-outage");
		gw = await startGateway({
			tenants: [acme],
			env: {
				...storageEnv(),
				CONSENTRY_DATABASE_URL: await pg.createDatabase("outage_acks"),
				CONSENTRY_DATABASE_TIMEOUT_MS: "2000",
			},
		});
		await saveStorageTarget(gw, acme, bucket, "rec");
	});
	afterAll(async () => {
		for (const c of open) c.close();
		pg?.resume();
		await gw?.close();
		await bucket?.stop();
		await pg?.stop();
	});

	it("all fail at once with store_unavailable, none opens; once back, answering again covers them", async () => {
		const m = (await api(gw, "POST", "/api/meetings", acme.token("hana"), { title: "t", settings: { lobby: false } }))
			.body as { id: string };
		const people: { c: RawClient; notice: Promise<unknown>; peerId: string }[] = [];
		for (let i = 0; i < PEOPLE; i++) {
			const c = await connect(gw.url, i === 0 ? acme.token("hana") : acme.token(`p${i}`, "participant"));
			open.push(c);
			const joined = (await c.call("join", { meetingId: m.id, displayName: `P${i}` })) as JoinResult;
			const notice = c.next("captureNotice", 20_000);
			notice.catch(() => undefined);
			people.push({ c, notice, peerId: String((joined as { peerId?: string }).peerId) });
		}
		await people[0]?.c.call("startCapture", { kind: "recording" });
		const notices = (await Promise.all(people.map((p) => p.notice))) as NoticeView[];

		pg.pause();
		let answers: { code: string | undefined; at: number }[];
		try {
			answers = await Promise.all(
				people.map(async (p, i) => {
					const r = (await p.c.socket
						.timeout(60_000)
						.emitWithAck("acknowledgeNotice", { noticeId: notices[i]?.id, clickedAt: Date.now() })) as {
						ok: boolean;
						error?: { code: string };
					};
					return { code: r.ok ? "ok" : r.error?.code, at: Date.now() };
				}),
			);
		} finally {
			pg.resume();
		}
		expect(answers.map((a) => a.code)).toEqual(Array(PEOPLE).fill("store_unavailable"));
		// The first answer's commit fails alone; everything that waited for it fails together, one store timeout
		// later — not one timeout after the other (2 s each here, so at least 14 s apart if each were retried).
		const later = answers
			.map((a) => a.at)
			.sort((a, b) => a - b)
			.slice(1);
		expect(Math.max(...later) - Math.min(...later)).toBeLessThan(1_500);
		for (const p of people) expect(gw.capture.mayCapture(m.id, "recording", p.peerId)).toBe(false);

		// Back up: the notice is still theirs to answer, and answering covers them.
		await Promise.all(
			people.map((p, i) => p.c.call("acknowledgeNotice", { noticeId: notices[i]?.id, clickedAt: Date.now() })),
		);
		for (const p of people) expect(gw.capture.mayCapture(m.id, "recording", p.peerId)).toBe(true);
	}, 90_000);
});

/**
 * The transcript link while a long session runs: what one request to `GET /api/transcripts/{id}` costs when the
 * session has `--parts` checkpoint parts in the bucket (1,440 = an hour of talk, a part every ~2.5 s), on a real
 * gateway (its REST API over HTTP, its store and audit trail) against a local S3 API (moto).
 *
 * The session is a real one (the host turned transcription on; its link was announced); its parts are written by a
 * real TranscriptWriter into its folder (nobody speaks, so the session's own writer writes none), a few lines each.
 *
 * Measured, `--rounds` times each (medians; wall time per request as the page sees it, and the CPU the process used
 * — gateway and client share it; moto's CPU is its own process, read from /proc):
 * - the first open (no cursor: one page of 100 parts presigned, audited);
 * - the whole catch-up of a page opened late (every page of parts after the cursor, till `more` is false), and the
 *   page's reads of every part from the bucket (6 at a time, as the page does);
 * - a poll with nothing new (`after` = the last part) and with one new part (`after` = the last but one);
 * - baseline, in the same run: what a poll would cost if it listed and presigned every part each time (the
 *   gateway's S3 client: every LIST page, 1,440 presigns), i.e. without the cursor.
 * Prints a markdown section for docs/benchmarks.md.
 *
 *   node --import tsx bench/transcript-link.ts [--parts 1440] [--rounds 30]
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { pino } from "pino";
import { DEFAULT_POLICY } from "../server/compliance/CaptureTypes.js";
import { DEFAULT_TEXTS } from "../server/compliance/noticeTexts.js";
import { createS3Client } from "../server/storage/preflight.js";
import { TranscriptWriter } from "../server/transcription/TranscriptWriter.js";
import { saveStorageTarget, startBucket, storageEnv, targetOf } from "../test/helpers/bucket.js";
import { api, startGateway } from "../test/helpers/gateway.js";
import { connect } from "../test/helpers/signaling.js";
import { testTenant } from "../test/helpers/tenants.js";
import { machine, median } from "./stats.js";

const { values } = parseArgs({
	options: { parts: { type: "string", default: "1440" }, rounds: { type: "string", default: "30" } },
});
const PARTS = Number(values.parts);
const ROUNDS = Number(values.rounds);
const progress = (m: string) => process.stderr.write(`[bench] ${m}\n`);

/** moto's CPU time so far (ms), from /proc. */
function motoCpuMs(pid: number): number {
	const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
	return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

const acme = testTenant("acme");
const bucket = await startBucket("bench-transcript-link");
const gw = await startGateway({ tenants: [acme], env: storageEnv() });
const hostToken = acme.token("bench-host");
try {
	await saveStorageTarget(gw, acme, bucket, "rec");
	const m = await api(gw, "POST", "/api/meetings", hostToken, { title: "Bench", settings: { lobby: false } });
	const meetingId = m.body.id as string;
	const host = await connect(gw.url, hostToken);
	await host.call("join", { meetingId, displayName: "Hana" });
	// A participant: their polls also check membership in the trail (the host's don't need to).
	const patToken = acme.token("pat", "participant");
	const pat = await connect(gw.url, patToken);
	await pat.call("join", { meetingId, displayName: "Pat" });
	const announced = host.next("transcriptLink", 20_000) as Promise<{ sessionId: string; path: string }>;
	await host.call("startCapture", { kind: "transcription" });
	const { sessionId, path } = await announced;
	const linkId = path.slice(3);

	progress(`writing ${PARTS} parts`);
	const target = targetOf(bucket, "rec");
	const writer = new TranscriptWriter({
		target,
		endpointPolicy: { allowHttp: true, allowPrivate: true },
		events: gw.events,
		where: { tenantId: "acme", meetingId, sessionId },
		header: {
			meeting: meetingId,
			session: sessionId,
			policy: DEFAULT_POLICY,
			startedAt: new Date().toISOString(),
			engine: "bench",
			disclaimer: DEFAULT_TEXTS.en.transcriptionDisclaimer,
		},
		log: pino({ level: "silent" }),
		checkpointMs: 3_600_000,
	});
	const t0 = Date.now();
	for (let n = 0; n < PARTS; n++) {
		const at = new Date(t0 + n * 2500).toISOString();
		writer.add({
			speaker: `psn_${n % 4}`,
			displayName: ["Ana Lima", "Ben Okafor", "Chloé Martin", "Dev Patel"][n % 4] as string,
			start: at,
			end: at,
			text: "so the quarterly numbers are in and we should look at them before friday, I think",
			clock: "arrival",
		});
		await writer.checkpoint();
	}
	if (writer.parts !== PARTS) throw new Error(`wrote ${writer.parts} parts`);

	const timed = async (query: string, token = hostToken) => {
		const cpu = process.cpuUsage();
		const moto = motoCpuMs(bucket.server.pid);
		const start = performance.now();
		const r = await api(gw, "GET", `/api/transcripts/${linkId}${query}`, token);
		const wall = performance.now() - start;
		const used = process.cpuUsage(cpu);
		if (r.status !== 200) throw new Error(`${query}: ${r.status} ${JSON.stringify(r.body)}`);
		return {
			body: r.body as { live: { parts: { url: string }[]; next: number; more: boolean } },
			wall,
			cpu: (used.user + used.system) / 1000,
			moto: motoCpuMs(bucket.server.pid) - moto,
		};
	};
	const rounds = async (label: string, fn: () => Promise<{ wall: number; cpu: number; moto: number }>) => {
		const xs: { wall: number; cpu: number; moto: number }[] = [];
		await fn(); // warm
		for (let i = 0; i < ROUNDS; i++) xs.push(await fn());
		const r = {
			label,
			wall: median(xs.map((x) => x.wall)),
			cpu: median(xs.map((x) => x.cpu)),
			// /proc counts in 10 ms ticks: the mean over the rounds.
			moto: xs.reduce((a, x) => a + x.moto, 0) / xs.length,
		};
		progress(`${label}: ${r.wall.toFixed(1)} ms wall, ${r.cpu.toFixed(1)} ms CPU, moto ${r.moto.toFixed(0)} ms`);
		return r;
	};
	const load0 = os.loadavg()[0]?.toFixed(2);

	const rows = [];
	rows.push(await rounds("first open (no cursor, 100 parts presigned, audited)", () => timed("")));
	rows.push(await rounds(`poll, nothing new (after=${PARTS})`, () => timed(`?after=${PARTS}`)));
	rows.push(await rounds(`poll, one new part (after=${PARTS - 1})`, () => timed(`?after=${PARTS - 1}`)));
	await timed("", patToken); // Pat's opening (their polls are then not audited)
	rows.push(
		await rounds(`participant's poll, one new part (after=${PARTS - 1})`, () => timed(`?after=${PARTS - 1}`, patToken)),
	);

	// Baseline: a poll without a cursor that lists and presigns every part (what the cursor avoids).
	const client = createS3Client(target, { allowHttp: true, allowPrivate: true });
	const base = `rec/${meetingId}/${sessionId}/`;
	rows.push(
		await rounds(`baseline: list + presign all ${PARTS} parts`, async () => {
			const cpu = process.cpuUsage();
			const moto = motoCpuMs(bucket.server.pid);
			const start = performance.now();
			let token: string | undefined;
			let n = 0;
			do {
				const page = await client.send(
					new ListObjectsV2Command({
						Bucket: target.bucket,
						Prefix: `${base}transcript.part-`,
						ContinuationToken: token,
					}),
				);
				for (const c of page.Contents ?? [])
					await getSignedUrl(client, new GetObjectCommand({ Bucket: target.bucket, Key: c.Key }), { expiresIn: 300 });
				n += page.Contents?.length ?? 0;
				token = page.IsTruncated ? page.NextContinuationToken : undefined;
			} while (token);
			if (n !== PARTS) throw new Error(`listed ${n}`);
			const used = process.cpuUsage(cpu);
			return {
				wall: performance.now() - start,
				cpu: (used.user + used.system) / 1000,
				moto: motoCpuMs(bucket.server.pid) - moto,
			};
		}),
	);
	client.destroy();

	// A page opened late: every page of the listing, then every part read from the bucket (6 at a time).
	const catchUps: { requests: number; wall: number; read: number }[] = [];
	for (let i = 0; i < 3; i++) {
		const start = performance.now();
		let after: number | undefined;
		const urls: string[] = [];
		let requests = 0;
		for (;;) {
			const r = await timed(after === undefined ? "" : `?after=${after}`);
			requests++;
			urls.push(...r.body.live.parts.map((p) => p.url));
			after = r.body.live.next;
			if (!r.body.live.more) break;
		}
		const listed = performance.now() - start;
		let next = 0;
		const worker = async () => {
			while (next < urls.length) {
				const res = await fetch(urls[next++] as string);
				await res.json();
			}
		};
		await Promise.all(Array.from({ length: 6 }, worker));
		catchUps.push({ requests, wall: listed, read: performance.now() - start - listed });
		if (urls.length !== PARTS) throw new Error(`caught up ${urls.length} parts`);
	}
	const catchUp = {
		requests: catchUps[0]?.requests ?? 0,
		wall: median(catchUps.map((c) => c.wall)),
		read: median(catchUps.map((c) => c.read)),
	};
	progress(
		`catch-up: ${catchUp.requests} requests ${catchUp.wall.toFixed(0)} ms, parts read ${catchUp.read.toFixed(0)} ms`,
	);
	const load1 = os.loadavg()[0]?.toFixed(2);

	console.log(`\n### Transcript link while a session runs (bench:transcript-link)\n`);
	console.log(`${new Date().toISOString().slice(0, 10)}, ${machine()}; load ${load0} → ${load1} (1-min avg).`);
	console.log(
		`A running transcription session with ${PARTS} checkpoint parts in moto; medians of ${ROUNDS} requests (after one warm-up) to the real gateway's \`GET /api/transcripts/{id}\`, the host's token (one row a participant's, whose membership is read from the trail); CPU of the bench process (gateway + its HTTP client) and of moto (mean: /proc counts 10 ms ticks).\n`,
	);
	console.log("| request | wall | process CPU | moto CPU |");
	console.log("|---|---|---|---|");
	for (const r of rows)
		console.log(`| ${r.label} | ${r.wall.toFixed(1)} ms | ${r.cpu.toFixed(1)} ms | ${r.moto.toFixed(0)} ms |`);
	console.log(
		`\nA page opened late catches up in ${catchUp.requests} requests of 100 parts (${catchUp.wall.toFixed(0)} ms in all, median of 3), then reads the ${PARTS} parts from the bucket 6 at a time in ${catchUp.read.toFixed(0)} ms.`,
	);
	host.close();
	pat.close();
} finally {
	await gw.close();
	await bucket.stop();
}

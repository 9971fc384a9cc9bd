import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import jwt from "jsonwebtoken";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";
import { startWebhookReceiver, type WebhookReceiver } from "./helpers/webhook-receiver.js";

/**
 * `npm run demo` as a new user meets it: the demo (scripts/demo.mjs, its own gateway and S3 server) prints the
 * host's link; the host opens it in Chromium, joins, starts recording, answers the notice, stops; the objects
 * land in the demo bucket where the demo said they would, play back on the recordings page it names, and the customer's webhook hears recording.ready
 * with the same keys. Then the same for transcription, and the operator's metrics saw it all.
 */
let demo: ChildProcess;
let out = "";
let dir: string;
let chrome: LaunchedBrowser;
let receiver: WebhookReceiver;
let page: Page | undefined;
let s3: S3Client;

beforeAll(async () => {
	dir = mkdtempSync(path.join(os.tmpdir(), "consentry-demo-"));
	receiver = await startWebhookReceiver();
	const [httpPort, s3Port] = [await freePort(), await freePort()];
	demo = spawn(process.execPath, ["scripts/demo.mjs"], {
		env: {
			...process.env,
			CONSENTRY_DEMO_DIR: dir,
			CONSENTRY_HTTP_PORT: String(httpPort),
			CONSENTRY_DEMO_S3_PORT: String(s3Port),
			CONSENTRY_WORKERS: "1",
		},
		stdio: ["ignore", "pipe", "pipe"],
	});
	demo.stdout?.on("data", (d: Buffer) => {
		out += d.toString();
	});
	demo.stderr?.on("data", (d: Buffer) => {
		out += d.toString();
	});
	chrome = await launchChromium();
});

afterAll(async () => {
	await page?.close().catch(() => undefined);
	await chrome?.close();
	if (demo && demo.exitCode === null) {
		demo.kill("SIGTERM");
		await new Promise((r) => demo.once("exit", r));
	}
	s3?.destroy();
	await receiver?.stop();
	rmSync(dir, { recursive: true, force: true });
});

describe("the demo", () => {
	it("records and transcribes out of the box: objects land in the demo bucket where it says, the webhook hears they are ready", {
		timeout: 240_000,
	}, async () => {
		try {
			await waitFor(
				() => {
					if (demo.exitCode !== null) throw new Error(`the demo exited (${demo.exitCode})`);
					return out.includes("Ctrl-C stops everything");
				},
				120_000,
				"the demo's links",
			);
		} catch (err) {
			throw new Error(`${(err as Error).message}; its output:\n${out.slice(-3000)}`);
		}
		const hostLink = /host \(.*\):\n\s+(\S+)/.exec(out)?.[1] as string;
		const where = /s3:\/\/([a-z0-9-]+)\/(\S+?)\/<session>\/\s+on (\S+)/.exec(out);
		expect(hostLink).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?m=/);
		const [, bucket, meetingPrefix, endpoint] = where as unknown as [string, string, string, string];
		const base = new URL(hostLink).origin;

		// The customer's administrator points the tenant's webhook at a receiver (admin token from the demo tenant).
		const tenants = JSON.parse(readFileSync(path.join(dir, "tenants.json"), "utf8"));
		const admin = jwt.sign({ role: "admin" }, tenants.tenants[0].keys[0].secret, {
			algorithm: "HS256",
			issuer: "demo",
			audience: "consentry",
			subject: "it-admin",
			expiresIn: 600,
		});
		const put = await fetch(`${base}/api/webhook`, {
			method: "PUT",
			headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
			body: JSON.stringify({ url: receiver.url }),
		});
		expect(put.status).toBe(200);

		page = await chrome.browser.newPage();
		// Every request the pages make is answered (a newcomer's console shows no 404, not even the favicon's).
		// (A browser's own favicon request is no network event of the page's: its console's error line is.)
		const failed: string[] = [];
		const watch = (p: Page) =>
			p.on("console", (m) => {
				if (m.type() === "error" && /Failed to load resource/.test(m.text())) failed.push(m.location().url);
			});
		watch(page);
		await page.goto(hostLink);
		await page.getByRole("button", { name: "Join", exact: true }).click();
		await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
		await page.locator('[data-testid="capture-start"][data-kind="recording"]').click();
		await page.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
		await page.getByTestId("notice-ack").click();
		await new Promise((r) => setTimeout(r, 4000));
		await page.locator('[data-testid="capture-stop"][data-kind="recording"]').click();

		s3 = new S3Client({
			endpoint,
			region: "us-east-1",
			forcePathStyle: true,
			credentials: { accessKeyId: "x", secretAccessKey: "x" },
		});
		const keys = await waitFor(
			async () => {
				const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${meetingPrefix}/` }));
				const k = (r.Contents ?? []).map((o) => o.Key as string);
				return k.some((x) => x.endsWith("/manifest.json")) ? k : undefined;
			},
			60_000,
			"the session's manifest in the demo bucket",
		);
		const webms = keys.filter((k) => k.endsWith(".webm"));
		expect(webms.some((k) => k.includes("-audio-"))).toBe(true);
		expect(webms.some((k) => k.includes("-camera-"))).toBe(true);

		const ready = await waitFor(
			() => receiver.accepted.find((h) => h.payload.type === "recording.ready"),
			30_000,
			"recording.ready",
		);
		const listed = (ready.payload.data.objects as { key: string; size: number; sha256: string | null }[]).map(
			(o) => o.key,
		);
		expect(ready.payload.data.playbackPath).toBe(`/r/${ready.payload.data.sessionId}`);
		expect(listed.sort()).toEqual(keys.filter((k) => k.endsWith(".webm") || k.endsWith("manifest.json")).sort());
		const types = receiver.accepted.map((h) => h.payload.type);
		expect(types.indexOf("recording.started")).toBeLessThan(types.indexOf("recording.stopped"));
		expect(types.indexOf("recording.stopped")).toBeLessThan(types.indexOf("recording.ready"));

		// The recordings page the demo names opens the session for the host.
		const named = /(http\S+)\/r\/<session>#token=(\S+)/.exec(out);
		expect(named?.[1]).toBe(base);
		const meetingId = meetingPrefix.split("/").pop() as string;
		const sessions = (await (
			await fetch(`${base}/api/meetings/${meetingId}/recordings`, {
				headers: { authorization: `Bearer ${named?.[2]}` },
			})
		).json()) as { recordings: { page: string; ready: boolean }[] };
		expect(sessions.recordings).toHaveLength(1);
		const playback = await chrome.browser.newPage();
		watch(playback);
		const listPage = new RegExp(`\\n\\s+(${base}/recordings/${meetingId}#token=\\S+)`).exec(out)?.[1] as string;
		await playback.goto(listPage);
		await playback.getByTestId("recording-item").getByRole("link").click();
		await playback.waitForURL(`${base}${sessions.recordings[0]?.page}`);
		await playback.locator('[data-testid="playback-screen"][data-code="ok"]').waitFor({ timeout: 15_000 });
		expect(await playback.getByTestId("playback-track").count()).toBe(webms.length);
		expect(failed).toEqual([]);
		await playback.close();

		// Transcription works out of the box too (the embedded engine): its transcript lands next to the recording.
		await page.locator('[data-testid="capture-start"][data-kind="transcription"]').click();
		await page.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
		await page.getByTestId("notice-ack").click();
		await new Promise((r) => setTimeout(r, 2000));
		await page.locator('[data-testid="capture-stop"][data-kind="transcription"]').click();
		const transcript = await waitFor(
			() => receiver.accepted.find((h) => h.payload.type === "transcript.ready"),
			30_000,
			"transcript.ready",
		);
		const tkeys = (transcript.payload.data.objects as { key: string }[]).map((o) => o.key);
		expect(tkeys.map((k) => k.split("/").pop())).toEqual(["transcript.json", "transcript.vtt"]);
		const listedNow = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${meetingPrefix}/` }));
		const now = (listedNow.Contents ?? []).map((o) => o.Key as string);
		for (const k of tkeys) expect(now).toContain(k);

		// The customer's auditor checks it offline, as the README says: `npx consentry verify` passes on the meeting
		// folder, and fails naming the object once one byte of it is changed.
		// The transcription session's proof lands beside its transcript once the session has ended.
		const tfolder = (tkeys[0] as string).replace(/\/transcript\.json$/, "");
		await waitFor(
			async () => {
				const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${tfolder}/` }));
				return (r.Contents ?? []).some((o) => o.Key === `${tfolder}/audit.jsonl`) || undefined;
			},
			30_000,
			"the transcription session's audit.jsonl",
		);
		// Run without blocking this process: the demo's output comes through a pipe this process must keep reading.
		const verify = () =>
			new Promise<{ status: number | null; signal: string | null; stdout: string; stderr: string; ms: number }>(
				(resolve) => {
					const t0 = Date.now();
					const child = spawn(
						"npx",
						["--no-install", "consentry", "verify", `s3://${bucket}/${meetingPrefix}`, "--endpoint", endpoint],
						{ env: { ...process.env, AWS_ACCESS_KEY_ID: "demo", AWS_SECRET_ACCESS_KEY: "demo-secret" } },
					);
					let stdout = "";
					let stderr = "";
					child.stdout.on("data", (d: Buffer) => {
						stdout += d.toString();
					});
					child.stderr.on("data", (d: Buffer) => {
						stderr += d.toString();
					});
					const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
					child.once("close", (status, signal) => {
						clearTimeout(timer);
						resolve({ status, signal, stdout, stderr, ms: Date.now() - t0 });
					});
				},
			);
		const explain = (r: Awaited<ReturnType<typeof verify>>) =>
			`consentry verify: status ${r.status}, signal ${r.signal}, after ${r.ms} ms\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-3000)}`;
		const clean = await verify();
		expect(clean.stdout, explain(clean)).toContain("verified");
		expect(clean.status).toBe(0);
		const victim = webms[0] as string;
		const body = Buffer.from(
			(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: victim }))).Body?.transformToByteArray()) ??
				new Uint8Array(),
		);
		const mid = body.length >> 1;
		body.writeUInt8((body.readUInt8(mid) ^ 0xff) & 0xff, mid);
		await s3.send(new PutObjectCommand({ Bucket: bucket, Key: victim, Body: body }));
		const tampered = await verify();
		expect(tampered.status, explain(tampered)).toBe(1);
		expect(tampered.stdout).toContain(victim.split("/").pop());

		// The operator's metrics (the demo's gateway on loopback) saw the recorder write them.
		const metrics = await (await fetch(`${base}/metrics`)).text();
		const sample = (series: string) =>
			Number(
				metrics
					.split("\n")
					.find((l) => l.startsWith(`${series} `))
					?.slice(series.length + 1),
			);
		expect(sample('consentry_recorder_objects_written_total{recovered="false"}')).toBe(webms.length);
		expect(sample("consentry_recorder_uploaded_bytes_total")).toBeGreaterThan(0);
		expect(sample('consentry_notice_answer_seconds_count{kind="recording",answer="acknowledged"}')).toBe(1);
		expect(sample('consentry_notice_answer_seconds_count{kind="transcription",answer="acknowledged"}')).toBe(1);
		expect(sample('consentry_webhook_attempts_total{event="recording.ready",outcome="delivered"}')).toBe(1);
	});
});

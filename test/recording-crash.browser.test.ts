import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyCommand } from "../cli/verify/command.js";
import { verifyExport } from "../server/audit/verify.js";
import type { Manifest } from "../server/recording/RecordingTypes.js";
import { startBucket, type TestBucket } from "./helpers/bucket.js";
import { type LaunchedBrowser, launchChromium } from "./helpers/chromium.js";
import { freePort } from "./helpers/ports.js";
import { childrenOf, isRunning } from "./helpers/proc-fds.js";
import { AUDIENCE, testTenant, writeTenantsFile } from "./helpers/tenants.js";
import { waitFor } from "./helpers/wait.js";
import { probeMedia } from "./helpers/webm.js";

/**
 * The whole gateway killed with -9 mid-recording, as a separate process (built: `npm run build`) with its real
 * recorder child, real Chromium sending media, a real S3 API: once the gateway is started again on the same store,
 * the session's manifest.json, audit.jsonl and chat.jsonl are in the bucket, the manifest says the session ended in
 * a crash and where each track's hole is; every object decodes and reaches to within 5 s of the kill; and no
 * recorder process outlived its gateway.
 */
const acme = testTenant("acme");
let bucket: TestBucket;
let chrome: LaunchedBrowser;
let port: number;
let gateway: ChildProcess | undefined;
const pages: Page[] = [];
const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-crash-"));
const env = {
	...process.env,
	CONSENTRY_HTTP_HOST: "127.0.0.1",
	CONSENTRY_WORKERS: "1",
	CONSENTRY_DB_FILE: path.join(dir, "store.sqlite"),
	CONSENTRY_AUDIENCE: AUDIENCE,
	CONSENTRY_GATEWAY_ID: "crash-test",
	CONSENTRY_TENANTS_FILE: writeTenantsFile([acme]),
	CONSENTRY_MASTER_KEY: randomBytes(32).toString("base64"),
	CONSENTRY_STORAGE_ALLOW_PRIVATE: "true",
	CONSENTRY_STORAGE_ALLOW_HTTP: "true",
	CONSENTRY_LOG_LEVEL: "warn",
};
const url = () => `http://127.0.0.1:${port}`;

async function startGatewayProcess(): Promise<ChildProcess> {
	const child = spawn(process.execPath, ["dist/server/main.js"], {
		env: { ...env, CONSENTRY_HTTP_PORT: String(port) },
		stdio: ["ignore", "ignore", "inherit"],
	});
	await waitFor(async () => (await fetch(`${url()}/healthz`)).ok, 30_000, "the gateway to answer");
	return child;
}

async function api(method: string, p: string, token: string, body?: unknown) {
	const res = await fetch(`${url()}${p}`, {
		method,
		headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
		...(body ? { body: JSON.stringify(body) } : {}),
	});
	return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
	bucket = await startBucket("acme-recordings");
	port = await freePort();
	gateway = await startGatewayProcess();
	const r = await api("PUT", "/api/storage-target", acme.token("it-admin", "admin"), {
		endpoint: bucket.server.endpoint,
		region: "us-east-1",
		bucket: bucket.name,
		prefix: "rec",
		forcePathStyle: true,
		credentials: { accessKeyId: "AKIATEST", secretAccessKey: "secret-value" },
	});
	expect(r.status).toBe(200);
	chrome = await launchChromium();
});

afterAll(async () => {
	await Promise.all(pages.map((p) => p.close().catch(() => undefined)));
	await chrome?.close();
	gateway?.kill("SIGKILL");
	await bucket?.stop();
});

/**
 * A host records themselves (mic + camera) and says something in the chat; resolves once both tracks record. With
 * `transcribe`, transcription is on too (the embedded engine), its notice answered.
 */
async function record(
	name: string,
	transcribe = false,
): Promise<{ meetingId: string; recorderPid: number; token: string }> {
	const token = acme.token(name);
	const m = await api("POST", "/api/meetings", token, { title: name, settings: { lobby: false } });
	const { id: meetingId, joinCode } = m.body as { id: string; joinCode: string };
	const page = await chrome.browser.newPage();
	pages.push(page);
	await page.goto(`${url()}/?${new URLSearchParams({ m: joinCode, name })}#token=${token}`);
	await page.getByRole("button", { name: "Join", exact: true }).click();
	await page.getByTestId("meeting-screen").getByRole("status").getByText("Connected").waitFor({ timeout: 20_000 });
	await page.waitForTimeout(1500); // mic and camera producing
	await page.locator('[data-testid="capture-start"][data-kind="recording"]').click();
	await page.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
	await page.getByTestId("notice-ack").click();
	await page
		.locator('[data-testid="capture-indicator"][data-kind="recording"]')
		.waitFor({ state: "visible", timeout: 10_000 });
	await page.getByRole("textbox", { name: "Message" }).fill("said while recording");
	await page.locator("#chat-form").getByRole("button", { name: "Send" }).click();
	await page.getByTestId("chat-log").getByText("said while recording").waitFor({ timeout: 15_000 }); // setup, not a bound under test
	const recorderPid = await waitFor(
		() => childrenOf(gateway?.pid as number).find((c) => c.comm === "node" || c.comm.startsWith("node"))?.pid,
		10_000,
		"the recorder process",
	);
	if (transcribe) {
		await page.locator('[data-testid="capture-start"][data-kind="transcription"]').click();
		await page.getByTestId("capture-notice").waitFor({ state: "visible", timeout: 15_000 });
		await page.getByTestId("notice-ack").click();
		await page
			.locator('[data-testid="capture-indicator"][data-kind="transcription"]')
			.waitFor({ state: "visible", timeout: 10_000 });
	}
	return { meetingId, recorderPid, token };
}

async function sessionOf(meetingId: string, token: string, kind = "recording"): Promise<string> {
	return waitFor(
		async () => {
			const r = await api("GET", `/api/meetings/${meetingId}/events`, token);
			const events = (r.body.events ?? []) as { type: string; data: { kind?: string; sessionId?: string } }[];
			return events.find((e) => e.type === "session.on" && e.data.kind === kind)?.data.sessionId;
		},
		10_000,
		`the ${kind} session in the trail`,
	);
}

async function checkAfterCrash(meetingId: string, sessionId: string, killedAt: number): Promise<Manifest> {
	const base = `rec/${meetingId}/${sessionId}`;
	const manifest = await waitFor(
		() => bucket.json<Manifest>(`${base}/manifest.json`),
		60_000,
		"manifest.json after the restart",
	);
	expect(manifest.endReason).toBe("gateway_crashed");
	expect(manifest.tracks.map((t) => t.kind).sort()).toEqual(["audio", "camera"]);
	const audit = (await bucket.bytes(`${base}/audit.jsonl`)).toString();
	expect(verifyExport(audit)).toMatchObject({ ok: true });
	const chat = (await bucket.bytes(`${base}/chat.jsonl`)).toString();
	expect(chat).toContain("said while recording");
	expect(manifest.chat.messages).toBe(1);
	for (const t of manifest.tracks) {
		expect(t.coveredBy?.type).toBe("notice.acknowledged");
		expect(t.closeReason).toBe("gateway_crashed");
		expect(t.objects.length).toBeGreaterThanOrEqual(1);
		const hole = t.holes.find((h) => h.cause === "gateway_crash");
		expect(hole).toBeDefined();
		// At most 5 s of the track lost before the kill.
		expect((killedAt - Date.parse(hole?.from as string)) / 1000).toBeLessThanOrEqual(5);
		for (const o of t.objects) {
			const bytes = await bucket.bytes(o.key);
			expect(bytes.length).toBe(o.size);
			const probe = await probeMedia(bytes);
			expect(probe.decodeErrors).toBe("");
			expect(probe.codecs).toEqual([t.kind === "audio" ? "opus" : "vp8"]);
		}
		const lastEnd = Math.max(...t.objects.map((o) => Date.parse(o.endedAt)));
		if (process.env.CRASH_DEBUG)
			console.error(
				t.kind,
				(killedAt - lastEnd) / 1000,
				JSON.stringify(t.holes),
				t.objects.map((o) => `${o.size}/${o.frames}/${o.recovered}`),
			);
		expect((killedAt - lastEnd) / 1000).toBeLessThanOrEqual(5);
	}
	return manifest;
}

describe("a gateway killed with -9 while recording", () => {
	it("gateway and recorder killed at once at a random moment: the proof and the media are in the bucket after the restart", async () => {
		const { meetingId, recorderPid, token } = await record("crash-all");
		const sessionId = await sessionOf(meetingId, token);
		await new Promise((r) => setTimeout(r, 4000 + Math.random() * 4000));
		const killedAt = Date.now();
		process.kill(gateway?.pid as number, "SIGKILL");
		process.kill(recorderPid, "SIGKILL");
		await waitFor(() => !isRunning(gateway?.pid as number) && !isRunning(recorderPid), 5000, "both dead");
		gateway = await startGatewayProcess();
		await checkAfterCrash(meetingId, sessionId, killedAt);
	});

	it("the gateway alone killed: its recorder finishes what it holds and exits; the restart writes the proof, of the transcription too", async () => {
		const { meetingId, recorderPid, token } = await record("crash-gateway", true);
		const sessionId = await sessionOf(meetingId, token);
		const transcriptionId = await sessionOf(meetingId, token, "transcription");
		await new Promise((r) => setTimeout(r, 5000));
		const killedAt = Date.now();
		process.kill(gateway?.pid as number, "SIGKILL");
		// No recorder outlives its gateway.
		await waitFor(() => !isRunning(recorderPid), 12_000, "the orphaned recorder to exit");
		gateway = await startGatewayProcess();
		await checkAfterCrash(meetingId, sessionId, killedAt);
		// The transcription session is finished from the bucket after the recording: its transcript as last
		// checkpointed (or empty), ended by the crash with the gap from there, its proof beside it.
		const tbase = `rec/${meetingId}/${transcriptionId}`;
		const transcript = await waitFor(
			() =>
				bucket
					.json<{ endedAt: string; endReason?: string; holes?: { from: string; cause: string }[] }>(
						`${tbase}/transcript.json`,
					)
					.then((t) => (t.endReason ? t : undefined)),
			30_000,
			"the transcript after the restart",
		);
		expect(transcript).toMatchObject({
			endReason: "gateway_crashed",
			holes: [{ from: transcript.endedAt, cause: "gateway_crash" }],
		});
		await waitFor(() => bucket.bytes(`${tbase}/audit.jsonl`).catch(() => undefined), 5000, "its audit.jsonl");
		// The customer's auditor: the meeting's folder (the recording and the transcription) verifies.
		let out = "";
		process.env.AWS_ACCESS_KEY_ID ??= "x";
		process.env.AWS_SECRET_ACCESS_KEY ??= "x";
		const code = await verifyCommand([`s3://${bucket.name}/rec/${meetingId}`, "--endpoint", bucket.server.endpoint], {
			out: (t) => (out += t),
			err: (t) => (out += t),
		});
		expect(code, out).toBe(0);
		expect(out).toContain(transcriptionId);
	});
});

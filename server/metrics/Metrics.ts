import { timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { UploadStats } from "../../contracts/RecorderProtocol.js";
import type { AuditEvent, EventLog } from "../audit/EventLog.js";
import { answersIn, sentNotices } from "../audit/notices.js";
import { AuthenticationError, NotFoundError } from "../errors.js";
import type { RecorderProcess } from "../recording/RecorderProcess.js";
import type { RoomRegistry } from "../sfu/RoomRegistry.js";
import type { WorkerPool } from "../sfu/WorkerPool.js";
import type { WebhookService } from "../webhooks/WebhookService.js";

export interface MetricsOptions {
	rooms: RoomRegistry;
	pool: WorkerPool;
	events: EventLog;
	recorder: RecorderProcess | undefined;
	webhooks: WebhookService | undefined;
}

/** Notices not answered after this long are forgotten (memory bound); a day covers any meeting. */
const NOTICE_MEMORY = 100_000;

/**
 * The gateway's Prometheus metrics (prom-client, its own registry). Live figures (meetings, people, media,
 * worker CPU, open recorder tracks) are read when scraped; counters come from the audit trail's append hook
 * (notice answer latency), the recorder's messages to the gateway (objects, bytes, failures, transcription)
 * and the webhook dispatcher (deliveries). Nothing here is on a meeting's path.
 */
export class Metrics {
	readonly registry = new Registry();
	readonly #noticeSentAt = new Map<string, number>();
	readonly #unhook: () => void;
	readonly #recorderObjects: Counter<"recovered">;
	readonly #recorderBytes: Counter;
	readonly #recorderPartBytes: Counter;
	readonly #recorderParts: Counter;
	readonly #trackFailures: Counter<"code">;
	readonly #uploadFailures: Counter<"code">;
	readonly #holes: Counter<"cause">;
	readonly #recorderCrashes: Counter;
	readonly #uploadRetries: Counter;
	#uploadStats: { at: number; tracks: UploadStats["tracks"] } | undefined;
	readonly #transcriptionFailures: Counter<"code">;
	readonly #finals: Counter<"engine">;
	readonly #finalLag: Histogram<"engine">;
	readonly #rtf: Histogram<"engine">;
	readonly #noticeAnswer: Histogram<"kind" | "answer">;
	readonly #webhookAttempts: Counter<"event" | "outcome">;
	readonly #webhookLatency: Histogram;

	constructor(o: MetricsOptions) {
		const registers = [this.registry];
		collectDefaultMetrics({ register: this.registry });

		new Gauge({
			name: "consentry_meetings",
			help: "Meetings with a live media room on this gateway.",
			registers,
			collect() {
				this.set(o.rooms.size);
			},
		});
		new Gauge({
			name: "consentry_people",
			help: "People connected to a meeting's media room.",
			registers,
			collect() {
				this.set(o.rooms.live().reduce((n, r) => n + r.peers.size, 0));
			},
		});
		new Gauge({
			name: "consentry_producers",
			help: "Media tracks people send (mediasoup producers), by kind.",
			labelNames: ["kind"] as const,
			registers,
			collect() {
				const n = { audio: 0, video: 0 };
				for (const r of o.rooms.live())
					for (const p of r.peers.values()) for (const pr of p.producers.values()) n[pr.kind]++;
				this.set({ kind: "audio" }, n.audio);
				this.set({ kind: "video" }, n.video);
			},
		});
		new Gauge({
			name: "consentry_consumers",
			help: "Media tracks forwarded to people (mediasoup consumers).",
			registers,
			collect() {
				this.set(
					o.rooms.live().reduce((n, r) => n + [...r.peers.values()].reduce((m, p) => m + p.consumers.size, 0), 0),
				);
			},
		});
		new Gauge({
			name: "consentry_media_workers",
			help: "Live mediasoup workers.",
			registers,
			collect() {
				this.set(o.pool.size);
			},
		});
		new Gauge({
			name: "consentry_media_worker_cpu_seconds",
			help: "CPU time (user + system) each mediasoup worker has used since it started (a counter: use rate()).",
			labelNames: ["worker"] as const,
			registers,
			async collect() {
				this.reset();
				await Promise.all(
					o.pool.workers.map(async (w) => {
						try {
							const ru = await w.getResourceUsage();
							this.set({ worker: String(w.pid) }, (ru.ru_utime + ru.ru_stime) / 1000);
						} catch {
							// a worker that just died has no figure
						}
					}),
				);
			},
		});
		new Gauge({
			name: "consentry_recorder_tracks",
			help: "Tracks the recorder is recording now.",
			registers,
			collect() {
				this.set(o.recorder?.openTracks.length ?? 0);
			},
		});
		// Buffers as the recorder last reported them (every 5 s while tracks record); stale after 15 s = none.
		const uploads = () => {
			const last = this.#uploadStats;
			const open = new Set(o.recorder?.openTracks ?? []);
			if (!last || Date.now() - last.at > 15_000) return [];
			return last.tracks.filter((t) => open.has(t.trackId));
		};
		new Gauge({
			name: "consentry_recorder_buffered_bytes",
			help: "Bytes the recorder holds for the customers' buckets (not yet stored), all tracks together.",
			registers,
			collect() {
				this.set(uploads().reduce((n, t) => n + t.bufferedBytes, 0));
			},
		});
		new Gauge({
			name: "consentry_recorder_buffer_fill_max",
			help: "The fullest track buffer, as a fraction of its limit (at 1 the track stops cleanly: a bucket outage past the buffer).",
			registers,
			collect() {
				this.set(uploads().reduce((m, t) => Math.max(m, t.bufferedBytes / t.bufferLimit), 0));
			},
		});
		this.#uploadRetries = new Counter({
			name: "consentry_recorder_upload_retries_total",
			help: "Upload requests to the customers' buckets that failed transiently (5xx, timeout, connection) and were tried again, by request (part: multipart parts and their create/complete; checkpoint: the 2-s tail checkpoints).",
			labelNames: ["request"] as const,
			registers,
		});
		new Gauge({
			name: "consentry_transcription_streams",
			help: "Audio tracks being transcribed now.",
			registers,
			collect() {
				this.set(o.recorder?.openTranscriptions.length ?? 0);
			},
		});
		this.#recorderObjects = new Counter({
			name: "consentry_recorder_objects_written_total",
			help: "Recording objects completed in the customers' buckets.",
			labelNames: ["recovered"] as const,
			registers,
		});
		this.#recorderBytes = new Counter({
			name: "consentry_recorder_object_bytes_total",
			help: "Bytes of the recording objects completed in the customers' buckets.",
			registers,
		});
		this.#recorderParts = new Counter({
			name: "consentry_recorder_parts_uploaded_total",
			help: "Media uploads stored in the customers' buckets: multipart parts, and objects that ended within their first part stored whole (one PutObject).",
			registers,
		});
		this.#recorderPartBytes = new Counter({
			name: "consentry_recorder_uploaded_bytes_total",
			help: "Media bytes stored in the customers' buckets by those uploads (grows while a recording runs).",
			registers,
		});
		this.#trackFailures = new Counter({
			name: "consentry_recorder_track_failures_total",
			help: "Recorded tracks that stopped for good, by cause.",
			labelNames: ["code"] as const,
			registers,
		});
		this.#uploadFailures = new Counter({
			name: "consentry_recorder_upload_failures_total",
			help: "Tracks stopped because the customer's bucket stayed unreachable or refused (storage_unavailable, storage_rejected).",
			labelNames: ["code"] as const,
			registers,
		});
		this.#holes = new Counter({
			name: "consentry_recorder_holes_total",
			help: "Stretches of a recorded track that will not be in the bucket, by cause (each is in the session's manifest).",
			labelNames: ["cause"] as const,
			registers,
		});
		this.#recorderCrashes = new Counter({
			name: "consentry_recorder_crashes_total",
			help: "Times the recorder process died unexpectedly.",
			registers,
		});
		this.#transcriptionFailures = new Counter({
			name: "consentry_transcription_failures_total",
			help: "Transcription streams that stopped for good, by cause.",
			labelNames: ["code"] as const,
			registers,
		});
		this.#finals = new Counter({
			name: "consentry_transcription_finals_total",
			help: "Final transcript segments (utterances), by engine.",
			labelNames: ["engine"] as const,
			registers,
		});
		this.#finalLag = new Histogram({
			name: "consentry_transcription_final_lag_seconds",
			help: "From the end of an utterance (audio time) to its final segment reaching the gateway.",
			labelNames: ["engine"] as const,
			buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32],
			registers,
		});
		this.#rtf = new Histogram({
			name: "consentry_transcription_realtime_factor",
			help: "Per utterance: (time from its start to its final reaching the gateway) / its duration. A live engine keeping up stays near 1; growing means it falls behind.",
			labelNames: ["engine"] as const,
			buckets: [1, 1.1, 1.25, 1.5, 2, 3, 5, 10],
			registers,
		});
		this.#noticeAnswer = new Histogram({
			name: "consentry_notice_answer_seconds",
			help: "From a notice sent to a person to their answer (acknowledged, consented, declined).",
			labelNames: ["kind", "answer"] as const,
			buckets: [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
			registers,
		});
		this.#webhookAttempts = new Counter({
			name: "consentry_webhook_attempts_total",
			help: "Webhook delivery attempts, by event and outcome (delivered, failed).",
			labelNames: ["event", "outcome"] as const,
			registers,
		});
		this.#webhookLatency = new Histogram({
			name: "consentry_webhook_delivery_seconds",
			help: "From the event (its audit entry) to the customer's endpoint accepting it.",
			buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600],
			registers,
		});
		new Gauge({
			name: "consentry_webhook_pending",
			help: "Webhook deliveries waiting (first attempt or retry).",
			registers,
			async collect() {
				this.set((await o.webhooks?.store.pendingCount().catch(() => 0)) ?? 0);
			},
		});

		this.#unhook = o.events.onAppend((entries) => {
			for (const e of entries) this.#onAudit(e);
		});
		if (o.recorder) this.#observeRecorder(o.recorder);
		o.webhooks?.onAttempt((r) => {
			this.#webhookAttempts.inc({ event: r.event, outcome: r.ok ? "delivered" : "failed" });
			if (r.ok) this.#webhookLatency.observe(r.latencyMs / 1000);
		});
	}

	close(): void {
		this.#unhook();
	}

	/** Notice answer latency, from the trail: the notice sent (notice.sent or notices.sent) → its answer (same notice id). */
	#onAudit(e: AuditEvent): void {
		if (e.type === "notice.sent" || e.type === "notices.sent") {
			const at = Date.parse(e.at);
			for (const { noticeId } of sentNotices(e)) {
				if (this.#noticeSentAt.size >= NOTICE_MEMORY) {
					const oldest = this.#noticeSentAt.keys().next().value;
					if (oldest !== undefined) this.#noticeSentAt.delete(oldest);
				}
				this.#noticeSentAt.set(noticeId, at);
			}
			return;
		}
		if (e.type === "notices.acknowledged") {
			for (const a of answersIn(e)) this.#answered(a.noticeId, a.kind, "acknowledged", e.at);
			return;
		}
		const noticeId = e.data.noticeId;
		if (typeof noticeId !== "string") return;
		const answer =
			e.type === "notice.acknowledged"
				? "acknowledged"
				: e.type === "consent.given"
					? "consented"
					: e.type === "consent.declined"
						? "declined"
						: undefined;
		if (answer) this.#answered(noticeId, String(e.data.kind ?? "unknown"), answer, e.at);
	}

	#answered(noticeId: string, kind: string, answer: string, at: string): void {
		const sent = this.#noticeSentAt.get(noticeId);
		if (sent === undefined) return;
		this.#noticeSentAt.delete(noticeId);
		this.#noticeAnswer.observe({ kind, answer }, Math.max(0, Date.parse(at) - sent) / 1000);
	}

	/**
	 * The one hook on the recorder: figures from the messages the gateway already receives from it. (Upload
	 * retries and buffer fill are not in those messages yet: see docs/metrics.md.)
	 */
	#observeRecorder(recorder: RecorderProcess): void {
		recorder.on("objectWritten", (o) => {
			this.#recorderObjects.inc({ recovered: o.recovered ? "true" : "false" });
			this.#recorderBytes.inc(o.size);
		});
		recorder.on("partUploaded", (p) => {
			this.#recorderParts.inc();
			this.#recorderPartBytes.inc(p.size);
		});
		recorder.on("trackFailed", (f) => {
			this.#trackFailures.inc({ code: f.code });
			if (f.code === "storage_unavailable" || f.code === "storage_rejected") this.#uploadFailures.inc({ code: f.code });
		});
		recorder.on("trackHole", ({ hole }) => this.#holes.inc({ cause: hole.cause }));
		recorder.on("crashed", () => this.#recorderCrashes.inc());
		recorder.on("uploadStats", (s) => {
			this.#uploadStats = { at: Date.now(), tracks: s.tracks };
			const parts = s.tracks.reduce((n, t) => n + t.retries, 0);
			if (parts > 0) this.#uploadRetries.inc({ request: "part" }, parts);
			if (s.checkpointRetries > 0) this.#uploadRetries.inc({ request: "checkpoint" }, s.checkpointRetries);
		});
		recorder.on("transcriptionFailed", (f) => this.#transcriptionFailures.inc({ code: f.code }));
		recorder.on("transcriptSegment", (s) => {
			if (!s.final) return;
			const engine = s.engine;
			this.#finals.inc({ engine });
			const start = Date.parse(s.streamStartedAt);
			const now = Date.now();
			const utteranceEnd = start + s.endMs;
			this.#finalLag.observe({ engine }, Math.max(0, now - utteranceEnd) / 1000);
			const duration = s.endMs - s.startMs;
			if (duration >= 200) this.#rtf.observe({ engine }, Math.max(0, now - (start + s.startMs)) / duration);
		});
	}
}

export interface MetricsRouteOptions {
	/** When set, /metrics needs `Authorization: Bearer <token>` (from anywhere); unset: loopback only. */
	token?: string;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/**
 * `GET /metrics` (Prometheus text format). Without a token it answers only to loopback connections that do not
 * come through a proxy (no X-Forwarded-For / Forwarded / X-Real-IP); to anyone else it does not exist (404).
 * With CONSENTRY_METRICS_TOKEN it answers to whoever sends that bearer token, and 401 to others.
 */
export function registerMetricsRoute(http: FastifyInstance, metrics: Metrics, o: MetricsRouteOptions): void {
	const expected = o.token ? Buffer.from(o.token) : undefined;
	const allowed = (req: FastifyRequest): void => {
		if (expected) {
			const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
			const given = Buffer.from(m?.[1] ?? "");
			if (given.length !== expected.length || !timingSafeEqual(given, expected))
				throw new AuthenticationError("metrics_token", "Send the metrics token as `Authorization: Bearer <token>`.");
			return;
		}
		const proxied = req.headers["x-forwarded-for"] || req.headers.forwarded || req.headers["x-real-ip"];
		if (proxied || !LOOPBACK.test(req.socket.remoteAddress ?? ""))
			throw new NotFoundError("not_found", "No such page.");
	};
	http.get("/metrics", async (req, reply) => {
		allowed(req);
		const body = await metrics.registry.metrics();
		return reply.header("content-type", metrics.registry.contentType).header("cache-control", "no-store").send(body);
	});
}

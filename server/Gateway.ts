import { existsSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { Server as TlsServer } from "node:tls";
import fastifyStatic from "@fastify/static";
import Fastify, { type FastifyInstance, LogController } from "fastify";
import { Server as IoServer } from "socket.io";
import { ORPHAN_GRACE_MS } from "../contracts/RecorderConfig.js";
import type { ClientEvents, ServerEvents } from "../shared/protocol.js";
import { EventLog } from "./audit/EventLog.js";
import { TenantRegistry } from "./auth/TenantRegistry.js";
import { TokenVerifier } from "./auth/TokenVerifier.js";
import { NodeRegistry } from "./cluster/NodeRegistry.js";
import { Placement } from "./cluster/Placement.js";
import { CaptureService } from "./compliance/CaptureService.js";
import { DEFAULT_TENANT_CAPTURE } from "./compliance/CaptureTypes.js";
import type { GatewayConfig } from "./config.js";
import { RateLimitError, StoreUnavailableError, toPublicError } from "./errors.js";
import { registerAccessLog } from "./http/accessLog.js";
import { BODY_LIMIT_BYTES, clientError, frameworkErrors, MAX_PARAM_LENGTH } from "./http/clientErrors.js";
import { registerDataSubjectApi } from "./http/DataSubjectApi.js";
import { registerJsonBodies } from "./http/jsonBodies.js";
import { registerMeetingsApi } from "./http/MeetingsApi.js";
import { registerPlaybackApi } from "./http/PlaybackApi.js";
import { FloodRefusal, RestLimiter } from "./http/RestLimiter.js";
import { registerStorageApi } from "./http/StorageApi.js";
import { engineHeaders, registerSecurityHeaders } from "./http/securityHeaders.js";
import { registerTranscriptsApi } from "./http/TranscriptsApi.js";
import type { Logger } from "./logger.js";
import { HostSeats } from "./meetings/HostSeats.js";
import { MeetingHub } from "./meetings/MeetingHub.js";
import { MeetingStore } from "./meetings/MeetingStore.js";
import { PasscodeGuard } from "./meetings/PasscodeGuard.js";
import { Metrics, registerMetricsRoute } from "./metrics/Metrics.js";
import { collectRoutes, type RegisteredRoute, registerOpenApi } from "./openapi/OpenApi.js";
import { registerOperatorApi } from "./operator/OperatorApi.js";
import { OperatorService } from "./operator/OperatorService.js";
import { OperatorVerifier } from "./operator/OperatorVerifier.js";
import { TenantDirectory } from "./operator/TenantDirectory.js";
import { AddressKey } from "./privacy/addresses.js";
import { DataSubjectService } from "./privacy/DataSubjectService.js";
import type { LogFiles } from "./privacy/LogFiles.js";
import { GATEWAY_CHAIN, SecurityHold } from "./privacy/SecurityHold.js";
import { Playback } from "./recording/Playback.js";
import { RecorderProcess } from "./recording/RecorderProcess.js";
import { RecordingService } from "./recording/RecordingService.js";
import { DEFAULT_RETENTION_DAYS, RetentionService } from "./retention/RetentionService.js";
import { RoomRegistry } from "./sfu/RoomRegistry.js";
import { WorkerPool } from "./sfu/WorkerPool.js";
import { AddressLimits } from "./signaling/AddressLimits.js";
import { dropCoolingDown, SignalingServer, signalingAllowRequest } from "./signaling/SignalingServer.js";
import { StorageTargetStore } from "./storage/StorageTargetStore.js";
import { parseMasterKey, SecretBox } from "./storage/secretBox.js";
import { ClusterBus } from "./store/ClusterBus.js";
import { PlacementRepository } from "./store/PlacementRepository.js";
import { Store } from "./store/Store.js";
import { TranscriptionService } from "./transcription/TranscriptionService.js";
import { TranscriptLinks } from "./transcription/TranscriptLinks.js";
import { WebhookService } from "./webhooks/WebhookService.js";
import { WebhookStore } from "./webhooks/WebhookStore.js";
import { registerWebhooksApi } from "./webhooks/WebhooksApi.js";

/**
 * The gateway process: HTTP (client assets, REST API, health), socket.io
 * signaling and the mediasoup workers behind it.
 */
export class Gateway {
	readonly http: FastifyInstance;
	readonly io: IoServer<ClientEvents, ServerEvents>;
	readonly pool: WorkerPool;
	readonly rooms: RoomRegistry;
	readonly store: MeetingStore;
	readonly seats: HostSeats;
	readonly events: EventLog;
	readonly tenants: TenantRegistry;
	/** Tenants and what the operator cut off, from the store, kept current through the change feed. */
	readonly directory: TenantDirectory;
	readonly operator: OperatorService;
	/** The notice gate of every live meeting: the one way to media for recording and transcription. */
	readonly capture: CaptureService;
	readonly recording: RecordingService;
	readonly transcription: TranscriptionService;
	readonly recorder: RecorderProcess | undefined;
	/** Webhooks to the customers' endpoints (undefined without a master key to seal their secrets). */
	readonly webhooks: WebhookService | undefined;
	/** Data-subject requests (issue #14): access, export, erasure. */
	readonly dsr: DataSubjectService;
	/** Prometheus metrics (undefined when CONSENTRY_METRICS=false). */
	readonly metrics: Metrics | undefined;
	/** Every HTTP route registered (the OpenAPI coverage test compares it with /api/openapi.json). */
	readonly apiRoutes: readonly RegisteredRoute[];
	/** Issue 14: the retention purge (store), the operator's security hold, and this process's log files (if any). */
	readonly retention: RetentionService;
	readonly hold: SecurityHold;
	readonly logFiles: LogFiles | undefined;
	#logSweep: NodeJS.Timeout | undefined;
	readonly #db: Store;
	readonly #bus: ClusterBus;
	/** Cluster placement (issue 12): this node in the registry and where meetings live; undefined on one node. */
	readonly node: NodeRegistry | undefined;
	readonly placement: Placement | undefined;
	readonly #log: Logger;

	private constructor(p: {
		http: FastifyInstance;
		io: IoServer<ClientEvents, ServerEvents>;
		pool: WorkerPool;
		rooms: RoomRegistry;
		db: Store;
		bus: ClusterBus;
		node: NodeRegistry | undefined;
		placement: Placement | undefined;
		store: MeetingStore;
		seats: HostSeats;
		events: EventLog;
		tenants: TenantRegistry;
		directory: TenantDirectory;
		operator: OperatorService;
		capture: CaptureService;
		recording: RecordingService;
		transcription: TranscriptionService;
		recorder: RecorderProcess | undefined;
		webhooks: WebhookService | undefined;
		dsr: DataSubjectService;
		metrics: Metrics | undefined;
		apiRoutes: readonly RegisteredRoute[];
		retention: RetentionService;
		hold: SecurityHold;
		logFiles: LogFiles | undefined;
		log: Logger;
	}) {
		this.http = p.http;
		this.io = p.io;
		this.pool = p.pool;
		this.rooms = p.rooms;
		this.store = p.store;
		this.seats = p.seats;
		this.events = p.events;
		this.tenants = p.tenants;
		this.directory = p.directory;
		this.operator = p.operator;
		this.capture = p.capture;
		this.recording = p.recording;
		this.transcription = p.transcription;
		this.recorder = p.recorder;
		this.webhooks = p.webhooks;
		this.dsr = p.dsr;
		this.metrics = p.metrics;
		this.apiRoutes = p.apiRoutes;
		this.retention = p.retention;
		this.hold = p.hold;
		this.logFiles = p.logFiles;
		this.#db = p.db;
		this.#bus = p.bus;
		this.node = p.node;
		this.placement = p.placement;
		this.#log = p.log;
	}

	/**
	 * `opts.logFiles`: the log files the logger also writes to (CONSENTRY_LOG_DIR; server/main.ts makes them): the
	 * gateway sweeps them by age, minding the security hold. `opts.now`: the clock of audit entries, retention and
	 * the hold (tests of retention set a fake one).
	 */
	static async create(
		config: GatewayConfig,
		log: Logger,
		opts: { logFiles?: LogFiles; now?: () => number } = {},
	): Promise<Gateway> {
		// The tenants file only seeds the store: the store's `tenants` table is the one source of truth (docs/operator.md).
		const seed = config.tenantsFile ? TenantRegistry.fromFile(config.tenantsFile).list() : [];
		const operatorVerifier = config.operator.keysFile
			? OperatorVerifier.fromFile(config.operator.keysFile, { audience: config.audience })
			: undefined;
		const cluster = await Store.open(
			config.databaseUrl
				? { url: config.databaseUrl, queryTimeoutMs: config.databaseTimeoutMs, poolSize: config.databasePoolSize }
				: { file: config.dbFile, busyTimeoutMs: config.databaseTimeoutMs },
		);
		const tenants = new TenantRegistry();
		const directory = await TenantDirectory.open({
			store: cluster,
			registry: tenants,
			log,
			pollMs: config.operator.pollMs,
			seed,
		});
		if (tenants.size === 0)
			log.warn("no tenants registered (CONSENTRY_TENANTS_FILE or the operator API): nobody can host a meeting");
		const verifier = new TokenVerifier(tenants, { audience: config.audience, gate: directory });
		const store = new MeetingStore(cluster);
		const seats = new HostSeats(cluster);
		const events = await EventLog.open(cluster, opts.now ? { now: opts.now } : {});
		// Issue 14: retention of each tenant's meetings and entries (and the gateway-wide chain's), the security hold.
		const retention = new RetentionService({
			store: cluster,
			events,
			tenants: () => [
				...tenants.list().map((t) => ({ id: t.id, days: t.retention?.days ?? DEFAULT_RETENTION_DAYS })),
				{ id: GATEWAY_CHAIN, days: DEFAULT_RETENTION_DAYS },
			],
			gatewayId: config.gatewayId,
			intervalMs: config.retention.intervalMs,
			...(opts.now ? { now: opts.now } : {}),
			log,
		});
		const hold = new SecurityHold({ repo: retention.repository, events, ...(opts.now ? { now: opts.now } : {}) });
		const stale = await seats.releaseAllOf(config.gatewayId);
		if (stale) log.info({ stale }, "released host seats left by this gateway's previous run");
		const pool = await WorkerPool.create(
			{ numWorkers: config.mediasoup.numWorkers, workerBin: config.mediasoup.workerBin },
			log,
		);
		const http = Fastify({
			loggerInstance: log.child({ component: "http" }),
			// Fastify's request lines carry the full client address: the gateway writes its own (http/accessLog.ts).
			logController: new LogController({ disableRequestLogging: true }),
			bodyLimit: BODY_LIMIT_BYTES,
			routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
			// The router's refusals (a malformed percent-escape, a parameter too long) in the project's error shape.
			frameworkErrors,
			...(config.http.tls
				? { https: { cert: readFileSync(config.http.tls.certFile), key: readFileSync(config.http.tls.keyFile) } }
				: {}),
		}) as unknown as FastifyInstance;
		const apiRoutes = collectRoutes(http);

		// Cost before trust on REST: per address, the first hook of every request (before any other hook, any body or
		// token) and per caller on the costly routes (docs/security.md, "REST API").
		const restLimiter = await RestLimiter.register(http, config.rest, config.trustProxy);
		// Cluster: the live nodes' URLs (set once the node is registered below) may take this page's signaling.
		let clusterUrls: () => readonly string[] = () => [];
		await registerSecurityHeaders(http, {
			tls: Boolean(config.http.tls),
			...(config.cluster ? { clusterUrls: () => clusterUrls() } : {}),
		});
		registerAccessLog(http, log, config.trustProxy);

		http.setErrorHandler((err, _req, reply) => {
			if (err instanceof RateLimitError && err.retryAfterSec !== undefined) {
				// A per-address refusal comes before the security headers' hook: the one that matters for JSON is set here.
				reply.header("retry-after", String(err.retryAfterSec)).header("x-content-type-options", "nosniff");
				// A flood's connection is closed after this answer (not behind a proxy, whose connections are shared).
				if (err instanceof FloodRefusal && !config.trustProxy) reply.header("connection", "close");
			}
			// A client's mistake (ours, or Fastify's: body too large, wrong content type, invalid JSON) is a 4xx with a code.
			const client = clientError(err);
			if (client) return reply.status(client.status).send(client.toJSON());
			log.error({ err }, "unhandled HTTP error");
			return reply.status(500).send(toPublicError(err));
		});
		registerJsonBodies(http);
		http.setNotFoundHandler((_req, reply) => reply.status(404).send({ code: "not_found", message: "No such page." }));

		// Not rate limited: in memory only, and a load balancer's probe must never be refused for others' floods.
		http.get("/healthz", { config: { rateLimit: false } }, async () => ({
			ok: true,
			workers: pool.size,
			rooms: rooms.size,
		}));

		if (existsSync(config.clientDir)) {
			await http.register(fastifyStatic, { root: config.clientDir, index: "index.html" });
		} else {
			log.warn({ clientDir: config.clientDir }, "client not built; run `npm run build:client`");
		}

		// Cost before trust: per-address connection caps at the engine's handshake, before any upgrade or socket.io work.
		const addresses = new AddressLimits(config.limits);
		http.server.on("connection", dropCoolingDown(addresses, config.trustProxy));
		const io = new IoServer<ClientEvents, ServerEvents>(http.server, {
			serveClient: false,
			maxHttpBufferSize: config.limits.maxMessageBytes,
			allowRequest: signalingAllowRequest(addresses, config.trustProxy),
			pingInterval: 10_000,
			pingTimeout: 10_000,
		});
		io.engine.on("headers", (headers: Record<string, string>) => engineHeaders(headers, Boolean(config.http.tls)));
		const rooms = new RoomRegistry(pool, config.rtc, log);
		const targets = config.storage.masterKey
			? new StorageTargetStore(cluster, new SecretBox(parseMasterKey(config.storage.masterKey)))
			: undefined;
		const tenantCapture = (id: string) =>
			(tenants.has(id) ? tenants.get(id).capture : undefined) ?? DEFAULT_TENANT_CAPTURE;
		const capture = new CaptureService({ events, tenantCapture, log });
		const links = new TranscriptLinks(cluster);
		// The recorder runs only where recordings can go somewhere: the customers' own buckets (sealed targets).
		const recorder =
			targets && config.recorder.enabled
				? await RecorderProcess.create({
						config: {
							maxBufferedBytes: config.recorder.maxBufferedBytes,
							maxOutageMs: config.recorder.maxOutageMs,
							partSizeBytes: Math.min(8, Math.max(5, Math.floor(config.recorder.maxBufferedBytes / 2 ** 21))) * 2 ** 20,
							segmentMinutes: config.recorder.segmentMinutes,
							logLevel: config.logLevel as "info",
						},
						log,
					})
				: undefined;
		if (!recorder) log.warn("recording is off: it needs CONSENTRY_MASTER_KEY (storage targets) and CONSENTRY_RECORDER");
		// Which customer endpoints the operator allows (http, private addresses): one policy for every S3 client.
		const endpointPolicy = { allowHttp: config.storage.allowHttp, allowPrivate: config.storage.allowPrivate };
		const recording = new RecordingService({
			targets,
			capture,
			rooms,
			events,
			recorder,
			endpointPolicy,
			log,
		});
		capture.registerSink("recording", recording);
		const transcription = new TranscriptionService({
			targets,
			capture,
			rooms,
			events,
			recorder,
			links,
			tenant: (id) => ({
				linkSeconds: tenantCapture(id).transcriptLinkSeconds,
				engine: tenantCapture(id).transcriptionEngine,
			}),
			endpointPolicy,
			log,
		});
		capture.registerSink("transcription", transcription);
		const bus = await ClusterBus.open({ ...(config.databaseUrl ? { url: config.databaseUrl } : {}), log });
		directory.listen(bus); // operator actions and tenant changes reach the other nodes at once
		// Cluster (issue 12 placement): this node registers with its public URL and a heartbeat; each meeting lives on
		// one node. Sweeps for meetings of dead nodes run after each heartbeat (hub set below, before the first sweep).
		let sweep: (() => Promise<void>) | undefined;
		let fence: (() => void) | undefined;
		let recovered: ((fencedAt: number) => void) | undefined;
		const cpu = workerCpu(pool);
		const node = config.cluster
			? await NodeRegistry.start({
					repo: new PlacementRepository(cluster),
					nodeId: config.gatewayId,
					url: config.cluster.publicUrl,
					heartbeatMs: config.cluster.heartbeatMs,
					deadMs: config.cluster.deadMs,
					load: async () => {
						const live = rooms.live();
						return { meetings: live.length, peers: live.reduce((n, r) => n + r.peers.size, 0), cpu: await cpu() };
					},
					afterBeat: async () => sweep?.(),
					// Fencing: cut off from the store for the dead time, another node may be taking this node's meetings.
					// Its rooms close (people sent on with `node_fenced`), so one meeting never has two live rooms.
					onFenced: () => fence?.(),
					onRecovered: (fencedAt) => recovered?.(fencedAt),
					log,
				})
			: undefined;
		const placement = node ? new Placement({ repo: new PlacementRepository(cluster), registry: node, log }) : undefined;
		if (config.databaseUrl && !config.cluster)
			log.warn(
				"CONSENTRY_DATABASE_URL without CONSENTRY_PUBLIC_URL: this node registers no public URL and places no meeting; " +
					"run one such node only (several nodes each need their own CONSENTRY_PUBLIC_URL, or a meeting's people " +
					"reaching different nodes would not meet)",
			);
		// The operator's service needs the hub and the hub asks it for warnings: it is set right after the hub.
		let operator: OperatorService | undefined;
		const hub: MeetingHub = new MeetingHub({
			bus,
			...(placement ? { placement } : {}),
			store,
			seats,
			events,
			rooms,
			capture,
			onChat: (meetingId, msg, person) => recording.chat(meetingId, msg, person),
			log,
			lobbyMax: config.limits.lobbyMax,
			passcodes: new PasscodeGuard(
				cluster,
				{
					freePerAddress: config.limits.passcodeFailuresPerAddress,
					lockoutAfter: config.limits.passcodeLockoutAfter,
				},
				Date.now,
				new AddressKey({ file: config.privacy.addressKeyFile, periodDays: config.privacy.addressKeyDays }),
			),
			access: {
				meetingDisabled: async (id) => (await directory.access.meetingBlock(id)) !== undefined,
				cutOff: (identity) => (identity.role === "guest" ? undefined : directory.cutOff(identity)),
				limits: (id) => (tenants.has(id) ? tenants.get(id).limits : undefined),
				liveMeetings: async (id) => (await directory.changes.liveMeetings(id)).length,
				pendingWarnings: async (identity) => (operator ? operator.pendingWarnings(identity) : []),
				acknowledgeWarning: async (identity, warningId) =>
					operator ? operator.acknowledgeWarning(identity, warningId) : false,
			},
			presence: {
				enter: (id) => directory.changes.present(id, config.gatewayId, new Date().toISOString()),
				leave: (id) => directory.changes.absent(id, config.gatewayId),
			},
		});
		if (placement && node) {
			placement.onRehomed(async (e) => {
				// The lost node's connections hold no seat any more: the host comes back here without a take-over.
				await seats.releaseAllOf(e.from);
				const m = await store.get(e.meetingId);
				// Who was in the meeting when its node was lost (joined, not left, by the trail) comes back as returning.
				const inside = new Map<string, number>();
				for (const x of await events.list({ tenantId: m.tenantId, meetingId: m.id })) {
					if (!x.actor || (x.type !== "person.joined" && x.type !== "person.left")) continue;
					inside.set(x.actor, (inside.get(x.actor) ?? 0) + (x.type === "person.joined" ? 1 : -1));
				}
				const persons: string[] = [];
				for (const [psn, n] of inside) {
					const person = n > 0 ? await events.resolvePseudonym(m.tenantId, psn) : null;
					if (person && !person.startsWith("guest:")) persons.push(person);
				}
				hub.rehomed(e.meetingId, persons);
				await events.append("meeting.rehomed", {
					tenantId: m.tenantId,
					meetingId: e.meetingId,
					actor: `gateway:${config.gatewayId}`,
					data: { from: e.from, to: e.to, epoch: e.epoch, cause: "node_lost" },
				});
				// A recording or transcription that was on goes on here in a new session (a new notice; nobody covered
				// until they answer it); the lost node's recording and transcription sessions are finished from the
				// bucket, their gap caused by node_lost. Not awaited: joins don't wait for the bucket.
				void continueRecording(m, e.from).catch((err: unknown) =>
					log.error({ err, meetingId: e.meetingId }, "the recording of a re-homed meeting was not continued"),
				);
			});
			const continueRecording = async (m: Awaited<ReturnType<typeof store.get>>, from: string) => {
				const trail = await events.list({ tenantId: m.tenantId, meetingId: m.id });
				// Recording and transcription alike: a kind that was on goes on in a new session naming the lost one.
				for (const kind of ["recording", "transcription"] as const) {
					const last = trail.filter((x) => x.type.startsWith("session.") && x.data.kind === kind).at(-1);
					if (last?.type !== "session.on" || typeof last.data.sessionId !== "string") continue;
					await capture
						.continueAfterNodeLoss(m, kind, `gateway:${config.gatewayId}`, {
							session: last.data.sessionId,
							cause: "node_lost",
							lostNode: from,
						})
						.catch((err: unknown) =>
							log.error({ err, meetingId: m.id, kind }, "a capture of a re-homed meeting was not continued"),
						);
				}
				// The lost node's recorder may still be finishing what it held: give it a moment, then finish the rest:
				// each capture sink its own sessions (recording: objects + manifest; transcription: the transcript as last
				// checkpointed), each with its proof beside it.
				await new Promise((r) => setTimeout(r, LOST_RECORDER_GRACE_MS).unref());
				await recording.finishLost(m.tenantId, m.id);
				await transcription.finishLost(m.tenantId, m.id);
			};
			await placement.adoptOwn(node.startedAt);
			clusterUrls = () => placement.nodeUrls();
			sweep = () => placement.sweep();
			fence = () => hub.fence();
			// Back in reach of the store: meetings still placed here (nobody took them meanwhile) are taken again as
			// re-homed, so a recording that was on continues in a new session, as after a restart.
			recovered = (fencedAt) =>
				void placement
					.adoptOwn(fencedAt)
					.catch((err: unknown) => log.warn({ err }, "cluster: meetings placed here not taken back"));
		}
		// Restart hygiene: meetings a previous run of this gateway had people in, and no other process holds, ended
		// (cluster: a meeting with a placement is placement's: it was or will be re-homed, never ended for this).
		for (const id of await directory.changes.orphanedBy(config.gatewayId)) {
			if (placement && (await placement.placed(id))) continue;
			if (await store.end(id)) {
				const m = await store.get(id);
				await events.append("meeting.ended", {
					tenantId: m.tenantId,
					meetingId: id,
					actor: `gateway:${config.gatewayId}`,
					data: { reason: "gateway_restart" },
				});
				log.info({ meetingId: id }, "ended a meeting this gateway's previous run left live");
			}
		}
		operator = new OperatorService({
			directory,
			hub,
			store,
			events,
			capture,
			recording,
			links,
			hold,
			retention,
			log,
		});
		new SignalingServer({
			io,
			hub,
			verifier,
			gatewayId: config.gatewayId,
			log,
			limits: config.limits,
			addresses,
			trustProxy: config.trustProxy,
		});
		registerMeetingsApi(http, {
			limiter: restLimiter,
			store,
			hub,
			events,
			verifier,
			tenants,
			access: directory.access,
			...(placement && config.cluster ? { placement, publicUrl: config.cluster.publicUrl } : {}),
		});
		const dsr = await DataSubjectService.create({
			store: cluster,
			events,
			targets,
			endpointPolicy,
			log,
			gatewayId: config.gatewayId,
		});
		registerDataSubjectApi(http, { service: dsr, verifier, limiter: restLimiter });
		registerOperatorApi(http, {
			limiter: restLimiter,
			service: operator,
			dsr,
			verifier: operatorVerifier,
			tenantVerifier: verifier,
			trustProxy: config.trustProxy,
			log,
			servesClient: existsSync(config.clientDir),
		});
		registerTranscriptsApi(http, {
			links,
			store,
			events,
			targets,
			verifier,
			endpointPolicy,
			servesClient: existsSync(config.clientDir),
			tls: Boolean(config.http.tls),
		});
		registerPlaybackApi(http, {
			playback: new Playback({
				events,
				targets,
				endpointPolicy,
				linkSeconds: (id) => tenantCapture(id).transcriptLinkSeconds,
			}),
			store,
			events,
			verifier,
			tenantIds: () => tenants.ids(),
			servesClient: existsSync(config.clientDir),
			tls: Boolean(config.http.tls),
		});
		registerStorageApi(http, {
			limiter: restLimiter,
			targets,
			events,
			verifier,
			allowPrivate: config.storage.allowPrivate,
			allowHttp: config.storage.allowHttp,
		});

		const webhooks = config.storage.masterKey
			? new WebhookService({
					store: new WebhookStore(cluster, new SecretBox(parseMasterKey(config.storage.masterKey))),
					events,
					endpointPolicy,
					log: log.child({ component: "webhooks" }),
				})
			: undefined;
		registerWebhooksApi(http, { webhooks, events, verifier, endpointPolicy, limiter: restLimiter });
		const metrics = config.metrics.enabled ? new Metrics({ rooms, pool, events, recorder, webhooks }) : undefined;
		if (metrics) registerMetricsRoute(http, metrics, config.metrics);
		await registerOpenApi(http);

		await http.listen({ host: config.http.host, port: config.http.port });
		// Cluster: a meeting with a placement is placement's (re-homed and finished by finishLost), not a crash here.
		void recording
			.recoverAll(tenants.ids(), placement ? (id) => placement.placed(id) : undefined)
			// Then the transcripts (after the recordings, as for a lost node: each with its proof beside it).
			.then(() => transcription.recoverAll(tenants.ids(), placement ? (id) => placement.placed(id) : undefined));
		retention.start();
		// Erasures a previous run left half-way (a crash, an unreachable bucket) are finished now.
		void dsr.resumePending().catch((err: unknown) => log.error({ err }, "could not resume pending erasures"));
		const gateway = new Gateway({
			http,
			io,
			pool,
			rooms,
			db: cluster,
			bus,
			node,
			placement,
			store,
			seats,
			events,
			tenants,
			directory,
			operator,
			capture,
			recording,
			transcription,
			recorder,
			webhooks,
			dsr,
			metrics,
			apiRoutes,
			retention,
			hold,
			logFiles: opts.logFiles,
			log,
		});
		if (opts.logFiles) {
			await gateway.sweepLogs();
			gateway.#logSweep = setInterval(() => {
				gateway.sweepLogs().catch((err: unknown) => log.error({ err }, "log files sweep failed"));
			}, opts.logFiles.sweepMs);
			gateway.#logSweep.unref();
		}
		return gateway;
	}

	/**
	 * Issue 14: deletes this gateway's log files past their window (CONSENTRY_LOG_RETENTION_DAYS), keeping the
	 * security files while the operator's security hold runs (read from the store, so every process sees it).
	 * Runs every sweep interval by itself; returns the files deleted.
	 */
	async sweepLogs(): Promise<string[]> {
		const files = this.logFiles;
		if (!files) return [];
		try {
			files.setHold(await this.hold.activeUntil());
		} catch (err) {
			if (!(err instanceof StoreUnavailableError)) throw err;
			// The store down: sweep anyway, with the hold as last read (it lapses by itself at its end). Stopping the
			// sweep would keep ordinary lines' addresses past their window for as long as the outage lasts.
			this.#log.warn(
				{ hold: files.holdUntil !== null },
				"log files sweep: the store is unavailable, last known hold kept",
			);
		}
		const deleted = files.sweep();
		if (deleted.length) this.#log.info({ deleted, hold: files.holdUntil !== null }, "log files deleted by age");
		return deleted;
	}

	/** The base URL the gateway listens on. */
	get url(): string {
		const addr = this.http.server.address() as AddressInfo;
		const scheme = this.http.server instanceof TlsServer ? "https" : "http";
		const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
		return `${scheme}://${host}:${addr.port}`;
	}

	async close(): Promise<void> {
		this.#log.info("gateway closing");
		if (this.#logSweep) clearInterval(this.#logSweep);
		this.retention.close();
		// Finish what is being recorded first: every object completed, every session's manifest written.
		await Promise.all([this.recording.close(), this.transcription.close()]);
		await this.recorder?.close();
		await this.webhooks?.close();
		this.metrics?.close();
		this.directory.close();
		await this.node?.close(); // out of the registry: the other nodes take its meetings at their next beat
		await this.rooms.closeAll();
		this.io.close();
		await this.http.close();
		this.pool.close();
		await this.#bus.close();
		await this.retention.settled();
		await this.events.settled(); // the trail's last entries (people leaving, sessions ending) committed
		await this.#db.close();
	}
}

/**
 * How long a re-homing waits before finishing the lost node's recordings: its orphaned recorder goes on completing
 * the objects it held for up to ORPHAN_GRACE_MS after the node died (which is before this node took the meeting), and
 * must be done before the objects are listed and the rest recovered (with the earlier 3 s, an orphan slower than that
 * under load could complete an object after the listing: not in the manifest, and `consentry verify` fails on it).
 */
const LOST_RECORDER_GRACE_MS = ORPHAN_GRACE_MS + 1500;

/** The CPU the node's mediasoup workers used since the last call, in cores (for the cluster's heartbeat). */
function workerCpu(pool: WorkerPool): () => Promise<number> {
	let last = { at: performance.now(), ms: 0 };
	return async () => {
		let ms = 0;
		for (const w of pool.workers) {
			const u = await w.getResourceUsage().catch(() => undefined);
			if (u) ms += u.ru_utime + u.ru_stime;
		}
		const at = performance.now();
		const used = last.ms > 0 && at > last.at ? Math.max(0, (ms - last.ms) / (at - last.at)) : 0;
		last = { at, ms };
		return Math.round(used * 1000) / 1000;
	};
}

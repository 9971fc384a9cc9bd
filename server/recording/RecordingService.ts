import { createHash } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import {
	type ObjectWritten,
	parseObjectKey,
	type TrackFailed,
	type TrackKind,
} from "../../recorder/RecorderProtocol.js";
import type { ChatMessage } from "../../shared/protocol.js";
import type { AuditEvent, EventLog } from "../audit/EventLog.js";
import type { CaptureService, CaptureSink, TapChange } from "../compliance/CaptureService.js";
import type { CaptureSession } from "../compliance/CaptureTypes.js";
import { ConsentryError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Meeting } from "../meetings/MeetingTypes.js";
import type { RoomRegistry } from "../sfu/RoomRegistry.js";
import { createS3Client, ssePutParams } from "../storage/preflight.js";
import type { StorageTargetStore } from "../storage/StorageTargetStore.js";
import { PlainTap } from "./PlainTap.js";
import type { Recorder } from "./RecordingTypes.js";
import {
	MANIFEST_KIND,
	MANIFEST_VERSION,
	type Manifest,
	type ManifestTrack,
	type SessionRecord,
	type TrackRecord,
} from "./RecordingTypes.js";

export interface RecordingServiceOptions {
	/** Undefined when the gateway has no master key: no tenant can have a storage target. */
	targets: StorageTargetStore | undefined;
	capture: CaptureService;
	rooms: RoomRegistry;
	events: EventLog;
	/** The recorder process; undefined when recording is off on this gateway. */
	recorder: Recorder | undefined;
	/** What the operator allows for storage endpoints (the same policy as the storage API's). */
	endpointPolicy: { allowHttp: boolean; allowPrivate: boolean };
	/** Segment length; default: the recorder's (10 min). */
	segmentSeconds?: number;
	log: Logger;
}

/** Tracks of one (session, person, kind) start their `seq` at 1, 1001, 2001…: concurrent ones never share a key. */
const SEQ_BLOCK = 1000;

/**
 * Recording: a capture sink that may start only where the tenant's own bucket
 * is configured (the operator provides no storage), and that reaches media only
 * through the notice gate's taps. For each open tap it creates a PlainTransport
 * and a consumer on the meeting's router and hands the RTP to the recorder
 * process (ffmpeg → S3 multipart, recorder/); when the gate closes, the tap is
 * closed at once. At the end of each session it writes, next to the recording,
 * the chat log, the meeting's audit export and a manifest tying every object to
 * the acknowledgement that covered it.
 */
export class RecordingService implements CaptureSink {
	readonly #targets: StorageTargetStore | undefined;
	readonly #capture: CaptureService;
	readonly #rooms: RoomRegistry;
	readonly #events: EventLog;
	readonly #recorder: Recorder | undefined;
	readonly #policy: { allowHttp: boolean; allowPrivate: boolean };
	readonly #segmentSeconds: number | undefined;
	readonly #log: Logger;
	readonly #sessions = new Map<string, SessionRecord>();
	readonly #tracks = new Map<string, TrackRecord>();
	/** Recoveries in progress: key prefix → tenant (recovered objects carry no track). */
	readonly #recovering = new Map<string, string>();

	constructor(options: RecordingServiceOptions) {
		this.#targets = options.targets;
		this.#capture = options.capture;
		this.#rooms = options.rooms;
		this.#events = options.events;
		this.#recorder = options.recorder;
		this.#policy = options.endpointPolicy;
		this.#segmentSeconds = options.segmentSeconds;
		this.#log = options.log.child({ component: "RecordingService" });
		options.capture.on("sessionstart", (session, where) => {
			if (session.kind === "recording") this.#sessionStarted(session, where);
		});
		options.capture.on("sessionend", (session, _where, reason) => {
			if (session.kind === "recording") void this.#sessionEnded(session.id, reason);
		});
		options.capture.on("tap", (tap) => {
			if (tap.session.kind !== "recording") return;
			if (tap.open) void this.#open(tap);
			else void this.#close(`${tap.session.id}_${tap.producer.id}`, tap.reason);
		});
		const recorder = options.recorder;
		if (recorder) {
			recorder.on("objectWritten", (o) => this.#objectWritten(o));
			recorder.on("keyframeNeeded", ({ trackId }) => {
				const t = this.#tracks.get(trackId);
				t?.media?.requestKeyFrame();
			});
			// Stopping is reported the moment it happens (trackFailed comes after the recorder finished what it could).
			recorder.on("trackStopping", (f) => this.#trackFailed(f));
			recorder.on("trackFailed", (f) => this.#trackFailed(f));
			recorder.on("segmentRestarted", (r) => this.#log.warn(r, "recording segment restarted"));
			recorder.on("crashed", (info) => void this.#recorderCrashed(info.openTracks));
		}
	}

	async assertCanStart(meeting: Meeting): Promise<void> {
		if (!this.#targets?.getConfig(meeting.tenantId)) {
			throw new ConsentryError(
				"no_storage_target",
				"Recording needs your organisation's storage bucket, and none is set up. Ask your administrator to configure it (PUT /api/storage-target).",
				409,
			);
		}
		if (!this.#recorder?.alive) {
			throw new ConsentryError(
				"recorder_unavailable",
				"The recorder is not running on this gateway right now; try again in a moment.",
				503,
			);
		}
	}

	/**
	 * Adds a chat message to the running recording's chat log (chat said while recording is part of the record),
	 * only when the notice gate covers its sender now (the gate decides, as for their media): a message from someone
	 * who has not answered the notice, has not consented, or declined is shown live but never written. The log names
	 * senders by pseudonym only.
	 */
	chat(meetingId: string, msg: ChatMessage, person: string): void {
		const session = this.#capture.session(meetingId, "recording");
		const rec = session ? this.#sessions.get(session.id) : undefined;
		if (!rec || !this.#capture.mayCapture(meetingId, "recording", msg.peerId)) return;
		const pseudonym = this.#events.pseudonym(rec.tenantId, person);
		rec.chat.push({ at: msg.at, from: pseudonym, text: msg.text });
	}

	/**
	 * Completes what a previous recorder left unfinished in each tenant's bucket (its multipart uploads of this
	 * gateway's recording sessions, none of which is live after a restart). Run at start; never throws.
	 */
	async recoverAll(tenantIds: readonly string[]): Promise<void> {
		const recorder = this.#recorder;
		if (!recorder || !this.#targets) return;
		for (const tenantId of tenantIds) {
			try {
				const target = this.#targets.get(tenantId);
				if (!target) continue;
				const owned = this.#events
					.list({ tenantId, type: "session.on", limit: 100_000 })
					.filter((e) => e.data.kind === "recording" && typeof e.data.sessionId === "string")
					.map((e) => e.data.sessionId as string)
					.filter((id) => !this.#sessions.has(id));
				if (owned.length === 0) continue;
				this.#recovering.set(target.prefix ?? "", tenantId);
				const r = await recorder.recover({
					target,
					prefix: target.prefix ?? "",
					ownedSessionIds: owned,
					options: this.#policy,
				});
				if (r.completed || r.aborted || r.failed) this.#log.warn({ tenantId, ...r }, "recovered unfinished recordings");
			} catch (err) {
				this.#log.error({ err, tenantId }, "could not recover unfinished recordings");
			} finally {
				this.#recovering.clear();
			}
		}
	}

	/** The recorder died: its tracks are gone. Restart it, complete what they uploaded, reopen what the gate still allows. */
	async #recorderCrashed(openTracks: string[]): Promise<void> {
		const recorder = this.#recorder;
		if (!recorder) return;
		this.#log.error({ openTracks: openTracks.length }, "recorder crashed; restarting it");
		const lost = [...this.#tracks.values()];
		for (const t of lost) {
			// Closed before its consumer closes, so the consumer's close doesn't ask the dead recorder to close it.
			t.state = "closed";
			t.closedAt = new Date().toISOString();
			t.closeReason = "recorder_crashed";
			this.#tracks.delete(t.trackId);
			t.media?.close();
			t.finish?.();
		}
		try {
			await recorder.restart();
			const byTenant = new Map<string, SessionRecord[]>();
			for (const rec of this.#sessions.values())
				byTenant.set(rec.tenantId, [...(byTenant.get(rec.tenantId) ?? []), rec]);
			for (const [tenantId, recs] of byTenant) {
				const target = (recs[0] as SessionRecord).target;
				this.#recovering.set(target.prefix ?? "", tenantId);
				await recorder.recover({
					target,
					prefix: target.prefix ?? "",
					ownedSessionIds: recs.map((r) => r.session.id),
					options: this.#policy,
				});
				this.#recovering.clear();
			}
		} catch (err) {
			this.#log.error({ err }, "recorder restart failed; stopping recordings");
			for (const rec of this.#sessions.values()) {
				this.#capture.stopBySystem(
					rec.meetingId,
					"recording",
					"recorder_failed",
					"Recording stopped: the recorder failed. What was recorded so far is saved.",
				);
			}
			return;
		}
		for (const t of lost)
			if (t.tap && this.#capture.mayCapture(t.tap.session.meetingId, "recording", t.peerId)) {
				void this.#open({ ...t.tap, reason: "recorder_restarted" });
			}
	}

	/** Closes every tap (gracefully: the recorder completes each object) and writes the open sessions' manifests. */
	async close(): Promise<void> {
		await Promise.all([...this.#tracks.keys()].map((id) => this.#close(id, "gateway_closing")));
		await Promise.all([...this.#sessions.keys()].map((id) => this.#sessionEnded(id, "gateway_closing")));
	}

	#sessionStarted(session: CaptureSession, where: { tenantId: string; meetingId: string }): void {
		const target = this.#targets?.get(where.tenantId);
		if (!target) return; // assertCanStart saw one; it was removed since: taps will find none and record nothing
		this.#sessions.set(session.id, {
			session,
			tenantId: where.tenantId,
			meetingId: where.meetingId,
			target,
			tracks: [],
			seqBlocks: new Map(),
			chat: [],
			pending: new Set(),
		});
	}

	async #open(tap: TapChange): Promise<void> {
		const rec = this.#sessions.get(tap.session.id);
		const recorder = this.#recorder;
		const room = this.#rooms.get(tap.session.meetingId);
		if (!rec || !recorder || !room || room.closed) return;
		const trackId = `${tap.session.id}_${tap.producer.id}`;
		if (this.#tracks.has(trackId)) return;
		if (tap.producer.closed) return;
		const kind: TrackKind = tap.producer.appData.source === "mic" ? "audio" : tap.producer.appData.source;
		const person = this.#events.pseudonym(rec.tenantId, tap.person);
		if (!person) return;
		const blockKey = `${person}-${kind}`;
		const block = rec.seqBlocks.get(blockKey) ?? 0;
		rec.seqBlocks.set(blockKey, block + 1);
		const track: TrackRecord = {
			trackId,
			peerId: tap.peerId,
			person,
			kind,
			producerId: tap.producer.id,
			openedAt: new Date().toISOString(),
			objects: [],
			state: "opening",
			tap,
		};
		this.#tracks.set(trackId, track);
		rec.tracks.push(track);
		let done: () => void = () => undefined;
		track.settled = new Promise<void>((resolve) => {
			done = resolve;
		});
		rec.pending.add(track.settled);
		try {
			const media = await PlainTap.create(room.router, tap.producer.id, trackId);
			track.media = media;
			const codec = media.codec;
			track.codec = { mimeType: codec.mimeType, clockRate: codec.clockRate, channels: codec.channels };
			const ports = await recorder.openTrack({
				trackId,
				key: { prefix: rec.target.prefix ?? "", meetingId: rec.meetingId, sessionId: rec.session.id, person, kind },
				codec,
				ssrc: media.ssrc,
				target: rec.target,
				firstSeq: block * SEQ_BLOCK + 1,
				options: {
					...this.#policy,
					...(this.#segmentSeconds ? { segmentSeconds: this.#segmentSeconds } : {}),
				},
			});
			track.state = "recording";
			// The gate may have closed while this was being set up: check again before any byte flows.
			if (!this.#capture.mayCapture(rec.meetingId, "recording", tap.peerId) || track.closeRequested) {
				throw new GateClosedWhileOpening();
			}
			await media.start(ports);
			track.openedAt = new Date().toISOString(); // media flows to the recorder from now on
			media.consumer.observer.once("close", () => void this.#close(trackId, "producer_closed"));
			this.#log.info({ trackId, kind, meetingId: rec.meetingId }, "recording track open");
		} catch (err) {
			if (!(err instanceof GateClosedWhileOpening)) this.#log.error({ err, trackId }, "recording track failed to open");
			track.closeReason =
				err instanceof GateClosedWhileOpening ? (track.closeRequested ?? "gate_closed") : "open_failed";
			await this.#teardown(track);
			done();
		}
		if (track.closeRequested && track.state === "recording") await this.#close(trackId, track.closeRequested);
		if (track.state === "closed") done();
		else track.finish = done;
	}

	async #close(trackId: string, reason: string): Promise<void> {
		const track = this.#tracks.get(trackId);
		if (!track || track.state === "closing" || track.state === "closed") return;
		if (track.state === "opening") {
			track.closeRequested = reason;
			return;
		}
		track.state = "closing";
		track.closeReason = reason;
		// Stop the media first (nothing more flows once the gate closed), then let the recorder finish the object.
		track.media?.close();
		track.closedAt = new Date().toISOString();
		await this.#teardown(track);
		track.finish?.();
	}

	async #teardown(track: TrackRecord): Promise<void> {
		track.media?.close();
		if (track.state === "recording" || track.state === "closing") {
			await this.#recorder?.closeTrack(track.trackId).catch((err: unknown) => {
				this.#log.error({ err, trackId: track.trackId }, "recorder could not close a track");
			});
		}
		track.state = "closed";
		track.closedAt ??= new Date().toISOString();
		this.#tracks.delete(track.trackId);
	}

	#objectWritten(o: ObjectWritten): void {
		const rec = this.#sessions.get(o.trackId?.split("_")[0] ?? "");
		// After a crash the same trackId may be reopened; the object belongs to the track that was open at its seq.
		const sessionTrack = rec?.tracks.filter((t) => t.trackId === o.trackId).at(-1);
		sessionTrack?.objects.push(o);
		let where: { tenantId: string; meetingId: string; sessionId: string } | undefined = rec && {
			tenantId: rec.tenantId,
			meetingId: rec.meetingId,
			sessionId: rec.session.id,
		};
		if (!where && o.recovered) {
			for (const [prefix, tenantId] of this.#recovering) {
				const k = parseObjectKey(prefix, o.key);
				if (k) where = { tenantId, meetingId: k.meetingId, sessionId: k.sessionId };
			}
			if (where && rec === undefined) {
				// A session still running here (recorder crash): its manifest will list the object too.
				const live = this.#sessions.get(where.sessionId);
				const t = live?.tracks.find((x) => o.key.includes(`/${x.person}-${x.kind}-`));
				t?.objects.push(o);
			}
		}
		if (!where) {
			this.#log.warn({ key: o.key }, "object written for no known session");
			return;
		}
		this.#events.append("storage.object_written", {
			tenantId: where.tenantId,
			meetingId: where.meetingId,
			data: {
				kind: "recording",
				sessionId: where.sessionId,
				trackId: o.trackId ?? null,
				bucket: o.bucket,
				...objectEntry(o),
				...(o.recovered ? { recovered: true } : {}),
			},
		});
	}

	#trackFailed(f: TrackFailed): void {
		const track = this.#tracks.get(f.trackId);
		this.#log.error({ ...f }, "recording track failed");
		if (!track) return;
		const rec = this.#sessions.get(f.trackId.split("_")[0] ?? "");
		if (!rec) return;
		if (f.code === "storage_unavailable" || f.code === "storage_rejected") {
			// The bucket is gone for good (or for longer than the buffer holds): stop cleanly, tell everyone why.
			this.#capture.stopBySystem(
				rec.meetingId,
				"recording",
				f.code,
				"Recording stopped: the organisation's storage bucket could not be reached. What was recorded so far is saved.",
			);
		} else {
			void this.#close(f.trackId, f.code);
		}
	}

	async #sessionEnded(sessionId: string, reason: string): Promise<void> {
		const rec = this.#sessions.get(sessionId);
		if (!rec || rec.endedAt) return;
		rec.endedAt = new Date().toISOString();
		rec.endReason = reason;
		// Taps of the session close with it (the gate emitted their closes); wait for the recorder to finish each.
		for (const t of rec.tracks) if (t.state !== "closed") await this.#close(t.trackId, reason);
		await Promise.all(rec.pending);
		try {
			await this.#writeSessionArtifacts(rec);
		} catch (err) {
			this.#log.error({ err, sessionId }, "could not write the session manifest");
		} finally {
			this.#sessions.delete(sessionId);
		}
	}

	/** chat.jsonl, audit.jsonl (the meeting's trail so far) and manifest.json, next to the session's recordings. */
	async #writeSessionArtifacts(rec: SessionRecord): Promise<void> {
		const base = `${rec.target.prefix ? `${rec.target.prefix}/` : ""}${rec.meetingId}/${rec.session.id}`;
		const client = createS3Client(rec.target, { ...this.#policy, maxAttempts: 5 });
		const put = async (key: string, text: string, contentType: string) => {
			const body = Buffer.from(text);
			await client.send(
				new PutObjectCommand({
					Bucket: rec.target.bucket,
					Key: key,
					Body: body,
					ContentLength: body.length,
					ContentType: contentType,
					...ssePutParams(rec.target.encryption),
				}),
			);
			return { key, size: body.length, sha256: createHash("sha256").update(body).digest("hex") };
		};
		try {
			const chat = await put(
				`${base}/chat.jsonl`,
				rec.chat.map((c) => JSON.stringify(c)).join("\n") + (rec.chat.length ? "\n" : ""),
				"application/x-ndjson",
			);
			const exported = this.#events.exportMeeting(rec.tenantId, rec.meetingId);
			const audit = await put(`${base}/audit.jsonl`, exported, "application/x-ndjson");
			const header = JSON.parse(exported.slice(0, exported.indexOf("\n"))) as {
				chainHead: unknown;
				meetingHead: unknown;
			};
			const proofs = this.#coverageProofs(rec);
			const manifest: Manifest = {
				kind: MANIFEST_KIND,
				version: MANIFEST_VERSION,
				tenant: rec.tenantId,
				meeting: rec.meetingId,
				session: rec.session.id,
				policy: rec.session.policy,
				startedAt: rec.session.startedAt,
				endedAt: rec.endedAt ?? new Date().toISOString(),
				endReason: rec.endReason ?? "stopped",
				persons: [...new Set(rec.tracks.map((t) => t.person))],
				notRecorded: this.#declined(rec),
				tracks: rec.tracks.map(
					(t): ManifestTrack => ({
						trackId: t.trackId,
						person: t.person,
						kind: t.kind,
						producerId: t.producerId,
						codec: t.codec ?? null,
						openedAt: t.openedAt,
						closedAt: t.closedAt ?? null,
						closeReason: t.closeReason ?? null,
						coveredBy: proofs.get(t.peerId) ?? null,
						objects: t.objects.map(objectEntry),
					}),
				),
				chat: { ...chat, messages: rec.chat.length },
				audit: { ...audit, chainHead: header.chainHead, meetingHead: header.meetingHead },
				disclaimer:
					"Each track's coveredBy names the audit entry (seq, hash) in which that person's client acknowledged the notice of this session, or consented, before any of their media was recorded; audit.jsonl holds the chain to verify it.",
			};
			const written = await put(`${base}/manifest.json`, `${JSON.stringify(manifest, null, 2)}\n`, "application/json");
			this.#events.append("storage.object_written", {
				tenantId: rec.tenantId,
				meetingId: rec.meetingId,
				data: { kind: "recording", sessionId: rec.session.id, bucket: rec.target.bucket, ...written, manifest: true },
			});
		} finally {
			client.destroy();
		}
	}

	/** Pseudonyms of who declined this session's notice (never covered in it), from the trail. */
	#declined(rec: SessionRecord): string[] {
		const evs = this.#events.list({ tenantId: rec.tenantId, meetingId: rec.meetingId, type: "consent.declined" });
		return [
			...new Set(evs.filter((e) => e.data.sessionId === rec.session.id && e.actor).map((e) => e.actor as string)),
		];
	}

	/** The trail entry in which each peer's gate for this session opened: their acknowledgement or consent. */
	#coverageProofs(rec: SessionRecord): Map<string, { type: string; seq: number; hash: string; at: string }> {
		const out = new Map<string, { type: string; seq: number; hash: string; at: string }>();
		const wanted = rec.session.policy.name === "explicit-consent" ? "consent.given" : "notice.acknowledged";
		const evs: AuditEvent[] = this.#events.list({ tenantId: rec.tenantId, meetingId: rec.meetingId, type: wanted });
		const alt: AuditEvent[] =
			wanted === "notice.acknowledged"
				? this.#events.list({ tenantId: rec.tenantId, meetingId: rec.meetingId, type: "consent.given" })
				: [];
		for (const e of [...evs, ...alt]) {
			if (e.data.sessionId !== rec.session.id || typeof e.data.peerId !== "string") continue;
			if (!out.has(e.data.peerId)) out.set(e.data.peerId, { type: e.type, seq: e.seq, hash: e.hash, at: e.at });
		}
		return out;
	}
}

class GateClosedWhileOpening extends Error {}

/** How an object is named in the trail and the manifest. */
function objectEntry(o: ObjectWritten): ManifestTrack["objects"][number] {
	return {
		key: o.key,
		seq: o.seq,
		size: o.size,
		sha256: o.sha256 ?? null,
		startedAt: o.startedAt,
		endedAt: o.endedAt,
		...(o.truncated ? { truncated: true } : {}),
	};
}

import { ntpToUnixMs } from "../../contracts/RecorderProtocol.js";
import type { CaptureProducer, TapChange } from "../compliance/CaptureService.js";
import type { Logger } from "../logger.js";
import { PlainTap } from "./PlainTap.js";
import type { SenderReport, TapOwnerOptions, TapTrack } from "./TapOwnerTypes.js";

/** A tap's track id: one per (session, producer). */
export function tapTrackId(tap: Pick<TapChange, "session" | "producer">): string {
	return `${tap.session.id}_${tap.producer.id}`;
}

/** Closed while opening: only a recorder crash does that (a close waits until the track is open). */
function lost(track: TapTrack): boolean {
	return track.state === "closed";
}

/**
 * Owns every tap of one capture sink from open to close, in one order for every sink:
 *
 * 1. the gate's `tap` event opens a track: a PlainTap (paused consumer) and the sink's stream in the recorder;
 * 2. **the gate is checked again** once that is set up, before any byte flows (it may have closed meanwhile);
 * 3. media starts; a closed producer closes the track;
 * 4. the gate closing (or the session ending, or the sink failing) closes it: **media stops at once**, then the
 *    sink finishes its stream (the recorder flushes it into the bucket);
 * 5. the recorder crashing loses every track; once it is back (`afterCrash`, or its next `ready`) each lost tap the
 *    gate still allows is reopened through 1–3 (reason `recorder_restarted`).
 *
 * It forwards the producers' RTCP sender reports to the sink's open tracks (they date packets for the recorder's
 * per-packet gate). The compliance rules themselves stay in CaptureService/CaptureControl: this only asks
 * `capture.mayCapture`, like every sink must.
 */
export class TapOwner<T extends TapTrack> {
	readonly #o: TapOwnerOptions<T>;
	readonly #log: Logger;
	readonly #tracks = new Map<string, T>();
	readonly #done = new Map<T, () => void>();
	/** The gate's closing tap of a track that was still opening. */
	readonly #closeChanges = new Map<T, TapChange>();
	/** Producers whose sender reports are watched, and each one's latest report per stream (SSRC). */
	readonly #lastSr = new Map<string, Map<number, SenderReport>>();

	constructor(options: TapOwnerOptions<T>) {
		this.#o = options;
		this.#log = options.log.child({ component: "TapOwner", sink: options.sink.kind });
		options.capture.on("tap", (tap) => {
			if (tap.session.kind !== options.sink.kind || !options.sink.accepts(tap)) return;
			if (tap.open) void this.open(tap);
			else void this.close(tapTrackId(tap), tap.reason, tap);
		});
		options.recorder?.on("crashed", () => void this.#recorderCrashed());
	}

	/** The live track (opening, open or closing) with this id. */
	get(trackId: string): T | undefined {
		return this.#tracks.get(trackId);
	}

	/** Every live track. */
	tracks(): T[] {
		return [...this.#tracks.values()];
	}

	/** Opens a track for a tap the gate opened (no-op when it is already open or cannot be: no room, no recorder). */
	async open(tap: TapChange): Promise<void> {
		const { sink, capture } = this.#o;
		const trackId = tapTrackId(tap);
		const room = this.#o.rooms.get(tap.session.meetingId);
		if (this.#tracks.has(trackId) || tap.producer.closed || !room || room.closed || !this.#o.recorder) return;
		let done: () => void = () => undefined;
		const settled = new Promise<void>((resolve) => {
			done = resolve;
		});
		let track: T | undefined;
		try {
			track = await sink.create(tap, {
				trackId,
				tap,
				peerId: tap.peerId,
				producerId: tap.producer.id,
				state: "opening",
				settled,
			});
		} catch (err) {
			// E.g. the store is unreachable (the person's pseudonym): nothing is captured, and the gateway goes on.
			this.#log.error({ err, trackId }, "could not open a track");
			return;
		}
		// The sink may have read the store meanwhile: another open of the same tap, or its producer's end, wins.
		if (!track || this.#tracks.has(trackId) || tap.producer.closed) return;
		this.#tracks.set(trackId, track);
		this.#done.set(track, done);
		let opened = false;
		try {
			const media = await PlainTap.create(room.router, tap.producer.id, trackId);
			track.media = media;
			if (lost(track)) throw new Error("lost with the recorder");
			const ports = await sink.open(track, media);
			opened = true;
			if (lost(track)) return; // the recorder died meanwhile: the crash handling has it
			track.state = "open";
			this.#watchSenderReports(tap.producer);
			for (const sr of this.#lastSr.get(tap.producer.id)?.values() ?? []) sink.senderReport?.(track, sr);
			// The gate may have closed while this was being set up: check again before any byte flows.
			if (track.closeRequested || !capture.mayCapture(tap.session.meetingId, sink.kind, tap.peerId)) {
				await this.#finish(track, track.closeRequested ?? "gate_closed", true);
				return;
			}
			await media.start(ports);
			sink.started?.(track);
			media.consumer.observer.once("close", () => void this.close(trackId, "producer_closed"));
		} catch (err) {
			if (lost(track)) {
				track.media?.close(); // lost with the recorder; the crash handling reopens it
				return;
			}
			this.#log.error({ err, trackId }, "a capture track failed to open");
			await this.#finish(track, "open_failed", opened);
		}
	}

	/**
	 * Closes a track: media stops at once, then the sink finishes it. While opening, the close is applied once open.
	 * `change`: the gate's closing tap, when the gate closed it (the sink gets it: e.g. the close click's time).
	 */
	async close(trackId: string, reason: string, change?: TapChange): Promise<void> {
		const track = this.#tracks.get(trackId);
		if (!track || track.state === "closing" || track.state === "closed") return;
		if (track.state === "opening") {
			track.closeRequested ??= reason;
			if (change) this.#closeChanges.set(track, change);
			return;
		}
		await this.#finish(track, reason, true, change);
	}

	/** Closes every live track (e.g. the gateway is closing), waiting until each is finished. */
	async closeAll(reason: string): Promise<void> {
		const tracks = this.tracks();
		await Promise.all(tracks.map((t) => this.close(t.trackId, reason)));
		await Promise.all(tracks.map((t) => t.settled));
	}

	async #finish(track: T, reason: string, opened: boolean, change?: TapChange): Promise<void> {
		track.state = "closing";
		track.media?.close(); // nothing more flows, before anything else
		const closing = change ?? this.#closeChanges.get(track);
		this.#closeChanges.delete(track);
		try {
			await this.#o.sink.close(track, reason, opened, closing);
		} catch (err) {
			this.#log.warn({ err, trackId: track.trackId }, "closing a capture track");
		}
		this.#settle(track);
	}

	#settle(track: T): void {
		track.state = "closed";
		if (this.#tracks.get(track.trackId) === track) this.#tracks.delete(track.trackId);
		this.#done.get(track)?.();
		this.#done.delete(track);
		this.#closeChanges.delete(track);
	}

	/** The recorder died: every track is gone. Once it is back, the taps the gate still allows are reopened. */
	async #recorderCrashed(): Promise<void> {
		const lost = this.tracks();
		const at = Date.now();
		for (const track of lost) {
			// Closed before its consumer closes, so the consumer's close doesn't ask the dead recorder to close it.
			track.state = "closed";
			track.media?.close();
			this.#o.sink.lost?.(track, at);
			this.#settle(track);
		}
		const back = this.#o.afterCrash
			? await this.#o.afterCrash(lost)
			: await new Promise<boolean>((resolve) => this.#o.recorder?.once("ready", () => resolve(true)));
		if (!back) return;
		for (const { tap } of lost) {
			if (this.#o.capture.mayCapture(tap.session.meetingId, this.#o.sink.kind, tap.peerId)) {
				void this.open({ ...tap, reason: "recorder_restarted" });
			}
		}
	}

	/**
	 * The producer's RTCP sender reports (its RTP time ↔ its sender's wall clock) go to each of the sink's open
	 * tracks of it: they date every packet, so the recorder's per-packet gate can drop what was captured before the
	 * person's click (issue 11). mediasoup reports them as `sr` trace events.
	 */
	#watchSenderReports(producer: CaptureProducer): void {
		if (!this.#o.sink.senderReport || this.#lastSr.has(producer.id) || producer.closed) return;
		this.#lastSr.set(producer.id, new Map());
		producer.observer.once("close", () => this.#lastSr.delete(producer.id));
		void producer.enableTraceEvent(["sr"]).catch(() => undefined);
		producer.on("trace", (t) => {
			if (t.type !== "sr" || t.direction !== "in") return;
			const info = t.info as { ssrc: number; ntpSec: number; ntpFrac: number; rtpTs: number; packetCount: number };
			// Only once the stream sent RTP (before that a report has no frame to anchor its RTP time to). Each stream
			// (simulcast layer) has its own RTP time base: the recorder finds the one its consumer's RTP is on.
			if (!(info.packetCount > 0)) return;
			const sr: SenderReport = {
				ssrc: info.ssrc >>> 0,
				ntpMs: ntpToUnixMs(info.ntpSec, info.ntpFrac),
				rtpTs: info.rtpTs >>> 0,
				receivedAt: Date.now(),
			};
			this.#lastSr.get(producer.id)?.set(info.ssrc >>> 0, sr);
			for (const track of this.#tracks.values()) {
				if (track.producerId === producer.id && track.state === "open") this.#o.sink.senderReport?.(track, sr);
			}
		});
	}
}

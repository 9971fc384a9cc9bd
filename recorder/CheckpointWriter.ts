import { DeleteObjectsCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { Logger } from "../contracts/logger.js";
import { checkpointKey } from "../contracts/RecorderProtocol.js";
import type { StorageTarget } from "../contracts/StorageTargetTypes.js";
import { ssePutParams } from "../contracts/s3.js";
import { isTransient } from "./SegmentUploader.js";

/** What one object contributes to a checkpoint: its bytes [offset, offset + size). */
export interface TailPiece {
	/** The object's key. */
	key: string;
	offset: number;
	/** The bytes, as the muxer wrote them (joined only once, into the checkpoint's body). */
	chunks: Buffer[];
	size: number;
	/** Frames the object holds up to the end of this piece, when known. */
	frames?: number | undefined;
	/** Called once the checkpoint holding it is stored, or given up (the memory can go back to the budget). */
	done: () => void;
}

/** An object being written, as the checkpoint writer sees it. */
export interface TailSource {
	/** The bytes written since its last piece (undefined when none). */
	takeTail(): TailPiece | undefined;
	/**
	 * The bucket refused a checkpoint holding its bytes for good (e.g. 403): it can't write this object either. Its
	 * first request otherwise comes only once a part is full (uploads are created lazily), so this is how a refusing
	 * bucket stops a track within one checkpoint interval.
	 */
	refused?(err: unknown): void;
}

interface Stored {
	key: string;
	objects: Set<string>;
}

/**
 * The durable tail of every object of one recording session, in ONE object per interval: every `intervalMs` the
 * bytes each of the session's objects got since the last checkpoint are joined into `{session}/{ms}-{n}.ckpt`
 * (a JSON index line, then the pieces), one PutObject for all the session's tracks. After a crash, `recover` reads
 * the index and the ranges it needs and appends them to the objects' parts. Checkpoints whose objects are all
 * complete are deleted. One request per session per interval, not one per track: what makes the cost per stream
 * (CPU, S3 requests) small enough for hundreds of tracks.
 */
export class CheckpointWriter {
	/** Checkpoint uploads that failed transiently and were tried again (the gateway's metrics). */
	retries = 0;
	readonly #client: S3Client;
	readonly #target: StorageTarget;
	readonly #base: string;
	readonly #log: Logger;
	readonly #sources = new Set<TailSource>();
	readonly #stored: Stored[] = [];
	readonly #completed = new Set<string>();
	#timer: NodeJS.Timeout;
	#inflight = 0;
	#n = 0;
	#closed = false;

	constructor(o: { client: S3Client; target: StorageTarget; base: string; intervalMs: number; log: Logger }) {
		this.#client = o.client;
		this.#target = o.target;
		this.#base = o.base;
		this.#log = o.log.child({ checkpoints: o.base });
		this.#timer = setInterval(() => this.#tick(), o.intervalMs);
		this.#timer.unref();
	}

	get sources(): number {
		return this.#sources.size;
	}

	add(source: TailSource): void {
		this.#sources.add(source);
	}

	remove(source: TailSource): void {
		this.#sources.delete(source);
	}

	/** The object is complete in the bucket: checkpoints holding only complete objects can go. */
	completed(key: string): void {
		this.#completed.add(key);
	}

	/** Stops; deletes what is no longer needed. */
	async close(): Promise<void> {
		this.#closed = true;
		clearInterval(this.#timer);
		await this.#deleteObsolete();
	}

	#tick(): void {
		if (this.#closed) return;
		void this.#deleteObsolete();
		// During an outage at most two wait; the tails grow meanwhile and go in the next one.
		if (this.#inflight >= 2) return;
		const pieces: TailPiece[] = [];
		const sources: TailSource[] = [];
		for (const s of this.#sources) {
			const p = s.takeTail();
			if (p) {
				pieces.push(p);
				sources.push(s);
			}
		}
		if (pieces.length === 0) return;
		const at = Date.now();
		const key = `${this.#base}/${checkpointKey(at, ++this.#n)}`;
		let pos = 0;
		const entries = pieces.map((p) => {
			const e = { key: p.key, offset: p.offset, size: p.size, at: pos, frames: p.frames ?? null };
			pos += p.size;
			return e;
		});
		const index = Buffer.from(`${JSON.stringify({ v: 1, at, entries })}\n`);
		const chunks: Buffer[] = [index];
		for (const p of pieces) for (const c of p.chunks) chunks.push(c);
		const body = Buffer.concat(chunks, index.length + pos);
		const owners = [...sources];
		this.#inflight++;
		void this.#put(key, body)
			.then(
				() => this.#stored.push({ key, objects: new Set(pieces.map((p) => p.key)) }),
				(err: unknown) => {
					this.#log.warn({ err: String(err), key }, "a checkpoint could not be stored");
					if (!isTransient(err)) for (const o of owners) o.refused?.(err);
				},
			)
			.finally(() => {
				this.#inflight--;
				for (const p of pieces) p.done();
			});
	}

	async #put(key: string, body: Buffer): Promise<void> {
		for (let attempt = 0; ; attempt++) {
			try {
				await this.#client.send(
					new PutObjectCommand({
						Bucket: this.#target.bucket,
						Key: key,
						Body: body,
						ContentLength: body.length,
						ContentType: "application/octet-stream",
						...ssePutParams(this.#target.encryption),
					}),
					{ abortSignal: AbortSignal.timeout(15_000) },
				);
				return;
			} catch (err) {
				if (!isTransient(err) || this.#closed) throw err;
				this.retries++;
				await new Promise((r) => setTimeout(r, Math.random() * Math.min(5000, 250 * 2 ** attempt)));
			}
		}
	}

	async #deleteObsolete(): Promise<void> {
		const obsolete = this.#stored.filter((s) => [...s.objects].every((k) => this.#completed.has(k)));
		if (obsolete.length === 0) return;
		for (const s of obsolete) this.#stored.splice(this.#stored.indexOf(s), 1);
		for (let i = 0; i < obsolete.length; i += 1000) {
			try {
				await this.#client.send(
					new DeleteObjectsCommand({
						Bucket: this.#target.bucket,
						Delete: { Objects: obsolete.slice(i, i + 1000).map((s) => ({ Key: s.key })), Quiet: true },
					}),
				);
			} catch (err) {
				// Left for a later recover to clean up.
				this.#log.warn({ err: String(err) }, "could not delete checkpoints");
			}
		}
	}
}

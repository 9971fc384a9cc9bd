import { createHash, type Hash } from "node:crypto";
import { EventEmitter } from "node:events";
import {
	AbortMultipartUploadCommand,
	CompleteMultipartUploadCommand,
	CreateMultipartUploadCommand,
	PutObjectCommand,
	UploadPartCommand,
} from "@aws-sdk/client-s3";
import { ConsentryError } from "../contracts/errors.js";
import type { Logger } from "../contracts/logger.js";
import { MAX_PARTS } from "../contracts/RecorderConfig.js";
import { classifyS3Error, sseGetParams, ssePutParams } from "../contracts/s3.js";
import type { TailPiece, TailSource } from "./CheckpointWriter.js";
import { UploadError } from "./errors.js";
import type {
	SegmentObject,
	SegmentOutcome,
	SegmentUploaderConfig,
	SegmentUploaderEvents,
	SegmentUploaderOptions,
} from "./SegmentUploaderTypes.js";

interface Part {
	number: number;
	body: Buffer | undefined;
	size: number;
	state: "queued" | "uploading" | "done" | "failed";
	etag?: string;
	/** Object size and hash state right after this part. */
	sizeAfter: number;
	hashAfter: Hash;
}

class GaveUp extends Error {}

/**
 * Streams one byte stream (ffmpeg's stdout) into ONE S3 multipart upload with
 * nothing on disk: bytes are cut into parts (≥ partSizeBytes, except the last)
 * held in memory within the track's ByteBudget and uploaded in the background,
 * retried with exponential backoff and full jitter on 5xx/408/429, timeouts and
 * connection errors; other 4xx are final. SSE parameters go on the create, the
 * SSE-C key on every part and on the completion. Size and SHA-256 are computed
 * while streaming, with the hash state kept at each part boundary so an object
 * completed from fewer parts than were read still gets its exact hash.
 *
 * When the budget is full the input is paused; when it stays full past
 * bufferFullGraceMs (S3 down longer than the buffer lasts; RTP cannot wait) the
 * input is cut (`overflow`) and finish() completes the object from what is
 * buffered and what gets uploaded before the deadline.
 *
 * Not lib-storage's Upload: it cannot report part boundaries, complete from a
 * prefix of the parts, keep exact hashes of that prefix, or retry forever
 * within a memory budget and then give up on a deadline.
 */
export class SegmentUploader extends EventEmitter<SegmentUploaderEvents> implements TailSource {
	readonly key: string;
	readonly #opts: SegmentUploaderOptions;
	readonly #config: SegmentUploaderConfig;
	readonly #log: Logger;
	readonly #hash = createHash("sha256");
	readonly #parts: Part[] = [];
	#bytesIn = 0;
	#pending: Buffer[] = [];
	#pendingBytes = 0;
	#uploadId: string | undefined;
	#creating = false;
	#createFailed = false;
	/** Stored with one PutObject (no multipart upload). */
	#whole = false;
	#inflight = 0;
	#inputEnded = false;
	#full = false;
	#fullTimer: NodeJS.Timeout | undefined;
	#overflowed = false;
	#rolloverSignalled = false;
	#rejected: UploadError | undefined;
	#lastTransient: unknown;
	/** Aborted when the finish deadline passes: in-flight requests stop, nothing new starts. */
	#giveUp = new AbortController();
	#waiters: (() => void)[] = [];
	#finishing: Promise<SegmentOutcome> | undefined;
	/** Bytes written since the last checkpoint (the same buffers as the parts'), and where they start. */
	#tail: Buffer[] = [];
	#tailBytes = 0;
	#tailFrom = 0;
	/** Since when every request has failed (undefined: the last one succeeded, or none failed). */
	#failingSince: number | undefined;
	#patient = false;
	#armDeadline: (() => void) | undefined;

	constructor(options: SegmentUploaderOptions) {
		super();
		this.#opts = options;
		this.#config = options.config;
		this.key = options.key;
		this.#log = options.log.child({ key: options.key });
		options.checkpoints?.add(this);
	}

	get uploadId(): string | undefined {
		return this.#uploadId;
	}

	/** Since when the bucket has answered none of this object's requests (undefined when it answers). */
	get failingSince(): number | undefined {
		return this.#failingSince;
	}

	get bytesIn(): number {
		return this.#bytesIn;
	}

	get overflowed(): boolean {
		return this.#overflowed;
	}

	/** Parts stored so far. */
	get partsDone(): number {
		return this.#parts.filter((p) => p.state === "done").length;
	}

	/** Appends bytes of the object (the muxer's output, in file order). Ignored once the input was cut or ended. */
	write(chunk: Uint8Array): void {
		if (this.#inputEnded) return;
		const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
		this.#onData(buf);
	}

	/** No more bytes: finish() then stores the rest. */
	end(): void {
		this.#endInput();
	}

	/** Stops taking bytes now; finish() then stores what was taken. */
	stopInput(): void {
		this.#endInput();
	}

	/**
	 * After the input ended (or with `force`, cutting it now): uploads what is
	 * left, within finishDeadlineMs, then completes the object from the parts
	 * stored (a contiguous prefix), or aborts the upload when none was.
	 */
	finish(options: { force?: boolean; patient?: boolean } = {}): Promise<SegmentOutcome> {
		if (options.force) this.stopInput();
		// Patient (an object retired while its track records on): no deadline until limit() is called, so that an
		// outage the buffer rides out loses nothing of it either.
		if (options.patient && !this.#finishing) this.#patient = true;
		this.#finishing ??= this.#finish();
		return this.#finishing;
	}

	/** Gives a patient finish() its deadline after all (the track is closing or failing). */
	limit(): void {
		if (!this.#patient) return;
		this.#patient = false;
		this.#armDeadline?.();
	}

	// ---- input ----

	#onData(chunk: Buffer): void {
		if (this.#inputEnded) return;
		// Hashed once per part (below), not per chunk: the muxer writes a few small chunks per frame, and a hash update
		// per chunk was ~4 % of the recorder's CPU.
		this.#bytesIn += chunk.length;
		if (this.#opts.checkpoints) {
			this.#tail.push(chunk);
			this.#tailBytes += chunk.length;
		}
		this.#pending.push(chunk);
		this.#pendingBytes += chunk.length;
		this.#opts.budget.take(chunk.length);
		if (this.#pendingBytes >= this.#config.partSizeBytes) {
			this.#cutPart();
			if (this.#parts.length >= MAX_PARTS - 1) {
				this.#log.error({ parts: this.#parts.length }, "part limit reached without rollover; input cut");
				this.#overflowed = true;
				this.emit("overflow", { bufferedBytes: this.#opts.budget.used });
				this.stopInput();
				return;
			}
		}
		if (this.#opts.budget.full) this.#budgetFull();
	}

	#cutPart(): void {
		if (this.#pendingBytes === 0) return;
		const body = this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending);
		this.#hash.update(body);
		this.#pending = [];
		this.#pendingBytes = 0;
		const part: Part = {
			number: this.#parts.length + 1,
			body,
			size: body.length,
			state: "queued",
			sizeAfter: this.#bytesIn,
			hashAfter: this.#hash.copy(),
		};
		this.#parts.push(part);
		if (!this.#rolloverSignalled && !this.#inputEnded) {
			const reason =
				part.number >= this.#config.rolloverParts
					? `${part.number} parts`
					: this.#bytesIn + this.#config.partSizeBytes >= this.#config.maxObjectBytes
						? `${this.#bytesIn} bytes`
						: undefined;
			if (reason) {
				this.#rolloverSignalled = true;
				this.emit("rolloverNeeded", { reason });
			}
		}
		this.#pump();
	}

	/**
	 * The budget is full (the bucket is slow or down): bytes are still taken (frames cannot wait), and when it stays
	 * full for bufferFullGraceMs the input is cut (`overflow`).
	 */
	#budgetFull(): void {
		if (this.#full || this.#inputEnded) return;
		this.#full = true;
		this.#opts.budget.on("released", this.#onReleased);
		this.#fullTimer = setTimeout(() => this.#overflow(), this.#config.bufferFullGraceMs);
		this.#log.debug({ buffered: this.#opts.budget.used }, "buffer full");
	}

	readonly #onReleased = (): void => {
		if (!this.#full || this.#opts.budget.full) return;
		this.#clearFull();
	};

	#clearFull(): void {
		this.#full = false;
		clearTimeout(this.#fullTimer);
		this.#opts.budget.off("released", this.#onReleased);
	}

	#overflow(): void {
		if (!this.#full || this.#inputEnded) return;
		this.#overflowed = true;
		this.#log.error(
			{ buffered: this.#opts.budget.used, limit: this.#opts.budget.limit, lastError: errText(this.#lastTransient) },
			"buffer stayed full: the bucket is not keeping up; input cut",
		);
		this.emit("overflow", { bufferedBytes: this.#opts.budget.used });
		this.stopInput();
	}

	#endInput(): void {
		if (this.#inputEnded) return;
		this.#inputEnded = true;
		if (this.#full) this.#clearFull();
		this.#opts.checkpoints?.remove(this);
		this.#tail = [];
		this.#tailBytes = 0;
		this.#cutPart();
		this.#pump();
		this.#changed();
	}

	// ---- checkpoints: the durable tail ----

	/** A checkpoint holding this object's bytes was refused for good: so would the object be. */
	refused(err: unknown): void {
		const mapped = classifyS3Error(err, this.#opts.target, "write");
		this.#failed(
			new UploadError("storage_rejected", `could not store a checkpoint: ${mapped.message}`, { cause: err }),
		);
		this.#changed();
	}

	/**
	 * The bytes written since the last checkpoint, for the session's CheckpointWriter to store (with the other
	 * tracks' in one object), so that a crash (recorder, gateway, host) loses at most one checkpoint interval:
	 * `recover` appends them to the parts the upload already has.
	 */
	takeTail(): TailPiece | undefined {
		if (this.#tailBytes === 0 || this.#inputEnded || this.#rejected) return undefined;
		// The chunks as they are (the checkpoint joins everything once): its body is what the budget counts.
		const chunks = this.#tail;
		const size = this.#tailBytes;
		const offset = this.#tailFrom;
		this.#tail = [];
		this.#tailFrom += size;
		this.#tailBytes = 0;
		this.#opts.budget.take(size);
		let released = false;
		return {
			key: this.key,
			offset,
			chunks,
			size,
			frames: this.#opts.framesAt?.(offset + size),
			done: () => {
				if (released) return;
				released = true;
				this.#opts.budget.release(size);
				this.#changed();
			},
		};
	}

	// ---- upload ----

	/**
	 * Nothing is asked of the bucket before there is a part to store: the multipart upload is created when the first
	 * part is full, and an object that ends within one part is stored with one PutObject (no upload at all). Until
	 * then the bytes are held as before (a part is held until it is full anyway) and their durability is the
	 * checkpoints'. So a track's start costs no request on the first frame's path, and a short object 1 request
	 * instead of 3.
	 */
	#pump(): void {
		if (this.#rejected || this.#giveUp.signal.aborted) return;
		if (!this.#uploadId) {
			const first = this.#parts[0];
			if (!first || this.#creating || this.#createFailed) return;
			if (this.#inputEnded && this.#parts.length === 1) {
				if (first.state === "queued") void this.#putWhole(first);
				return;
			}
			void this.#create();
			return;
		}
		for (const part of this.#parts) {
			if (this.#inflight >= this.#config.uploadConcurrency) break;
			if (part.state === "queued") void this.#uploadPart(part);
		}
	}

	async #create(): Promise<void> {
		this.#creating = true;
		const { target } = this.#opts;
		try {
			const res = await this.#retry("create the upload", (abortSignal) =>
				this.#opts.client.send(
					new CreateMultipartUploadCommand({
						Bucket: target.bucket,
						Key: this.key,
						ContentType: this.#opts.contentType,
						...ssePutParams(target.encryption),
					}),
					{ abortSignal },
				),
			);
			if (!res.UploadId) throw new UploadError("storage_rejected", "the bucket returned no UploadId");
			this.#uploadId = res.UploadId;
			this.#log.debug({ uploadId: res.UploadId }, "multipart upload created");
		} catch (err) {
			this.#createFailed = true;
			this.#failed(err);
		} finally {
			this.#creating = false;
		}
		this.#pump();
		this.#changed();
	}

	/** The whole object in one PutObject (it ended within its first part). */
	async #putWhole(part: Part): Promise<void> {
		const body = part.body as Buffer;
		part.state = "uploading";
		this.#inflight++;
		const { target } = this.#opts;
		try {
			const res = await this.#retry("store the object", (abortSignal) =>
				this.#opts.client.send(
					new PutObjectCommand({
						Bucket: target.bucket,
						Key: this.key,
						Body: body,
						ContentLength: body.length,
						ContentType: this.#opts.contentType,
						...ssePutParams(target.encryption),
					}),
					{ abortSignal },
				),
			);
			part.etag = res.ETag ?? "";
			part.state = "done";
			part.body = undefined;
			this.#whole = true;
			this.#opts.budget.release(part.size);
			// Stored bytes, as a part's are (the metrics count what reached the bucket, either way).
			if (part.size > 0) this.emit("part", { partNumber: part.number, size: part.size });
		} catch (err) {
			part.state = "failed";
			this.#failed(err);
		} finally {
			this.#inflight--;
		}
		this.#changed();
	}

	async #uploadPart(part: Part): Promise<void> {
		const uploadId = this.#uploadId as string;
		const body = part.body as Buffer;
		part.state = "uploading";
		this.#inflight++;
		const { target } = this.#opts;
		try {
			const res = await this.#retry(`upload part ${part.number}`, (abortSignal) =>
				this.#opts.client.send(
					new UploadPartCommand({
						Bucket: target.bucket,
						Key: this.key,
						UploadId: uploadId,
						PartNumber: part.number,
						Body: body,
						ContentLength: body.length,
						...sseGetParams(target.encryption),
					}),
					{ abortSignal },
				),
			);
			if (!res.ETag) throw new UploadError("storage_rejected", `the bucket returned no ETag for part ${part.number}`);
			part.etag = res.ETag;
			part.state = "done";
			part.body = undefined;
			this.#opts.budget.release(part.size);
			this.emit("part", { partNumber: part.number, size: part.size });
		} catch (err) {
			part.state = "failed";
			this.#failed(err);
		} finally {
			this.#inflight--;
		}
		this.#pump();
		this.#changed();
	}

	#failed(err: unknown): void {
		if (err instanceof GaveUp) return;
		if (err instanceof UploadError && err.code === "storage_rejected" && !this.#rejected) {
			this.#rejected = err;
			this.#log.error({ err: err.message }, "the bucket refused the upload");
			this.emit("rejected", err);
			this.stopInput();
		}
	}

	/** Runs `op` until it succeeds, fails for good (UploadError storage_rejected) or the finish deadline passes (GaveUp). */
	async #retry<T>(what: string, op: (signal: AbortSignal) => Promise<T>): Promise<T> {
		for (let attempt = 0; ; attempt++) {
			if (this.#giveUp.signal.aborted) throw new GaveUp(what);
			const signal = AbortSignal.any([this.#giveUp.signal, AbortSignal.timeout(this.#config.requestTimeoutMs)]);
			try {
				const result = await op(signal);
				this.#failingSince = undefined;
				return result;
			} catch (err) {
				if (this.#giveUp.signal.aborted) throw new GaveUp(what);
				this.#failingSince ??= Date.now();
				if (!isTransient(err)) {
					const mapped = classifyS3Error(err, this.#opts.target, "write");
					throw new UploadError("storage_rejected", `could not ${what}: ${mapped.message}`, { cause: err });
				}
				this.#lastTransient = err;
				this.emit("retry");
				const delay = Math.random() * Math.min(this.#config.retryMaxMs, this.#config.retryBaseMs * 2 ** attempt);
				if (attempt === 0 || attempt % 10 === 9) {
					this.#log.warn(
						{ attempt: attempt + 1, err: errText(err), retryInMs: Math.round(delay) },
						`retrying: ${what}`,
					);
				}
				await sleep(delay, this.#giveUp.signal);
			}
		}
	}

	// ---- finish ----

	#changed(): void {
		const waiters = this.#waiters;
		this.#waiters = [];
		for (const w of waiters) w();
	}

	async #waitUntil(pred: () => boolean): Promise<void> {
		while (!pred()) await new Promise<void>((r) => this.#waiters.push(r));
	}

	/** Nothing more will happen without new input: no request running, nothing startable. */
	#settled(): boolean {
		if (this.#creating || this.#inflight > 0) return false;
		if (this.#rejected || this.#createFailed || this.#giveUp.signal.aborted) return true;
		return !this.#parts.some((p) => p.state === "queued");
	}

	async #finish(): Promise<SegmentOutcome> {
		await this.#waitUntil(() => this.#inputEnded);
		let deadline: NodeJS.Timeout | undefined;
		this.#armDeadline = () => {
			deadline ??= setTimeout(() => {
				this.#giveUp.abort();
				this.#changed();
			}, this.#config.finishDeadlineMs);
		};
		if (!this.#patient) this.#armDeadline();
		try {
			await this.#waitUntil(() => this.#settled());
		} finally {
			clearTimeout(deadline);
			this.#armDeadline = undefined;
		}
		let stored = 0;
		while (stored < this.#parts.length && this.#parts[stored]?.state === "done") stored++;
		const last = stored > 0 ? this.#parts[stored - 1] : undefined;
		const bytesStored = last?.sizeAfter ?? 0;
		const outcome: SegmentOutcome = { bytesIn: this.#bytesIn, bytesStored, overflowed: this.#overflowed };
		// Buffers not stored are dropped now; the budget gets them back.
		for (const p of this.#parts) {
			if (p.body) {
				this.#opts.budget.release(p.size);
				p.body = undefined;
			}
		}
		if (this.#pendingBytes) this.#opts.budget.release(this.#pendingBytes);
		const lost = this.#bytesIn - bytesStored;
		if (this.#rejected) outcome.error = this.#rejected;
		else if (lost > 0) {
			outcome.error = new UploadError(
				"storage_unavailable",
				`the bucket did not take ${lost} of ${this.#bytesIn} bytes within ${this.#config.finishDeadlineMs} ms${this.#lastTransient ? ` (last error: ${errText(this.#lastTransient)})` : ""}`,
			);
		}
		if (this.#whole && last) {
			outcome.object = {
				bucket: this.#opts.target.bucket,
				key: this.key,
				size: bytesStored,
				sha256: last.hashAfter.digest("hex"),
				parts: 1,
				truncated: false,
			};
			this.#log.info({ size: bytesStored }, "object written (one PutObject)");
			this.#opts.checkpoints?.completed(this.key);
			return outcome;
		}
		const uploadId = this.#uploadId;
		if (!uploadId) return outcome;
		// The completion gets its own deadline, separate from the parts'.
		this.#giveUp = new AbortController();
		const deadline2 = setTimeout(() => this.#giveUp.abort(), this.#config.finishDeadlineMs);
		const { target, client } = this.#opts;
		try {
			if (!last) {
				await this.#retry("abort the upload", (abortSignal) =>
					client.send(new AbortMultipartUploadCommand({ Bucket: target.bucket, Key: this.key, UploadId: uploadId }), {
						abortSignal,
					}),
				);
				this.#log.info({ uploadId }, "upload aborted: no part stored");
				return outcome;
			}
			await this.#retry("complete the upload", (abortSignal) =>
				client.send(
					new CompleteMultipartUploadCommand({
						Bucket: target.bucket,
						Key: this.key,
						UploadId: uploadId,
						MultipartUpload: {
							Parts: this.#parts.slice(0, stored).map((p) => ({ PartNumber: p.number, ETag: p.etag })),
						},
						...sseGetParams(target.encryption),
					}),
					{ abortSignal },
				),
			);
			const object: SegmentObject = {
				bucket: target.bucket,
				key: this.key,
				uploadId,
				size: bytesStored,
				sha256: last.hashAfter.digest("hex"),
				parts: stored,
				truncated: lost > 0,
			};
			outcome.object = object;
			this.#log.info({ size: object.size, parts: stored, truncated: object.truncated }, "object written");
			this.#opts.checkpoints?.completed(this.key); // its checkpoints are of no more use
			return outcome;
		} catch (err) {
			const reason = err instanceof GaveUp ? errText(this.#lastTransient) : errText(err);
			outcome.error = new UploadError(
				err instanceof UploadError ? err.code : "storage_unavailable",
				`could not ${last ? "complete" : "abort"} the upload of ${this.key} (${reason}); it is left for recover`,
				{ cause: err, uploadId },
			);
			this.#log.error({ uploadId, err: reason }, "upload left open");
			return outcome;
		} finally {
			clearTimeout(deadline2);
		}
	}
}

/** 5xx, 408, 429, timeouts and connection errors are worth retrying; other 4xx and policy refusals are not. */
export function isTransient(err: unknown): boolean {
	for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
		if (e instanceof ConsentryError) return false; // e.g. the endpoint guard refused at connect time
	}
	const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
	if (typeof status === "number") return status >= 500 || status === 408 || status === 429;
	const name = (err as { name?: string })?.name ?? "";
	if (name === "CredentialsProviderError") return false;
	return true; // no HTTP answer: network error, timeout, abort
}

function errText(err: unknown): string {
	if (!err) return "none";
	const e = err as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
	const status = e.$metadata?.httpStatusCode;
	return `${e.name ?? "Error"}${e.code ? ` ${e.code}` : ""}${status ? ` HTTP ${status}` : ""}: ${e.message ?? String(err)}`.slice(
		0,
		300,
	);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
	return new Promise((resolve) => {
		if (signal.aborted) return resolve();
		const t = setTimeout(done, ms);
		function done() {
			clearTimeout(t);
			signal.removeEventListener("abort", done);
			resolve();
		}
		signal.addEventListener("abort", done, { once: true });
	});
}

import { createHash } from "node:crypto";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import type { EndpointPolicy } from "../../contracts/endpointGuard.js";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import { createS3Client, ssePutParams } from "../../contracts/s3.js";
import type { EventLog } from "../audit/EventLog.js";
import type { CaptureKind } from "../compliance/CaptureTypes.js";

/** What the trail says of an object a capture sink wrote (`storage.object_written`). */
export interface WrittenObject {
	key: string;
	size: number;
	sha256: string;
}

/** `{prefix}/{meetingId}/{sessionId}`: where a capture session's objects go in the customer's bucket. */
export function sessionBase(target: StorageTarget, meetingId: string, sessionId: string): string {
	return `${target.prefix ? `${target.prefix}/` : ""}${meetingId}/${sessionId}`;
}

/**
 * Records an object a capture session wrote in the customer's bucket: `storage.object_written`, with the sink's kind,
 * the session and the bucket, then `data` (key, size, sha256…). Also for objects of a session no longer live (a
 * recovery after a crash).
 */
export async function auditObjectWritten(
	events: EventLog,
	where: { tenantId: string; meetingId: string; kind: CaptureKind; sessionId: string; bucket: string },
	data: Record<string, unknown>,
): Promise<void> {
	const { trackId, ...rest } = data;
	await events.append("storage.object_written", {
		tenantId: where.tenantId,
		meetingId: where.meetingId,
		data: {
			kind: where.kind,
			sessionId: where.sessionId,
			...(trackId !== undefined ? { trackId } : {}),
			bucket: where.bucket,
			...rest,
		},
	});
}

/**
 * One capture session's side of the customer's bucket, for the gateway's own objects (manifest, chat, audit export,
 * transcript): writes them with the target's encryption, and records each final one in the trail with its size and
 * SHA-256 — the one way every capture sink writes to the bucket. (The media objects are written by the recorder;
 * their trail entries come from its reports: `audit()`.)
 */
export class CaptureBucket {
	readonly target: StorageTarget;
	readonly client: S3Client;
	readonly #events: EventLog;
	readonly #where: { tenantId: string; meetingId: string; kind: CaptureKind; sessionId: string };

	constructor(
		target: StorageTarget,
		endpointPolicy: EndpointPolicy,
		events: EventLog,
		where: { tenantId: string; meetingId: string; kind: CaptureKind; sessionId: string },
	) {
		this.target = target;
		this.client = createS3Client(target, { ...endpointPolicy, maxAttempts: 5 });
		this.#events = events;
		this.#where = where;
	}

	/** `{base}/{name}`. */
	key(name: string): string {
		return `${sessionBase(this.target, this.#where.meetingId, this.#where.sessionId)}/${name}`;
	}

	/** Writes (or overwrites) `{base}/{name}`; not in the trail (checkpoints of what is still growing). */
	async put(name: string, text: string | Buffer, contentType: string): Promise<WrittenObject> {
		const body = typeof text === "string" ? Buffer.from(text) : text;
		const key = this.key(name);
		await this.client.send(
			new PutObjectCommand({
				Bucket: this.target.bucket,
				Key: key,
				Body: body,
				ContentLength: body.length,
				ContentType: contentType,
				...ssePutParams(this.target.encryption),
			}),
		);
		return { key, size: body.length, sha256: createHash("sha256").update(body).digest("hex") };
	}

	/** Writes `{base}/{name}` and records it in the trail (`extra` joins the entry's data). */
	async putAudited(
		name: string,
		text: string | Buffer,
		contentType: string,
		extra: Record<string, unknown> = {},
	): Promise<WrittenObject> {
		const written = await this.put(name, text, contentType);
		await this.audit({ ...written, ...extra });
		return written;
	}

	/** Records an object of this session in the trail: `storage.object_written` with the sink's kind and the bucket. */
	async audit(data: Record<string, unknown>): Promise<void> {
		await auditObjectWritten(this.#events, { ...this.#where, bucket: this.target.bucket }, data);
	}

	destroy(): void {
		this.client.destroy();
	}
}

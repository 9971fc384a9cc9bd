import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { isBase64OfLength } from "../../contracts/StorageTargetTypes.js";
import { ConfigError, ConsentryError } from "../errors.js";

/**
 * AES-256-GCM encryption of secrets at rest under the gateway's master key
 * (env `CONSENTRY_MASTER_KEY`: base64 of 32 random bytes, e.g.
 * `openssl rand -base64 32`).
 *
 * Sealed format, version 1:
 *   [0x01][key id: 8][IV: 12][tag: 16][ciphertext]
 * The key id (HMAC of a fixed label under the master key, not the key) tells
 * "sealed under another master key" apart from "altered". The header and the
 * caller's context (e.g. the tenant id) are authenticated as associated data, so
 * a sealed blob cannot be moved to another tenant's row.
 */

export const MASTER_KEY_ENV = "CONSENTRY_MASTER_KEY";
const VERSION = 1;
const KEY_ID_LEN = 8;
const IV_LEN = 12;
const TAG_LEN = 16;
const HEADER_LEN = 1 + KEY_ID_LEN;

/** A sealed secret could not be opened. Never says anything about the plaintext. */
export class SecretBoxError extends ConsentryError {
	constructor(code: "secret_wrong_master_key" | "secret_tampered" | "secret_unknown_format", message: string) {
		super(code, message, 500);
	}
}

/**
 * Parses the master key from its env value; a ConfigError naming the variable
 * when missing or not base64 of exactly 32 bytes. Pass `process.env[MASTER_KEY_ENV]`.
 */
export function parseMasterKey(value: string | undefined): Buffer {
	if (value === undefined || value.trim() === "") {
		throw new ConfigError(
			`${MASTER_KEY_ENV} is not set: it must be base64 of 32 random bytes (e.g. \`openssl rand -base64 32\`); it encrypts storage credentials at rest`,
		);
	}
	const trimmed = value.trim();
	if (!isBase64OfLength(trimmed, 32)) {
		const n = /^[A-Za-z0-9+/]*={0,2}$/.test(trimmed) ? Buffer.from(trimmed, "base64").length : -1;
		throw new ConfigError(
			`${MASTER_KEY_ENV} must be base64 of exactly 32 bytes (${n < 0 ? "it is not base64" : `it decodes to ${n} bytes`}); generate one with \`openssl rand -base64 32\``,
		);
	}
	return Buffer.from(trimmed, "base64");
}

export class SecretBox {
	readonly #key: Buffer;
	readonly #keyId: Buffer;

	/** `masterKey`: 32 bytes (see parseMasterKey). */
	constructor(masterKey: Buffer) {
		if (masterKey.length !== 32) throw new ConfigError(`${MASTER_KEY_ENV} must be 32 bytes, got ${masterKey.length}`);
		this.#key = Buffer.from(hkdfSync("sha256", masterKey, Buffer.alloc(0), "consentry secretBox v1 aes-256-gcm", 32));
		this.#keyId = createHmac("sha256", masterKey)
			.update("consentry secretBox v1 key id")
			.digest()
			.subarray(0, KEY_ID_LEN);
	}

	/** Identifies the master key (hex) without revealing it; safe to log. */
	get keyId(): string {
		return this.#keyId.toString("hex");
	}

	seal(plaintext: Buffer | string, context: string): Buffer {
		const header = Buffer.concat([Buffer.from([VERSION]), this.#keyId]);
		const iv = randomBytes(IV_LEN);
		const cipher = createCipheriv("aes-256-gcm", this.#key, iv, { authTagLength: TAG_LEN });
		cipher.setAAD(aad(header, context));
		const ct = Buffer.concat([
			cipher.update(typeof plaintext === "string" ? Buffer.from(plaintext) : plaintext),
			cipher.final(),
		]);
		return Buffer.concat([header, iv, cipher.getAuthTag(), ct]);
	}

	open(sealed: Buffer, context: string): Buffer {
		if (sealed.length < HEADER_LEN + IV_LEN + TAG_LEN || sealed[0] !== VERSION) {
			throw new SecretBoxError(
				"secret_unknown_format",
				`a stored secret has an unknown format (version ${sealed[0] ?? "none"}); it was written by a newer consentry or is corrupt`,
			);
		}
		const header = sealed.subarray(0, HEADER_LEN);
		const keyId = sealed.subarray(1, HEADER_LEN);
		if (!timingSafeEqual(keyId, this.#keyId)) {
			throw new SecretBoxError(
				"secret_wrong_master_key",
				`a stored secret was sealed under another master key (key id ${keyId.toString("hex")}; ${MASTER_KEY_ENV} here has key id ${this.keyId}); start the gateway with the master key that sealed it`,
			);
		}
		const iv = sealed.subarray(HEADER_LEN, HEADER_LEN + IV_LEN);
		const tag = sealed.subarray(HEADER_LEN + IV_LEN, HEADER_LEN + IV_LEN + TAG_LEN);
		const ct = sealed.subarray(HEADER_LEN + IV_LEN + TAG_LEN);
		const decipher = createDecipheriv("aes-256-gcm", this.#key, iv, { authTagLength: TAG_LEN });
		decipher.setAAD(aad(header, context));
		decipher.setAuthTag(tag);
		try {
			return Buffer.concat([decipher.update(ct), decipher.final()]);
		} catch {
			throw new SecretBoxError(
				"secret_tampered",
				"a stored secret failed authentication: it was altered, or copied from another record; re-enter it",
			);
		}
	}
}

function aad(header: Buffer, context: string): Buffer {
	const ctx = Buffer.from(context, "utf8");
	const len = Buffer.alloc(4);
	len.writeUInt32BE(ctx.length);
	return Buffer.concat([header, len, ctx]);
}

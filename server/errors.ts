/**
 * The gateway's named errors. The base class and ValidationError are shared with the recorder and live in
 * contracts/errors.ts; they are re-exported here so the server imports every error from one module.
 */
import { ConsentryError } from "../contracts/errors.js";

export { ConsentryError, MAX_REPORTED_ISSUES, ValidationError } from "../contracts/errors.js";

/** Configuration is missing or malformed; the process cannot start. */
export class ConfigError extends ConsentryError {
	constructor(message: string, options?: { cause?: unknown }) {
		super("config_invalid", message, 500, options);
	}
}

/** The caller is not authenticated (401) – e.g. a missing or expired token. */
export class AuthenticationError extends ConsentryError {
	constructor(code: string, message: string) {
		super(code, message, 401);
	}
}

/** The caller is authenticated but not allowed to do this (403). */
export class ForbiddenError extends ConsentryError {
	constructor(code: string, message: string) {
		super(code, message, 403);
	}
}

/** The thing the caller referred to does not exist (404). */
export class NotFoundError extends ConsentryError {
	constructor(code: string, message: string) {
		super(code, message, 404);
	}
}

/** The request conflicts with the current state (409). */
export class ConflictError extends ConsentryError {
	readonly details: Record<string, unknown>;

	constructor(code: string, message: string, details: Record<string, unknown> = {}) {
		super(code, message, 409);
		this.details = details;
	}

	override toJSON(): { code: string; message: string } & Record<string, unknown> {
		return { code: this.code, message: this.message, ...this.details };
	}
}

/** The caller sends too much, too fast (429). */
export class RateLimitError extends ConsentryError {
	/** Seconds until trying again may succeed, when known. */
	readonly retryAfterSec: number | undefined;

	constructor(message = "Too many requests; slow down.", code = "rate_limited", retryAfterSec?: number) {
		super(code, message, 429);
		this.retryAfterSec = retryAfterSec;
	}

	override toJSON(): { code: string; message: string; retryAfterSec?: number } {
		return {
			code: this.code,
			message: this.message,
			...(this.retryAfterSec !== undefined ? { retryAfterSec: this.retryAfterSec } : {}),
		};
	}
}

/** Turns anything thrown into the JSON shape a client may see. */
export function toPublicError(err: unknown): { code: string; message: string } {
	if (err instanceof ConsentryError) return err.toJSON();
	return { code: "internal_error", message: "Internal error; the gateway logged the details." };
}

/**
 * The store (SQLite file or PostgreSQL) cannot be reached or answered too slowly: new work (starts, joins) is
 * refused quickly with 503 `store_unavailable` rather than half-done; live media goes on.
 */
export class StoreUnavailableError extends ConsentryError {
	constructor(
		message = "The meetings store is unavailable right now; try again in a moment.",
		options?: { cause?: unknown },
	) {
		super("store_unavailable", message, 503, options);
	}
}

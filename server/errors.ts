/**
 * Named error classes. Every error that can reach a user carries a stable,
 * machine-readable `code` and the HTTP status it maps to; the message is for
 * humans and never contains a stack trace or internal detail.
 */
export class ConsentryError extends Error {
	readonly code: string;
	readonly status: number;

	constructor(code: string, message: string, status = 400, options?: { cause?: unknown }) {
		super(message, options);
		this.name = new.target.name;
		this.code = code;
		this.status = status;
	}

	toJSON(): { code: string; message: string } {
		return { code: this.code, message: this.message };
	}
}

/** Configuration is missing or malformed; the process cannot start. */
export class ConfigError extends ConsentryError {
	constructor(message: string, options?: { cause?: unknown }) {
		super("config_invalid", message, 500, options);
	}
}

/** How many validation issues a reply lists; the rest are only counted (a reply never outgrows its request). */
export const MAX_REPORTED_ISSUES = 5;

/** A request or socket message failed validation. Nothing was changed. */
export class ValidationError extends ConsentryError {
	/** The first few issues (MAX_REPORTED_ISSUES). */
	readonly issues: readonly { path: string; message: string }[];
	/** How many issues there were in all. */
	readonly issueCount: number;

	constructor(message: string, issues: readonly { path: string; message: string }[] = []) {
		super("invalid_request", message, 400);
		this.issues = issues.slice(0, MAX_REPORTED_ISSUES).map((i) => ({
			path: i.path.slice(0, 200),
			message: i.message.slice(0, 200),
		}));
		this.issueCount = issues.length;
	}

	override toJSON(): {
		code: string;
		message: string;
		issues: readonly { path: string; message: string }[];
		issueCount: number;
	} {
		return { code: this.code, message: this.message, issues: this.issues, issueCount: this.issueCount };
	}

	/** From zod issues: only the first few are turned into paths and messages. */
	static fromIssues(
		message: string,
		issues: readonly { path: readonly PropertyKey[]; message: string }[],
	): ValidationError {
		const e = new ValidationError(
			message,
			issues.slice(0, MAX_REPORTED_ISSUES).map((i) => ({ path: i.path.map(String).join("."), message: i.message })),
		);
		(e as { issueCount: number }).issueCount = issues.length;
		return e;
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

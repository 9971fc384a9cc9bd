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

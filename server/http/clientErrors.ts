import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { ConsentryError, NotFoundError, ValidationError } from "../errors.js";

/** The largest request body the REST API reads (Fastify's `bodyLimit`): past it, 413 `body_too_large`. */
export const BODY_LIMIT_BYTES = 64 * 1024;
/** The longest path parameter the router takes (Fastify's `maxParamLength`, its default): past it, 414 `url_too_long`. */
export const MAX_PARAM_LENGTH = 100;

/**
 * Fastify's own refusals of a client's request (a bad URL escape, a path parameter past the router's limit, a body
 * past the limit, a content type no parser takes, invalid JSON), in the project's error shape with stable codes:
 * never Fastify's `{ error, code: "FST_…", statusCode }` nor an echo of the (possibly 10 KB) path. Undefined for
 * what is not a client's mistake (the caller logs it and answers `internal_error`).
 */
export function clientError(err: unknown): ConsentryError | undefined {
	if (err instanceof ConsentryError) return err;
	const e = err as Partial<FastifyError>;
	switch (e.code) {
		case "FST_ERR_BAD_URL":
			return new ConsentryError("invalid_url", "The URL has a malformed percent-escape.", 400);
		case "FST_ERR_MAX_PARAM_LENGTH":
			return new ConsentryError("url_too_long", "A path parameter is too long.", 414);
		case "FST_ERR_CTP_BODY_TOO_LARGE":
			return new ConsentryError("body_too_large", "The request body is too large.", 413);
		case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
			return new ConsentryError(
				"unsupported_media_type",
				"Send the request body as JSON (`Content-Type: application/json`).",
				415,
			);
	}
	const status = e.statusCode;
	// The client's files (@fastify/static): a path it will not serve (a NUL, an escaped `..` or `\\`, a name too long)
	// is refused with a bare 403 — for the caller, as for any other missing file, there is no such page.
	if (status === 403 || status === 404) return new NotFoundError("not_found", "No such page.");
	if (status && status >= 400 && status < 500) {
		// Invalid JSON, a prototype key, an empty JSON body, a bad Content-Length: the message names the mistake.
		return new ConsentryError("invalid_request", e.message ?? "Invalid request.", status);
	}
	return undefined;
}

/** Fastify's `frameworkErrors`: the router's refusals (bad URL, parameter too long) answered like every other error. */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
	const e = clientError(err) ?? new ValidationError("invalid request");
	reply.status(e.status).send(e.toJSON());
}

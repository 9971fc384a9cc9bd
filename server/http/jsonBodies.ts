import { isUtf8 } from "node:buffer";
import type { FastifyInstance } from "fastify";
import { ValidationError } from "../errors.js";

/** A NUL, or half of a surrogate pair (not text in any encoding: it cannot be stored as UTF-8 nor in PostgreSQL). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding the NUL is the point.
const NOT_TEXT = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The REST API's bodies: JSON only, and text only. Fastify's default `text/plain` parser is removed (a body of any
 * other type is 415 `unsupported_media_type`, not a string handed to a schema that wants an object); a JSON body
 * must be UTF-8, and no string or key in it may hold a NUL or a lone surrogate (400 `invalid_request` naming the
 * field) — such a string would be stored as is on SQLite and break a statement on PostgreSQL (a 5xx), in a meeting's
 * title as in the audit chain; path parameters and query strings likewise. Fastify's own JSON parsing (its
 * prototype-poisoning refusals) is kept.
 */
export function registerJsonBodies(http: FastifyInstance): void {
	http.removeContentTypeParser("text/plain");
	const json = http.getDefaultJsonParser("error", "error");
	http.removeContentTypeParser("application/json");
	http.addContentTypeParser("application/json", { parseAs: "buffer" }, (req, body, done) => {
		const bytes = body as Buffer;
		if (!isUtf8(bytes)) {
			done(new ValidationError("The request body is not UTF-8."), undefined);
			return;
		}
		json(req, bytes.toString("utf8"), (err, value) => {
			if (err) return done(err, undefined);
			const at = notText(value);
			if (at !== undefined) {
				return done(
					new ValidationError(`invalid request: ${at || "(root)"} holds a NUL or a lone surrogate`, [
						{ path: at, message: "must be text: no NUL, no lone surrogate" },
					]),
					undefined,
				);
			}
			done(null, value);
		});
	});
	// The same for path parameters and the query string (`/api/operator/meetings/a%00b`): refused before any handler.
	http.addHook("preValidation", async (req) => {
		const at = notText(req.params) ?? notText(req.query);
		if (at !== undefined) {
			throw new ValidationError(`invalid request: ${at} holds a NUL or a lone surrogate`, [
				{ path: at, message: "must be text: no NUL, no lone surrogate" },
			]);
		}
	});
}

/** The path of the first string or key in `value` that is not text, or undefined. Iterative: bodies nest deep. */
export function notText(value: unknown): string | undefined {
	const stack: [unknown, string][] = [[value, ""]];
	while (stack.length > 0) {
		const [v, at] = stack.pop() as [unknown, string];
		if (typeof v === "string") {
			if (NOT_TEXT.test(v)) return at;
		} else if (Array.isArray(v)) {
			for (let i = 0; i < v.length; i++) stack.push([v[i], at ? `${at}.${i}` : String(i)]);
		} else if (v !== null && typeof v === "object") {
			for (const [k, x] of Object.entries(v)) {
				const here = at ? `${at}.${k}` : k;
				if (NOT_TEXT.test(k)) return here;
				stack.push([x, here]);
			}
		}
	}
	return undefined;
}

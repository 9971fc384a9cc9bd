import type { z } from "zod";
import { ValidationError } from "../errors.js";

/** A request's body, query or params checked against its schema: a client's mistake is a 400 naming the fields. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
	const r = schema.safeParse(value);
	if (!r.success) throw ValidationError.fromIssues(`invalid ${what}`, r.error.issues);
	return r.data;
}

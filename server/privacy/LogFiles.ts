import { closeSync, mkdirSync, openSync, readdirSync, unlinkSync, writeSync } from "node:fs";
import path from "node:path";
import type { LogDestination } from "../../contracts/logger.js";

const DAY_MS = 86_400_000;
/** 004 §2.1: logs with IP addresses are kept at most 14 days, unless a security event is being investigated. */
export const MAX_LOG_RETENTION_DAYS = 14;
/** How often the gateway deletes expired files by default (a file goes at most this early, never later). */
export const LOG_SWEEP_MS = 10 * 60_000;

/** `<prefix>-YYYY-MM-DD.log` (every line) and `<prefix>-security-YYYY-MM-DD.log` (security lines). */
const FILE_RE = /^(.+?)(-security)?-(\d{4}-\d{2}-\d{2})\.log$/;

export interface LogFilesOptions {
	dir: string;
	/** Days a file's lines are kept at most (1–14). */
	retentionDays: number;
	/** File names start with this (one prefix per gateway process: `consentry-<gateway id>`). */
	prefix: string;
	/** How often the gateway sweeps (ms): a file is deleted at the first sweep at most this long before it expires. */
	sweepMs?: number;
	/** The clock (tests: a fake one). */
	now?: () => number;
}

interface Open {
	day: string;
	dayEnd: number;
	general: number;
	security: number;
}

/**
 * Issue 14 (004 §2.1): the gateway's own log files, one pair per UTC day in `CONSENTRY_LOG_DIR`:
 * `<prefix>-<day>.log` gets every line except security lines, which go to `<prefix>-security-<day>.log` (lines with
 * `"security":true`: refused requests with the full client address, operator sessions and actions, rate limits).
 * Ordinary lines carry client addresses cut to /24 or /48 only (server/http/accessLog.ts). {@link sweep} deletes
 * every file whose first possible line is `retentionDays` old (so no line outlives the window), except security
 * files while the operator's security hold is on ({@link setHold}); once the hold is lifted or lapses, the next
 * sweep deletes them. Writes are synchronous appends (a crash loses no line that was logged).
 */
export class LogFiles implements LogDestination {
	readonly dir: string;
	readonly retentionDays: number;
	readonly #prefix: string;
	readonly #sweepMs: number;
	readonly #now: () => number;
	#open: Open | undefined;
	#holdUntil: number | null = null;

	constructor(o: LogFilesOptions) {
		if (!Number.isInteger(o.retentionDays) || o.retentionDays < 1 || o.retentionDays > MAX_LOG_RETENTION_DAYS) {
			throw new RangeError(`log retention must be 1 to ${MAX_LOG_RETENTION_DAYS} days`);
		}
		this.dir = o.dir;
		this.retentionDays = o.retentionDays;
		this.#prefix = o.prefix.replace(/[^A-Za-z0-9._-]/g, "-");
		this.#sweepMs = o.sweepMs ?? LOG_SWEEP_MS;
		this.#now = o.now ?? Date.now;
		mkdirSync(this.dir, { recursive: true, mode: 0o750 });
	}

	get sweepMs(): number {
		return this.#sweepMs;
	}

	/** One JSON line from the logger. */
	write(line: string): boolean {
		const now = this.#now();
		let o = this.#open;
		if (!o || now >= o.dayEnd || now < o.dayEnd - DAY_MS) o = this.#rotate(now);
		writeSync(line.includes('"security":true') ? o.security : o.general, line);
		return true;
	}

	/** The security hold in force until this time (ms), or null: security files are kept while it runs. */
	setHold(untilMs: number | null): void {
		this.#holdUntil = untilMs;
	}

	get holdUntil(): number | null {
		return this.#holdUntil;
	}

	/**
	 * Deletes every file (of any gateway process sharing the directory) whose day began `retentionDays` ago (less
	 * one sweep interval, so it goes before its first line is over the window), except security files while a hold
	 * runs. Returns the files deleted.
	 */
	sweep(): string[] {
		const now = this.#now();
		const held = this.#holdUntil !== null && this.#holdUntil > now;
		const deleted: string[] = [];
		for (const name of readdirSync(this.dir)) {
			const m = FILE_RE.exec(name);
			if (!m) continue;
			const dayStart = Date.parse(`${m[3]}T00:00:00Z`);
			if (Number.isNaN(dayStart)) continue;
			if (now + this.#sweepMs < dayStart + this.retentionDays * DAY_MS) continue;
			if (m[2] && held) continue;
			if (this.#open && this.#open.day === m[3]) this.#closeOpen();
			try {
				unlinkSync(path.join(this.dir, name));
				deleted.push(name);
			} catch {
				// Another process sharing the directory deleted it first.
			}
		}
		return deleted;
	}

	/** The log files in the directory now (tests, the operator console). */
	files(): string[] {
		return readdirSync(this.dir)
			.filter((n) => FILE_RE.test(n))
			.sort();
	}

	close(): void {
		this.#closeOpen();
	}

	#rotate(now: number): Open {
		this.#closeOpen();
		const day = new Date(now).toISOString().slice(0, 10);
		const dayStart = Date.parse(`${day}T00:00:00Z`);
		const o: Open = {
			day,
			dayEnd: dayStart + DAY_MS,
			general: openSync(path.join(this.dir, `${this.#prefix}-${day}.log`), "a", 0o640),
			security: openSync(path.join(this.dir, `${this.#prefix}-security-${day}.log`), "a", 0o640),
		};
		this.#open = o;
		return o;
	}

	#closeOpen(): void {
		const o = this.#open;
		if (!o) return;
		this.#open = undefined;
		closeSync(o.general);
		closeSync(o.security);
	}
}

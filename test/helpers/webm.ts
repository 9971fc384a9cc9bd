import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface Probe {
	/** Codec of each stream (`opus`, `vp8`, …). */
	codecs: string[];
	/** Time span covered by the packets (last − first pts, plus the last packet's duration), seconds. */
	seconds: number;
	packets: number;
	/** What a full decode (`ffmpeg -f null`) reported as errors; empty when every packet decodes. */
	decodeErrors: string;
}

/**
 * Probes and fully decodes a media object the way a customer would open it:
 * ffprobe for codecs and packet times, ffmpeg decoding every frame to nowhere.
 * (Test side only: the bytes go to a temporary file here, never on the gateway.)
 */
export async function probeMedia(bytes: Uint8Array): Promise<Probe> {
	const dir = mkdtempSync(path.join(os.tmpdir(), "consentry-probe-"));
	const file = path.join(dir, "object.webm");
	try {
		writeFileSync(file, bytes);
		const streams = await run("ffprobe", ["-v", "error", "-show_entries", "stream=codec_name", "-of", "json", file]);
		const codecs = (JSON.parse(streams.stdout) as { streams: { codec_name: string }[] }).streams.map(
			(s) => s.codec_name,
		);
		const packets = await run(
			"ffprobe",
			["-v", "error", "-select_streams", "0", "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0", file],
			{ maxBuffer: 64 * 1024 * 1024 },
		);
		const rows = packets.stdout
			.trim()
			.split("\n")
			.filter(Boolean)
			.map((l) => l.split(",").map(Number));
		const first = rows[0]?.[0] ?? 0;
		const last = rows.at(-1);
		const seconds = last ? (last[0] ?? 0) - first + (Number.isFinite(last[1]) ? (last[1] ?? 0) : 0) : 0;
		const decoded = await run("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"]).catch(
			(err: { stderr?: string }) => ({ stderr: err.stderr ?? String(err) }),
		);
		// The null muxer's complaint about two frames on one millisecond (WebM's time base) is not a decoding error.
		const decodeErrors = decoded.stderr
			.split("\n")
			.filter((l) => l.trim() && !/non monotonically increasing dts to muxer/.test(l))
			.join("\n");
		return { codecs, seconds, packets: rows.length, decodeErrors };
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
}

/**
 * `seconds` of libvpx VP8 at 30 fps (a key frame every second, `bitrate` e.g. "300k") encoded by ffmpeg into IVF,
 * returned as frames.
 */
export function vp8Frames(size: string, seconds: number, bitrate = "300k"): Buffer[] {
	const res = spawnSync(
		"ffmpeg",
		[
			...["-v", "error", "-f", "lavfi", "-i", `testsrc=size=${size}:rate=30:duration=${seconds}`],
			...["-c:v", "libvpx", "-b:v", bitrate, "-g", "30", "-deadline", "realtime", "-cpu-used", "8"],
			...["-f", "ivf", "pipe:1"],
		],
		{ maxBuffer: 64 * 1024 * 1024 },
	);
	if (res.status !== 0) throw new Error(`ffmpeg failed: ${res.stderr.toString()}`);
	const ivf = res.stdout;
	const frames: Buffer[] = [];
	for (let p = ivf.readUInt16LE(6); p + 12 <= ivf.length; ) {
		const n = ivf.readUInt32LE(p);
		frames.push(ivf.subarray(p + 12, p + 12 + n));
		p += 12 + n;
	}
	return frames;
}

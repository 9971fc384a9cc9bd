import { type ChildProcess, spawn, spawnSync } from "node:child_process";

export interface RtpSenderOptions {
	kind: "audio" | "video";
	rtpPort: number;
	rtcpPort: number;
	seconds: number;
	payloadType: number;
	ssrc: number;
	/** Video: ~12 Mbit/s of noisy frames instead of ~0.5 Mbit/s (fills 5 MiB parts in a few seconds). */
	highBitrate?: boolean;
	/** Video key-frame interval in frames (30 fps). Default 60. */
	gop?: number;
	/** Video codec: VP8 (libvpx, default) or H.264 (libx264, zerolatency: packetization-mode 1, SPS/PPS in band). */
	videoCodec?: "vp8" | "h264";
}

export interface RtpSender {
	child: ChildProcess;
	/** Resolves when ffmpeg has sent everything (or was killed). */
	done: Promise<number | null>;
	stop(): void;
}

/**
 * A second ffmpeg that encodes a test signal in real time (-re) and sends it
 * as RTP to the recorder's ports: Opus (a 440 Hz sine), or VP8 or H.264 (testsrc).
 */
export function sendRtp(o: RtpSenderOptions): RtpSender {
	const input =
		o.kind === "audio"
			? ["-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${o.seconds}`]
			: [
					"-f",
					"lavfi",
					"-i",
					o.highBitrate
						? `testsrc=size=640x480:rate=30:duration=${o.seconds},noise=alls=40:allf=t`
						: `testsrc=size=640x480:rate=30:duration=${o.seconds}`,
				];
	const codec =
		o.kind === "audio"
			? ["-c:a", "libopus", "-ac", "2", "-ar", "48000", "-b:a", "64k"]
			: o.videoCodec === "h264"
				? [
						"-c:v",
						"libx264",
						"-preset",
						"ultrafast",
						"-tune",
						"zerolatency",
						"-profile:v",
						"baseline",
						"-pix_fmt",
						"yuv420p",
						...(o.highBitrate ? ["-b:v", "10M"] : ["-b:v", "500k"]),
						"-g",
						String(o.gop ?? 60),
						"-bf",
						"0",
					]
				: [
						"-c:v",
						"libvpx",
						"-deadline",
						"realtime",
						"-cpu-used",
						"8",
						...(o.highBitrate ? ["-b:v", "10M", "-qmin", "4", "-qmax", "20"] : ["-b:v", "500k"]),
						"-g",
						String(o.gop ?? 60),
					];
	const child = spawn(
		"ffmpeg",
		[
			"-hide_banner",
			"-loglevel",
			"error",
			"-re",
			...input,
			...codec,
			"-payload_type",
			String(o.payloadType),
			"-ssrc",
			String(o.ssrc),
			"-f",
			"rtp",
			`rtp://127.0.0.1:${o.rtpPort}?rtcpport=${o.rtcpPort}&pkt_size=1200`,
		],
		{ stdio: ["ignore", "ignore", "pipe"] },
	);
	let stderr = "";
	child.stderr?.on("data", (d: Buffer) => {
		stderr = (stderr + d.toString()).slice(-2000);
	});
	const done = new Promise<number | null>((resolve) =>
		child.once("exit", (code) => {
			if (code) console.error(`RTP sender exited ${code}: ${stderr}`);
			resolve(code);
		}),
	);
	return { child, done, stop: () => child.kill("SIGKILL") };
}

export interface Probe {
	codec: string;
	/** From the first packet's pts to the end of the last packet, in seconds. */
	duration: number;
	packets: number;
	width?: number;
	height?: number;
}

/** ffprobe of a WebM held in memory (read from stdin: nothing on disk here either). */
export function probe(webm: Buffer): Probe {
	const res = spawnSync(
		"ffprobe",
		[
			"-v",
			"error",
			"-show_entries",
			"stream=codec_name,width,height:packet=pts_time,duration_time",
			"-of",
			"json",
			"-i",
			"pipe:0",
		],
		{ input: webm, maxBuffer: 64 * 1024 * 1024 },
	);
	if (res.status !== 0) throw new Error(`ffprobe failed (${res.status}): ${res.stderr.toString()}`);
	const out = JSON.parse(res.stdout.toString()) as {
		streams: { codec_name: string; width?: number; height?: number }[];
		packets?: { pts_time?: string; duration_time?: string }[];
	};
	const packets = (out.packets ?? []).filter((p) => p.pts_time !== undefined);
	const first = Number(packets[0]?.pts_time ?? 0);
	const last = packets[packets.length - 1];
	const end = Number(last?.pts_time ?? 0) + Number(last?.duration_time ?? 0);
	const stream = out.streams[0];
	return {
		codec: stream?.codec_name ?? "none",
		duration: end - first,
		packets: packets.length,
		...(stream?.width ? { width: stream.width, height: stream.height } : {}),
	};
}

import type { types as ms } from "mediasoup";

const OPUS: ms.RouterRtpCodecCapability = { kind: "audio", mimeType: "audio/opus", clockRate: 48000, channels: 2 };
const VP8: ms.RouterRtpCodecCapability = {
	kind: "video",
	mimeType: "video/VP8",
	clockRate: 90000,
	parameters: { "x-google-start-bitrate": 1000 },
};
/**
 * H.264 as browsers offer it (Chromium: constrained baseline 42e01f and baseline 42001f — its software encoder,
 * OpenH264, produces constrained baseline for both — and main 4d001f), packetization-mode 1 (FU-A, STAP-A) only:
 * mode 0 (one NAL unit per packet) is what no browser needs and the recorder takes too, but each extra entry is one
 * more payload type in every offer.
 */
const H264: ms.RouterRtpCodecCapability[] = ["42e01f", "42001f", "4d001f"].map((profile) => ({
	kind: "video",
	mimeType: "video/H264",
	clockRate: 90000,
	parameters: {
		"packetization-mode": 1,
		"profile-level-id": profile,
		"level-asymmetry-allowed": 1,
		"x-google-start-bitrate": 1000,
	},
}));

/**
 * The codecs a meeting's router offers. A browser sends the first video codec of this list it can encode, so the
 * order is the preference: VP8 first by default (every browser encodes it, the recorder writes it as WebM, which
 * plays everywhere), H.264 first with `CONSENTRY_VIDEO_CODEC=h264` (hardware encoders on phones; the recorder writes
 * it as Matroska, `.mkv`). Both are offered either way, so a browser that can't encode the preferred one sends the
 * other, and every tap is recorded without transcoding (docs/storage.md, "Containers").
 */
export function mediaCodecsFor(preferred: "vp8" | "h264" = "vp8"): ms.RouterRtpCodecCapability[] {
	return preferred === "h264" ? [OPUS, ...H264, VP8] : [OPUS, VP8, ...H264];
}

/** The default list (VP8 preferred). */
export const mediaCodecs: ms.RouterRtpCodecCapability[] = mediaCodecsFor("vp8");

import type { types as ms } from "mediasoup";

/**
 * The codecs every meeting router offers. Opus and VP8 are what the recorder
 * remuxes into WebM without transcoding; VP9 and H264 are accepted for
 * consuming browsers but the client prefers VP8.
 */
export const mediaCodecs: ms.RouterRtpCodecCapability[] = [
	{ kind: "audio", mimeType: "audio/opus", clockRate: 48000, channels: 2 },
	{ kind: "video", mimeType: "video/VP8", clockRate: 90000, parameters: { "x-google-start-bitrate": 1000 } },
];

/**
 * Headless WebRTC for bots: @roamhq/wrtc (libwebrtc compiled for Node) exposed
 * as the browser globals mediasoup-client's Chrome111 handler uses, and a
 * Device factory that picks that handler explicitly (there is no user agent to
 * detect in Node).
 */
import wrtc from "@roamhq/wrtc";
import { Device } from "mediasoup-client";
import { Chrome111 } from "mediasoup-client/handlers/Chrome111";

const g = globalThis as Record<string, unknown>;
for (const name of [
	"RTCPeerConnection",
	"RTCSessionDescription",
	"RTCIceCandidate",
	"MediaStream",
	"MediaStreamTrack",
	"RTCRtpSender",
	"RTCRtpReceiver",
	"RTCRtpTransceiver",
] as const) {
	g[name] ??= (wrtc as unknown as Record<string, unknown>)[name];
}

export const { nonstandard } = wrtc;

const handlerFactory = Chrome111.createFactory({});

/** A mediasoup-client Device running on wrtc. */
export function newDevice(): Device {
	return new Device({ handlerFactory });
}

/**
 * Extra RTCPeerConnection settings for bots: node-webrtc's non-standard
 * `portRange` keeps the bots' UDP sockets out of the SFU's port range.
 */
export const peerConnectionSettings = { portRange: { min: 45000, max: 49999 } } as unknown as Partial<RTCConfiguration>;

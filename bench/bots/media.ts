/**
 * Synthetic camera and microphone shared by every bot of a process: one
 * RTCVideoSource fed I420 frames (a moving bar on a gradient, so the encoder
 * has something to code) and one RTCAudioSource fed a 440 Hz tone in 10 ms
 * chunks. Each bot takes its own tracks from them; each bot's PeerConnection
 * still encodes on its own, as a browser would.
 */
import { nonstandard } from "./wrtc.js";

export interface SyntheticMediaOptions {
	width: number;
	height: number;
	fps: number;
}

export class SyntheticMedia {
	readonly width: number;
	readonly height: number;
	readonly fps: number;
	readonly #video = new nonstandard.RTCVideoSource();
	readonly #audio = new nonstandard.RTCAudioSource();
	readonly #tracks: MediaStreamTrack[] = [];
	readonly #timers: NodeJS.Timeout[] = [];

	constructor(o: SyntheticMediaOptions) {
		this.width = o.width;
		this.height = o.height;
		this.fps = o.fps;
		const { width, height } = o;
		const frame = new Uint8Array((width * height * 3) / 2);
		for (let y = 0; y < height; y++) frame.fill((y * 200) / height + 16, y * width, (y + 1) * width);
		frame.fill(128, width * height); // neutral chroma
		let n = 0;
		const bar = Math.max(2, width >> 4);
		this.#timers.push(
			setInterval(() => {
				const x0 = (n * 3) % width;
				const x1 = ((n + 1) * 3) % width;
				for (let y = 0; y < height; y++) {
					const row = y * width;
					frame.fill((y * 200) / height + 16, row + x0, Math.min(row + width, row + x0 + bar));
					frame.fill(235, row + x1, Math.min(row + width, row + x1 + bar));
				}
				n++;
				this.#video.onFrame({ width, height, data: frame });
			}, 1000 / o.fps),
		);
		const rate = 48_000;
		const chunk = rate / 100;
		const samples = new Int16Array(chunk);
		let phase = 0;
		let next = performance.now();
		this.#timers.push(
			setInterval(() => {
				// Catch up on timer slack: always 100 chunks of 10 ms per second.
				for (const now = performance.now(); next <= now; next += 10) {
					for (let i = 0; i < chunk; i++, phase = (phase + 1) % rate)
						samples[i] = Math.round(3000 * Math.sin((2 * Math.PI * 440 * phase) / rate));
					this.#audio.onData({ samples, sampleRate: rate, bitsPerSample: 16, channelCount: 1, numberOfFrames: chunk });
				}
			}, 10),
		);
	}

	videoTrack(): MediaStreamTrack {
		const t = this.#video.createTrack() as unknown as MediaStreamTrack;
		this.#tracks.push(t);
		return t;
	}

	audioTrack(): MediaStreamTrack {
		const t = this.#audio.createTrack() as unknown as MediaStreamTrack;
		this.#tracks.push(t);
		return t;
	}

	stop(): void {
		for (const t of this.#timers) clearInterval(t);
		for (const t of this.#tracks) t.stop();
	}
}

import { $ } from "../dom.js";

/** RMS above which a 40 ms window counts as sound (a voice at a normal distance is 0.05–0.2). */
const LOUD = 0.03;
/** This many loud windows within `WINDOW_MS` mean the person is talking. */
const LOUD_WINDOWS = 2;
const WINDOW_MS = 2000;
const SHOW_MS = 6000;
const COOLDOWN_MS = 20_000;

/**
 * "You're muted": only while the person's microphone is muted, a local analyser listens to a copy
 * of its track and, when they seem to talk, shows a hint (`#muted-hint`, a status region) for a few
 * seconds, at most every 20 s. Nothing of it leaves the browser: the muted track sends nothing
 * and the analysis stays in the page.
 */
export class MutedHint {
	readonly #hint = $("#muted-hint");
	#ctx: AudioContext | undefined;
	#clone: MediaStreamTrack | undefined;
	/** The microphone track listened to (through `#clone`). */
	#source: MediaStreamTrack | undefined;
	#timer: ReturnType<typeof setInterval> | undefined;
	#hideTimer: ReturnType<typeof setTimeout> | undefined;
	#muted = false;
	#loud: number[] = [];
	#lastShown = -Infinity;

	/** The microphone to listen to while muted (a copy of it: muting disables the original). */
	watch(track: MediaStreamTrack | undefined): void {
		if (track === this.#source) return;
		this.#source = track;
		if (this.#muted) this.#listen();
	}

	/** The microphone was muted (listening starts) or unmuted (it stops, and the hint goes). */
	setMuted(muted: boolean): void {
		if (muted === this.#muted) return;
		this.#muted = muted;
		this.#loud = [];
		if (muted) this.#listen();
		else {
			this.#stopAnalysis();
			this.#hide();
		}
	}

	#listen(): void {
		this.#stopAnalysis();
		const track = this.#source;
		if (!track || track.readyState === "ended" || typeof AudioContext === "undefined") return;
		const clone = track.clone();
		clone.enabled = true;
		const ctx = new AudioContext();
		const analyser = ctx.createAnalyser();
		analyser.fftSize = 2048;
		ctx.createMediaStreamSource(new MediaStream([clone])).connect(analyser);
		this.#ctx = ctx;
		this.#clone = clone;
		const samples = new Float32Array(analyser.fftSize);
		this.#timer = setInterval(() => {
			if (ctx.state === "suspended") void ctx.resume().catch(() => undefined);
			analyser.getFloatTimeDomainData(samples);
			let sum = 0;
			for (const s of samples) sum += s * s;
			if (Math.sqrt(sum / samples.length) < LOUD) return;
			const now = performance.now();
			this.#loud = [...this.#loud.filter((t) => now - t < WINDOW_MS), now];
			if (this.#loud.length >= LOUD_WINDOWS && now - this.#lastShown > COOLDOWN_MS) this.#show(now);
		}, 40);
	}

	close(): void {
		this.#stopAnalysis();
		this.#source = undefined;
		this.#muted = false;
		this.#hide();
	}

	#show(now: number): void {
		this.#lastShown = now;
		this.#loud = [];
		this.#hint.hidden = false;
		clearTimeout(this.#hideTimer);
		this.#hideTimer = setTimeout(() => this.#hide(), SHOW_MS);
	}

	#hide(): void {
		clearTimeout(this.#hideTimer);
		this.#hint.hidden = true;
	}

	#stopAnalysis(): void {
		clearInterval(this.#timer);
		this.#timer = undefined;
		this.#clone?.stop();
		this.#clone = undefined;
		void this.#ctx?.close().catch(() => undefined);
		this.#ctx = undefined;
	}
}

const STORAGE_KEY = "consentry.captureCue";

/**
 * The audible cue when recording or transcription starts: a short two-tone beep (WebAudio
 * oscillator, nothing downloaded). The person may switch it off with the `cue-toggle` checkbox;
 * the choice is kept in localStorage for the next meetings.
 */
export class Cue {
	readonly #toggle: HTMLInputElement;
	#ctx: AudioContext | undefined;

	constructor(toggle: HTMLInputElement) {
		this.#toggle = toggle;
		toggle.checked = readEnabled();
		toggle.addEventListener("change", () => {
			try {
				localStorage.setItem(STORAGE_KEY, toggle.checked ? "on" : "off");
			} catch {
				// storage may be disabled: the choice holds for this page
			}
		});
	}

	get enabled(): boolean {
		return this.#toggle.checked;
	}

	/** Beeps (if the person wants it): two short tones, rising. */
	play(): void {
		if (!this.enabled || typeof AudioContext === "undefined") return;
		try {
			this.#ctx ??= new AudioContext();
			const ctx = this.#ctx;
			if (ctx.state === "suspended") void ctx.resume().catch(() => undefined);
			const t0 = ctx.currentTime + 0.02;
			for (const [i, freq] of [660, 880].entries()) {
				const start = t0 + i * 0.18;
				const osc = ctx.createOscillator();
				const gain = ctx.createGain();
				osc.type = "sine";
				osc.frequency.value = freq;
				gain.gain.setValueAtTime(0.0001, start);
				gain.gain.exponentialRampToValueAtTime(0.2, start + 0.02);
				gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.15);
				osc.connect(gain).connect(ctx.destination);
				osc.start(start);
				osc.stop(start + 0.16);
			}
		} catch (err) {
			console.warn("capture cue failed", err);
		}
	}
}

function readEnabled(): boolean {
	try {
		return localStorage.getItem(STORAGE_KEY) !== "off";
	} catch {
		return true;
	}
}

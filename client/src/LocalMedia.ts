import { t } from "./i18n/index.js";

/** Camera capture: enough for a meeting tile, light on CPU (simulcast sends it at 1/4, 1/2 and full size). */
const CAMERA: MediaTrackConstraints = {
	width: { ideal: 640 },
	height: { ideal: 360 },
	frameRate: { ideal: 24, max: 30 },
};
const MIC: MediaTrackConstraints = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

export type DeviceKind = "audioinput" | "videoinput" | "audiooutput";

/** Why a device could not be opened, in words a person can act on. */
export function describeMediaError(err: unknown, what: "camera" | "microphone"): string {
	const name = err instanceof DOMException ? err.name : "";
	switch (name) {
		case "NotAllowedError":
		case "SecurityError":
			return t(`device.blocked.${what}`);
		case "NotFoundError":
		case "OverconstrainedError":
			return t(`device.notFound.${what}`);
		case "NotReadableError":
		case "AbortError":
			return t(`device.busy.${what}`);
		default:
			return t(`device.failed.${what}`);
	}
}

/**
 * This person's microphone and camera: which devices, whether each is on, and
 * the live tracks. The join page's device check and the meeting share one
 * instance, so what the person checked is what they send.
 */
export class LocalMedia {
	mic: MediaStreamTrack | undefined;
	camera: MediaStreamTrack | undefined;
	micDeviceId = "";
	cameraDeviceId = "";
	/** The loudspeaker chosen in the meeting ("" = the system's). */
	speakerDeviceId = "";
	/** What the person wants (the toggles); a track exists only while wanted and available. */
	micWanted = true;
	cameraWanted = true;
	readonly supported = !!navigator.mediaDevices?.getUserMedia;

	/** Opens the wanted devices that are not open yet. Returns one message per device that failed. */
	async open(): Promise<string[]> {
		const errors: string[] = [];
		if (!this.supported) return [t("device.unsupported")];
		if (this.micWanted && !this.mic) {
			try {
				await this.startMic();
			} catch (err) {
				errors.push(describeMediaError(err, "microphone"));
			}
		}
		if (this.cameraWanted && !this.camera) {
			try {
				await this.startCamera();
			} catch (err) {
				errors.push(describeMediaError(err, "camera"));
			}
		}
		return errors;
	}

	async startMic(): Promise<MediaStreamTrack> {
		this.stopMic();
		const audio = { ...MIC, ...(this.micDeviceId ? { deviceId: { exact: this.micDeviceId } } : {}) };
		const stream = await navigator.mediaDevices.getUserMedia({ audio });
		const track = stream.getAudioTracks()[0];
		if (!track) throw new DOMException("no audio track", "NotFoundError");
		this.mic = track;
		this.micDeviceId = track.getSettings().deviceId ?? this.micDeviceId;
		return track;
	}

	async startCamera(): Promise<MediaStreamTrack> {
		this.stopCamera();
		const video = { ...CAMERA, ...(this.cameraDeviceId ? { deviceId: { exact: this.cameraDeviceId } } : {}) };
		const stream = await navigator.mediaDevices.getUserMedia({ video });
		const track = stream.getVideoTracks()[0];
		if (!track) throw new DOMException("no video track", "NotFoundError");
		this.camera = track;
		this.cameraDeviceId = track.getSettings().deviceId ?? this.cameraDeviceId;
		return track;
	}

	/**
	 * Opens another device of a kind while the current one keeps running (what is sent switches
	 * without a gap); the caller stops the old track once the new one is in place (`retire`).
	 */
	async open2(kind: "camera" | "mic", deviceId: string): Promise<{ track: MediaStreamTrack; retire(): void }> {
		const old = kind === "camera" ? this.camera : this.mic;
		const constraints =
			kind === "camera"
				? { video: { ...CAMERA, deviceId: { exact: deviceId } } }
				: { audio: { ...MIC, deviceId: { exact: deviceId } } };
		const stream = await navigator.mediaDevices.getUserMedia(constraints);
		const track = (kind === "camera" ? stream.getVideoTracks() : stream.getAudioTracks())[0];
		if (!track) throw new DOMException("no track", "NotFoundError");
		if (kind === "camera") {
			this.camera = track;
			this.cameraDeviceId = deviceId;
		} else {
			this.mic = track;
			this.micDeviceId = deviceId;
		}
		return { track, retire: () => old?.stop() };
	}

	stopMic(): void {
		this.mic?.stop();
		this.mic = undefined;
	}

	/** Stops the camera (its light goes off). */
	stopCamera(): void {
		this.camera?.stop();
		this.camera = undefined;
	}

	stopAll(): void {
		this.stopMic();
		this.stopCamera();
	}

	/** Devices of a kind; labels are empty until the person allowed access once. */
	async devices(kind: DeviceKind): Promise<MediaDeviceInfo[]> {
		if (!navigator.mediaDevices?.enumerateDevices) return [];
		const all = await navigator.mediaDevices.enumerateDevices();
		return all.filter((d) => d.kind === kind && d.deviceId);
	}
}

/** Shows a microphone's loudness on a `<meter>` (0…1) while it runs. */
export class LevelMeter {
	#ctx: AudioContext | undefined;
	#source: MediaStreamAudioSourceNode | undefined;
	#frame = 0;
	readonly #meter: HTMLMeterElement;

	constructor(meter: HTMLMeterElement) {
		this.#meter = meter;
	}

	watch(track: MediaStreamTrack | undefined): void {
		this.stop();
		if (!track || typeof AudioContext === "undefined") return;
		const ctx = new AudioContext();
		const analyser = ctx.createAnalyser();
		analyser.fftSize = 512;
		const source = ctx.createMediaStreamSource(new MediaStream([track]));
		source.connect(analyser);
		this.#ctx = ctx;
		this.#source = source;
		const samples = new Float32Array(analyser.fftSize);
		const tick = () => {
			analyser.getFloatTimeDomainData(samples);
			let sum = 0;
			for (const s of samples) sum += s * s;
			const rms = Math.sqrt(sum / samples.length);
			// A comfortable speaking voice sits around 0.05–0.2 RMS: show it mid-scale.
			this.#meter.value = Math.min(1, rms * 4);
			this.#frame = requestAnimationFrame(tick);
		};
		tick();
		// Autoplay rules may start the context suspended; the next click resumes it.
		if (ctx.state === "suspended") {
			const resume = () => void ctx.resume().catch(() => undefined);
			document.addEventListener("click", resume, { once: true });
			void ctx.resume().catch(() => undefined);
		}
	}

	stop(): void {
		cancelAnimationFrame(this.#frame);
		this.#source?.disconnect();
		void this.#ctx?.close().catch(() => undefined);
		this.#ctx = undefined;
		this.#source = undefined;
		this.#meter.value = 0;
	}
}

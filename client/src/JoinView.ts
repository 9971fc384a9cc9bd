import { $, h, play } from "./dom.js";
import { isLocale, type Locale, onLocaleChange, setTenantDefault, t } from "./i18n/index.js";
import { type DeviceKind, LevelMeter, type LocalMedia } from "./LocalMedia.js";
import type { TokenClaims } from "./token.js";

export interface JoinValues {
	meetingId: string;
	displayName: string;
	passcode: string;
}

/** What `GET /api/meetings/:id/public` tells a join page. */
export interface PublicMeeting {
	joinCode: string;
	title: string;
	state: "scheduled" | "live" | "ended";
	needsPasscode: boolean;
	allowGuests: boolean;
	lobby: boolean;
	/** The tenant's default language for its pages (when the person's browser prefers neither). */
	locale?: Locale;
	/** The organisation's own privacy notice (tenant setting), linked on the join page. */
	privacyNoticeUrl?: string;
	/** Cluster: the node the live meeting lives on (its signaling goes there). */
	node?: { id: string; url: string };
}

const MEETING_ID = /^[A-Za-z0-9 -]+$/;

/** Looks a meeting up by ID; `null` when no meeting has it, `undefined` when the lookup failed. */
export async function fetchPublicMeeting(meetingId: string): Promise<PublicMeeting | null | undefined> {
	try {
		const res = await fetch(`/api/meetings/${encodeURIComponent(meetingId)}/public`, {
			headers: { accept: "application/json" },
			cache: "no-store",
		});
		if (res.status === 404) return null;
		if (!res.ok) return undefined;
		return (await res.json()) as PublicMeeting;
	} catch {
		return undefined;
	}
}

/**
 * The join page: meeting ID, name, passcode (shown when the meeting needs one and the person joins
 * as a guest), and the device check: camera preview, microphone level, device choice and whether
 * to join with each on.
 */
export class JoinView {
	readonly #form = $<HTMLFormElement>("#join-form");
	readonly #meetingId = $<HTMLInputElement>("input[name=meetingId]", this.#form);
	readonly #name = $<HTMLInputElement>("input[name=displayName]", this.#form);
	readonly #passcode = $<HTMLInputElement>("input[name=passcode]", this.#form);
	readonly #passcodeField = $("#passcode-field");
	readonly #summary = $("#meeting-summary");
	readonly #status = $("#join-status");
	readonly #submit = $<HTMLButtonElement>("button[type=submit]", this.#form);
	readonly #preview = $<HTMLVideoElement>("#preview");
	readonly #previewOff = $("#preview-off");
	readonly #wantCamera = $<HTMLInputElement>("#want-camera");
	readonly #wantMic = $<HTMLInputElement>("#want-mic");
	readonly #cameraSelect = $<HTMLSelectElement>("#camera-select");
	readonly #micSelect = $<HTMLSelectElement>("#mic-select");
	readonly #deviceError = $("#device-error");
	readonly #meter = new LevelMeter($<HTMLMeterElement>("#mic-level"));
	readonly #media: LocalMedia;
	#guest: boolean;
	#lookup = 0;
	#active = false;
	#claims: TokenClaims | undefined;
	meeting: PublicMeeting | null | undefined;

	constructor(
		media: LocalMedia,
		identity: { guest: boolean; claims?: TokenClaims | undefined },
		onJoin: (v: JoinValues) => void,
	) {
		this.#media = media;
		this.#guest = identity.guest;
		const params = new URLSearchParams(location.search);
		this.#meetingId.value = params.get("m") ?? "";
		this.#name.value = params.get("name") ?? identity.claims?.name ?? "";
		this.#renderIdentity(identity.claims);

		let timer: ReturnType<typeof setTimeout> | undefined;
		this.#meetingId.addEventListener("input", () => {
			clearTimeout(timer);
			timer = setTimeout(() => void this.refreshMeeting(), 400);
		});
		this.#form.addEventListener("submit", (ev) => {
			ev.preventDefault();
			const v = this.values();
			const problem: [string, HTMLInputElement] | undefined = !v.meetingId
				? [t("join.enterId"), this.#meetingId]
				: !MEETING_ID.test(v.meetingId)
					? [t("join.badId"), this.#meetingId]
					: !v.displayName
						? [t("join.enterName"), this.#name]
						: this.#guest && this.meeting?.needsPasscode && !v.passcode
							? [t("join.enterPasscode"), this.#passcode]
							: undefined;
			if (problem) {
				this.setStatus(problem[0]);
				problem[1].focus();
				return;
			}
			onJoin(v);
		});
		this.#wantCamera.addEventListener("change", () => void this.#toggle("camera"));
		this.#wantMic.addEventListener("change", () => void this.#toggle("mic"));
		this.#cameraSelect.addEventListener("change", () => void this.#choose("camera"));
		this.#micSelect.addEventListener("change", () => void this.#choose("mic"));
		navigator.mediaDevices?.addEventListener?.("devicechange", () => void this.#listDevices());
		if (this.#meetingId.value) void this.refreshMeeting();
		onLocaleChange(() => {
			this.#renderIdentity(this.#claims);
			this.#renderSummary();
			if (!this.#submit.disabled) this.setBusy(false);
			if (this.#active) void this.#listDevices();
		});
	}

	values(): JoinValues {
		return {
			meetingId: this.#meetingId.value.trim(),
			displayName: this.#name.value.trim(),
			passcode: this.#passcode.value,
		};
	}

	/** Shows the page and (re)starts the device check. */
	async show(): Promise<void> {
		this.#active = true;
		this.setBusy(false);
		this.#wantCamera.checked = this.#media.cameraWanted;
		this.#wantMic.checked = this.#media.micWanted;
		const errors = await this.#media.open();
		this.#deviceError.textContent = errors.join(" ");
		if (!this.#active) return; // left the page meanwhile
		this.#showPreview();
		await this.#listDevices();
	}

	/** Leaving the page: the tracks stay open (they are what the meeting sends), the meter and preview stop. */
	hide(): void {
		this.#active = false;
		this.#meter.stop();
		this.#preview.srcObject = null;
	}

	/** After a refusal: show the passcode field (if relevant) and put the cursor where the fix goes. */
	focusForFix(code: string): void {
		if (code === "wrong_passcode") {
			this.#passcodeField.hidden = false;
			this.#passcode.value = "";
			this.#passcode.focus();
		} else if (code === "name_required") {
			this.#name.focus();
		} else {
			this.#meetingId.focus();
		}
	}

	/** Joining as a guest from now on (the token was dropped). */
	becomeGuest(): void {
		this.#guest = true;
		this.#renderIdentity(undefined);
		void this.refreshMeeting();
	}

	setBusy(busy: boolean, text = ""): void {
		this.#submit.disabled = busy;
		this.#submit.textContent = busy ? t("join.joining") : t("join.submit");
		this.setStatus(text);
		this.#status.classList.toggle("error", !busy);
	}

	setStatus(text: string): void {
		this.#status.textContent = text;
	}

	/** Looks up the typed meeting: title, whether it is live, whether a guest needs a passcode. */
	async refreshMeeting(): Promise<PublicMeeting | null | undefined> {
		const id = this.#meetingId.value.trim();
		const lookup = ++this.#lookup;
		if (!id || !MEETING_ID.test(id)) {
			this.meeting = undefined;
			this.#summary.textContent = "";
			return undefined;
		}
		const m = await fetchPublicMeeting(id);
		if (lookup !== this.#lookup) return m; // a newer lookup is under way
		this.meeting = m;
		if (m) setTenantDefault(isLocale(m.locale) ? m.locale : undefined);
		this.#renderSummary();
		return m;
	}

	#renderSummary(): void {
		const m = this.meeting;
		if (m === null) {
			this.#summary.textContent = t("join.notFound");
		} else if (m) {
			const state =
				m.state === "live"
					? t("join.stateLive")
					: m.state === "ended"
						? t("join.stateEnded")
						: t("join.stateScheduled");
			this.#summary.replaceChildren(h("strong", null, m.title), ` — ${state}`);
			if (this.#guest && m.needsPasscode) this.#passcodeField.hidden = false;
			if (this.#guest && !m.allowGuests) this.#summary.append(h("br"), t("join.needsSignIn"));
			if (m.privacyNoticeUrl) {
				this.#summary.append(
					h("br"),
					h(
						"a",
						{ href: m.privacyNoticeUrl, target: "_blank", rel: "noreferrer", "data-testid": "join-privacy" },
						t("join.privacy"),
					),
				);
			}
		} else {
			this.#summary.textContent = "";
		}
	}

	#renderIdentity(claims: TokenClaims | undefined): void {
		this.#claims = claims;
		$("#identity-note").textContent = this.#guest
			? t("join.asGuest")
			: claims?.role === "host"
				? t("join.asHost")
				: t("join.withLink");
	}

	#showPreview(): void {
		const cam = this.#media.camera;
		this.#preview.srcObject = cam ? new MediaStream([cam]) : null;
		if (cam) play(this.#preview);
		this.#previewOff.hidden = !!cam;
		this.#meter.watch(this.#media.mic);
	}

	async #toggle(which: "camera" | "mic"): Promise<void> {
		const box = which === "camera" ? this.#wantCamera : this.#wantMic;
		if (which === "camera") this.#media.cameraWanted = box.checked;
		else this.#media.micWanted = box.checked;
		if (!box.checked) {
			if (which === "camera") this.#media.stopCamera();
			else this.#media.stopMic();
		}
		const errors = await this.#media.open();
		this.#deviceError.textContent = errors.join(" ");
		this.#showPreview();
		await this.#listDevices();
	}

	async #choose(which: "camera" | "mic"): Promise<void> {
		const select = which === "camera" ? this.#cameraSelect : this.#micSelect;
		if (which === "camera") {
			this.#media.cameraDeviceId = select.value;
			if (this.#media.cameraWanted) this.#media.stopCamera();
		} else {
			this.#media.micDeviceId = select.value;
			if (this.#media.micWanted) this.#media.stopMic();
		}
		const errors = await this.#media.open();
		this.#deviceError.textContent = errors.join(" ");
		this.#showPreview();
	}

	async #listDevices(): Promise<void> {
		await fillDevices(this.#media, this.#cameraSelect, "videoinput", this.#media.cameraDeviceId);
		await fillDevices(this.#media, this.#micSelect, "audioinput", this.#media.micDeviceId);
	}
}

const UNNAMED = { videoinput: "device.cameraN", audioinput: "device.micN", audiooutput: "device.speakerN" } as const;

/** Fills a device `<select>` (a device without a label yet gets "Camera 2"). */
export async function fillDevices(
	media: LocalMedia,
	select: HTMLSelectElement,
	kind: DeviceKind,
	current: string,
): Promise<void> {
	const devices = await media.devices(kind);
	select.replaceChildren(
		...devices.map((d, i) =>
			h("option", { value: d.deviceId, selected: d.deviceId === current }, d.label || t(UNNAMED[kind], { n: i + 1 })),
		),
	);
	select.disabled = devices.length === 0;
}

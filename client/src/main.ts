import type { PeerInfo } from "../../shared/protocol.js";
import { MeetingSession, type RemoteTrack } from "./MeetingSession.js";
import { SignalingError } from "./Signaling.js";

const $ = <T extends HTMLElement>(sel: string): T => {
	const el = document.querySelector<T>(sel);
	if (!el) throw new Error(`missing ${sel}`);
	return el;
};

const form = $<HTMLFormElement>("#join-form");
const joinError = $<HTMLParagraphElement>("#join-error");
const meeting = $<HTMLElement>("#meeting");
const grid = $<HTMLDivElement>("#grid");
const status = $<HTMLSpanElement>("#status");
const names = new Map<string, string>();

// Prefill from the URL: /?m=MEETING-ID&name=Ada
const params = new URLSearchParams(location.search);
for (const [param, field] of [
	["m", "meetingId"],
	["name", "displayName"],
] as const) {
	const v = params.get(param);
	if (v) (form.elements.namedItem(field) as HTMLInputElement).value = v;
}

function tile(id: string, label: string): HTMLDivElement {
	let el = grid.querySelector<HTMLDivElement>(`[data-peer="${id}"]`);
	if (!el) {
		el = document.createElement("div");
		el.className = "tile";
		el.dataset.peer = id;
		const video = document.createElement("video");
		video.autoplay = true;
		video.playsInline = true;
		video.srcObject = new MediaStream();
		const name = document.createElement("span");
		name.className = "name";
		name.textContent = label;
		el.append(video, name);
		grid.append(el);
	}
	return el;
}

function addTrack(t: RemoteTrack): void {
	const el = tile(t.peerId, names.get(t.peerId) ?? "…");
	const video = el.querySelector("video") as HTMLVideoElement;
	(video.srcObject as MediaStream).addTrack(t.track);
	t.track.addEventListener("ended", () => (video.srcObject as MediaStream).removeTrack(t.track));
}

form.addEventListener("submit", async (ev) => {
	ev.preventDefault();
	joinError.hidden = true;
	const data = new FormData(form);
	const meetingId = String(data.get("meetingId"));
	const displayName = String(data.get("displayName"));
	try {
		const local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
		const { session, peers } = await MeetingSession.join(meetingId, displayName, {
			peerJoined: (p: PeerInfo) => {
				names.set(p.id, p.displayName);
				tile(p.id, p.displayName);
			},
			peerLeft: (id) => grid.querySelector(`[data-peer="${id}"]`)?.remove(),
			trackAdded: addTrack,
			activeSpeaker: (id) => {
				for (const el of grid.querySelectorAll<HTMLElement>(".tile"))
					el.classList.toggle("speaking", el.dataset.peer === id);
			},
			disconnected: (reason) => {
				status.textContent = `Disconnected (${reason}). Reload to rejoin.`;
			},
		});
		for (const p of peers) {
			names.set(p.id, p.displayName);
			tile(p.id, p.displayName);
		}
		const me = tile(session.peerId, `${displayName} (you)`);
		(me.querySelector("video") as HTMLVideoElement).muted = true;
		(me.querySelector("video") as HTMLVideoElement).srcObject = local;
		form.hidden = true;
		meeting.hidden = false;
		$("#meeting-title").textContent = `Meeting ${meetingId}`;
		const [audio] = local.getAudioTracks();
		const [video] = local.getVideoTracks();
		if (audio) await session.publish("mic", audio);
		if (video) await session.publish("camera", video);
		status.textContent = "Connected";
		$("#leave").addEventListener("click", async () => {
			await session.leave();
			for (const t of local.getTracks()) t.stop();
			location.reload();
		});
	} catch (err) {
		joinError.textContent = err instanceof SignalingError || err instanceof Error ? err.message : String(err);
		joinError.hidden = false;
	}
});

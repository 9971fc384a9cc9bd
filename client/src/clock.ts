const pad = (n: number) => String(n).padStart(2, "0");

/** `m:ss` (or `h:mm:ss`) of a duration or a position in a recording or transcript. */
export function clock(ms: number): string {
	const s = Math.max(0, Math.floor(ms / 1000));
	const hh = Math.floor(s / 3600);
	const mm = Math.floor((s % 3600) / 60);
	return hh ? `${hh}:${pad(mm)}:${pad(s % 60)}` : `${mm}:${pad(s % 60)}`;
}

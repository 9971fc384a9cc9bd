/**
 * The few EBML (RFC 8794) encodings a Matroska/WebM writer needs: element IDs as their raw bytes, data sizes as
 * variable-length integers, and the element kinds Matroska headers use (unsigned integers, floats, strings, binary,
 * masters). Everything is built into plain byte arrays; the writer copies them into its buffers.
 */

/** An element: its ID (as written, marker bits included) and its body. */
export type EbmlElement = { id: number; data: EbmlData };
export type EbmlData = number | string | Uint8Array | { float: number } | EbmlElement[];

/** The size of an element whose size is not known when it is written (0xFF: a 1-byte VINT with all value bits set). */
export const UNKNOWN_SIZE = Uint8Array.of(0xff);

/** How many bytes an EBML variable-length integer holding `n` takes (1–8; the all-ones value of a length is reserved). */
export function vintLength(n: number): number {
	if (n < 0x7f) return 1;
	if (n < 0x3fff) return 2;
	if (n < 0x1fffff) return 3;
	if (n < 0xfffffff) return 4;
	if (n < 0x7ffffffff) return 5;
	if (n < 0x3ffffffffff) return 6;
	if (n < 0x1ffffffffffff) return 7;
	return 8;
}

/** Writes `n` as an EBML variable-length integer of `len` bytes at `at`; returns the position after it. */
export function writeVint(buf: Uint8Array, at: number, n: number, len = vintLength(n)): number {
	let v = n;
	for (let i = len - 1; i > 0; i--) {
		buf[at + i] = v % 256;
		v = Math.floor(v / 256);
	}
	buf[at] = v | (0x80 >> (len - 1));
	return at + len;
}

/** The bytes of an element ID (1–4 bytes, as the ID is written). */
export function idBytes(id: number): number[] {
	const out: number[] = [];
	for (let v = id; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
	return out;
}

function uintBytes(n: number): number[] {
	const out: number[] = [];
	for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
	return out.length ? out : [0];
}

/** Encodes one element (and its children) into bytes. */
export function encode(el: EbmlElement): Uint8Array {
	const body = encodeData(el.data);
	const id = idBytes(el.id);
	const out = new Uint8Array(id.length + vintLength(body.length) + body.length);
	out.set(id, 0);
	const at = writeVint(out, id.length, body.length);
	out.set(body, at);
	return out;
}

function encodeData(data: EbmlData): Uint8Array {
	if (typeof data === "number") return Uint8Array.from(uintBytes(data));
	if (typeof data === "string") return new TextEncoder().encode(data);
	if (data instanceof Uint8Array) return data;
	if (Array.isArray(data)) {
		const parts = data.map(encode);
		const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
		let at = 0;
		for (const p of parts) {
			out.set(p, at);
			at += p.length;
		}
		return out;
	}
	const f = new Uint8Array(4);
	new DataView(f.buffer).setFloat32(0, data.float);
	return f;
}

/** Matroska element IDs used by the writer. */
export const ID = {
	EBML: 0x1a45dfa3,
	EBMLVersion: 0x4286,
	EBMLReadVersion: 0x42f7,
	EBMLMaxIDLength: 0x42f2,
	EBMLMaxSizeLength: 0x42f3,
	DocType: 0x4282,
	DocTypeVersion: 0x4287,
	DocTypeReadVersion: 0x4285,
	Segment: 0x18538067,
	Info: 0x1549a966,
	TimestampScale: 0x2ad7b1,
	MuxingApp: 0x4d80,
	WritingApp: 0x5741,
	Tracks: 0x1654ae6b,
	TrackEntry: 0xae,
	TrackNumber: 0xd7,
	TrackUID: 0x73c5,
	TrackType: 0x83,
	FlagLacing: 0x9c,
	Language: 0x22b59c,
	CodecID: 0x86,
	CodecPrivate: 0x63a2,
	Video: 0xe0,
	PixelWidth: 0xb0,
	PixelHeight: 0xba,
	Audio: 0xe1,
	SamplingFrequency: 0xb5,
	Channels: 0x9f,
	Cluster: 0x1f43b675,
	Timestamp: 0xe7,
	SimpleBlock: 0xa3,
	Cues: 0x1c53bb6b,
	CuePoint: 0xbb,
	CueTime: 0xb3,
	CueTrackPositions: 0xb7,
	CueTrack: 0xf7,
	CueClusterPosition: 0xf1,
} as const;

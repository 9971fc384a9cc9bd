/**
 * H.264 over RTP (RFC 6184, packetization-mode 0 and 1: what browsers send) put back into access units, and the
 * parameter sets a container needs. Pure functions and one small assembler: the Depacketizer owns the jitter window,
 * loss and timestamps; this only knows the payload format.
 */

/** NAL unit types (ITU-T H.264 Table 7-1) this code looks at. */
export const NAL = { IDR: 5, SEI: 6, SPS: 7, PPS: 8, AUD: 9, FILLER: 12, STAP_A: 24, FU_A: 28 } as const;

export function nalType(nal: Uint8Array): number {
	return (nal[0] as number) & 0x1f;
}

/** What one RTP payload contributes to the access unit being built. */
export type PayloadUnits =
	/** Whole NAL units (single NAL unit packet, or a STAP-A's aggregated units). */
	| { kind: "nals"; nals: Buffer[] }
	/** A piece of one fragmented NAL unit (FU-A): its reconstructed header on the first piece. */
	| { kind: "fragment"; start: boolean; end: boolean; header: number; data: Buffer }
	/** Not usable: empty, malformed, or a packetization this mode does not allow (STAP-B, MTAP, FU-B). */
	| { kind: "invalid"; reason: string };

/** Splits one RTP payload (RFC 6184 §5.6–5.8) into NAL units or a fragment. */
export function parsePayload(payload: Buffer): PayloadUnits {
	if (payload.length < 1) return { kind: "invalid", reason: "empty payload" };
	const type = nalType(payload);
	if (type >= 1 && type <= 23) return { kind: "nals", nals: [payload] };
	if (type === NAL.STAP_A) {
		const nals: Buffer[] = [];
		let i = 1;
		while (i + 2 <= payload.length) {
			const size = payload.readUInt16BE(i);
			i += 2;
			if (size === 0 || i + size > payload.length)
				return { kind: "invalid", reason: "STAP-A unit overruns the packet" };
			nals.push(payload.subarray(i, i + size));
			i += size;
		}
		if (i !== payload.length || nals.length === 0) return { kind: "invalid", reason: "malformed STAP-A" };
		return { kind: "nals", nals };
	}
	if (type === NAL.FU_A) {
		if (payload.length < 2) return { kind: "invalid", reason: "FU-A without its header" };
		const fu = payload[1] as number;
		const start = (fu & 0x80) !== 0;
		const end = (fu & 0x40) !== 0;
		if (start && end) return { kind: "invalid", reason: "FU-A with both start and end bits" };
		const header = ((payload[0] as number) & 0xe0) | (fu & 0x1f);
		return { kind: "fragment", start, end, header, data: payload.subarray(2) };
	}
	return { kind: "invalid", reason: `NAL unit type ${type} is not allowed in packetization-mode 0/1` };
}

/** An access unit (one picture) in AVCC form: each NAL unit preceded by its 4-byte big-endian length. */
export function toAvcc(nals: readonly Uint8Array[]): Buffer {
	let size = 0;
	for (const n of nals) size += 4 + n.length;
	const out = Buffer.allocUnsafe(size);
	let i = 0;
	for (const n of nals) {
		out.writeUInt32BE(n.length, i);
		out.set(n, i + 4);
		i += 4 + n.length;
	}
	return out;
}

/** The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1): Matroska's CodecPrivate for V_MPEG4/ISO/AVC. */
export function avcDecoderConfig(sps: Uint8Array, pps: Uint8Array): Uint8Array {
	const profile = sps[1] as number;
	const high = [100, 110, 122, 144].includes(profile);
	const out = Buffer.alloc(11 + sps.length + pps.length + (high ? 4 : 0));
	out[0] = 1;
	out[1] = profile;
	out[2] = sps[2] as number;
	out[3] = sps[3] as number;
	out[4] = 0xff; // 6 reserved bits, lengthSizeMinusOne = 3
	out[5] = 0xe1; // 3 reserved bits, one SPS
	out.writeUInt16BE(sps.length, 6);
	out.set(sps, 8);
	let i = 8 + sps.length;
	out[i++] = 1; // one PPS
	out.writeUInt16BE(pps.length, i);
	out.set(pps, i + 2);
	i += 2 + pps.length;
	if (high) {
		const info = parseSps(sps);
		out[i++] = 0xfc | (info?.chromaFormatIdc ?? 1);
		out[i++] = 0xf8 | ((info?.bitDepthLuma ?? 8) - 8);
		out[i++] = 0xf8 | ((info?.bitDepthChroma ?? 8) - 8);
		out[i++] = 0; // no SPS extensions
	}
	return new Uint8Array(out);
}

/** The WebCodecs codec string (`avc1.PPCCLL`) of a sequence parameter set. */
export function avcCodecString(sps: Uint8Array): string {
	const hex = (b: number | undefined) => (b ?? 0).toString(16).padStart(2, "0");
	return `avc1.${hex(sps[1])}${hex(sps[2])}${hex(sps[3])}`;
}

export interface SpsInfo {
	profileIdc: number;
	levelIdc: number;
	chromaFormatIdc: number;
	bitDepthLuma: number;
	bitDepthChroma: number;
	/** The picture size after cropping. */
	width: number;
	height: number;
}

/** Exp-Golomb reader over an RBSP (emulation prevention bytes removed). */
class Bits {
	#b: Uint8Array;
	#i = 0;
	constructor(b: Uint8Array) {
		this.#b = b;
	}
	bit(): number {
		const byte = this.#b[this.#i >> 3];
		if (byte === undefined) throw new RangeError("SPS ends early");
		const v = (byte >> (7 - (this.#i & 7))) & 1;
		this.#i++;
		return v;
	}
	bits(n: number): number {
		let v = 0;
		for (let k = 0; k < n; k++) v = v * 2 + this.bit();
		return v;
	}
	ue(): number {
		let zeros = 0;
		while (this.bit() === 0) if (++zeros > 31) throw new RangeError("bad Exp-Golomb code");
		return 2 ** zeros - 1 + this.bits(zeros);
	}
	se(): number {
		const k = this.ue();
		return k & 1 ? (k + 1) / 2 : -(k / 2);
	}
}

function rbsp(nal: Uint8Array): Uint8Array {
	const out: number[] = [];
	for (let i = 0; i < nal.length; i++) {
		const b = nal[i] as number;
		if (b === 3 && i >= 2 && nal[i - 1] === 0 && nal[i - 2] === 0) continue;
		out.push(b);
	}
	return Uint8Array.from(out);
}

/** Reads the picture size (and what avcC needs) from a sequence parameter set NAL unit; undefined if malformed. */
export function parseSps(sps: Uint8Array): SpsInfo | undefined {
	if (sps.length < 4 || nalType(sps) !== NAL.SPS) return undefined;
	try {
		const r = new Bits(rbsp(sps.subarray(1)));
		const profileIdc = r.bits(8);
		r.bits(8); // constraint flags
		const levelIdc = r.bits(8);
		r.ue(); // seq_parameter_set_id
		let chromaFormatIdc = 1;
		let bitDepthLuma = 8;
		let bitDepthChroma = 8;
		if ([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].includes(profileIdc)) {
			chromaFormatIdc = r.ue();
			if (chromaFormatIdc === 3) r.bit(); // separate_colour_plane_flag
			bitDepthLuma = r.ue() + 8;
			bitDepthChroma = r.ue() + 8;
			r.bit(); // qpprime_y_zero_transform_bypass_flag
			if (r.bit()) {
				for (let i = 0; i < (chromaFormatIdc === 3 ? 12 : 8); i++) {
					if (!r.bit()) continue;
					let last = 8;
					let next = 8;
					for (let j = 0; j < (i < 6 ? 16 : 64); j++) {
						if (next !== 0) next = (last + r.se() + 256) % 256;
						last = next === 0 ? last : next;
					}
				}
			}
		}
		r.ue(); // log2_max_frame_num_minus4
		const pocType = r.ue();
		if (pocType === 0) r.ue();
		else if (pocType === 1) {
			r.bit();
			r.se();
			r.se();
			const n = r.ue();
			for (let i = 0; i < n; i++) r.se();
		}
		r.ue(); // max_num_ref_frames
		r.bit(); // gaps_in_frame_num_value_allowed_flag
		const widthMbs = r.ue() + 1;
		const heightMapUnits = r.ue() + 1;
		const frameMbsOnly = r.bit();
		if (!frameMbsOnly) r.bit(); // mb_adaptive_frame_field_flag
		r.bit(); // direct_8x8_inference_flag
		let crop = [0, 0, 0, 0];
		if (r.bit()) crop = [r.ue(), r.ue(), r.ue(), r.ue()];
		const subW = chromaFormatIdc === 1 || chromaFormatIdc === 2 ? 2 : 1;
		const subH = chromaFormatIdc === 1 ? 2 : 1;
		const cropX = chromaFormatIdc === 0 ? 1 : subW;
		const cropY = (chromaFormatIdc === 0 ? 1 : subH) * (2 - frameMbsOnly);
		const [l, rt, t, b] = crop as [number, number, number, number];
		const width = widthMbs * 16 - cropX * (l + rt);
		const height = (2 - frameMbsOnly) * heightMapUnits * 16 - cropY * (t + b);
		if (width <= 0 || height <= 0) return undefined;
		return { profileIdc, levelIdc, chromaFormatIdc, bitDepthLuma, bitDepthChroma, width, height };
	} catch {
		return undefined;
	}
}

/** `sprop-parameter-sets` (RFC 6184 §8.1: base64 NAL units, comma-separated) → the NAL units. */
export function parseSpropParameterSets(value: string | undefined): Buffer[] {
	if (!value) return [];
	return value
		.split(",")
		.map((s) => Buffer.from(s.trim(), "base64"))
		.filter((b) => b.length > 0);
}

/**
 * RTP (RFC 3550), its header extensions (RFC 8285) and VP8 payload (RFC 7741) parsing: what the recorder needs to
 * reassemble frames. Header extensions are located but not interpreted here (abs-capture-time, for instance, is read
 * by whoever needs it, from `extensionOffset`).
 */

export interface RtpHeader {
	payloadType: number;
	marker: boolean;
	sequence: number;
	timestamp: number;
	ssrc: number;
	/** Offset of the payload in the packet. */
	payloadOffset: number;
	/** Payload length (padding excluded). */
	payloadLength: number;
	/** The header extension's profile (0xBEDE one-byte, 0x100x two-byte) and where its data starts/ends; 0 when none. */
	extensionProfile: number;
	extensionOffset: number;
	extensionLength: number;
}

/** True for RTCP packets (payload type 200–204 as in RFC 5761's demultiplexing rule). */
export function isRtcp(packet: Buffer): boolean {
	const pt = packet[1] ?? 0;
	return packet.length >= 4 && pt >= 192 && pt <= 223;
}

/** The RTP header of `packet`, or undefined when it is not a well-formed RTP v2 packet. */
export function parseRtp(packet: Buffer): RtpHeader | undefined {
	if (packet.length < 12) return undefined;
	const b0 = packet[0] as number;
	const b1 = packet[1] as number;
	if (b0 >> 6 !== 2) return undefined;
	let offset = 12 + (b0 & 0x0f) * 4;
	let extensionProfile = 0;
	let extensionOffset = 0;
	let extensionLength = 0;
	if (b0 & 0x10) {
		if (packet.length < offset + 4) return undefined;
		extensionProfile = packet.readUInt16BE(offset);
		extensionLength = packet.readUInt16BE(offset + 2) * 4;
		extensionOffset = offset + 4;
		offset += 4 + extensionLength;
	}
	let end = packet.length;
	if (b0 & 0x20) end -= packet[packet.length - 1] as number;
	if (offset > end) return undefined;
	return {
		payloadType: b1 & 0x7f,
		marker: (b1 & 0x80) !== 0,
		sequence: packet.readUInt16BE(2),
		timestamp: packet.readUInt32BE(4),
		ssrc: packet.readUInt32BE(8),
		payloadOffset: offset,
		payloadLength: end - offset,
		extensionProfile,
		extensionOffset,
		extensionLength,
	};
}

/**
 * The header extension elements of a packet (RFC 8285, one-byte and two-byte forms): id → data. For the per-packet
 * metadata some extensions carry (abs-capture-time, audio level…), looked up by the id the SDP negotiated.
 */
export function headerExtensions(packet: Buffer, header: RtpHeader): Map<number, Buffer> {
	const out = new Map<number, Buffer>();
	const { extensionProfile: profile, extensionOffset: start, extensionLength: length } = header;
	if (!length) return out;
	const end = Math.min(packet.length, start + length);
	const oneByte = profile === 0xbede;
	const twoByte = (profile & 0xfff0) === 0x1000;
	if (!oneByte && !twoByte) return out;
	let i = start;
	while (i < end) {
		const b = packet[i] as number;
		if (b === 0) {
			i++; // padding
			continue;
		}
		let id: number;
		let len: number;
		if (oneByte) {
			id = b >> 4;
			len = (b & 0x0f) + 1;
			if (id === 15) break;
			i += 1;
		} else {
			if (i + 1 >= end) break;
			id = b;
			len = packet[i + 1] as number;
			i += 2;
		}
		if (i + len > end) break;
		out.set(id, packet.subarray(i, i + len));
		i += len;
	}
	return out;
}

/** a − b for 16-bit RTP sequence numbers, in −32768…32767 (positive: a is after b). */
export function seqDiff(a: number, b: number): number {
	return ((a - b + 0x8000) & 0xffff) - 0x8000;
}

/**
 * Extends 32-bit RTP timestamps to a monotonic-ish 53-bit counter across wraps: each value is placed nearest to the
 * previous one (a jump of less than 2³¹ either way), so out-of-order packets around a wrap land right too.
 */
export class TimestampUnwrapper {
	#last: number | undefined;

	unwrap(ts: number): number {
		if (this.#last === undefined) {
			this.#last = ts;
			return ts;
		}
		const lastLow = this.#last % 0x1_0000_0000;
		let delta = ts - lastLow;
		if (delta > 0x8000_0000) delta -= 0x1_0000_0000;
		else if (delta < -0x8000_0000) delta += 0x1_0000_0000;
		const value = this.#last + delta;
		if (delta > 0) this.#last = value;
		return value;
	}

	reset(): void {
		this.#last = undefined;
	}
}

/**
 * True when the packet starts a VP8 key frame: the payload descriptor says
 * "start of partition 0" and the VP8 payload header's P bit is 0.
 */
export function isVp8KeyframeStart(packet: Buffer, header: RtpHeader): boolean {
	let i = header.payloadOffset;
	const end = header.payloadOffset + header.payloadLength;
	if (i >= end) return false;
	const d = packet[i++] as number;
	const start = (d & 0x10) !== 0;
	const pid = d & 0x07;
	if (!start || pid !== 0) return false;
	if (d & 0x80) {
		if (i >= end) return false;
		const x = packet[i++] as number;
		if (x & 0x80) {
			if (i >= end) return false;
			i += (packet[i] as number) & 0x80 ? 2 : 1; // PictureID, 7 or 15 bits
		}
		if (x & 0x40) i += 1; // TL0PICIDX
		if (x & 0x30) i += 1; // TID/KEYIDX
	}
	if (i >= end) return false;
	return ((packet[i] as number) & 0x01) === 0;
}

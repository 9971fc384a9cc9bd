/** Just enough RTP (RFC 3550) and VP8 payload (RFC 7741) parsing to relay and cut segments at key frames. */

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
	if (b0 & 0x10) {
		if (packet.length < offset + 4) return undefined;
		offset += 4 + packet.readUInt16BE(offset + 2) * 4;
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
	};
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

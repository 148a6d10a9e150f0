/**
 * The virtio-net header (struct virtio_net_hdr of the virtio specification's
 * network device): the per-frame metadata a virtio-net driver and device exchange
 * for checksum and segmentation offloads, and what Linux's TUN/TAP puts before each
 * frame on a tap opened with IFF_VNET_HDR (tap.ts, vnet_hdr=on).
 *
 * Layout, little-endian (virtio 1.0; a tap on a little-endian host uses it too):
 *   0  flags        NEEDS_CSUM (1): the L4 checksum is partial; complete it by summing
 *                   from csum_start and storing at csum_start + csum_offset.
 *                   DATA_VALID (2): the checksum was verified already.
 *   1  gso_type     NONE (0), TCPV4 (1), UDP (3), TCPV6 (4), UDP_L4 (5), | ECN (0x80):
 *                   the frame is one large segment to be cut into gso_size pieces.
 *   2  hdr_len      bytes of Ethernet, IP and L4 headers (a hint)
 *   4  gso_size     payload bytes per segment
 *   6  csum_start
 *   8  csum_offset
 *   10 num_buffers  only in the 12-byte form (mergeable receive buffers or VERSION_1)
 *
 * A plain header (no flags, no GSO) says nothing about its frame: the frame is
 * complete and its checksums are filled. Frames under a GSO header may be up to
 * MAX_GSO_FRAME bytes. Views, not copies: the readers take the header's bytes.
 */

/** The header without num_buffers (legacy virtio, the tap's default). */
export const VNET_HDR_LEN = 10;
/** The header with num_buffers. */
export const VNET_HDR_LEN_MRG = 12;

export const VNET_HDR_F_NEEDS_CSUM = 0x01;
export const VNET_HDR_F_DATA_VALID = 0x02;

export const VNET_HDR_GSO_NONE = 0;
export const VNET_HDR_GSO_TCPV4 = 1;
export const VNET_HDR_GSO_UDP = 3;
export const VNET_HDR_GSO_TCPV6 = 4;
export const VNET_HDR_GSO_UDP_L4 = 5;
export const VNET_HDR_GSO_ECN = 0x80;

/** The largest frame a GSO header may carry: an Ethernet header, a VLAN tag and a 64 KiB IP packet. */
export const MAX_GSO_FRAME = 14 + 4 + 65535;

export interface VnetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

/** True when the header asks for nothing: no partial checksum, no segmentation, no verified-checksum hint. */
export function isPlainVnetHeader(bytes: Uint8Array): boolean {
  return bytes[0] === 0 && bytes[1] === 0;
}

/** True when the frame is not complete as it is: its checksum is partial, or it is a segment to cut. */
export function vnetHeaderAsksForWork(bytes: Uint8Array): boolean {
  return (bytes[0]! & VNET_HDR_F_NEEDS_CSUM) !== 0 || isGsoVnetHeader(bytes);
}

/** True when the header's frame is a segment to cut (and may exceed the link's MTU). */
export function isGsoVnetHeader(bytes: Uint8Array): boolean {
  return (bytes[1]! & ~VNET_HDR_GSO_ECN) !== VNET_HDR_GSO_NONE;
}

/** Reads the fields of a 10- or 12-byte header. */
export function readVnetHeader(bytes: Uint8Array): VnetHeader {
  if (bytes.length < VNET_HDR_LEN) throw new Error(`a virtio-net header is at least ${VNET_HDR_LEN} bytes, not ${bytes.length}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, VNET_HDR_LEN);
  return {
    flags: v.getUint8(0),
    gsoType: v.getUint8(1),
    hdrLen: v.getUint16(2, true),
    gsoSize: v.getUint16(4, true),
    csumStart: v.getUint16(6, true),
    csumOffset: v.getUint16(8, true),
  };
}

/** A fresh header of `length` bytes (10 or 12) holding `fields` (absent fields are 0; num_buffers is 0). */
export function encodeVnetHeader(fields: Partial<VnetHeader>, length = VNET_HDR_LEN): Uint8Array {
  if (length !== VNET_HDR_LEN && length !== VNET_HDR_LEN_MRG) throw new Error(`a virtio-net header is ${VNET_HDR_LEN} or ${VNET_HDR_LEN_MRG} bytes, not ${length}`);
  const bytes = new Uint8Array(length);
  const v = new DataView(bytes.buffer);
  v.setUint8(0, fields.flags ?? 0);
  v.setUint8(1, fields.gsoType ?? 0);
  v.setUint16(2, fields.hdrLen ?? 0, true);
  v.setUint16(4, fields.gsoSize ?? 0, true);
  v.setUint16(6, fields.csumStart ?? 0, true);
  v.setUint16(8, fields.csumOffset ?? 0, true);
  return bytes;
}

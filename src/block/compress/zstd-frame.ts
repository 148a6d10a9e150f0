/**
 * Walks one Zstandard frame (RFC 8878 section 3.1.1) without decoding it, to find
 * where it ends and what its header declares. qcow2 stores a compressed cluster's
 * length in whole 512-byte sectors, so the bytes after the frame are padding or the
 * next cluster's data; the decoder must be handed exactly the frame.
 *
 * Layout: magic 0xFD2FB528 (little endian); Frame_Header_Descriptor (FCS flag in
 * bits 7-6, Single_Segment in bit 5, reserved bit 3 must be 0, Content_Checksum in
 * bit 2, Dictionary_ID flag in bits 1-0); Window_Descriptor (absent for single
 * segment); Dictionary_ID (0/1/2/4 bytes); Frame_Content_Size (0/1/2/4/8 bytes, a
 * 2-byte field is offset by 256); then blocks, each a 3-byte little-endian header
 * (Last_Block bit 0, Block_Type bits 1-2: raw, RLE, compressed, reserved; Block_Size
 * bits 3-23) followed by Block_Size bytes (one byte for RLE); then an optional 4-byte
 * checksum. Any inconsistency (bad magic, reserved bits, a block past the end of the
 * input) is an ImageFormatError naming it.
 */
import { ImageFormatError } from '../node.js';

const ZSTD_MAGIC = 0xfd2fb528;
const MAX_BLOCK_SIZE = 128 * 1024;

export interface ZstdFrameInfo {
  /** Bytes from the start of the input to the end of the frame. */
  length: number;
  /** The declared decompressed size, or null when the header leaves it out. */
  contentSize: number | null;
}

export function scanZstdFrame(src: Uint8Array): ZstdFrameInfo {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const need = (pos: number, n: number, what: string): void => {
    if (pos + n > src.length) {
      throw new ImageFormatError(`corrupt zstd frame: ${what} at byte ${pos} runs past the ${src.length} compressed bytes`);
    }
  };
  need(0, 5, 'frame header');
  const magic = view.getUint32(0, true);
  if (magic !== ZSTD_MAGIC) {
    throw new ImageFormatError(`corrupt zstd frame: magic number 0x${magic.toString(16)} is not 0x${ZSTD_MAGIC.toString(16)}`);
  }
  const descriptor = src[4]!;
  if (descriptor & 0x08) throw new ImageFormatError('corrupt zstd frame: reserved bit of the frame header descriptor is set');
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor & 0x20) !== 0;
  const hasChecksum = (descriptor & 0x04) !== 0;
  const dictIdBytes = [0, 1, 2, 4][descriptor & 0x03]!;
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;

  let pos = 5 + (singleSegment ? 0 : 1) + dictIdBytes;
  need(pos, fcsBytes, 'frame content size');
  let contentSize: number | null = null;
  if (fcsBytes === 1) contentSize = src[pos]!;
  else if (fcsBytes === 2) contentSize = view.getUint16(pos, true) + 256;
  else if (fcsBytes === 4) contentSize = view.getUint32(pos, true);
  else if (fcsBytes === 8) contentSize = Number(view.getBigUint64(pos, true));
  pos += fcsBytes;

  for (;;) {
    need(pos, 3, 'block header');
    const header = src[pos]! | (src[pos + 1]! << 8) | (src[pos + 2]! << 16);
    pos += 3;
    const last = (header & 1) !== 0;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw new ImageFormatError(`corrupt zstd frame: reserved block type at byte ${pos - 3}`);
    if (size > MAX_BLOCK_SIZE) throw new ImageFormatError(`corrupt zstd frame: block of ${size} bytes exceeds 128 KiB`);
    const stored = type === 1 ? 1 : size;
    need(pos, stored, 'block');
    pos += stored;
    if (last) break;
  }
  if (hasChecksum) {
    need(pos, 4, 'content checksum');
    pos += 4;
  }
  return { length: pos, contentSize };
}

/**
 * The one interface every network backend implements: a port that carries whole
 * Ethernet frames (destination MAC first, no preamble, no FCS) both ways.
 *
 * - send(frame): a frame arriving at this backend from the segment it is plugged
 *   into (a tap writes it to the kernel, the user stack treats it as the guest's).
 *   The backend may keep the array but never modifies it; a hub hands one array to several ports.
 * - onFrame(handler): frames this backend puts on the segment. One handler; a new
 *   call replaces it. Frames are fresh Uint8Arrays (never views of memory the
 *   backend reuses) that the handler may keep, slice() and hand on; a frame may be
 *   a view of a larger ArrayBuffer no other frame shares (frame-slab.ts), so code
 *   that reads its memory honours byteOffset.
 * - close(): releases host resources (file descriptors, sockets, timers); later
 *   sends are dropped silently. Resolves when everything is released.
 *
 * Backends never throw from send(): bad frames are dropped, as on a wire.
 *
 * Offloads: a frame may come with a virtio-net header (vnet-hdr.ts), the second
 * argument of send() and of the handler. A tap opened with vnet_hdr=on hands its
 * handler the header the kernel put before a frame when the header says something
 * (a partial checksum, a segment to cut); a future virtio-net device passes the
 * guest's header to send() on such a tap. Backends that do not know headers
 * ignore the argument and only ever see complete frames, because a tap produces
 * headers that ask for work (a partial checksum, a segment) only after its
 * consumer enabled offloads (TapBackend.setOffload), which only a consumer that
 * handles them does.
 */
export type FrameHandler = (frame: Uint8Array, vnetHdr?: Uint8Array) => void;

export interface FrameBackend {
  /** A short name for messages ("user", "tap tsemu0"). */
  readonly name: string;
  send(frame: Uint8Array, vnetHdr?: Uint8Array): void;
  onFrame(handler: FrameHandler): void;
  close(): Promise<void>;
}

/** The largest frame any backend accepts (an MTU of 1500 plus the 14-byte header, with room for VLAN tags). */
export const MAX_FRAME = 1522;
/** The smallest: an Ethernet header. */
export const MIN_FRAME = 14;

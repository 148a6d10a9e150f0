/**
 * virtio-net, the network card (virtio device ID 1), bridged to a frame
 * backend of src/net (user, tap, socket, hub, ...).
 *
 * Theory of operation. Two queues: 0 receives (the driver's empty buffers),
 * 1 transmits. Features: MAC (the configuration space holds the card's
 * address), STATUS (the link is always up) and MRG_RXBUF (a received frame
 * may span several buffers). Every buffer in either direction starts with the
 * 12-byte virtio-net header of virtio 1.x (vnet-hdr.ts).
 *
 * Offloads: on a backend that takes and makes virtio-net headers (the user
 * stack: VirtioNetOptions.offloads) the card also offers CSUM, GUEST_CSUM,
 * HOST_TSO4/6 and GUEST_TSO4/6. When the driver accepts all of them the
 * backend's offloads are turned on at DRIVER_OK (otherwise off; off at reset): frames
 * leave with the driver's header (a partial checksum, a 64 KiB TCP segment
 * to cut), and frames come in with the backend's (up to 64 KiB under a GSO
 * header), so a guest's TCP stack neither sums nor cuts. Otherwise the
 * headers say nothing but num_buffers, and a frame the driver still hands
 * over with a partial checksum (it accepted CSUM alone) gets its checksum
 * completed here; a GSO frame then goes no further (txDropped).
 *
 * Transmit: each chain's readable bytes past the header are one frame, copied
 * out of guest RAM and handed to the backend at once. Its completion (the
 * chain back on the used ring, and the interrupt the driver may ask for) is
 * moderated, as a NIC moderates its transmit interrupts: held chains go back
 * together with the next received frame (one interrupt for both), when a
 * quarter of the queue is held, or TX_COMPLETION_DELAY_MS after the first
 * held one at the latest. Linux asks for an interrupt per sent packet, and
 * its TCP merges a sender's small writes into one segment while the card
 * still holds an earlier one (autocorking): a guest writing 1 KiB at a time
 * (busybox nc) sent one packet and took one interrupt per write (each costs
 * a tsemu guest thousands of instructions and a round trip to the main
 * thread); with the hold, net out measured about a third of the interrupts
 * and a quarter fewer packets for the same bytes. reset() drops held chains.
 * Receive: the driver's buffers wait in arrival order. A frame from the
 * backend takes the oldest buffer (under MRG_RXBUF as many as it needs). A
 * frame that finds no buffer (the driver is slow, the device is not started,
 * or the buffers are too small) is dropped and counted in `stats.rxDropped`:
 * frames are never queued on the host side, as on a real card whose ring is
 * full. reset() forgets the buffers. The backend outlives the device (a
 * reboot makes a fresh device on the same backend, whose frame handler
 * replaces this one's).
 *
 * Guest faults: a transmit chain shorter than the header, or writable
 * buffers on the transmit queue or readable ones on the receive queue, throw
 * VirtioFault (the core puts the device in needs-reset).
 */
import type { FrameBackend } from '../../net/backend.js';
import {
  isGsoVnetHeader, MAX_GSO_FRAME, readVnetHeader, VNET_HDR_F_NEEDS_CSUM, VNET_HDR_LEN, VNET_HDR_LEN_MRG,
} from '../../net/vnet-hdr.js';
import { finish, sum } from '../../net/user/checksum.js';
import { readableBytes, writeToChain } from '../virtio/chain-io.js';
import type { VirtioDevice, VirtioHost } from '../virtio/device.js';
import { DEVICE_ID, featureBits, hasFeature } from '../virtio/spec.js';
import { VirtioFault, type DescriptorChain } from '../virtio/virtqueue.js';

/** Feature bits of the network device (virtio 1.x, "Network Device"). */
export const NET_F_CSUM = 0;
export const NET_F_GUEST_CSUM = 1;
export const NET_F_MAC = 5;
export const NET_F_GUEST_TSO4 = 7;
export const NET_F_GUEST_TSO6 = 8;
export const NET_F_HOST_TSO4 = 11;
export const NET_F_HOST_TSO6 = 12;
export const NET_F_MRG_RXBUF = 15;
export const NET_F_STATUS = 16;
const NET_S_LINK_UP = 1;
/** The offloads offered together on a backend that has them; the backend's are on only when the driver took them all. */
const OFFLOAD_FEATURES = [NET_F_CSUM, NET_F_GUEST_CSUM, NET_F_GUEST_TSO4, NET_F_GUEST_TSO6, NET_F_HOST_TSO4, NET_F_HOST_TSO6];

/** The longest a sent chain waits for its completion (see the header). */
export const TX_COMPLETION_DELAY_MS = 4;
const RX_QUEUE = 0;
const TX_QUEUE = 1;
const QUEUE_SIZE = 256;
const MAC_LENGTH = 6;
/** Where num_buffers sits in the 12-byte header. */
const NUM_BUFFERS_OFFSET = 10;

export interface VirtioNetStats {
  /** Frames handed to the backend. */
  txFrames: number;
  /** Frames written into the driver's buffers. */
  rxFrames: number;
  /** Frames from the backend that found no (or too little) buffer space. */
  rxDropped: number;
  /** Frames the driver handed over that the backend cannot take (a GSO frame with the backend's offloads off). */
  txDropped: number;
}

export interface VirtioNetOptions {
  backend: FrameBackend;
  /** The card's unicast MAC address (6 bytes). */
  mac: Uint8Array;
  /**
   * Turns the backend's checksum and TCP segmentation offloads on or off (the user stack's
   * enableOffloads); absent when the backend takes no virtio-net headers.
   */
  offloads?: (on: boolean) => void;
}

export class VirtioNet implements VirtioDevice {
  readonly name = 'virtio-net';
  readonly deviceId = DEVICE_ID.NET;
  readonly features: bigint;
  readonly queueSizes = [QUEUE_SIZE, QUEUE_SIZE];
  readonly stats: VirtioNetStats = { txFrames: 0, rxFrames: 0, rxDropped: 0, txDropped: 0 };
  private readonly configSpace: Uint8Array;
  private readonly backend: FrameBackend;
  private host: VirtioHost | null = null;
  private readonly setOffloads: ((on: boolean) => void) | undefined;
  private mergeable = false;
  /** The backend's offloads are on: headers pass both ways. */
  private offloading = false;
  /** The driver's receive buffers, oldest first. */
  private rxBuffers: DescriptorChain[] = [];
  /** Sent chains whose completion is held (moderated), oldest first; the timer that completes them. */
  private txHeld: DescriptorChain[] = [];
  private txTimer: NodeJS.Timeout | null = null;

  constructor(options: VirtioNetOptions) {
    if (options.mac.length !== MAC_LENGTH) throw new Error(`virtio-net: a MAC address is ${MAC_LENGTH} bytes, not ${options.mac.length}`);
    this.backend = options.backend;
    this.setOffloads = options.offloads;
    this.features = featureBits(NET_F_MAC, NET_F_STATUS, NET_F_MRG_RXBUF, ...(options.offloads ? OFFLOAD_FEATURES : []));
    // mac[6], status (le16), max_virtqueue_pairs (le16; 1, meaningful only under MQ).
    this.configSpace = new Uint8Array([...options.mac, NET_S_LINK_UP, 0, 1, 0]);
    this.backend.onFrame((frame, vnetHdr) => this.receive(frame, vnetHdr));
  }

  config(): Uint8Array {
    return this.configSpace;
  }

  start(host: VirtioHost): void {
    this.host = host;
    this.mergeable = hasFeature(host.features, NET_F_MRG_RXBUF);
    this.offloading = this.setOffloads !== undefined && OFFLOAD_FEATURES.every((bit) => hasFeature(host.features, bit));
    // Set either way: the backend outlives the card, and the card before a reboot may have left them on.
    this.setOffloads?.(this.offloading);
  }

  reset(): void {
    if (this.offloading) this.setOffloads!(false);
    this.offloading = false;
    this.host = null;
    this.rxBuffers = [];
    this.txHeld = [];
    if (this.txTimer) clearTimeout(this.txTimer);
    this.txTimer = null;
  }

  handle(queue: number, chain: DescriptorChain): void {
    if (queue === RX_QUEUE) {
      if (chain.readableBytes > 0) throw new VirtioFault('a receive buffer has device-readable parts');
      this.rxBuffers.push(chain);
    } else if (queue === TX_QUEUE) {
      this.transmit(chain);
    }
  }

  private transmit(chain: DescriptorChain): void {
    if (chain.writableBytes > 0) throw new VirtioFault('a transmit buffer has device-writable parts');
    const length = chain.readableBytes - VNET_HDR_LEN_MRG;
    if (length < 0) throw new VirtioFault(`a transmit buffer of ${chain.readableBytes} bytes is shorter than the ${VNET_HDR_LEN_MRG}-byte header`);
    // The backend may keep the frame: copy it out of guest RAM. Oversized frames go no further.
    if (length <= MAX_GSO_FRAME) this.sendFrame(readableBytes(chain, 0, VNET_HDR_LEN).slice(), readableBytes(chain, VNET_HDR_LEN_MRG, length).slice());
    this.txHeld.push(chain);
    if (this.txHeld.length >= chain.queue.size >> 2) this.completeTx();
    else this.txTimer ??= setTimeout(this.completeTx, TX_COMPLETION_DELAY_MS);
  }

  /** Completes every held transmit chain. */
  private readonly completeTx = (): void => {
    if (this.txTimer) clearTimeout(this.txTimer);
    this.txTimer = null;
    const held = this.txHeld;
    this.txHeld = [];
    for (const chain of held) this.host?.complete(chain, 0);
  };

  /** Hands a frame to the backend: with its header while offloading, else complete (its checksum finished here). */
  private sendFrame(header: Uint8Array, frame: Uint8Array): void {
    if (this.offloading) {
      this.backend.send(frame, header);
    } else if (isGsoVnetHeader(header)) {
      this.stats.txDropped++;
      return;
    } else {
      if (header[0]! & VNET_HDR_F_NEEDS_CSUM && !completeChecksum(frame, header)) {
        this.stats.txDropped++;
        return;
      }
      this.backend.send(frame);
    }
    this.stats.txFrames++;
  }

  /** A frame from the backend: into the oldest receive buffers, or dropped. */
  private receive(frame: Uint8Array, vnetHdr?: Uint8Array): void {
    if (this.txHeld.length > 0) this.completeTx();
    const host = this.host;
    const needed = VNET_HDR_LEN_MRG + frame.length;
    const taken = this.takeBuffers(needed);
    if (!host || !taken) {
      this.stats.rxDropped++;
      return;
    }
    const header = new Uint8Array(VNET_HDR_LEN_MRG);
    // The backend sends headers that ask for work only while its offloads are on.
    if (vnetHdr && this.offloading) header.set(vnetHdr.subarray(0, VNET_HDR_LEN));
    header[NUM_BUFFERS_OFFSET] = taken.length;
    let done = 0;
    for (const chain of taken) {
      const room = Math.min(chain.writableBytes, needed - done);
      const written = done === 0 ? this.fillFirst(chain, header, frame, room) : this.fill(chain, frame, done - VNET_HDR_LEN_MRG, room);
      done += written;
      host.complete(chain, written);
    }
    this.stats.rxFrames++;
  }

  private fillFirst(chain: DescriptorChain, header: Uint8Array, frame: Uint8Array, room: number): number {
    writeToChain(chain, 0, header);
    writeToChain(chain, VNET_HDR_LEN_MRG, frame.subarray(0, room - VNET_HDR_LEN_MRG));
    return room;
  }

  private fill(chain: DescriptorChain, frame: Uint8Array, from: number, room: number): number {
    writeToChain(chain, 0, frame.subarray(from, from + room));
    return room;
  }

  /** The oldest buffers holding `needed` bytes (one buffer unless mergeable), or null leaving them all. */
  private takeBuffers(needed: number): DescriptorChain[] | null {
    if (!this.host) return null;
    let room = 0;
    let count = 0;
    const limit = this.mergeable ? this.rxBuffers.length : Math.min(1, this.rxBuffers.length);
    while (count < limit && room < needed) room += this.rxBuffers[count++]!.writableBytes;
    // The first buffer must hold the whole header.
    if (room < needed || (count > 0 && this.rxBuffers[0]!.writableBytes < VNET_HDR_LEN_MRG)) return null;
    return this.rxBuffers.splice(0, count);
  }
}

/**
 * Completes a partial L4 checksum (NEEDS_CSUM): the one's-complement sum from csum_start to
 * the end, over the pseudo-header sum the driver left in the field, stored at csum_start +
 * csum_offset. False when the header points outside the frame.
 */
function completeChecksum(frame: Uint8Array, header: Uint8Array): boolean {
  const { csumStart, csumOffset } = readVnetHeader(header);
  const at = csumStart + csumOffset;
  if (csumStart >= frame.length || at + 2 > frame.length) return false;
  const value = finish(sum(frame, csumStart, frame.length - csumStart));
  frame[at] = value >> 8;
  frame[at + 1] = value & 0xff;
  return true;
}

/**
 * The interface between a virtio device model (blk, rng, console, net) and
 * the transport-independent core (core.ts). A model knows its device ID,
 * feature bits, queue count and sizes, and its configuration space; it
 * handles one available descriptor chain at a time and completes it, at once
 * or later, through the VirtioHost it was given at start(). It never sees a
 * transport (virtio-mmio or virtio-pci) or a machine.
 *
 * Life cycle: start(host) when the driver sets DRIVER_OK; handle() for each
 * chain the driver makes available on a ready queue; reset() when the driver
 * resets the device or the device enters the needs-reset state. After reset()
 * the old host drops completions, so a request still in flight on the host
 * side (a block read) may finish and call complete() harmlessly.
 */
import type { DescriptorChain } from './virtqueue.js';

export interface VirtioHost {
  /** The feature bits the driver accepted (device and transport bits). */
  readonly features: bigint;
  /** Puts `chain` on its used ring with `written` bytes written and interrupts the driver as it asked. */
  complete(chain: DescriptorChain, written: number): void;
  /** A guest error the device cannot serve (a malformed request): log it and enter needs-reset. */
  fault(message: string): void;
  /** The configuration space changed: bump the generation and send a configuration interrupt. */
  configChanged(): void;
}

export interface VirtioDevice {
  /** The name log lines use, e.g. "virtio-blk". */
  readonly name: string;
  readonly deviceId: number;
  /** Device-specific feature bits offered (the core adds VERSION_1, INDIRECT_DESC and EVENT_IDX). */
  readonly features: bigint;
  /** The largest size of each queue; the number of entries is the number of queues. */
  readonly queueSizes: readonly number[];
  /** The device-specific configuration space as it reads now (little-endian fields). */
  config(): Uint8Array;
  /** The driver wrote `bytes` at `offset` of the configuration space (read-only spaces leave this out). */
  writeConfig?(offset: number, bytes: Uint8Array): void;
  /** DRIVER_OK: the queues may be used through `host` until reset(). */
  start(host: VirtioHost): void;
  /** One available chain of queue `queue`; throws VirtioFault for a request the spec forbids. */
  handle(queue: number, chain: DescriptorChain): void;
  reset(): void;
}

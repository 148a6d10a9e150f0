/**
 * The virtio devices of a tsemu run command line: --drive, --device and
 * --chardev arguments (plus -snapshot) turned into device factories for the
 * machine, with the images and character backends they use.
 *
 * Order, as QEMU places them: the --device devices in command-line order,
 * then one virtio-blk per if=virtio drive. Drive and chardev IDs must be
 * unique and every drive= or chardev= must name one; a drive serves one
 * device at most. Images are opened once for the whole run (reboots keep
 * them); open() readies the character backends, close() closes everything.
 * If anything fails while setting up, what was opened is closed again.
 */
import { closeImage } from '../../block/open.js';
import type { ImageNode } from '../../block/formats/format.js';
import type { SerialBackend } from '../chardev/backend.js';
import { createSerialBackend, type SerialHooks } from '../chardev/create.js';
import { QueuedCharBackend } from '../devices/char-backend.js';
import { VirtioBlk } from '../virtio/blk.js';
import { VirtioConsole } from '../virtio/console.js';
import type { VirtioDevice } from '../virtio/device.js';
import { VirtioRng } from '../virtio/rng.js';
import { parseChardev } from './chardev.js';
import { parseDevice, type DeviceSpec } from './device.js';
import { hasWriteCache, openDrive, parseDrive, type DriveSpec } from './drive.js';

export interface VirtioArguments {
  drives: readonly string[];
  devices: readonly string[];
  chardevs: readonly string[];
  /** -snapshot: every drive as with snapshot=on. */
  snapshot: boolean;
  /** The serial console's own -serial spelling (a chardev cannot take stdio from it). */
  serial: string;
  hooks: SerialHooks;
}

export interface VirtioSetup {
  readonly devices: readonly (() => VirtioDevice)[];
  open(): Promise<void>;
  close(): Promise<void>;
}

function uniqueIds<T extends { id: string }>(items: readonly T[], what: string): Map<string, T> {
  const byId = new Map<string, T>();
  for (const item of items) {
    if (byId.has(item.id)) throw new Error(`duplicate ${what} id '${item.id}'`);
    byId.set(item.id, item);
  }
  return byId;
}

export async function setUpVirtioDevices(args: VirtioArguments): Promise<VirtioSetup> {
  const drives = uniqueIds(args.drives.map((text, i) => parseDrive(text, i)), 'drive');
  const chardevs = uniqueIds(args.chardevs.map(parseChardev), 'chardev');
  const specs: DeviceSpec[] = args.devices.map(parseDevice);
  const used = new Set<string>();
  for (const spec of specs) {
    const id = spec.driver === 'virtio-blk' ? spec.drive : spec.driver === 'virtconsole' ? spec.chardev : undefined;
    if (id === undefined) continue;
    const table = spec.driver === 'virtio-blk' ? drives : chardevs;
    if (!table.has(id)) throw new Error(`--device ${spec.driver}: no ${spec.driver === 'virtio-blk' ? 'drive' : 'chardev'} with id '${id}'`);
    if (used.has(`${spec.driver}:${id}`)) throw new Error(`--device ${spec.driver}: '${id}' is already in use by another device`);
    used.add(`${spec.driver}:${id}`);
  }
  for (const drive of drives.values()) {
    if (drive.interface === 'virtio') {
      if (used.has(`virtio-blk:${drive.id}`)) throw new Error(`--drive ${drive.id}: if=virtio already makes its device; use if=none with --device`);
      specs.push({ driver: 'virtio-blk', drive: drive.id });
    }
  }
  for (const c of chardevs.values()) {
    if (c.serial === 'stdio' && args.serial.endsWith('stdio')) throw new Error(`--chardev ${c.id}: stdio is the serial console's`);
  }

  const images: ImageNode[] = [];
  const backends: SerialBackend[] = [];
  const close = async (): Promise<void> => {
    for (const b of backends) await b.close();
    for (const image of images) await closeImage(image);
  };
  try {
    const nodes = new Map<string, ImageNode>();
    for (const spec of specs) {
      if (spec.driver !== 'virtio-blk') continue;
      const drive = drives.get(spec.drive)!;
      const node = await openDrive({ ...drive, snapshot: drive.snapshot || args.snapshot });
      images.push(node);
      nodes.set(drive.id, node);
    }
    const factories = specs.map((spec): (() => VirtioDevice) => {
      switch (spec.driver) {
        case 'virtio-blk':
          return blkFactory(drives.get(spec.drive)!, nodes.get(spec.drive)!, spec.serial);
        case 'virtio-rng':
          return () => new VirtioRng();
        case 'virtconsole': {
          const backend = createSerialBackend(chardevs.get(spec.chardev)!.serial, args.hooks);
          backends.push(backend);
          const queued = new QueuedCharBackend((bytes) => backend.write(bytes));
          backend.onInput((bytes) => queued.push(bytes));
          return () => new VirtioConsole(queued);
        }
      }
    });
    return {
      devices: factories,
      open: async () => {
        for (const b of backends) await b.open();
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

function blkFactory(drive: DriveSpec, node: ImageNode, serial: string | undefined): () => VirtioDevice {
  return () => new VirtioBlk({
    node,
    id: drive.id,
    readOnly: drive.readOnly,
    writeCache: hasWriteCache(drive.cache),
    discard: drive.discard,
    serial: serial ?? drive.serial,
  });
}

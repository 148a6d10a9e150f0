/**
 * The network cards of a tsemu run command line, as QEMU spells them:
 *
 *   --netdev TYPE,id=ID,...                  a backend (the specs of `tsemu net
 *                                            connect`: user, tap, bridge, socket, stream, dgram)
 *   --device virtio-net,netdev=ID[,mac=MAC]  a card on that backend (also virtio-net-device)
 *   --net TYPE,...[,mac=MAC][,model=virtio]  shorthand (QEMU's -nic): a backend and one card
 *                                            on it; --net none adds nothing
 *
 * Cards take QEMU's default MAC addresses, 52:54:00:12:34:56 for the first
 * card without mac= and one more in the last byte for each next one. Order:
 * the --device cards in command-line order, then the --net ones. Every netdev
 * needs a unique id and serves one card at most; one no card uses is opened
 * anyway with a warning, as QEMU does. Backends are opened once for the whole
 * run (a reboot makes fresh cards on the same backends); close() closes them.
 * If opening one fails, those already open are closed again. A card on a user
 * backend may turn on the stack's checksum and segmentation offloads (virtio-net.ts).
 */
import type { FrameBackend } from '../../net/backend.js';
import { openBackend } from '../../net/create.js';
import { parseNetdevSpec, type NetdevSpec } from '../../net/spec.js';
import { UserStack } from '../../net/user/stack.js';
import { VirtioNet } from '../devices/virtio-net.js';
import type { VirtioDevice } from '../virtio/device.js';

const NET_DEVICES = new Set(['virtio-net', 'virtio-net-device']);
const NIC_MODELS = new Set(['virtio', ...NET_DEVICES]);
const DEFAULT_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56] as const;

/** A card: the netdev it uses and its MAC address (the default when absent). */
export interface NicSpec {
  netdev: string;
  mac?: Uint8Array;
}

export interface NetArguments {
  netdevs: readonly string[];
  /** --device arguments naming a network card (isNetDevice). */
  devices: readonly string[];
  nets: readonly string[];
  /** Receives warnings (default: stderr). */
  log?: (line: string) => void;
}

export interface NetSetup {
  /** One factory per card, in order; each call makes a fresh card on the card's backend. */
  readonly devices: readonly (() => VirtioDevice)[];
  close(): Promise<void>;
}

/** Splits "a=1,b=x,,y" at single commas; ",," stays in its item as written. */
function splitItems(text: string): string[] {
  const items: string[] = [];
  let item = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== ',') item += text[i];
    else if (text[i + 1] === ',') item += text[i++] + ',';
    else {
      items.push(item);
      item = '';
    }
  }
  items.push(item);
  return items;
}

/** The driver name of a --device argument. */
function driverOf(text: string): string {
  return splitItems(text)[0]!;
}

/** True when a --device argument names a network card (the rest go to the other device types). */
export function isNetDevice(text: string): boolean {
  return NET_DEVICES.has(driverOf(text));
}

/** "52:54:00:12:34:56" (or with '-') into 6 bytes; multicast addresses are refused. */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) {
    throw new Error(`mac=${text}: a MAC address is six hex bytes separated by ':' (52:54:00:12:34:56)`);
  }
  const mac = Uint8Array.from(parts, (p) => parseInt(p, 16));
  if (mac[0]! & 1) throw new Error(`mac=${text}: a card cannot have a multicast address`);
  return mac;
}

/** `--device virtio-net,netdev=ID[,mac=MAC][,id=NAME]`. */
export function parseNetDevice(text: string): NicSpec {
  const [driver, ...items] = splitItems(text);
  if (!NET_DEVICES.has(driver!)) throw new Error(`--device ${text}: '${driver}' is not a network card (${[...NET_DEVICES].join(', ')})`);
  const nic: Partial<NicSpec> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (key === 'netdev') nic.netdev = value;
    else if (key === 'mac') nic.mac = parseMac(value);
    else if (key !== 'id') throw new Error(`--device ${text}: ${driver} has no property '${key}' (netdev, mac, id)`);
  }
  if (!nic.netdev) throw new Error(`--device ${text}: ${driver} needs netdev=ID (a --netdev's id)`);
  return { netdev: nic.netdev, mac: nic.mac };
}

/** `--net TYPE,...`: the backend's own spec and the card's MAC, or null for `none`. */
export function parseNetShorthand(text: string): { backend: NetdevSpec; mac?: Uint8Array } | null {
  if (text === 'none') return null;
  let mac: Uint8Array | undefined;
  const kept = splitItems(text).filter((item) => {
    if (item.startsWith('mac=')) mac = parseMac(item.slice(4));
    else if (item.startsWith('model=')) {
      const model = item.slice(6);
      if (!NIC_MODELS.has(model)) throw new Error(`--net ${text}: model=${model}: tsemu's card is virtio (virtio-net-device)`);
    } else return true;
    return false;
  });
  if (kept[0] === 'nic') throw new Error(`--net ${text}: give the backend itself (--net user,... or --net tap,...); the card comes with it`);
  try {
    return { backend: parseNetdevSpec(kept.join(',')), mac };
  } catch (err) {
    throw new Error(`--net ${text}: ${(err as Error).message}`);
  }
}

function parseNetdev(text: string): NetdevSpec & { id: string } {
  let spec: NetdevSpec;
  try {
    spec = parseNetdevSpec(text);
  } catch (err) {
    throw new Error(`--netdev ${text}: ${(err as Error).message}`);
  }
  if (!spec.id) throw new Error(`--netdev ${text}: give it an id=ID (cards name it with netdev=ID)`);
  return { ...spec, id: spec.id };
}

/** The MAC address of each card: its own, or the next default one. */
function assignMacs(nics: readonly { mac?: Uint8Array }[]): Uint8Array[] {
  let next = 0;
  return nics.map((nic) => {
    if (nic.mac) return nic.mac;
    const mac = Uint8Array.from(DEFAULT_MAC);
    mac[5] = (mac[5]! + next++) & 0xff;
    return mac;
  });
}

export async function setUpNetDevices(args: NetArguments): Promise<NetSetup> {
  const log = args.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const netdevs = new Map<string, NetdevSpec>();
  for (const spec of args.netdevs.map(parseNetdev)) {
    if (netdevs.has(spec.id)) throw new Error(`--netdev: duplicate id '${spec.id}'`);
    netdevs.set(spec.id, spec);
  }
  const nics: { backend: NetdevSpec; mac?: Uint8Array }[] = [];
  const used = new Set<string>();
  for (const nic of args.devices.map(parseNetDevice)) {
    const backend = netdevs.get(nic.netdev);
    if (!backend) throw new Error(`--device virtio-net: no --netdev with id '${nic.netdev}'`);
    if (used.has(nic.netdev)) throw new Error(`--device virtio-net: netdev '${nic.netdev}' is already in use by another card`);
    used.add(nic.netdev);
    nics.push({ backend, mac: nic.mac });
  }
  for (const text of args.nets) {
    const nic = parseNetShorthand(text);
    if (nic) nics.push(nic);
  }
  for (const id of netdevs.keys()) if (!used.has(id)) log(`tsemu: warning: netdev ${id} has no card`);

  const opened: FrameBackend[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(opened.map((b) => b.close()));
  };
  const open = async (spec: NetdevSpec): Promise<FrameBackend> => {
    const backend = await openBackend(spec);
    opened.push(backend);
    return backend;
  };
  try {
    const unused = [...netdevs.values()].filter((spec) => !used.has(spec.id!));
    for (const spec of unused) await open(spec);
    const macs = assignMacs(nics);
    const factories: (() => VirtioDevice)[] = [];
    for (const [i, nic] of nics.entries()) {
      const backend = await open(nic.backend);
      const mac = macs[i]!;
      // The user stack takes and makes virtio-net headers: the card may offer offloads on it.
      const offloads = backend instanceof UserStack ? (on: boolean) => backend.enableOffloads(on) : undefined;
      factories.push(() => new VirtioNet({ backend, mac, offloads }));
    }
    return { devices: factories, close };
  } catch (err) {
    await close();
    throw err;
  }
}

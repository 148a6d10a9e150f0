/**
 * The hostile-image catalogue: valid qcow2 images made by the real qemu-img and
 * qemu-io (makeBaseImages), and a list of ways to damage a copy of one of them.
 * Each case names the problem a good error message mentions (`problem`), so a
 * test can check that tsemu's error names what is wrong. Patches follow the
 * field layout of QEMU's docs/interop/qcow2.txt (see helpers/qcow2-layout.ts).
 */
import { copyFile, readFile, rename, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, qemuImg, qemuIo } from '../helpers/peers.js';
import {
  COMPRESSED,
  COPIED,
  HEADER,
  type Qcow2Layout,
  compressedOffsetBits,
  getU64,
  l1EntryAt,
  l2EntryAt,
  readLayout,
  setU32,
  setU64,
} from '../helpers/qcow2-layout.js';

export type BaseName = 'plain' | 'compressed' | 'snapshot';

/** An offset far past the end of any test image, cluster aligned for every cluster size. */
const FAR = 1n << 40n;

export interface HostileCase {
  name: string;
  base: BaseName;
  /** What the error message should mention. */
  problem: RegExp;
  /** Damage the image bytes in place (the header's layout is given). */
  patch?: (buf: Uint8Array, l: Qcow2Layout) => void;
  /** Or build the damaged image(s) in `dir` from `base`, returning the image to open. */
  make?: (dir: string, base: string) => Promise<string>;
  /** Commands that qemu-img 7.2 never finishes on this image: tsemu must fail them instead. */
  qemuHangsIn?: ReadonlyArray<'check' | 'convert'>;
}

/** Makes the valid starting images in `dir`: 4 MiB, 64 KiB clusters, data at 0 and 2 MiB. */
export async function makeBaseImages(dir: string): Promise<Record<BaseName, string>> {
  const plain = path.join(dir, 'base-plain.qcow2');
  await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', plain, '4M']), 'qemu-img create');
  await mustRun(qemuIo(['-c', 'write -P 0x11 0 128k', '-c', 'write -P 0x22 2M 64k', plain]), 'qemu-io write');
  const compressed = path.join(dir, 'base-compressed.qcow2');
  await mustRun(qemuImg(['convert', '-c', '-O', 'qcow2', plain, compressed]), 'qemu-img convert -c');
  const snapshot = path.join(dir, 'base-snapshot.qcow2');
  await copyFile(plain, snapshot);
  await mustRun(qemuImg(['snapshot', '-c', 'snap1', snapshot]), 'qemu-img snapshot -c');
  return { plain, compressed, snapshot };
}

/** Copies `base` to `dir`/name.qcow2 and applies `patch` to its bytes. */
export async function patchedCopy(dir: string, base: string, name: string, patch: HostileCase['patch'] & {}): Promise<string> {
  const target = path.join(dir, `${name}.qcow2`);
  const buf = new Uint8Array(await readFile(base));
  patch(buf, readLayout(buf));
  await writeFile(target, buf);
  return target;
}

function setL1(buf: Uint8Array, l: Qcow2Layout, i: number, value: bigint): void {
  setU64(buf, l1EntryAt(l, i), value);
}

function l1Value(buf: Uint8Array, l: Qcow2Layout, i: number): bigint {
  return getU64(buf, l1EntryAt(l, i));
}

function setIncompatible(buf: Uint8Array, bit: bigint): void {
  setU64(buf, HEADER.incompatibleFeatures, getU64(buf, HEADER.incompatibleFeatures) | (1n << bit));
}

export const HOSTILE_CASES: HostileCase[] = [
  {
    name: 'L1 table offset past the end of the file',
    base: 'plain',
    problem: /L1/i,
    patch: (b) => setU64(b, HEADER.l1TableOffset, FAR),
  },
  {
    name: 'L2 table offset past the end of the file',
    base: 'plain',
    problem: /L2|end of (the )?file|past|beyond/i,
    patch: (b, l) => setL1(b, l, 0, COPIED | FAR),
  },
  {
    name: 'refcount table offset past the end of the file',
    base: 'plain',
    problem: /refcount|reference count/i,
    patch: (b) => setU64(b, HEADER.refcountTableOffset, FAR),
  },
  {
    name: 'refcount block offset past the end of the file',
    base: 'plain',
    problem: /refcount|reference count/i,
    patch: (b, l) => setU64(b, l.refcountTableOffset, FAR),
  },
  {
    name: 'L1 table overlaps the header',
    base: 'plain',
    problem: /L1|overlap|header/i,
    patch: (b) => setU64(b, HEADER.l1TableOffset, 0n),
  },
  {
    name: 'refcount table overlaps the header',
    base: 'plain',
    problem: /refcount|reference count|overlap|header/i,
    patch: (b) => setU64(b, HEADER.refcountTableOffset, 0n),
  },
  {
    name: 'L2 table overlaps the refcount table',
    base: 'plain',
    problem: /L2|overlap|refcount|reference count/i,
    patch: (b, l) => setL1(b, l, 0, COPIED | BigInt(l.refcountTableOffset)),
  },
  {
    name: 'unaligned L1 table offset',
    base: 'plain',
    problem: /L1|align/i,
    patch: (b, l) => setU64(b, HEADER.l1TableOffset, BigInt(l.l1TableOffset + 8)),
  },
  {
    name: 'unaligned refcount table offset',
    base: 'plain',
    problem: /refcount|align/i,
    patch: (b, l) => setU64(b, HEADER.refcountTableOffset, BigInt(l.refcountTableOffset + 8)),
  },
  {
    name: 'unaligned L2 table offset',
    base: 'plain',
    problem: /L2|align/i,
    patch: (b, l) => setL1(b, l, 0, l1Value(b, l, 0) + 512n),
  },
  {
    name: 'unaligned data cluster offset',
    base: 'plain',
    problem: /align|cluster|offset/i,
    patch: (b, l) => {
      const at = l2EntryAt(b, l, 0);
      setU64(b, at, getU64(b, at) + 512n);
    },
  },
  {
    name: 'data cluster offset past the end of the file',
    base: 'plain',
    problem: /end of (the )?file|past|beyond|offset/i,
    patch: (b, l) => setU64(b, l2EntryAt(b, l, 0), COPIED | FAR),
  },
  {
    name: 'absurd virtual size (2^63 - 512)',
    base: 'plain',
    problem: /size/i,
    patch: (b) => setU64(b, HEADER.size, (1n << 63n) - 512n),
  },
  {
    name: 'absurd L1 size (2^31 - 1 entries)',
    base: 'plain',
    problem: /L1/i,
    patch: (b) => setU32(b, HEADER.l1Size, 0x7fffffff),
  },
  {
    name: 'L1 table too small for the virtual size',
    base: 'plain',
    problem: /L1/i,
    patch: (b) => setU32(b, HEADER.l1Size, 0),
  },
  {
    name: 'cluster_bits 8 (below the 512-byte minimum)',
    base: 'plain',
    problem: /cluster/i,
    patch: (b) => setU32(b, HEADER.clusterBits, 8),
  },
  {
    name: 'cluster_bits 22 (above the 2 MiB maximum)',
    base: 'plain',
    problem: /cluster/i,
    patch: (b) => setU32(b, HEADER.clusterBits, 22),
  },
  {
    name: 'cluster_bits 63',
    base: 'plain',
    problem: /cluster/i,
    patch: (b) => setU32(b, HEADER.clusterBits, 63),
  },
  {
    name: 'refcount_order 7 (above 64-bit refcounts)',
    base: 'plain',
    problem: /refcount|reference count/i,
    patch: (b) => setU32(b, HEADER.refcountOrder, 7),
  },
  {
    name: 'huge header_length',
    base: 'plain',
    problem: /header/i,
    patch: (b) => setU32(b, HEADER.headerLength, 0x7ffffff0),
  },
  {
    name: 'header_length below the version 3 minimum',
    base: 'plain',
    problem: /header/i,
    patch: (b) => setU32(b, HEADER.headerLength, 72),
  },
  {
    name: 'unknown incompatible feature bit',
    base: 'plain',
    problem: /feature/i,
    patch: (b) => setIncompatible(b, 40n),
  },
  {
    name: 'corrupt bit set',
    base: 'plain',
    problem: /corrupt/i,
    patch: (b) => setIncompatible(b, 1n),
  },
  {
    name: 'unsupported version 4',
    base: 'plain',
    problem: /version/i,
    patch: (b) => setU32(b, HEADER.version, 4),
  },
  {
    name: 'AES encryption method (unsupported)',
    base: 'plain',
    problem: /encrypt|AES/i,
    patch: (b) => setU32(b, HEADER.cryptMethod, 1),
  },
  {
    name: 'backing file name past the end of the file',
    base: 'plain',
    problem: /backing/i,
    patch: (b) => {
      setU64(b, HEADER.backingFileOffset, FAR);
      setU32(b, HEADER.backingFileSize, 16);
    },
  },
  {
    name: 'backing file name longer than 1023 bytes',
    base: 'plain',
    problem: /backing/i,
    patch: (b) => {
      setU64(b, HEADER.backingFileOffset, 512n);
      setU32(b, HEADER.backingFileSize, 0xffff);
    },
  },
  {
    name: 'snapshot table past the end of the file',
    base: 'plain',
    problem: /snapshot/i,
    patch: (b) => {
      setU32(b, HEADER.nbSnapshots, 1);
      setU64(b, HEADER.snapshotsOffset, FAR);
    },
  },
  {
    name: 'absurd number of snapshots',
    base: 'snapshot',
    problem: /snapshot/i,
    patch: (b) => setU32(b, HEADER.nbSnapshots, 0xffffffff),
  },
  {
    name: 'snapshot table garbage',
    base: 'snapshot',
    problem: /snapshot/i,
    patch: (b, l) => b.fill(0xff, l.snapshotsOffset, l.snapshotsOffset + 512),
  },
  {
    name: 'snapshot L1 table past the end of the file',
    base: 'snapshot',
    problem: /snapshot|L1/i,
    // A snapshot table entry starts with its L1 table offset (u64) and L1 size (u32).
    patch: (b, l) => setU64(b, l.snapshotsOffset, FAR),
  },
  {
    name: 'compressed cluster descriptor past the end of the file',
    base: 'compressed',
    problem: /compress|end of (the )?file|past|beyond|offset/i,
    patch: (b, l) => {
      const at = l2EntryAt(b, l, 0);
      const offsetMask = (1n << BigInt(compressedOffsetBits(l))) - 1n;
      const sectors = getU64(b, at) & ~offsetMask & ~(COPIED | COMPRESSED);
      setU64(b, at, COMPRESSED | sectors | (FAR & offsetMask));
    },
  },
  {
    name: 'file truncated inside the header cluster',
    base: 'plain',
    problem: /header|truncat|end of (the )?file|short|small/i,
    make: async (dir, base) => {
      const target = path.join(dir, 'truncated-header.qcow2');
      await copyFile(base, target);
      await truncate(target, 48);
      return target;
    },
  },
  {
    name: 'file truncated before its L2 tables and data',
    base: 'plain',
    problem: /end of (the )?file|past|beyond|truncat|L1|L2/i,
    make: async (dir, base) => {
      const target = path.join(dir, 'truncated-tables.qcow2');
      await copyFile(base, target);
      const l = readLayout(new Uint8Array(await readFile(base)));
      await truncate(target, l.l1TableOffset + l.clusterSize);
      return target;
    },
  },
  {
    name: 'backing file loop: a -> a',
    base: 'plain',
    problem: /loop|chain|backing/i,
    qemuHangsIn: ['check', 'convert'],
    make: async (dir) => {
      const tmp = path.join(dir, 'loop-self.tmp');
      await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', 'self.qcow2', '-F', 'qcow2', tmp, '4M']), 'create');
      const target = path.join(dir, 'self.qcow2');
      await rename(tmp, target);
      return target;
    },
  },
  {
    name: 'backing file loop: a -> b -> a',
    base: 'plain',
    problem: /loop|chain|backing/i,
    qemuHangsIn: ['check', 'convert'],
    make: async (dir) => {
      const a = path.join(dir, 'loop-a.qcow2');
      const b = path.join(dir, 'loop-b.qcow2');
      await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-b.qcow2', '-F', 'qcow2', a, '4M']), 'create a');
      await mustRun(qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-a.qcow2', '-F', 'qcow2', b, '4M']), 'create b');
      return a;
    },
  },
];


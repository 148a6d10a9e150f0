/**
 * What a format driver provides to the rest of the block layer: probing a file's
 * first bytes, opening an image on a protocol node, creating a new image from
 * `-o` options, and the list of those options (for `-o help`). An opened image is
 * an ImageNode: a BlockNode that also reports what its header says about backing
 * files, snapshots and format-specific details (`img info`).
 */
import type { BlockNode, Preallocation } from '../node.js';
import type { ProtocolNode } from '../protocols/protocol.js';
import type { CheckCounts, RepairMode } from './qcow2/check.js';

/** One `-o` option a format accepts, as `-o help` lists it. */
export interface CreateOptionSpec {
  name: string;
  type: 'str' | 'size' | 'bool' | 'num';
  help: string;
  default?: string;
}

/** An internal snapshot as `img info` and `img snapshot -l` show it (qemu-img's JSON keys). */
export interface SnapshotInfo {
  id: string;
  name: string;
  'vm-state-size': number;
  'date-sec': number;
  'date-nsec': number;
  'vm-clock-sec': number;
  'vm-clock-nsec': number;
  icount?: number;
}

export interface FormatSpecificInfo {
  type: string;
  data: Record<string, unknown>;
}

export interface ImageNode extends BlockNode {
  /** The backing file name as recorded in the image, or null. */
  readonly backingFilename: string | null;
  /** The backing format as recorded in the image, or null. */
  readonly backingFormat: string | null;
  /** Set by open.ts once the backing chain is opened (null: no backing or not opened). */
  attachBacking(node: BlockNode | null): void;
  /** Cluster size for formats that have one (qemu-img info's "cluster-size"). */
  readonly clusterSize?: number;
  /** The format's dirty/in-use flag, when it has one (qemu-img info's "dirty-flag"). */
  readonly dirtyFlag?: boolean;
  /** The disk UUID for formats that carry one (disk-uuid.ts), as canonical text. */
  readonly diskUuid?: string;
  formatSpecific?(): FormatSpecificInfo | undefined;
  listSnapshots?(): SnapshotInfo[];
}

export interface CreateRequest {
  filename: string;
  /** Virtual size in bytes. */
  size: number;
  /** The `-o` options, backing_file/backing_fmt included (-b/-F map there). */
  options: Map<string, string>;
  /** A preallocation mode chosen by the caller rather than by `-o` (amend, resize paths). */
  preallocation?: Preallocation;
  /**
   * The `file` protocol's preallocation option, for formats that do not declare one
   * themselves (raw): as written by the user, checked by the format.
   */
  protocolPreallocation?: string;
}

export interface OpenContext {
  readOnly: boolean;
  /** Open even if the image is marked corrupt or dirty? (check -r needs it) */
  forRepair?: boolean;
}

/** One run of a measured source image: `data` when it holds data (allocated, not known zero). */
export interface MeasureExtent {
  offset: number;
  length: number;
  data: boolean;
}

/** A persistent dirty bitmap the source carries (it would be copied too). */
export interface MeasureBitmap {
  name: string;
  granularity: number;
}

/** What `img measure` asks a format: the host size of a new image of this format. */
export interface MeasureRequest {
  /** The `-o` options, `size` excluded. */
  options: Map<string, string>;
  /** Virtual size: --size, or the source's size rounded up to 512-byte sectors. */
  size: number;
  /** The source image (`img measure FILENAME`); null with --size. */
  source: {
    /** The source's runs through its whole backing chain, in order, covering [0, size). */
    extents(): AsyncIterable<MeasureExtent>;
    /** Persistent bitmaps of the source, or null when its format cannot carry any. */
    bitmaps: readonly MeasureBitmap[] | null;
  } | null;
}

/** qemu-img measure's BlockMeasureInfo. */
export interface MeasureResult {
  required: number;
  fullyAllocated: number;
  /** Space for the source's bitmaps, when both formats can carry bitmaps. */
  bitmaps?: number;
}

export interface FormatDriver {
  readonly name: string;
  /** 0 = not this format; higher = more certain. `header` is up to the first 4 KiB. */
  probe(header: Uint8Array, filename: string): number;
  open(file: ProtocolNode, ctx: OpenContext): Promise<ImageNode>;
  create(req: CreateRequest): Promise<void>;
  readonly createOptions: readonly CreateOptionSpec[];
  /**
   * Sizes a new image for `img measure`. Absent: img measure refuses the format,
   * except raw, whose image is the disk byte for byte (both sizes = virtual size).
   */
  measure?(req: MeasureRequest): Promise<MeasureResult>;
  /**
   * `img check`: the format's consistency check on its image file. Absent: the
   * format has none (qemu-img's "does not support checks", exit 63). Only qcow2 repairs.
   */
  check?(file: ProtocolNode, opts: { fix?: RepairMode; log: (line: string) => void }): Promise<CheckCounts>;
  /**
   * False when create() writes files beside the named one (split or flat extents
   * that the descriptor names): convert must then create the target under its
   * final name. Absent: true.
   */
  createsOneFile?(options: Map<string, string>): boolean;
}

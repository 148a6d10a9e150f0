/**
 * The parts of a device tree a machine reads or rewrites when it did not
 * build the tree itself (a --dtb file): the /chosen boot parameters (read, and
 * written so --append and --initrd still apply) and the RAM ranges of the
 * /memory nodes, using the root's #address-cells and #size-cells (defaults 2
 * and 1, as the Devicetree Specification says). Malformed values give an
 * FdtError. The virt machine's own tree fills /chosen through writeChosen too.
 */
import { FdtError } from './fdt-format.js';
import { type FdtTree, cellsToNumber } from './fdt-node.js';

export interface FdtChosen {
  bootargs?: string;
  stdoutPath?: string;
  initrdStart?: number;
  initrdEnd?: number;
  rngSeed?: Uint8Array;
}

export interface MemoryRange {
  base: number;
  size: number;
}

/** Cells as one number, or an FdtError naming `what`. */
function toNumber(cells: number[], what: string): number {
  try {
    return cellsToNumber(cells);
  } catch {
    throw new FdtError(`${what} lies above 2^53`);
  }
}

export function readChosen(tree: FdtTree): FdtChosen {
  const chosen = tree.find('/chosen');
  if (!chosen) return {};
  const numberProp = (prop: string): number | undefined => {
    if (!chosen.has(prop)) return undefined;
    const cells = chosen.getCells(prop);
    if (!cells || (cells.length !== 1 && cells.length !== 2)) throw new FdtError(`/chosen ${prop} is not a 1- or 2-cell number`);
    return toNumber(cells, `/chosen ${prop}`);
  };
  const chosenValues: FdtChosen = {
    bootargs: chosen.getString('bootargs'),
    stdoutPath: chosen.getString('stdout-path'),
    initrdStart: numberProp('linux,initrd-start'),
    initrdEnd: numberProp('linux,initrd-end'),
    rngSeed: chosen.getBytes('rng-seed'),
  };
  return Object.fromEntries(Object.entries(chosenValues).filter(([, v]) => v !== undefined));
}

/** Sets the given /chosen properties (creating /chosen if needed); the initrd range as 64-bit values. */
export function writeChosen(tree: FdtTree, values: FdtChosen): void {
  const chosen = tree.root.child('chosen') ?? tree.root.addNode('chosen');
  if (values.bootargs !== undefined) chosen.setString('bootargs', values.bootargs);
  if (values.stdoutPath !== undefined) chosen.setString('stdout-path', values.stdoutPath);
  if (values.initrdStart !== undefined) chosen.setU64('linux,initrd-start', values.initrdStart);
  if (values.initrdEnd !== undefined) chosen.setU64('linux,initrd-end', values.initrdEnd);
  if (values.rngSeed !== undefined) chosen.setBytes('rng-seed', values.rngSeed);
}

/** The reg ranges of every root-level node with device_type "memory", in tree order. */
export function readMemory(tree: FdtTree): MemoryRange[] {
  const addressCells = tree.root.getU32('#address-cells') ?? 2;
  const sizeCells = tree.root.getU32('#size-cells') ?? 1;
  if (addressCells < 1 || addressCells > 2 || sizeCells < 1 || sizeCells > 2) {
    throw new FdtError(`unsupported #address-cells ${addressCells} / #size-cells ${sizeCells} at the root`);
  }
  const entry = addressCells + sizeCells;
  const ranges: MemoryRange[] = [];
  for (const node of tree.root.children) {
    if (node.getString('device_type') !== 'memory') continue;
    const cells = node.getCells('reg');
    if (!cells || cells.length === 0 || cells.length % entry !== 0) {
      throw new FdtError(`${node.name}: reg is not a list of ${entry}-cell entries`);
    }
    for (let i = 0; i < cells.length; i += entry) {
      ranges.push({
        base: toNumber(cells.slice(i, i + addressCells), `${node.name} base`),
        size: toNumber(cells.slice(i + addressCells, i + entry), `${node.name} size`),
      });
    }
  }
  return ranges;
}

/**
 * What a machine reads from a device tree it did not build (a --dtb file):
 * the /chosen boot parameters and the RAM ranges of the /memory nodes, using
 * the root's #address-cells and #size-cells (defaults 2 and 1, as the
 * Devicetree Specification says). Malformed values give an FdtError.
 */
import { FdtError } from './fdt-format.js';
import { type FdtTree, cellsToNumber } from './fdt-node.js';

export interface FdtChosen {
  bootargs?: string;
  stdoutPath?: string;
  initrdStart?: number;
  initrdEnd?: number;
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
  return {
    bootargs: chosen.getString('bootargs'),
    stdoutPath: chosen.getString('stdout-path'),
    initrdStart: numberProp('linux,initrd-start'),
    initrdEnd: numberProp('linux,initrd-end'),
  };
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

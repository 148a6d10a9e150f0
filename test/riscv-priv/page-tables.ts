/**
 * Builds Sv39/Sv48 page tables in a test machine's RAM (tests only): a bump
 * allocator of zeroed 4 KiB table pages from TABLE_POOL, and map() that
 * creates the intermediate tables down to the leaf level asked for.
 */
import { RAM, readU64, writeU64, type TestMachine } from './setup.js';

export const PTE = { V: 1, R: 2, W: 4, X: 8, U: 16, G: 32, A: 64, D: 128 } as const;
export const RWX_AD = PTE.V | PTE.R | PTE.W | PTE.X | PTE.A | PTE.D;
export const TABLE_POOL = RAM + 0x30_0000;

export class PageTables {
  readonly root: number;
  private next = TABLE_POOL;

  constructor(
    private readonly m: TestMachine,
    readonly levels: 3 | 4,
  ) {
    this.root = this.alloc();
  }

  /** satp value selecting these tables. */
  get satp(): bigint {
    return (BigInt(this.levels === 3 ? 8 : 9) << 60n) | BigInt(this.root / 4096);
  }

  /** Maps va to pa with a leaf PTE at `level` (0: 4 KiB, 1: 2 MiB, 2: 1 GiB, 3: 512 GiB); returns the PTE's address. */
  map(va: bigint, pa: number, flags: number, level = 0): number {
    let table = this.root;
    for (let l = this.levels - 1; ; l--) {
      const at = table + Number((va >> BigInt(12 + 9 * l)) & 0x1ffn) * 8;
      if (l === level) {
        writeU64(this.m, at, (BigInt(Math.floor(pa / 4096)) << 10n) | BigInt(flags));
        return at;
      }
      let pte = readU64(this.m, at);
      if ((pte & 1n) === 0n) {
        pte = (BigInt(this.alloc() / 4096) << 10n) | BigInt(PTE.V);
        writeU64(this.m, at, pte);
      }
      table = Number(pte >> 10n) * 4096;
    }
  }

  private alloc(): number {
    const page = this.next;
    this.next += 4096;
    for (let i = 0; i < 4096; i += 8) writeU64(this.m, page + i, 0n);
    return page;
  }
}

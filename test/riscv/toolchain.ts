/**
 * Test helper: assembles RISC-V sources with Debian's cross toolchain
 * (riscv64-linux-gnu-gcc; a missing toolchain fails the test) into an ELF
 * linked at 0x8000_0000 (.text first, so the entry point is the start of RAM,
 * where QEMU's -bios none starts too), extracts the raw .text bytes, and
 * reads the symbol table with nm, and disassembles with objdump. Sources may #include files from
 * fixtures/riscv-isa (harness.h: the ISA tests' conventions).
 */
import { writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, requirePeer, runProgram, ROOT } from '../helpers/peers.js';

export const GCC = 'riscv64-linux-gnu-gcc';
const OBJCOPY = 'riscv64-linux-gnu-objcopy';
const OBJDUMP = 'riscv64-linux-gnu-objdump';
const NM = 'riscv64-linux-gnu-nm';
export const MARCH = 'rv64gc_zba_zbb_zbs';
export const ISA_FIXTURES = path.join(ROOT, 'fixtures/riscv-isa');

const LINKER_SCRIPT = `
OUTPUT_ARCH(riscv)
ENTRY(_start)
SECTIONS {
  . = 0x80000000;
  .text : { *(.text.init) *(.text .text.*) }
  . = ALIGN(0x1000);
  .data : { *(.data .data.* .sdata .sdata.* .rodata .rodata.* .srodata .srodata.*) }
  .bss : { *(.bss .bss.* .sbss .sbss.*) }
  . = ALIGN(0x1000);
  _end = .;
}
`;

/** Writes the linker script (RAM at 0x8000_0000, .text first, _end after .bss) into `dir`; returns its path. */
export async function writeLinkerScript(dir: string): Promise<string> {
  const lds = path.join(dir, 'link.ld');
  await writeFile(lds, LINKER_SCRIPT);
  return lds;
}

export interface Assembled {
  elf: string;
  /** The raw bytes of .text. */
  text: Uint8Array;
  /** Symbol addresses from nm. */
  symbols: Map<string, bigint>;
}

/** Assembles and links the source file `src` into `dir`; `defines` become -D options. */
export async function assembleFile(dir: string, src: string, march: string = MARCH, defines: readonly string[] = []): Promise<Assembled> {
  requirePeer(GCC);
  requirePeer(OBJCOPY);
  requirePeer(NM);
  const name = path.basename(src).replace(/\.S$/, '');
  const lds = await writeLinkerScript(dir);
  const elf = path.join(dir, `${name}.elf`);
  const bin = path.join(dir, `${name}.text.bin`);
  await mustRun(
    runProgram(GCC, ['-nostdlib', '-static', '-Wl,--build-id=none', `-march=${march}`, '-mabi=lp64d', ...defines.map((d) => `-D${d}`), '-I', ISA_FIXTURES, '-T', lds, '-o', elf, src]),
    `${GCC} ${name}.S`,
  );
  await mustRun(runProgram(OBJCOPY, ['-O', 'binary', '-j', '.text', elf, bin]), `${OBJCOPY} ${name}`);
  const nm = await mustRun(runProgram(NM, [elf]), `${NM} ${name}`);
  const symbols = new Map<string, bigint>();
  for (const line of nm.stdout.split('\n')) {
    const [addr, , sym] = line.trim().split(/\s+/);
    if (addr && sym) symbols.set(sym, BigInt(`0x${addr}`));
  }
  return { elf, text: new Uint8Array(await readFile(bin)), symbols };
}

/** objdump's disassembly of an ELF's .text with no aliases: one [address, mnemonic, operands] per instruction. */
export async function objdump(elf: string): Promise<[bigint, string, string][]> {
  requirePeer(OBJDUMP);
  const r = await mustRun(runProgram(OBJDUMP, ['-d', '-M', 'no-aliases', '-j', '.text', elf]), `${OBJDUMP} ${elf}`);
  const out: [bigint, string, string][] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([0-9a-f]+):\s+[0-9a-f]+\s+(\S+)\s*(.*)$/.exec(line);
    if (m) out.push([BigInt(`0x${m[1]}`), m[2]!, m[3]!.trim()]);
  }
  return out;
}

/** Assembles `source` (a .S file's text) written to `dir` as `name`.S. */
export async function assemble(dir: string, name: string, source: string, march: string = MARCH): Promise<Assembled> {
  const src = path.join(dir, `${name}.S`);
  await writeFile(src, source);
  return assembleFile(dir, src, march);
}

/**
 * Test helper: assembles RISC-V sources with Debian's cross toolchain
 * (riscv64-linux-gnu-gcc; a missing toolchain fails the test) into an ELF
 * linked at 0x8000_0000, and extracts the raw .text bytes.
 */
import { writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { mustRun, requirePeer, runProgram } from '../helpers/peers.js';

export const GCC = 'riscv64-linux-gnu-gcc';
export const OBJCOPY = 'riscv64-linux-gnu-objcopy';
export const MARCH = 'rv64gc_zba_zbb_zbs';

const LINKER_SCRIPT = `
OUTPUT_ARCH(riscv)
ENTRY(_start)
SECTIONS {
  . = 0x80000000;
  .text : { *(.text.init) *(.text .text.*) }
  . = ALIGN(0x1000);
  .data : { *(.data .data.* .sdata .sdata.* .rodata .rodata.*) }
  .bss : { *(.bss .bss.* .sbss .sbss.*) }
  . = ALIGN(0x1000);
  _end = .;
}
`;

export interface Assembled {
  elf: string;
  text: Uint8Array;
}

/** Assembles and links `source` (a .S file's text) in `dir` under `name`. */
export async function assemble(dir: string, name: string, source: string, march: string = MARCH): Promise<Assembled> {
  requirePeer(GCC);
  requirePeer(OBJCOPY);
  const src = path.join(dir, `${name}.S`);
  const lds = path.join(dir, 'link.ld');
  const elf = path.join(dir, `${name}.elf`);
  const bin = path.join(dir, `${name}.text.bin`);
  await writeFile(src, source);
  await writeFile(lds, LINKER_SCRIPT);
  await mustRun(
    runProgram(GCC, ['-nostdlib', '-static', `-march=${march}`, '-mabi=lp64d', '-T', lds, '-o', elf, src]),
    `${GCC} ${name}.S`,
  );
  await mustRun(runProgram(OBJCOPY, ['-O', 'binary', '-j', '.text', elf, bin]), `${OBJCOPY} ${name}`);
  return { elf, text: new Uint8Array(await readFile(bin)) };
}

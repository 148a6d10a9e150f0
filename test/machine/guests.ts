/**
 * Test helper: builds the bare-metal guests of guest.S (one ELF per mode) with
 * Debian's riscv64 cross compiler, linked at 0x80200000 where tsemu's SBI
 * boot puts a kernel.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustRun, requirePeer, runProgram } from '../helpers/peers.js';

export type GuestMode = 'HELLO' | 'IDLE' | 'REBOOT' | 'SMP' | 'SUSPEND';

const SOURCE = fileURLToPath(new URL('./guest.S', import.meta.url));
const LINKER_SCRIPT = 'SECTIONS { . = 0x80200000; .text : { *(.text) } .data : { *(.data) } .bss : { *(.bss) } }\n';

/** Builds guest `mode` into `dir`; returns the ELF's path. */
export async function buildGuest(dir: string, mode: GuestMode): Promise<string> {
  requirePeer('riscv64-linux-gnu-gcc');
  const script = path.join(dir, 'guest.ld');
  await writeFile(script, LINKER_SCRIPT);
  const elf = path.join(dir, `${mode.toLowerCase()}.elf`);
  await mustRun(
    runProgram('riscv64-linux-gnu-gcc', [
      '-nostdlib', '-static', `-DMODE_${mode}`, `-Wl,-T,${script}`, '-Wl,--build-id=none', '-Wl,--no-warn-rwx-segments',
      '-o', elf, SOURCE,
    ]),
    `build guest ${mode}`,
  );
  return elf;
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { GuestMemory } from '../../src/emulator/bus/interfaces.js';
import { GuestMemoryError } from '../../src/emulator/bus/interfaces.js';
import { loadKernel } from '../../src/emulator/loader/kernel.js';
import { parseElf64 } from '../../src/emulator/loader/elf64.js';
import { parseRiscvImageHeader } from '../../src/emulator/loader/riscv-image.js';
import { fdtAddress, initrdAddress, kernelBase, firmwareInfoAddress, MiB } from '../../src/emulator/loader/placement.js';
import { mustRun, requirePeer, runProgram, scratchDir } from '../helpers/peers.js';

const RAM = { base: 0x8000_0000, size: 128 * MiB };

/** Guest RAM as a plain array, for loaders. */
function fakeRam(): GuestMemory & { bytes: Uint8Array } {
  const bytes = new Uint8Array(RAM.size);
  const check = (gpa: number, length: number): number => {
    if (gpa < RAM.base || gpa + length > RAM.base + RAM.size) throw new GuestMemoryError(gpa, length);
    return gpa - RAM.base;
  };
  return {
    bytes,
    read: (gpa, dst) => dst.set(bytes.subarray(check(gpa, dst.length), check(gpa, dst.length) + dst.length)),
    write: (gpa, src) => bytes.set(src, check(gpa, src.length)),
  };
}

function imageWithHeader(textOffset: number, imageSize: number, length = 4096): Uint8Array {
  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 0x0000_006f, true); // j . (code0)
  view.setUint32(8, textOffset, true);
  view.setUint32(16, imageSize, true);
  view.setUint32(32, 2, true);
  bytes.set(Buffer.from('RISCV\0\0\0'), 48);
  bytes.set(Buffer.from('RSC\x05', 'latin1'), 56);
  bytes[100] = 0xab;
  return bytes;
}

test('Image header: text_offset and image_size are read; non-images are not recognised', () => {
  assert.deepEqual(parseRiscvImageHeader(imageWithHeader(0x200000, 0x1234000)), {
    textOffset: 0x200000,
    imageSize: 0x1234000,
    version: 2,
  });
  assert.equal(parseRiscvImageHeader(new Uint8Array(4096)), null);
  assert.equal(parseRiscvImageHeader(new Uint8Array(10)), null);
});

test('flat Image loads at the kernel base and reserves image_size bytes', () => {
  const mem = fakeRam();
  const base = kernelBase(RAM);
  assert.equal(base, 0x8020_0000);
  const k = loadKernel(mem, RAM, imageWithHeader(0x200000, 0x80_0000), base);
  assert.deepEqual(k, { format: 'image', entry: base, start: base, end: base + 0x80_0000 });
  assert.equal(mem.bytes[0x20_0000 + 100], 0xab);
});

test('gzip-compressed Image is decompressed; a raw binary loads flat', () => {
  const mem = fakeRam();
  const k = loadKernel(mem, RAM, gzipSync(imageWithHeader(0x200000, 0x10000)), 0x8020_0000);
  assert.equal(k.format, 'image');
  assert.equal(mem.bytes[0x20_0000 + 100], 0xab);
  const raw = loadKernel(mem, RAM, Uint8Array.from([1, 2, 3]), 0x8040_0000);
  assert.deepEqual(raw, { format: 'raw', entry: 0x8040_0000, start: 0x8040_0000, end: 0x8040_0003 });
});

test('a kernel that does not fit in RAM is a clear error', () => {
  const mem = fakeRam();
  assert.throws(() => loadKernel(mem, RAM, imageWithHeader(0x200000, 0x1000_0000), 0x8020_0000), /does not fit in guest RAM/);
  assert.throws(() => loadKernel(mem, RAM, Uint8Array.from([0x1f, 0x8b, 1, 2]), 0x8020_0000), /cannot decompress/);
});

test('ELF64: a program built by the cross toolchain loads at its physical addresses with .bss zeroed', async () => {
  requirePeer('riscv64-linux-gnu-gcc');
  const { dir, cleanup } = await scratchDir();
  try {
    const src = path.join(dir, 'p.S');
    const elfPath = path.join(dir, 'p.elf');
    const script = path.join(dir, 'p.ld');
    await writeFile(script, 'SECTIONS { . = 0x80200000; .text : { *(.text) } .data : { *(.data) } .bss : { *(.bss) } }\n');
    await writeFile(
      src,
      '.option norvc\n.section .text\n.globl _start, entry2\n_start: nop\nentry2: j entry2\n' +
        '.section .data\nvalue: .quad 0x1122334455667788\n.section .bss\nzeros: .space 8192\n',
    );
    await mustRun(
      runProgram('riscv64-linux-gnu-gcc', ['-nostdlib', '-static', `-Wl,-T,${script}`, '-Wl,--build-id=none', '-Wl,--no-warn-rwx-segments', '-Wl,-e,entry2', '-o', elfPath, src]),
      'cross-compile',
    );
    const file = await readFile(elfPath);
    const elf = parseElf64(file);
    assert.equal(elf.entry, 0x8020_0004);
    const mem = fakeRam();
    mem.bytes.fill(0xee, 0x20_0000, 0x30_0000);
    const k = loadKernel(mem, RAM, file, 0);
    assert.equal(k.format, 'elf');
    assert.equal(k.entry, 0x8020_0004);
    assert.equal(k.start, 0x8020_0000);
    const data = elf.segments.flatMap((s) => (s.data.length >= 8 ? [s] : []));
    assert.ok(data.some((s) => Buffer.from(mem.bytes.subarray(s.paddr - RAM.base, s.paddr - RAM.base + s.data.length)).equals(s.data)));
    const bss = mem.bytes.subarray(k.end - RAM.base - 8192, k.end - RAM.base);
    assert.ok(bss.every((b) => b === 0));
  } finally {
    await cleanup();
  }
});

test('ELF64: hostile headers are errors, not crashes', () => {
  const bad = new Uint8Array(64);
  bad.set([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
  const view = new DataView(bad.buffer);
  view.setUint16(16, 2, true);
  view.setUint16(18, 243, true);
  view.setUint32(32, 0xffff_0000, true); // e_phoff far away
  view.setUint16(54, 56, true);
  view.setUint16(56, 4, true);
  assert.throws(() => parseElf64(bad), /ELF: program headers run past/);
  view.setUint16(18, 62, true);
  assert.throws(() => parseElf64(bad), /not a RISC-V file/);
  assert.throws(() => parseElf64(bad.subarray(0, 20)), /truncated/);
});

test('placement: FDT at the top of RAM (2 MiB aligned, below 3 GiB), info page and initrd below it', () => {
  const fdt = fdtAddress(RAM, 0x2000);
  assert.equal(fdt, 0x8000_0000 + 128 * MiB - 2 * MiB);
  const big = { base: 0x8000_0000, size: 2048 * MiB };
  assert.equal(fdtAddress(big, 0x2000), 3072 * MiB - 2 * MiB);
  const info = firmwareInfoAddress(fdt);
  const initrd = initrdAddress(0x8100_0000, info, 0x12345);
  assert.equal(initrd % 4096, 0);
  assert.ok(initrd + 0x12345 <= info);
  assert.throws(() => initrdAddress(0x8100_0000, info, 200 * MiB), /does not fit/);
  assert.equal(kernelBase(RAM, 0x8000_0000 + 115328), 0x8020_0000);
});

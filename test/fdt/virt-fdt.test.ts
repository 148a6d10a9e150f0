/**
 * The virt machine's device tree: dtc decompiles it without warnings, it holds
 * every node a kernel needs, and it agrees with the tree QEMU 7.2's own virt
 * board dumps (same nodes, compatibles, registers and interrupt wiring) for the
 * devices tsemu models.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import type { FdtNode, FdtTree } from '../../src/emulator/fdt/fdt-node.js';
import { readChosen, readMemory } from '../../src/emulator/fdt/fdt-query.js';
import { parseFdt } from '../../src/emulator/fdt/fdt-reader.js';
import { serializeFdt } from '../../src/emulator/fdt/fdt-writer.js';
import { buildVirtFdt, splitIsa } from '../../src/emulator/machines/virt-fdt.js';
import { mustRun, requirePeer, runProgram } from '../helpers/peers.js';
import { dtcScratch } from './dtc-scratch.js';

const ISA = 'rv64imafdc_zicsr_zifencei_zicntr';
const RAM = 256 * 1024 * 1024;

const scratchFile = dtcScratch();

function twoHartTree(): FdtTree {
  return buildVirtFdt({
    ramSize: RAM,
    harts: 2,
    isa: ISA,
    bootargs: 'console=ttyS0 earlycon',
    initrd: { start: 0x8800_0000, end: 0x8812_3456 },
    rngSeed: new Uint8Array(32).fill(7),
  });
}

function walk(node: FdtNode, prefix: string, out: Map<string, FdtNode>): Map<string, FdtNode> {
  for (const child of node.children) {
    const p = `${prefix}/${child.name}`;
    out.set(p, child);
    walk(child, p, out);
  }
  return out;
}

/** interrupts-extended with each phandle replaced by the path of the node it names. */
function resolvedInterrupts(tree: FdtTree, node: FdtNode): string[] {
  const byHandle = new Map<number, string>();
  for (const [p, n] of walk(tree.root, '', new Map())) {
    const h = n.getU32('phandle');
    if (h !== undefined) byHandle.set(h, p);
  }
  const cells = node.getCells('interrupts-extended') ?? [];
  const out: string[] = [];
  for (let i = 0; i < cells.length; i += 2) out.push(`${byHandle.get(cells[i])}:${cells[i + 1]}`);
  return out;
}

describe('virt device tree', () => {
  it('decompiles with dtc, without warnings, and holds the nodes a kernel needs', async () => {
    const file = scratchFile('virt.dtb');
    await writeFile(file, serializeFdt(twoHartTree()));
    const r = await mustRun(runProgram('dtc', ['-I', 'dtb', '-O', 'dts', file]), 'dtc');
    assert.equal(r.stderr, '');
    for (const needle of [
      'chosen {',
      'bootargs = "console=ttyS0 earlycon";',
      'stdout-path = "/soc/serial@10000000";',
      'linux,initrd-start = <0x00 0x88000000>;',
      'linux,initrd-end = <0x00 0x88123456>;',
      'rng-seed = <',
      'memory@80000000 {',
      'reg = <0x00 0x80000000 0x00 0x10000000>;',
      'timebase-frequency = <0x989680>;',
      'cpu@0 {',
      'cpu@1 {',
      `riscv,isa = "${ISA}";`,
      'riscv,isa-base = "rv64i";',
      'riscv,isa-extensions = "i\\0m\\0a\\0f\\0d\\0c\\0zicsr\\0zifencei\\0zicntr";',
      'mmu-type = "riscv,sv48";',
      'compatible = "riscv,cpu-intc";',
      'cpu-map {',
      'clint@2000000 {',
      'compatible = "sifive,clint0\\0riscv,clint0";',
      'plic@c000000 {',
      'compatible = "sifive,plic-1.0.0\\0riscv,plic0";',
      'reg = <0x00 0xc000000 0x00 0x204000>;',
      'riscv,ndev = <0x60>;',
      'serial@10000000 {',
      'compatible = "ns16550a";',
      'rtc@101000 {',
      'compatible = "google,goldfish-rtc";',
      'test@100000 {',
      'compatible = "sifive,test1\\0sifive,test0\\0syscon";',
      'compatible = "syscon-poweroff";',
      'value = <0x5555>;',
      'compatible = "syscon-reboot";',
      'value = <0x7777>;',
      'virtio_mmio@10001000 {',
      'virtio_mmio@10008000 {',
    ]) {
      assert.ok(r.stdout.includes(needle), `missing ${needle}\n${r.stdout}`);
    }
  });

  it('matches the nodes, registers and interrupt wiring of QEMU 7.2’s virt board', async () => {
    requirePeer('qemu-system-riscv64');
    const dumped = scratchFile('qemu.dtb');
    await mustRun(
      runProgram('qemu-system-riscv64', ['-M', `virt,dumpdtb=${dumped}`, '-smp', '2', '-m', '256M', '-nographic', '-nodefaults']),
      'qemu dumpdtb',
    );
    const qemu = parseFdt(new Uint8Array(await readFile(dumped)));
    const ours = twoHartTree();
    const qemuNodes = walk(qemu.root, '', new Map());
    const ourNodes = walk(ours.root, '', new Map());
    // Devices tsemu does not model (PCI, flash, fw_cfg, platform bus, PMU).
    const notModelled = /^\/(pmu|fw-cfg@|flash@|platform-bus@|soc\/pci@)/;
    const compared = ['compatible', 'reg', 'interrupts', 'interrupt-parent', 'clock-frequency', 'device_type', 'value', 'offset', 'riscv,ndev', '#interrupt-cells', 'timebase-frequency', 'status', 'mmu-type', 'stdout-path'];
    let checked = 0;
    for (const [p, theirs] of qemuNodes) {
      if (notModelled.test(p)) continue;
      const mine = ourNodes.get(p);
      assert.ok(mine, `missing node ${p}`);
      for (const prop of compared) {
        if (!theirs.has(prop) || prop === 'interrupt-parent') continue;
        if (p.startsWith('/soc/plic') && prop === 'reg') continue; // QEMU sizes it for 512 harts
        assert.deepEqual(mine.getBytes(prop), theirs.getBytes(prop), `${p} ${prop}`);
        checked++;
      }
      if (theirs.has('interrupts-extended')) {
        assert.deepEqual(resolvedInterrupts(ours, mine), resolvedInterrupts(qemu, theirs), `${p} interrupts-extended`);
      }
      assert.equal(mine.has('interrupt-parent'), theirs.has('interrupt-parent'), `${p} interrupt-parent`);
    }
    assert.ok(checked > 50, `compared ${checked} properties`);
    const again = scratchFile('qemu-again.dtb');
    await writeFile(again, serializeFdt(qemu));
    const decompile = async (file: string) => (await mustRun(runProgram('dtc', ['-q', '-I', 'dtb', '-O', 'dts', file]), 'dtc')).stdout;
    assert.equal(await decompile(again), await decompile(dumped), 'QEMU’s own tree goes through the reader and writer unchanged');
  });

  it('reads back through the FDT reader', () => {
    const tree = parseFdt(serializeFdt(twoHartTree()));
    assert.deepEqual(readChosen(tree), {
      bootargs: 'console=ttyS0 earlycon',
      stdoutPath: '/soc/serial@10000000',
      initrdStart: 0x8800_0000,
      initrdEnd: 0x8812_3456,
      rngSeed: new Uint8Array(32).fill(7),
    });
    assert.deepEqual(readMemory(tree), [{ base: 0x8000_0000, size: RAM }]);
  });

  it('scales the PLIC window and the per-hart wiring with the hart count', () => {
    const tree = buildVirtFdt({ ramSize: RAM, harts: 4, isa: ISA, mmuType: 'riscv,sv39', virtioSlots: 2 });
    const plic = tree.find('/soc/plic')!;
    assert.deepEqual(plic.getCells('reg'), [0, 0x0c00_0000, 0, 0x20_0000 + 8 * 0x1000]);
    assert.equal(plic.getCells('interrupts-extended')?.length, 16);
    assert.equal(tree.find('/soc/clint')!.getCells('interrupts-extended')?.length, 16);
    assert.equal(tree.find('/cpus/cpu@3')?.getString('mmu-type'), 'riscv,sv39');
    assert.equal(tree.find('/cpus/cpu-map/cluster0')?.children.length, 4);
    assert.equal(tree.find('/soc')!.children.filter((n) => n.baseName === 'virtio_mmio').length, 2);
    assert.equal(tree.find('/chosen')?.has('bootargs'), false);
  });

  it('validates its options', () => {
    assert.deepEqual(splitIsa('rv64imac_zicsr'), { base: 'rv64i', extensions: ['i', 'm', 'a', 'c', 'zicsr'] });
    assert.throws(() => splitIsa('rv64gc'), RangeError);
    assert.throws(() => splitIsa('x86'), RangeError);
    assert.throws(() => buildVirtFdt({ ramSize: RAM, harts: 0, isa: ISA }), RangeError);
    assert.throws(() => buildVirtFdt({ ramSize: RAM, harts: 65, isa: ISA }), RangeError);
    assert.throws(() => buildVirtFdt({ ramSize: RAM, harts: 1, isa: ISA, virtioSlots: 9 }), RangeError);
  });
});

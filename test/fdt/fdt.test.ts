/**
 * The FDT writer and reader against the real dtc (Debian device-tree-compiler):
 * dtc decompiles our blobs into exactly the text we built, and blobs dtc
 * compiles parse and serialise back to the same tree. Hostile blobs give an
 * FdtError and nothing else.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { FdtError } from '../../src/emulator/fdt/fdt-format.js';
import { FdtNode, FdtTree } from '../../src/emulator/fdt/fdt-node.js';
import { readChosen, readMemory, writeChosen } from '../../src/emulator/fdt/fdt-query.js';
import { parseFdt } from '../../src/emulator/fdt/fdt-reader.js';
import { serializeFdt } from '../../src/emulator/fdt/fdt-writer.js';
import { mustRun, runProgram } from '../helpers/peers.js';
import { dtcScratch } from './dtc-scratch.js';

const scratchFile = dtcScratch();

async function decompile(blob: Uint8Array, name: string): Promise<string> {
  const file = scratchFile(name);
  await writeFile(file, blob);
  return (await mustRun(runProgram('dtc', ['-q', '-I', 'dtb', '-O', 'dts', file]), 'dtc -O dts')).stdout;
}

async function compile(dts: string, name: string): Promise<Uint8Array> {
  const src = scratchFile(`${name}.dts`);
  const out = scratchFile(`${name}.dtb`);
  await writeFile(src, dts);
  await mustRun(runProgram('dtc', ['-q', '-I', 'dts', '-O', 'dtb', '-o', out, src]), 'dtc -O dtb');
  return new Uint8Array(await readFile(out));
}

function sampleTree(): FdtTree {
  const tree = new FdtTree();
  tree.reservations.push({ address: 0x8000_0000, size: 0x1000 });
  tree.bootCpuId = 1;
  const root = tree.root.setU32('#address-cells', 2).setU32('#size-cells', 2).setString('model', 'tsemu test');
  const intc = root.addNode('intc').setEmpty('interrupt-controller');
  const handle = tree.phandle(intc);
  root
    .addNode('memory@80000000')
    .setString('device_type', 'memory')
    .setU64s('reg', [0x8000_0000, 0x1_2000_0000]);
  root
    .addNode('dev@1000')
    .setStrings('compatible', ['acme,dev2', 'acme,dev'])
    .setCells('interrupts-extended', [handle, 9, handle, 11])
    .setU64('big', 0x12_3456_789a)
    .setBytes('blob', Uint8Array.of(1, 2, 3));
  return tree;
}

const SAMPLE_DTS = `/dts-v1/;

/memreserve/	0x0000000080000000 0x0000000000001000;
/ {
	#address-cells = <0x02>;
	#size-cells = <0x02>;
	model = "tsemu test";

	intc {
		interrupt-controller;
		phandle = <0x01>;
	};

	memory@80000000 {
		device_type = "memory";
		reg = <0x00 0x80000000 0x01 0x20000000>;
	};

	dev@1000 {
		compatible = "acme,dev2\\0acme,dev";
		interrupts-extended = <0x01 0x09 0x01 0x0b>;
		big = <0x12 0x3456789a>;
		blob = [01 02 03];
	};
};
`;

describe('FDT writer', () => {
  it('writes a blob dtc decompiles into the tree that was built', async () => {
    assert.equal(await decompile(serializeFdt(sampleTree()), 'sample.dtb'), SAMPLE_DTS);
  });

  it('stores each property name once in the strings block', () => {
    const blob = serializeFdt(sampleTree());
    const view = new DataView(blob.buffer);
    const strings = Buffer.from(blob.subarray(view.getUint32(12), view.getUint32(12) + view.getUint32(32))).toString();
    const names = strings.split('\0').filter((s) => s !== '');
    assert.deepEqual(names, [...new Set(names)]);
    assert.ok(names.includes('reg') && names.includes('phandle'));
  });

  it('writes a version 17 header that dtc accepts with the boot cpu id', async () => {
    const file = scratchFile('hdr.dtb');
    await writeFile(file, serializeFdt(sampleTree()));
    const r = await mustRun(runProgram('fdtdump', [file]), 'fdtdump');
    assert.match(r.stdout, /\/\/ version:\s+17/);
    assert.match(r.stdout, /\/\/ boot_cpuid_phys:\s+0x1/);
  });

  it('refuses values a cell cannot hold', () => {
    const node = new FdtNode('x');
    assert.throws(() => node.setU32('a', 2 ** 32), RangeError);
    assert.throws(() => node.setU32('a', -1), RangeError);
    assert.throws(() => node.setU64('a', 2 ** 53), RangeError);
    assert.throws(() => node.addNode('a/b'), RangeError);
    node.addNode('y');
    assert.throws(() => node.addNode('y'), RangeError);
  });
});

const DTC_SOURCE = `/dts-v1/;
/memreserve/ 0x87000000 0x200000;
/ {
	#address-cells = <2>;
	#size-cells = <2>;
	compatible = "riscv-virtio";
	chosen {
		bootargs = "console=ttyS0 root=/dev/vda";
		stdout-path = "/soc/serial@10000000";
		linux,initrd-start = <0x0 0x88000000>;
		linux,initrd-end = <0x88100000>;
	};
	memory@80000000 {
		device_type = "memory";
		reg = <0x0 0x80000000 0x0 0x8000000>, <0x1 0x0 0x0 0x4000000>;
	};
	cpus {
		#address-cells = <1>;
		#size-cells = <0>;
		cpu0: cpu@0 { reg = <0>; compatible = "riscv"; intc0: interrupt-controller { interrupt-controller; #interrupt-cells = <1>; }; };
	};
	soc {
		plic@c000000 { interrupts-extended = <&intc0 11 &intc0 9>; };
		bytes { data = [de ad be ef 00]; };
	};
};
`;

describe('FDT reader', () => {
  it('parses what dtc compiles and writes it back to the same source', async () => {
    const blob = await compile(DTC_SOURCE, 'src');
    const tree = parseFdt(blob);
    const again = serializeFdt(tree);
    assert.equal(await decompile(again, 'again.dtb'), await decompile(blob, 'orig.dtb'));
    assert.deepEqual(tree.reservations, [{ address: 0x8700_0000, size: 0x20_0000 }]);
  });

  it('round-trips its own blobs byte for byte', () => {
    const blob = serializeFdt(sampleTree());
    const tree = parseFdt(blob);
    assert.equal(tree.bootCpuId, 1);
    assert.deepEqual(serializeFdt(tree), blob);
  });

  it('reads /chosen and /memory', async () => {
    const tree = parseFdt(await compile(DTC_SOURCE, 'chosen'));
    assert.deepEqual(readChosen(tree), {
      bootargs: 'console=ttyS0 root=/dev/vda',
      stdoutPath: '/soc/serial@10000000',
      initrdStart: 0x8800_0000,
      initrdEnd: 0x8810_0000,
    });
    assert.deepEqual(readMemory(tree), [
      { base: 0x8000_0000, size: 0x800_0000 },
      { base: 0x1_0000_0000, size: 0x400_0000 },
    ]);
    assert.equal(tree.find('/soc/plic')?.name, 'plic@c000000');
    assert.deepEqual(tree.find('/soc/bytes')?.getBytes('data'), Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 0));
  });

  it('rewrites /chosen of a tree it did not build, and creates /chosen when missing', async () => {
    const tree = parseFdt(await compile(DTC_SOURCE, 'patch'));
    writeChosen(tree, { bootargs: 'quiet', initrdStart: 0x9000_0000, initrdEnd: 0x1_0000_0000 });
    assert.deepEqual(readChosen(parseFdt(serializeFdt(tree))), {
      bootargs: 'quiet',
      stdoutPath: '/soc/serial@10000000',
      initrdStart: 0x9000_0000,
      initrdEnd: 0x1_0000_0000,
    });
    const bare = new FdtTree();
    assert.deepEqual(readChosen(bare), {});
    writeChosen(bare, { stdoutPath: '/uart' });
    assert.deepEqual(readChosen(bare), { stdoutPath: '/uart' });
  });

  it('allocates phandles above the ones a parsed tree already holds', async () => {
    const tree = parseFdt(await compile(DTC_SOURCE, 'ph'));
    const used = tree.find('/cpus/cpu@0/interrupt-controller')?.getU32('phandle');
    assert.equal(used, 1);
    assert.equal(tree.phandle(tree.find('/soc')!), 2);
  });

  it('gives an FdtError for malformed blobs', () => {
    const good = serializeFdt(sampleTree());
    const cases: Array<[string, (b: Uint8Array, v: DataView) => Uint8Array]> = [
      ['short', (b) => b.subarray(0, 20)],
      ['magic', (b, v) => (v.setUint32(0, 0xfeedd00d), b)],
      ['totalsize', (b, v) => (v.setUint32(4, b.length + 1), b)],
      ['truncated', (b) => b.subarray(0, b.length - 8)],
      ['struct offset', (b, v) => (v.setUint32(8, 0xffff_fff0), b)],
      ['version', (b, v) => (v.setUint32(20, 15), b)],
      ['token', (b, v) => (v.setUint32(v.getUint32(8), 7), b)],
      ['name offset', (b, v) => (v.setUint32(32, 0), b)],
    ];
    for (const [what, damage] of cases) {
      const copy = good.slice();
      assert.throws(() => parseFdt(damage(copy, new DataView(copy.buffer))), FdtError, what);
    }
  });

  it('never throws anything but FdtError on corrupted blobs', () => {
    const good = serializeFdt(sampleTree());
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < 3000; i++) {
      const copy = good.slice();
      for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) copy[Math.floor(rand() * copy.length)] = Math.floor(rand() * 256);
      try {
        serializeFdt(parseFdt(copy));
      } catch (e) {
        assert.ok(e instanceof FdtError, `iteration ${i}: ${String(e)}`);
      }
    }
  });
});

/**
 * The x86 boot structures and PC devices without KVM: bzImage header checks,
 * boot_params and e820 layout, ACPI table layout and checksums, PM1a
 * poweroff, i8042 reset, CMOS RTC time, PCI type-1 configuration access.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MmioBus } from '../../src/emulator/bus/mmio-bus.js';
import { PCI_MMIO_WINDOW, S5_SLP_TYP, buildAcpiTables, checksum } from '../../src/emulator/x86/acpi.js';
import { AcpiPmControl } from '../../src/emulator/x86/acpi-pm.js';
import { buildBootParams } from '../../src/emulator/x86/boot-params.js';
import { parseBzImage } from '../../src/emulator/x86/bzimage.js';
import { CmosRtc } from '../../src/emulator/x86/cmos-rtc.js';
import { I8042 } from '../../src/emulator/x86/i8042.js';
import { PciHost, type PciFunction } from '../../src/emulator/x86/pci-host.js';
import { microvmE820 } from '../../src/emulator/machines/microvm-boot.js';

const sum = (b: Uint8Array): number => b.reduce((a, x) => (a + x) & 0xff, 0);
const text = (b: Uint8Array, at: number, n: number): string => String.fromCharCode(...b.subarray(at, at + n));

function fakeBzImage(options: { version?: number; xloadflags?: number; setupSects?: number } = {}): Uint8Array {
  const image = new Uint8Array(0x2000);
  const v = new DataView(image.buffer);
  v.setUint8(0x1f1, options.setupSects ?? 1);
  v.setUint8(0x201, 0x6a);
  v.setUint32(0x202, 0x53726448, true);
  v.setUint16(0x206, options.version ?? 0x020f, true);
  v.setUint32(0x22c, 0x7fffffff, true);
  v.setUint16(0x236, options.xloadflags ?? 1, true);
  v.setUint32(0x238, 2047, true);
  v.setUint32(0x260, 0x10000, true);
  image[0x400] = 0xee;
  return image;
}

describe('bzImage', () => {
  it('finds the protected-mode part and the header fields', () => {
    const bz = parseBzImage(fakeBzImage());
    assert.equal(bz.header.version, 0x020f);
    assert.equal(bz.header.initSize, 0x10000);
    assert.equal(bz.header.cmdlineSize, 2047);
    assert.equal(bz.header.bytes.length, 0x26c - 0x1f1);
    assert.equal(bz.kernel[0], 0xee);
    assert.equal(bz.initrdAbove4G, false);
  });

  it('refuses what it cannot boot the 64-bit way', () => {
    assert.throws(() => parseBzImage(new Uint8Array(0x1000)), /not a bzImage/);
    assert.throws(() => parseBzImage(fakeBzImage({ version: 0x020b })), /2\.12 or later/);
    assert.throws(() => parseBzImage(fakeBzImage({ xloadflags: 0 })), /XLF_KERNEL_64/);
    assert.throws(() => parseBzImage(fakeBzImage({ setupSects: 60 })), /ends inside its setup part/);
  });
});

describe('boot_params', () => {
  it('carries the header, loader fields, e820 and the RSDP', () => {
    const bz = parseBzImage(fakeBzImage());
    const e820 = microvmE820(64 << 20);
    const page = buildBootParams({ header: bz.header.bytes, cmdlineAddr: 0x20000, initrd: { addr: 0x3f00000, size: 1234 }, e820, rsdpAddr: 0xe0000 });
    const v = new DataView(page.buffer);
    assert.equal(v.getUint32(0x202, true), 0x53726448);
    assert.equal(page[0x210], 0xff);
    assert.equal(v.getUint32(0x228, true), 0x20000);
    assert.equal(v.getUint32(0x218, true), 0x3f00000);
    assert.equal(v.getUint32(0x21c, true), 1234);
    assert.equal(v.getBigUint64(0x70, true), 0xe0000n);
    assert.equal(page[0x1e8], 3);
    const entry = (i: number) => [Number(v.getBigUint64(0x2d0 + i * 20, true)), Number(v.getBigUint64(0x2d8 + i * 20, true)), v.getUint32(0x2e0 + i * 20, true)];
    assert.deepEqual(entry(0), [0, 0x9fc00, 1]);
    assert.deepEqual(entry(1), [0x9fc00, 0x100000 - 0x9fc00, 2]);
    assert.deepEqual(entry(2), [0x100000, (64 << 20) - 0x100000, 1]);
  });
});

describe('ACPI tables', () => {
  for (const cpus of [1, 2, 8]) {
    it(`RSDP → XSDT → FADT/DSDT/MADT with valid checksums for ${cpus} CPUs`, () => {
      const base = 0xe0000;
      const { bytes, rsdpAddr } = buildAcpiTables(base, { cpus, pm1aEventPort: 0x600, pm1aControlPort: 0x604, sciIrq: 9 });
      const at = (gpa: number) => gpa - base;
      const v = new DataView(bytes.buffer);
      const rsdp = bytes.subarray(at(rsdpAddr), at(rsdpAddr) + 36);
      assert.equal(text(rsdp, 0, 8), 'RSD PTR ');
      assert.equal(rsdp[15], 2);
      assert.equal(sum(rsdp.subarray(0, 20)), 0);
      assert.equal(sum(rsdp), 0);
      const table = (gpa: number) => bytes.subarray(at(gpa), at(gpa) + v.getUint32(at(gpa) + 4, true));
      const xsdt = table(Number(v.getBigUint64(at(rsdpAddr) + 24, true)));
      assert.equal(text(xsdt, 0, 4), 'XSDT');
      assert.equal(sum(xsdt), 0);
      const xv = new DataView(xsdt.buffer, xsdt.byteOffset, xsdt.byteLength);
      const tables = [Number(xv.getBigUint64(36, true)), Number(xv.getBigUint64(44, true))].map(table);
      const [fadt, madt] = tables;
      assert.equal(text(fadt, 0, 4), 'FACP');
      assert.equal(fadt.length, 276);
      assert.equal(sum(fadt), 0);
      const fv = new DataView(fadt.buffer, fadt.byteOffset, fadt.byteLength);
      assert.equal(fv.getUint16(46, true), 9);
      assert.equal(fv.getUint32(56, true), 0x600);
      assert.equal(fv.getUint32(64, true), 0x604);
      assert.equal(fadt[89], 2);
      const dsdt = table(Number(fv.getBigUint64(140, true)));
      assert.equal(fv.getUint32(40, true), Number(fv.getBigUint64(140, true)));
      assert.equal(text(dsdt, 0, 4), 'DSDT');
      assert.equal(sum(dsdt), 0);
      assert.deepEqual([...dsdt.subarray(36, 50)], [0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x08, 0x04, 0x0a, S5_SLP_TYP, 0x0a, S5_SLP_TYP, 0, 0]);
      // Scope (\_SB) { Device (PCI0) { Name (_HID, EisaId ("PNP0A03")) ... Name (_CRS, ...) } } (iasl -d shows it whole).
      const aml = Buffer.from(dsdt.subarray(50));
      assert.equal(aml[0], 0x10, 'ScopeOp');
      assert.ok(aml.includes(Buffer.from([0x5c, ...Buffer.from('_SB_')])));
      assert.ok(aml.includes(Buffer.from([0x5b, 0x82])), 'DeviceOp');
      assert.ok(aml.includes(Buffer.from([...Buffer.from('_HID'), 0x0c, 0x41, 0xd0, 0x0a, 0x03])), 'PNP0A03');
      const window = Buffer.alloc(8);
      window.writeUInt32LE(PCI_MMIO_WINDOW.base, 0);
      window.writeUInt32LE(PCI_MMIO_WINDOW.end, 4);
      assert.ok(aml.includes(window), 'the memory window in _CRS');
      assert.deepEqual([...aml.subarray(aml.length - 2)], [0x79, 0x00], '_CRS ends with its end tag, the last bytes');
      assert.equal(text(madt, 0, 4), 'APIC');
      assert.equal(sum(madt), 0);
      const mv = new DataView(madt.buffer, madt.byteOffset, madt.byteLength);
      assert.equal(mv.getUint32(36, true), 0xfee00000);
      const entries: number[][] = [];
      for (let p = 44; p < madt.length; p += madt[p + 1]) entries.push([...madt.subarray(p, p + madt[p + 1])]);
      const lapics = entries.filter((e) => e[0] === 0);
      assert.deepEqual(lapics.map((e) => [e[2], e[3], e[4]]), Array.from({ length: cpus }, (_, i) => [i, i, 1]));
      assert.deepEqual(entries.filter((e) => e[0] === 1), [[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]]);
      assert.deepEqual(entries.filter((e) => e[0] === 2), [[2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0]]);
    });
  }

  it('checksum makes a byte sum of 0', () => {
    const b = Uint8Array.from([1, 2, 3, 0]);
    b[3] = checksum(b);
    assert.equal(sum(b), 0);
  });
});

describe('PC devices', () => {
  it('PM1a control powers off on SLP_TYP(S5) | SLP_EN only, and keeps SCI_EN', () => {
    let off = 0;
    const pm = new AcpiPmControl(5, () => off++);
    assert.equal(pm.read(0, 2) & 1, 1);
    pm.write(0, 2, (3 << 10) | (1 << 13));
    assert.equal(off, 0);
    pm.write(0, 2, 5 << 10);
    assert.equal(off, 0);
    pm.write(1, 1, ((5 << 10) | (1 << 13)) >> 8);
    assert.equal(off, 1);
    assert.equal(pm.read(0, 2), (5 << 10) | 1);
  });

  it('i8042 resets on 0xFE and through the output port, answers its self-test', () => {
    let resets = 0;
    const kbd = new I8042(() => resets++);
    kbd.command.write(0, 1, 0xaa);
    assert.equal(kbd.command.read(0, 1) & 1, 1);
    assert.equal(kbd.data.read(0, 1), 0x55);
    assert.equal(kbd.command.read(0, 1) & 1, 0);
    kbd.command.write(0, 1, 0xfe);
    kbd.command.write(0, 1, 0xd1);
    kbd.data.write(0, 1, 0xfe);
    assert.equal(resets, 2);
  });

  it('CMOS RTC reads the clock in BCD, follows register B and guest writes', () => {
    const now = Date.UTC(2026, 10, 22, 13, 45, 30);
    const rtc = new CmosRtc(() => now);
    const reg = (i: number) => (rtc.write(0, 1, i), rtc.read(1, 1));
    assert.deepEqual([0, 2, 4, 7, 8, 9, 0x32].map(reg), [0x30, 0x45, 0x13, 0x22, 0x11, 0x26, 0x20]);
    rtc.write(0, 1, 0x0b);
    rtc.write(1, 1, 0x06); // binary, 24-hour
    assert.deepEqual([0, 2, 4].map(reg), [30, 45, 13]);
    rtc.write(0, 1, 4);
    rtc.write(1, 1, 7); // set hours to 7
    assert.equal(reg(4), 7);
    assert.equal(reg(2), 45);
  });

  it('PCI type-1 access reaches the host bridge and reads empty slots as all ones', () => {
    const ports = new MmioBus();
    const host = new PciHost();
    ports.map(0xcf8, 8, host, 'pci');
    const config = (dev: number, reg: number, size: 1 | 2 | 4 = 4) => {
      ports.store(0xcf8, 4, (0x8000_0000 | (dev << 11) | (reg & 0xfc)) >>> 0, 0);
      ports.load(0xcfc + (reg & 3), size);
      return ports.lo;
    };
    assert.equal(config(0, 0), 0x0008_1b36);
    assert.equal(config(0, 8) >>> 8, 0x060000);
    assert.equal(config(0, 2, 2), 0x0008);
    assert.equal(config(1, 0), 0xffff_ffff);
    ports.load(0xcf8, 4);
    assert.equal(ports.lo, 0x8000_0000 + (1 << 11));
    const writes: number[] = [];
    const fn: PciFunction = { configRead: (offset) => offset, configWrite: (_o, _s, value) => void writes.push(value) };
    host.attach(3, 0, fn);
    assert.equal(config(3, 0x10), 0x10);
    ports.store(0xcfc, 4, 0xdead, 0);
    assert.deepEqual(writes, [0xdead]);
    assert.throws(() => host.attach(3, 0, fn), /taken/);
  });
});

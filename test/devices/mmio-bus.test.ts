/** The MMIO bus: range lookup, 8-byte splitting, unmapped and misaligned accesses. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccessSize, MmioDevice } from '../../src/emulator/bus/interfaces.js';
import { MmioBus } from '../../src/emulator/bus/mmio-bus.js';

class Recorder implements MmioDevice {
  readonly log: string[] = [];
  read(offset: number, size: AccessSize): number {
    this.log.push(`r${size}@${offset}`);
    return (0xf000_0000 | offset) >>> 0;
  }
  write(offset: number, size: AccessSize, value: number): void {
    this.log.push(`w${size}@${offset}=${value.toString(16)}`);
  }
}

describe('MMIO bus', () => {
  it('routes accesses to the device mapping the address, at device offsets', () => {
    const bus = new MmioBus();
    const a = new Recorder();
    const b = new Recorder();
    bus.map(0x1000_0000, 0x100, a, 'uart');
    bus.map(0x0200_0000, 0x1_0000, b, 'clint');
    assert.ok(bus.load(0x1000_0005, 1));
    assert.equal(bus.lo, 0xf000_0005);
    assert.equal(bus.hi, 0);
    assert.ok(bus.store(0x0200_4000, 4, 0x1234_5678, 0));
    assert.ok(bus.store(0x1000_0000, 1, 0x1ff, 0));
    assert.deepEqual(a.log, ['r1@5', 'w1@0=ff']);
    assert.deepEqual(b.log, ['w4@16384=12345678']);
  });

  it('splits 8-byte accesses into two 4-byte ones, low word first', () => {
    const bus = new MmioBus();
    const d = new Recorder();
    bus.map(0x200_0000, 0x1_0000, d, 'clint');
    assert.ok(bus.load(0x200_bff8, 8));
    assert.equal(bus.lo, 0xf000_bff8);
    assert.equal(bus.hi, 0xf000_bffc);
    assert.ok(bus.store(0x200_4008, 8, 0xffff_ffff, 0x7fff_ffff));
    assert.deepEqual(d.log, ['r4@49144', 'r4@49148', 'w4@16392=ffffffff', 'w4@16396=7fffffff']);
  });

  it('reports unmapped, straddling and misaligned accesses', () => {
    const bus = new MmioBus();
    const d = new Recorder();
    bus.map(0x1000, 0x10, d, 'dev');
    assert.equal(bus.load(0x0fff, 1), false);
    assert.equal(bus.load(0x1010, 1), false);
    assert.equal(bus.load(0x100c, 8), false, 'straddles the end');
    assert.equal(bus.load(0x1002, 4), false, 'misaligned');
    assert.equal(bus.store(0x2000, 4, 0, 0), false);
    assert.deepEqual(d.log, []);
  });

  it('refuses overlapping and empty ranges', () => {
    const bus = new MmioBus();
    bus.map(0x1000, 0x1000, new Recorder(), 'a');
    assert.throws(() => bus.map(0x1800, 0x1000, new Recorder(), 'b'), /overlaps a/);
    assert.throws(() => bus.map(0x3000, 0, new Recorder(), 'c'), RangeError);
    bus.map(0x2000, 0x1000, new Recorder(), 'd');
  });

  it('finds the right region among many', () => {
    const bus = new MmioBus();
    const devices = Array.from({ length: 20 }, () => new Recorder());
    devices.forEach((d, i) => bus.map(0x1000_1000 + ((i * 7) % 20) * 0x1000, 0x1000, d, `slot${i}`));
    for (let i = 0; i < 20; i++) {
      assert.ok(bus.load(0x1000_1000 + ((i * 7) % 20) * 0x1000 + 4, 4));
      assert.deepEqual(devices[i].log.slice(-1), ['r4@4']);
    }
  });
});

/** The PLIC: gateways, priorities, thresholds, per-context enables, claim/complete and outputs. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Plic } from '../../src/emulator/devices/plic.js';

const ENABLE = (ctx: number) => 0x2000 + 0x80 * ctx;
const THRESHOLD = (ctx: number) => 0x20_0000 + 0x1000 * ctx;
const CLAIM = (ctx: number) => THRESHOLD(ctx) + 4;

function setup(harts = 2) {
  const outputs = new Map<string, boolean>();
  const events: string[] = [];
  const plic = new Plic({
    harts,
    ndev: 96,
    maxPriority: 7,
    output: (hart, mode, level) => {
      outputs.set(`${hart}${mode}`, level);
      events.push(`${hart}${mode}=${level ? 1 : 0}`);
    },
  });
  const rd = (off: number) => plic.read(off, 4);
  const wr = (off: number, v: number) => plic.write(off, 4, v);
  const out = (key: string) => outputs.get(key) ?? false;
  return { plic, rd, wr, out, events };
}

describe('PLIC', () => {
  it('delivers a level-triggered source through claim and complete', () => {
    const { plic, rd, wr, out, events } = setup();
    const uart = plic.irqLine(10);
    wr(4 * 10, 1);
    wr(ENABLE(1), 1 << 10); // hart 0, S mode
    uart.set(true);
    assert.equal(out('0S'), true);
    assert.equal(out('0M'), false);
    assert.equal(rd(0x1000) & (1 << 10), 1 << 10);
    assert.equal(rd(CLAIM(1)), 10);
    assert.equal(out('0S'), false, 'claimed: no longer pending');
    assert.equal(rd(CLAIM(1)), 0, 'nothing else to claim');
    wr(CLAIM(1), 10);
    assert.equal(out('0S'), true, 'the line is still high after completion');
    assert.equal(rd(CLAIM(1)), 10);
    uart.set(false);
    wr(CLAIM(1), 10);
    assert.equal(out('0S'), false);
    assert.deepEqual(events, ['0S=1', '0S=0', '0S=1', '0S=0']);
  });

  it('a line that drops before the claim is no longer pending', () => {
    const { plic, rd, wr, out } = setup();
    wr(4 * 3, 2);
    wr(ENABLE(0), 1 << 3);
    plic.irqLine(3).set(true);
    assert.equal(out('0M'), true);
    plic.irqLine(3).set(false);
    assert.equal(out('0M'), false);
    assert.equal(rd(CLAIM(0)), 0);
  });

  it('claims the highest priority first, ties by lowest id, and honours the threshold', () => {
    const { plic, rd, wr, out } = setup();
    wr(4 * 1, 3);
    wr(4 * 2, 5);
    wr(4 * 40, 5);
    wr(4 * 50, 0);
    wr(ENABLE(2), 0b110);
    wr(ENABLE(2) + 4, (1 << (40 - 32)) | (1 << (50 - 32)));
    for (const s of [1, 2, 40, 50]) plic.irqLine(s).set(true);
    wr(THRESHOLD(2), 3);
    assert.equal(out('1M'), true);
    assert.equal(rd(CLAIM(2)), 2);
    assert.equal(rd(CLAIM(2)), 40);
    assert.equal(rd(CLAIM(2)), 0, 'priority 3 is not above threshold 3; priority 0 never interrupts');
    assert.equal(out('1M'), false);
    wr(THRESHOLD(2), 2);
    assert.equal(out('1M'), true);
    assert.equal(rd(CLAIM(2)), 1);
    assert.equal(rd(THRESHOLD(2)), 2);
  });

  it('lets one context claim a source enabled in two', () => {
    const { plic, rd, wr, out } = setup();
    wr(4 * 7, 1);
    wr(ENABLE(1), 1 << 7);
    wr(ENABLE(3), 1 << 7);
    plic.irqLine(7).set(true);
    assert.equal(out('0S') && out('1S'), true);
    assert.equal(rd(CLAIM(3)), 7);
    assert.equal(out('0S') || out('1S'), false);
    assert.equal(rd(CLAIM(1)), 0);
  });

  it('ignores completion of a source the context has not enabled', () => {
    const { plic, rd, wr } = setup();
    wr(4 * 5, 1);
    wr(ENABLE(0), 1 << 5);
    plic.irqLine(5).set(true);
    assert.equal(rd(CLAIM(0)), 5);
    wr(CLAIM(1), 5);
    assert.equal(rd(CLAIM(0)), 0, 'still held');
    wr(CLAIM(0), 5);
    assert.equal(rd(CLAIM(0)), 5);
  });

  it('masks registers to what exists', () => {
    const { plic, rd, wr } = setup(1);
    wr(0, 7);
    assert.equal(rd(0), 0, 'source 0 has no priority');
    wr(4 * 9, 0xffff_ffff);
    assert.equal(rd(4 * 9), 7, 'priority clamps to the maximum');
    wr(ENABLE(1), 0xffff_ffff);
    assert.equal(rd(ENABLE(1)), 0xffff_fffe, 'source 0 cannot be enabled');
    wr(ENABLE(1) + 12, 0xffff_ffff);
    assert.equal(rd(ENABLE(1) + 12), 1, 'only source 96 exists in the last word');
    wr(ENABLE(2), 0xffff_ffff);
    assert.equal(rd(ENABLE(2)), 0, 'no context 2 with one hart');
    assert.equal(plic.read(ENABLE(1), 1), 0, 'byte reads read 0');
    wr(0x1000, 0xffff_ffff);
    assert.equal(rd(0x1000), 0, 'pending bits are read-only');
    assert.throws(() => plic.irqLine(0), RangeError);
    assert.throws(() => plic.irqLine(97), RangeError);
  });

  it('survives random register traffic', () => {
    const { plic } = setup(4);
    let seed = 99;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0);
    for (let i = 0; i < 20000; i++) {
      const offset = (rand() % 0x20_9000) & ~3;
      const r = rand();
      if (r & 1) plic.write(offset, 4, rand());
      else plic.read(offset, 4);
      if ((r & 6) === 0) plic.irqLine(1 + (rand() % 96)).set((rand() & 1) === 1);
    }
  });
});

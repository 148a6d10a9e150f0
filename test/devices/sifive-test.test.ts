/** The sifive_test finisher: pass, fail and reset writes become events; anything else is ignored. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SifiveTest, type TestFinisherEvent } from '../../src/emulator/devices/sifive-test.js';

describe('sifive_test finisher', () => {
  it('turns poweroff, fail and reset writes into events with their exit codes', () => {
    const events: TestFinisherEvent[] = [];
    const dev = new SifiveTest((e) => events.push(e));
    dev.write(0, 4, 0x5555);
    dev.write(0, 4, (3 << 16) | 0x3333);
    dev.write(0, 4, 0x7777);
    dev.write(0, 2, 0x5555);
    assert.deepEqual(events, [
      { kind: 'pass', code: 0 },
      { kind: 'fail', code: 3 },
      { kind: 'reset' },
      { kind: 'pass', code: 0 },
    ]);
  });

  it('ignores other values, offsets and widths, and reads 0', () => {
    const events: TestFinisherEvent[] = [];
    const dev = new SifiveTest((e) => events.push(e));
    dev.write(0, 4, 0x1234);
    dev.write(4, 4, 0x5555);
    dev.write(0, 1, 0x55);
    assert.deepEqual(events, []);
    assert.equal(dev.read(), 0);
  });
});

/** The goldfish RTC: nanosecond wall-clock time with a latched high half, setting the time, alarm registers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GoldfishRtc, hostNanoseconds } from '../../src/emulator/devices/goldfish-rtc.js';

function readTime(rtc: GoldfishRtc): bigint {
  const lo = BigInt(rtc.read(0x00, 4));
  const hi = BigInt(rtc.read(0x04, 4));
  return (hi << 32n) | lo;
}

describe('goldfish RTC', () => {
  it('reads the host wall clock in nanoseconds', () => {
    const rtc = new GoldfishRtc();
    const before = BigInt(Date.now() - 1) * 1_000_000n;
    const t = readTime(rtc);
    const after = BigInt(Date.now() + 1) * 1_000_000n;
    assert.ok(t >= before && t <= after, `${before} <= ${t} <= ${after}`);
    assert.ok(hostNanoseconds() >= t);
  });

  it('latches the high half when the low half is read', () => {
    let now = 0x1_ffff_fff0n;
    const rtc = new GoldfishRtc(() => now);
    const lo = rtc.read(0x00, 4);
    now = 0x2_0000_0010n;
    assert.equal(lo, 0xffff_fff0);
    assert.equal(rtc.read(0x04, 4), 1);
  });

  it('sets the time from TIME_HIGH then TIME_LOW and keeps it running', () => {
    let now = 1_000_000_000n;
    const rtc = new GoldfishRtc(() => now);
    rtc.write(0x04, 4, 0x17);
    rtc.write(0x00, 4, 0x8000_0000);
    assert.equal(readTime(rtc), 0x17_8000_0000n);
    now += 500n;
    assert.equal(readTime(rtc), 0x17_8000_0000n + 500n);
  });

  it('keeps the alarm registers and their armed status', () => {
    const rtc = new GoldfishRtc(() => 0n);
    assert.equal(rtc.read(0x18, 4), 0);
    rtc.write(0x0c, 4, 2);
    rtc.write(0x08, 4, 3);
    assert.equal(rtc.read(0x08, 4), 3);
    assert.equal(rtc.read(0x0c, 4), 2);
    assert.equal(rtc.read(0x18, 4), 1);
    rtc.write(0x10, 4, 1);
    assert.equal(rtc.read(0x10, 4), 1);
    rtc.write(0x14, 4, 1);
    assert.equal(rtc.read(0x18, 4), 0);
    assert.equal(rtc.read(0x40, 4), 0);
    assert.equal(rtc.read(0x00, 1), 0, 'byte reads read 0');
  });
});

/** An empty virtio-mmio slot answers a probe with the magic, version 2 and device ID 0. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EmptyVirtioSlot } from '../../src/emulator/devices/virtio-mmio-empty.js';

describe('empty virtio-mmio slot', () => {
  it('reads as a virtio-mmio transport with no device behind it', () => {
    const slot = new EmptyVirtioSlot();
    assert.equal(Buffer.from(Uint32Array.of(slot.read(0, 4)).buffer).toString('latin1'), 'virt');
    assert.equal(slot.read(4, 4), 2);
    assert.equal(slot.read(8, 4), 0, 'device ID 0: no device');
    slot.write();
    assert.equal(slot.read(0x70, 4), 0);
    assert.equal(slot.read(0, 1), 0);
  });
});

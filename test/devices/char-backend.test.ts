/** QueuedCharBackend: output passes straight through; input waits for room in the device, in order. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CharSink, QueuedCharBackend } from '../../src/emulator/devices/char-backend.js';

class SmallSink implements CharSink {
  readonly got: number[] = [];
  room = 3;
  canReceive(): number {
    return this.room;
  }
  receive(bytes: Uint8Array): void {
    assert.ok(bytes.length <= this.room, 'never more than the room offered');
    this.got.push(...bytes);
    this.room -= bytes.length;
  }
}

describe('QueuedCharBackend', () => {
  it('passes output to its callback', () => {
    const out: number[] = [];
    new QueuedCharBackend((b) => out.push(...b)).write(Uint8Array.of(1, 2));
    assert.deepEqual(out, [1, 2]);
  });

  it('holds input until the device has room, across chunk boundaries, in order', () => {
    const backend = new QueuedCharBackend(() => {});
    backend.push('ab');
    backend.push(Uint8Array.of(0x63, 0x64, 0x65));
    backend.push('');
    assert.equal(backend.pendingInput, 5, 'nothing delivered before a device connects');
    const sink = new SmallSink();
    backend.connect(sink);
    assert.equal(String.fromCharCode(...sink.got), 'abc');
    assert.equal(backend.pendingInput, 2);
    backend.resume();
    assert.equal(sink.got.length, 3, 'no room, nothing delivered');
    sink.room = 10;
    backend.resume();
    backend.push('f');
    assert.equal(String.fromCharCode(...sink.got), 'abcdef');
    assert.equal(backend.pendingInput, 0);
  });
});

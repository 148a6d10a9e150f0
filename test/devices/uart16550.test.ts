/** The 16550A UART model: registers, FIFO flow control, interrupts, loopback, side-effect-free peeks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IrqLine } from '../../src/emulator/bus/interfaces.js';
import { QueuedCharBackend } from '../../src/emulator/devices/char-backend.js';
import { Uart16550 } from '../../src/emulator/devices/uart16550.js';

const RBR = 0, THR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

class Wire implements IrqLine {
  level = false;
  edges = 0;
  set(level: boolean): void {
    assert.notEqual(level, this.level, 'the line is driven only on changes');
    this.level = level;
    this.edges++;
  }
}

function setup() {
  const irq = new Wire();
  const sent: number[] = [];
  const backend = Object.assign(new QueuedCharBackend((bytes) => sent.push(...bytes)), {
    outputText: () => String.fromCharCode(...sent),
  });
  const uart = new Uart16550(irq, backend);
  const rd = (off: number) => uart.read(off, 1);
  const wr = (off: number, v: number) => uart.write(off, 1, v);
  return { irq, backend, uart, rd, wr };
}

describe('16550A UART', () => {
  it('sends THR bytes to the backend; THR and shifter always read empty', () => {
    const { backend, rd, wr } = setup();
    for (const c of 'hi\n') wr(THR, c.charCodeAt(0));
    assert.equal(backend.outputText(), 'hi\n');
    assert.equal(rd(LSR), 0x60);
  });

  it('takes input only while its FIFO has room and delivers every byte in order', () => {
    const { backend, rd, wr } = setup();
    wr(FCR, 0x07); // FIFO on, both cleared
    const text = 'The quick brown fox jumps over the lazy dog';
    backend.push(text);
    assert.equal(backend.pendingInput, text.length - 16);
    let got = '';
    while (rd(LSR) & 0x01) got += String.fromCharCode(rd(RBR));
    assert.equal(got, text);
    assert.equal(backend.pendingInput, 0);
    assert.equal(rd(RBR), 0, 'an empty FIFO reads 0');
  });

  it('holds one byte with the FIFO off', () => {
    const { backend, rd } = setup();
    backend.push('ab');
    assert.equal(backend.pendingInput, 1);
    assert.equal(rd(RBR), 0x61);
    assert.equal(rd(RBR), 0x62);
    assert.equal(rd(LSR) & 0x01, 0);
  });

  it('reports received data against the trigger level, character timeout below it', () => {
    const { backend, irq, rd, wr } = setup();
    wr(FCR, 0x81); // FIFO on, trigger 8
    wr(IER, 0x01);
    assert.equal(irq.level, false);
    assert.equal(rd(IIR), 0xc1);
    backend.push('1234');
    assert.equal(irq.level, true);
    assert.equal(rd(IIR), 0xcc);
    backend.push('5678');
    assert.equal(rd(IIR), 0xc4);
    for (let i = 0; i < 8; i++) rd(RBR);
    assert.equal(irq.level, false);
    assert.equal(rd(IIR), 0xc1);
  });

  it('raises THR-empty when ETBEI is set or THR written; reading IIR clears it', () => {
    const { irq, rd, wr } = setup();
    wr(IER, 0x02);
    assert.equal(irq.level, true);
    assert.equal(rd(IIR), 0x02);
    assert.equal(irq.level, false);
    assert.equal(rd(IIR), 0x01);
    wr(THR, 0x41);
    assert.equal(irq.level, true);
    wr(IER, 0x00);
    assert.equal(irq.level, false);
  });

  it('gives received data priority over THR empty', () => {
    const { backend, irq, rd, wr } = setup();
    wr(IER, 0x03);
    backend.push('x');
    assert.equal(rd(IIR), 0x04);
    rd(RBR);
    assert.equal(rd(IIR), 0x02);
    assert.equal(irq.level, false);
  });

  it('keeps the divisor latch apart from THR and IER', () => {
    const { backend, rd, wr } = setup();
    wr(LCR, 0x83);
    wr(0, 0x01);
    wr(1, 0x02);
    assert.equal(rd(0), 0x01);
    assert.equal(rd(1), 0x02);
    wr(LCR, 0x03);
    assert.equal(rd(IER), 0);
    assert.equal(rd(LCR), 0x03);
    assert.equal(backend.outputText(), '');
    wr(SCR, 0x5a);
    assert.equal(rd(SCR), 0x5a);
    assert.equal(rd(0x40), 0, 'offsets past the registers read 0');
  });

  it('loops THR back to RBR and modem control to modem status', () => {
    const { backend, irq, rd, wr } = setup();
    assert.equal(rd(MSR), 0xb0);
    wr(FCR, 0x01);
    wr(MCR, 0x10);
    assert.equal(rd(MSR) & 0xf0, 0x00);
    wr(MCR, 0x1f);
    assert.equal(rd(MSR), 0xf0 | 0x0b, 'CTS DSR DCD deltas; RI changes only on its trailing edge');
    assert.equal(rd(MSR), 0xf0, 'reading MSR clears the deltas');
    wr(THR, 0x55);
    assert.equal(rd(RBR), 0x55);
    assert.equal(backend.outputText(), '', 'loopback sends nothing');
    backend.push('z');
    assert.equal(backend.pendingInput, 1, 'outside input waits while in loopback');
    wr(IER, 0x04);
    for (let i = 0; i < 17; i++) wr(THR, i);
    assert.equal(irq.level, true);
    assert.equal(rd(IIR), 0xc6);
    assert.equal(rd(LSR) & 0x03, 0x03);
    assert.equal(rd(LSR) & 0x02, 0, 'reading LSR clears the overrun');
    assert.equal(irq.level, false);
    wr(FCR, 0x03);
    wr(MCR, 0x0b);
    assert.equal(rd(RBR), 0x7a, 'leaving loopback delivers the held input');
  });

  it('raises a modem-status interrupt for loopback deltas', () => {
    const { irq, rd, wr } = setup();
    wr(IER, 0x08);
    wr(MCR, 0x10);
    assert.equal(irq.level, true, 'entering loopback drops DCD, DSR and CTS');
    rd(MSR);
    assert.equal(irq.level, false);
    wr(MCR, 0x12);
    assert.equal(irq.level, true);
    assert.equal(rd(IIR), 0x00);
    rd(MSR);
    assert.equal(irq.level, false);
  });

  it('peeks what a read returns when the read changes nothing; stores it calls keeping change no peek', () => {
    const { backend, irq, uart, rd, wr } = setup();
    const peeks = () => Array.from({ length: uart.peekable }, (_, off) => uart.peek(off));
    let changes = 0;
    uart.onChange(() => changes++);
    // A fixed pseudo-random walk through every register, in and out of DLAB, FIFO and loopback, with input.
    let seed = 12345;
    const next = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    let peeked = 0;
    let kept = 0;
    for (let step = 0; step < 20_000; step++) {
      const off = next(uart.peekable);
      const before = peeks();
      const level = irq.level;
      const calls = changes;
      switch (next(3)) {
        case 0: {
          const value = rd(off);
          assert.ok(changes > calls, 'onChange follows every read');
          if (before[off]! >= 0) {
            peeked++;
            assert.equal(value, before[off], `peek(${off}) at step ${step}`);
            assert.deepEqual(peeks(), before, `a peekable read of ${off} changes no peek (step ${step})`);
            assert.equal(irq.level, level);
          }
          break;
        }
        case 1: {
          // Half the stores go to THR; LCR and MCR mostly leave DLAB and loopback, so THR often transmits.
          const to = next(2) === 0 ? THR : off;
          const keeps = uart.storeKeepsPeeks(to);
          const value = to === LCR || to === MCR ? (next(8) === 0 ? 0xff : 0x03) & (to === MCR ? 0x1f : 0xff) : next(256);
          wr(to, value);
          assert.ok(changes > calls, 'onChange follows every store');
          if (keeps) {
            kept++;
            assert.deepEqual(peeks(), before, `a store to ${to} it said keeps peeks (step ${step})`);
          }
          break;
        }
        default:
          backend.push(String.fromCharCode(0x41 + next(26)));
      }
    }
    assert.ok(peeked > 1000 && kept > 1000, `the walk covered peeks (${peeked}) and kept stores (${kept})`);
  });
});

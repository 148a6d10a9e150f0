import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HS, RAM_GPA_BASE, RAM_HOST_BASE, hartStateBase, memoryPagesFor } from '../../src/emulator/riscv/layout.js';
import { CSR_OFF, MIP_SSIP } from '../../src/emulator/riscv/priv/csr-defs.js';
import { EID, SBI_ERR, SBI_IMPL_ID } from '../../src/emulator/riscv/sbi/constants.js';
import { Sbi, type SbiPlatform } from '../../src/emulator/riscv/sbi/sbi.js';
import { HSM, HartControl } from '../../src/emulator/vcpu/hart-control.js';

const RAM_SIZE = 1 << 20;
const HARTS = 4;

interface Harness {
  sbi: Sbi;
  memory: WebAssembly.Memory;
  control: HartControl;
  events: string[];
  console: number[];
  input: number[];
  call(hart: number, eid: number, fid: number, ...args: number[]): { error: number; value: number };
  word(hart: number, off: number): number;
}

function harness(): Harness {
  const memory = new WebAssembly.Memory({ initial: memoryPagesFor(RAM_SIZE), maximum: memoryPagesFor(RAM_SIZE), shared: true });
  const dv = new DataView(memory.buffer);
  const u8 = new Uint8Array(memory.buffer);
  const events: string[] = [];
  const consoleOut: number[] = [];
  const input: number[] = [];
  const platform: SbiPlatform = {
    hartCount: HARTS,
    ram: { base: RAM_GPA_BASE, size: RAM_SIZE },
    setTimer: (hart, lo, hi) => events.push(`timer ${hart} ${hi}:${lo >>> 0}`),
    consoleWrite: (gpa, length) => {
      const at = gpa - RAM_GPA_BASE + RAM_HOST_BASE;
      consoleOut.push(...u8.subarray(at, at + length));
      return length;
    },
    consoleRead: (gpa, length) => {
      const bytes = input.splice(0, length);
      u8.set(bytes, gpa - RAM_GPA_BASE + RAM_HOST_BASE);
      return bytes.length;
    },
    consoleWriteByte: (byte) => consoleOut.push(byte),
    consoleGetChar: () => input.shift() ?? -1,
    systemReset: (type, reason) => events.push(`reset ${type} ${reason}`),
  };
  const control = new HartControl(memory);
  const setReg = (hart: number, reg: number, value: number): void => {
    const off = hartStateBase(hart) + HS.X + reg * 8;
    dv.setUint32(off, value >>> 0, true);
    dv.setInt32(off + 4, value < 0 ? -1 : Math.floor(value / 2 ** 32), true);
  };
  const getReg = (hart: number, reg: number): number => {
    const off = hartStateBase(hart) + HS.X + reg * 8;
    return dv.getInt32(off + 4, true) * 2 ** 32 + dv.getUint32(off, true);
  };
  const sbi = new Sbi(memory, platform);
  return {
    sbi,
    memory,
    control,
    events,
    console: consoleOut,
    input,
    call(hart, eid, fid, ...args) {
      setReg(hart, 17, eid);
      setReg(hart, 16, fid);
      args.forEach((a, i) => setReg(hart, 10 + i, a));
      sbi.handle(hart);
      return { error: getReg(hart, 10), value: getReg(hart, 11) };
    },
    word: (hart, off) => dv.getInt32(hartStateBase(hart) + off, true),
  };
}

test('BASE: spec version 2.0, implementation id, probe_extension', () => {
  const h = harness();
  assert.deepEqual(h.call(0, EID.BASE, 0), { error: 0, value: 0x0200_0000 });
  assert.deepEqual(h.call(0, EID.BASE, 1), { error: 0, value: SBI_IMPL_ID });
  for (const eid of [EID.TIME, EID.IPI, EID.RFENCE, EID.HSM, EID.SRST, EID.DBCN, EID.LEGACY_PUTCHAR]) {
    assert.equal(h.call(0, EID.BASE, 3, eid).value, 1, `probe 0x${eid.toString(16)}`);
  }
  assert.equal(h.call(0, EID.BASE, 3, 0x504d55 /* PMU */).value, 0);
  assert.equal(h.call(0, EID.BASE, 99).error, SBI_ERR.NOT_SUPPORTED);
  assert.equal(h.call(0, 0x1234567, 0).error, SBI_ERR.NOT_SUPPORTED);
});

test('TIME and legacy set_timer program the calling hart timer (64-bit value)', () => {
  const h = harness();
  assert.equal(h.call(2, EID.TIME, 0, 0x1_2345_6789).error, 0);
  assert.equal(h.call(1, EID.LEGACY_SET_TIMER, 0, -1).error, 0);
  assert.deepEqual(h.events, ['timer 2 1:591751049', 'timer 1 -1:4294967295']);
});

test('IPI: sets SSIP on the targets named by mask and base; bad harts are INVALID_PARAM', () => {
  const h = harness();
  assert.equal(h.call(0, EID.IPI, 0, 0b101, 1).error, 0);
  assert.deepEqual([0, 1, 2, 3].map((hart) => (h.word(hart, HS.MIP) & MIP_SSIP) !== 0), [false, true, false, true]);
  assert.equal(h.word(3, HS.EXIT_REQUEST), 1);
  assert.equal(h.call(0, EID.IPI, 0, 1, 4).error, SBI_ERR.INVALID_PARAM);
  assert.equal(h.call(0, EID.IPI, 0, 0, -1).error, 0);
  assert.ok([0, 1, 2, 3].every((hart) => (h.word(hart, HS.MIP) & MIP_SSIP) !== 0));
});

test('RFENCE: remote fences raise the targets flush requests; hypervisor fences are not supported', () => {
  const h = harness();
  assert.equal(h.call(0, EID.RFENCE, 1, 0b10, 0, 0, 4096).error, 0);
  assert.deepEqual([0, 1].map((hart) => h.word(hart, CSR_OFF.FLUSH_REQUEST)), [0, 1]);
  assert.equal(h.call(0, EID.RFENCE, 0, 0, -1).error, 0);
  assert.equal(h.word(0, CSR_OFF.FLUSH_REQUEST), 1);
  assert.equal(h.call(0, EID.RFENCE, 3, 0, -1).error, SBI_ERR.NOT_SUPPORTED);
});

test('HSM: start a stopped hart, status, already-available, stop, suspend types', () => {
  const h = harness();
  h.control.setState(0, HSM.STARTED);
  for (let hart = 1; hart < HARTS; hart++) h.control.setState(hart, HSM.STOPPED);
  assert.deepEqual(h.call(0, EID.HSM, 2, 1), { error: 0, value: HSM.STOPPED });
  assert.equal(h.call(0, EID.HSM, 0, 1, RAM_GPA_BASE + 0x1000, 0x55).error, 0);
  assert.equal(h.control.state(1), HSM.START_PENDING);
  assert.deepEqual(h.control.start(1), [(RAM_GPA_BASE + 0x1000) | 0, 0, 0x55, 0]);
  assert.equal(h.call(0, EID.HSM, 0, 1, RAM_GPA_BASE, 0).error, SBI_ERR.ALREADY_AVAILABLE);
  assert.equal(h.call(0, EID.HSM, 0, 2, 0x1000, 0).error, SBI_ERR.INVALID_ADDRESS);
  assert.equal(h.call(0, EID.HSM, 0, 9, RAM_GPA_BASE, 0).error, SBI_ERR.INVALID_PARAM);
  assert.equal(h.call(0, EID.HSM, 2, 9).error, SBI_ERR.INVALID_PARAM);
  h.control.setState(1, HSM.STARTED);
  h.call(1, EID.HSM, 1);
  assert.equal(h.control.state(1), HSM.STOPPED);
  assert.equal(h.word(1, HS.EXIT_REQUEST), 1);
  assert.equal(h.call(0, EID.HSM, 3, 0).error, 0);
  assert.equal(h.control.state(0), HSM.SUSPENDED);
  assert.equal(h.control.nonRetentive(0), false);
  h.control.setState(0, HSM.STARTED);
  assert.equal(h.call(0, EID.HSM, 3, 0x8000_0000, RAM_GPA_BASE + 0x40, 7).error, 0);
  assert.equal(h.control.nonRetentive(0), true);
  h.control.setState(0, HSM.STARTED);
  assert.equal(h.call(0, EID.HSM, 3, 0x8000_0000, 0x40, 7).error, SBI_ERR.INVALID_ADDRESS);
  assert.equal(h.call(0, EID.HSM, 3, 5).error, SBI_ERR.INVALID_PARAM);
  assert.equal(h.call(0, EID.HSM, 3, 0x1000_0000).error, SBI_ERR.NOT_SUPPORTED);
});

test('SRST: shutdown and reboots reach the platform; reserved types and reasons are rejected', () => {
  const h = harness();
  assert.equal(h.call(0, EID.SRST, 0, 0, 0).error, 0);
  assert.equal(h.call(0, EID.SRST, 0, 1, 1).error, 0);
  assert.equal(h.call(0, EID.SRST, 0, 3, 0).error, SBI_ERR.INVALID_PARAM);
  assert.equal(h.call(0, EID.SRST, 0, 0, 2).error, SBI_ERR.INVALID_PARAM);
  assert.equal(h.call(0, EID.LEGACY_SHUTDOWN, 0).error, 0);
  assert.deepEqual(h.events, ['reset 0 0', 'reset 1 1', 'reset 0 0']);
});

test('DBCN and legacy console: writes and reads guest buffers; buffers outside RAM are INVALID_PARAM', () => {
  const h = harness();
  const u8 = new Uint8Array(h.memory.buffer);
  u8.set(Buffer.from('hello'), RAM_HOST_BASE + 0x100);
  assert.deepEqual(h.call(0, EID.DBCN, 0, 5, RAM_GPA_BASE + 0x100, 0), { error: 0, value: 5 });
  assert.equal(h.call(0, EID.DBCN, 2, 0x21).error, 0);
  h.call(0, EID.LEGACY_PUTCHAR, 0, 0x0a);
  assert.equal(Buffer.from(h.console).toString(), 'hello!\n');
  assert.equal(h.call(0, EID.DBCN, 0, 5, 0x1000, 0).error, SBI_ERR.INVALID_PARAM);
  assert.equal(h.call(0, EID.DBCN, 0, 16, RAM_GPA_BASE + RAM_SIZE - 8, 0).error, SBI_ERR.INVALID_PARAM);
  assert.equal(h.call(0, EID.DBCN, 0, 5, RAM_GPA_BASE, 1).error, SBI_ERR.INVALID_PARAM);
  h.input.push(0x61, 0x62, 0x63);
  assert.deepEqual(h.call(0, EID.DBCN, 1, 2, RAM_GPA_BASE + 0x200, 0), { error: 0, value: 2 });
  assert.equal(Buffer.from(u8.subarray(RAM_HOST_BASE + 0x200, RAM_HOST_BASE + 0x202)).toString(), 'ab');
  assert.equal(h.call(0, EID.LEGACY_GETCHAR, 0).error, 0x63);
  assert.equal(h.call(0, EID.LEGACY_GETCHAR, 0).error, -1);
  assert.equal(h.call(0, 0x04, 0).error, SBI_ERR.NOT_SUPPORTED);
});

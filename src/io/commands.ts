/**
 * The qemu-io command interpreter behind `tsemu io`: one IoSession per opened image
 * runs command lines ("write -P 0xab 0 64k") against it and prints what qemu-io 7.2
 * prints, line for line (timings aside):
 *
 *   read [-bCqv] [-P pattern [-s off] [-l len]] off len   read, verify, hex-dump
 *   write [-bcCfnquz] [-P pattern | -s source_file] off len   data, zeroes (-z, -u may
 *         unmap), compressed (-c), FUA (-f); -n (no fallback) is accepted and writes
 *         zeroes whichever way the node can
 *   readv [-Cqv] [-P pattern] off len [len..], writev [-Cfq] [-P pattern] off len [len..]
 *         (the buffer lengths add up to one request)
 *   discard [-Cq] off len, truncate [-m prealloc_mode] off, alloc off [count]
 *   flush, map, length, info, sleep ms, help [cmd], quit
 *   aliases: r, w, d, f, q
 *
 * A line is split on spaces; options are parsed GNU-style (getopt.ts). Results and
 * most errors go to stdout exactly as qemu-io words them ("read failed: Input/output
 * error", "Pattern verification failed at offset 0, 512 bytes"); argument-count,
 * unknown-command and invalid-option errors go to stderr. Any failed command marks
 * the session failed, which makes `tsemu io` exit with 1, as qemu-io does. A request
 * that fails on a damaged image also prints the driver's message to stderr, where
 * QEMU prints its corruption reports ("qcow2: Marking image as corrupt: ...").
 * The VM-state area (-b) is not implemented: such requests fail with "Operation not
 * supported".
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type BlockExtent,
  BlockRequestError,
  type BlockNode,
  ImageFormatError,
  type Preallocation,
  checkRange,
} from '../block/node.js';
import type { ImageNode } from '../block/formats/format.js';
import { SysError } from '../block/protocols/linux-sys.js';
import { describeErrno } from '../block/protocols/file.js';
import { GetoptError, getopt, type ParsedArgs } from './getopt.js';
import { IoParseError, cvtnum, cvtstr, formatFixed, timestr } from './numbers.js';

/** The largest request qemu-io accepts (QEMU's BDRV_REQUEST_MAX_BYTES). */
const REQUEST_MAX_BYTES = 2147483136;
const DEFAULT_WRITE_PATTERN = 0xcd;

export interface IoOutput {
  /** One line on stdout. */
  out(text: string): void;
  /** One line on stderr. */
  err(text: string): void;
  /** The interactive prompt (no newline). */
  prompt?(text: string): void;
}

export interface IoSessionOptions {
  /** Write through to stable storage after every write (-t writethrough/directsync). */
  writeThrough?: boolean;
}

interface CommandDef {
  name: string;
  alias?: string;
  /** Usage as qemu-io's help prints it: "read [-abCqv] ... off len". */
  usage: string;
  oneline: string;
  argmin: number;
  /** -1: no limit. */
  argmax: number;
  writes?: boolean;
  /** Ends the session (quit); `run` is then not called. */
  quits?: boolean;
  run?(s: IoSession, args: string[]): Promise<boolean>;
}

/** A command's own complaint (printed on stdout), not a failed I/O. */
class CommandError extends Error {}

export class IoSession {
  /** True once any command has failed. */
  failed = false;

  constructor(
    readonly image: ImageNode,
    readonly output: IoOutput,
    readonly options: IoSessionOptions = {},
  ) {}

  /** Runs one command line; resolves to 'quit' when the line asks to stop. */
  async run(line: string): Promise<'quit' | 'continue'> {
    const words = line.split(' ').filter((w) => w !== '');
    if (words.length === 0) return 'continue';
    const [name, ...args] = words as [string, ...string[]];
    const cmd = COMMANDS.find((c) => c.name === name || c.alias === name);
    if (!cmd) return this.fail(`command "${name}" not found`, 'err');
    if (args.length < cmd.argmin || (cmd.argmax >= 0 && args.length > cmd.argmax)) {
      return this.fail(`bad argument count ${args.length} to ${cmd.name}, expected ${expectedCount(cmd)}`, 'err');
    }
    if (cmd.quits) return 'quit';
    if (cmd.writes && this.image.readOnly) return this.fail('tsemu: Block node is read-only', 'err');
    try {
      if (!(await cmd.run!(this, args))) this.failed = true;
    } catch (e) {
      this.failed = true;
      if (e instanceof GetoptError) {
        this.output.err(e.message);
        this.output.out(`${cmd.usage} -- ${cmd.oneline}`);
      } else if (e instanceof IoParseError || e instanceof CommandError) {
        this.output.out(e.message);
      } else {
        throw e;
      }
    }
    return 'continue';
  }

  private fail(message: string, stream: 'out' | 'err'): 'continue' {
    this.failed = true;
    this.output[stream](message);
    return 'continue';
  }

  print(text: string): void {
    this.output.out(text);
  }

  usage(name: string): never {
    const cmd = COMMANDS.find((c) => c.name === name)!;
    throw new CommandError(`${cmd.usage} -- ${cmd.oneline}`);
  }
}

function expectedCount(cmd: CommandDef): string {
  if (cmd.argmax === -1) return `at least ${cmd.argmin} arguments`;
  if (cmd.argmin === cmd.argmax) return `${cmd.argmin} arguments`;
  return `between ${cmd.argmin} and ${cmd.argmax} arguments`;
}

/** strerror-style text for a failed request, as qemu-io prints after "read failed: ". */
function describeFailure(e: unknown): string {
  if (e instanceof BlockRequestError || e instanceof ImageFormatError) return 'Input/output error';
  if (e instanceof SysError) return e.description;
  if ((e as NodeJS.ErrnoException).code) return describeErrno(e);
  return (e as Error).message;
}

function parsePattern(text: string): number {
  let value = NaN;
  if (/^[0-9]+$/.test(text)) value = text.length > 1 && text.startsWith('0') ? parseInt(text, 8) : parseInt(text, 10);
  else if (/^0x[0-9a-f]+$/i.test(text)) value = parseInt(text, 16);
  if (!(value >= 0 && value <= 255)) throw new CommandError(`${text} is not a valid pattern byte`);
  return value;
}

/**
 * Offset and length operands, with qemu-io's length limit; `limitNote` words the
 * limit message (write says " without -n"), null lifts the limit.
 */
function offsetAndCount(s: IoSession, cmd: string, operands: string[], limitNote: string | null): [number, number] {
  if (operands.length !== 2) s.usage(cmd);
  const offset = cvtnum(operands[0]!);
  const count = cvtnum(operands[1]!);
  if (limitNote !== null && count > REQUEST_MAX_BYTES) {
    throw new CommandError(`length cannot exceed ${REQUEST_MAX_BYTES}${limitNote}, given ${operands[1]}`);
  }
  return [offset, count];
}

function has(p: ParsedArgs, c: string): boolean {
  return p.options.some(([o]) => o === c);
}

function value(p: ParsedArgs, c: string): string | undefined {
  return p.options.filter(([o]) => o === c).pop()?.[1];
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

function report(s: IoSession, op: string, seconds: number, offset: number, count: number, machine: boolean): void {
  const rate = count / seconds;
  const ops = 1 / seconds;
  if (machine) {
    s.print(`${count},1,${timestr(seconds, true)},${formatFixed(rate, 3)},${formatFixed(ops, 3)}`);
    return;
  }
  s.print(`${op} ${count}/${count} bytes at offset ${offset}`);
  s.print(`${cvtstr(count)}, 1 ops; ${timestr(seconds, false)} sec (${cvtstr(rate)}/sec and ${formatFixed(ops, 4)} ops/sec)`);
}

function isAlnum(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

/** qemu-io's -v dump: "00000008:  00 48 …  .H" (offsets are image offsets). */
function dumpBuffer(s: IoSession, buf: Uint8Array, offset: number): void {
  for (let i = 0; i < buf.length; i += 16) {
    const row = buf.subarray(i, i + 16);
    const hex = Array.from(row, (b) => `${b.toString(16).padStart(2, '0')} `).join('');
    const text = Array.from(row, (b) => (isAlnum(b) ? String.fromCharCode(b) : '.')).join('');
    s.print(`${(offset + i).toString(16).padStart(8, '0')}:  ${hex} ${text}`);
  }
}

/**
 * A request past the end fails as the block layer would fail it (EIO), checked before
 * a buffer of up to 2 GiB is allocated for it.
 */
function checkInside(s: IoSession, what: string, offset: number, count: number): void {
  try {
    checkRange(s.image, s.image.size(), offset, count);
  } catch (e) {
    throw new CommandError(`${what} failed: ${describeFailure(e)}`);
  }
}

/**
 * Runs one request. A failure prints as qemu-io prints it ("read failed: " and the
 * errno text); when the driver found the image damaged, its message goes to stderr
 * first, where QEMU reports corruption ("qcow2: Marking image as corrupt: ...").
 */
async function request(s: IoSession, what: string, fn: () => Promise<void>): Promise<number> {
  try {
    return await timed(fn);
  } catch (e) {
    if (e instanceof ImageFormatError) s.output.err(e.message);
    throw new CommandError(`${what} failed: ${describeFailure(e)}`);
  }
}

async function readCommand(s: IoSession, args: string[]): Promise<boolean> {
  const p = getopt('read', args, 'bCl:pP:qs:v');
  const [offset, count] = offsetAndCount(s, 'read', p.operands, '');
  const patternText = value(p, 'P');
  const pattern = patternText === undefined ? undefined : parsePattern(patternText);
  const lengthText = value(p, 'l');
  const startText = value(p, 's');
  if (pattern === undefined && (lengthText !== undefined || startText !== undefined)) s.usage('read');
  const patternOffset = startText === undefined ? 0 : cvtnum(startText);
  const patternCount = lengthText === undefined ? count - patternOffset : cvtnum(lengthText);
  if (patternCount < 0 || patternCount + patternOffset > count) {
    throw new CommandError('pattern verification range exceeds end of read data');
  }
  if (has(p, 'b')) throw new CommandError('read failed: Operation not supported');
  checkInside(s, 'read', offset, count);
  const buf = new Uint8Array(count);
  const seconds = await request(s, 'read', () => s.image.read(offset, buf));
  let ok = true;
  if (pattern !== undefined && buf.subarray(patternOffset, patternOffset + patternCount).some((b) => b !== pattern)) {
    s.print(`Pattern verification failed at offset ${offset + patternOffset}, ${patternCount} bytes`);
    ok = false;
  }
  if (has(p, 'q')) return ok;
  if (has(p, 'v')) dumpBuffer(s, buf, offset);
  report(s, 'read', seconds, offset, count, has(p, 'C'));
  return ok;
}

async function writeCommand(s: IoSession, args: string[]): Promise<boolean> {
  const p = getopt('write', args, 'bcCfnpP:quzs:');
  if (p.operands.length !== 2) s.usage('write');
  const zero = has(p, 'z');
  const source = value(p, 's');
  const patternText = value(p, 'P');
  if (has(p, 'b') && zero) throw new CommandError('-b and -z cannot be specified at the same time');
  if (has(p, 'f') && has(p, 'b')) throw new CommandError('-f and -b cannot be specified at the same time');
  if (Number(zero) + Number(patternText !== undefined) + Number(source !== undefined) > 1) {
    throw new CommandError('Only one of -z, -P, and -s can be specified at the same time');
  }
  if (has(p, 'n') && !zero) throw new CommandError('-n requires -z to be specified');
  if (has(p, 'u') && !zero) throw new CommandError('-u requires -z to be specified');
  const pattern = patternText === undefined ? DEFAULT_WRITE_PATTERN : parsePattern(patternText);
  const [offset, count] = offsetAndCount(s, 'write', p.operands, has(p, 'n') ? null : ' without -n');
  if (has(p, 'b')) throw new CommandError('write failed: Operation not supported');
  const fua = has(p, 'f') || s.options.writeThrough === true;
  let seconds: number;
  if (zero) {
    seconds = await request(s, 'write', async () => {
      await s.image.writeZeroes(offset, count, { mayUnmap: has(p, 'u') });
      if (fua) await s.image.flush();
    });
  } else {
    checkInside(s, 'write', offset, count);
    const buf = source === undefined ? new Uint8Array(count).fill(pattern) : await fillFromFile(s, source, count);
    if (!buf) return false;
    const node: BlockNode = s.image;
    if (has(p, 'c')) {
      seconds = await request(s, 'write', async () => {
        if (!node.writeCompressed) throw new CommandError('Operation not supported');
        checkCompressedAlignment(s.image, offset, count);
        await node.writeCompressed(offset, buf);
      });
    } else {
      seconds = await request(s, 'write', () => node.write(offset, buf, { fua }));
    }
  }
  if (!has(p, 'q')) report(s, 'wrote', seconds, offset, count, has(p, 'C'));
  return true;
}

/**
 * A compressed write must cover whole clusters (the image's last one may be short):
 * QEMU checks the range first (EIO), then the format refuses misalignment (EINVAL).
 */
function checkCompressedAlignment(image: ImageNode, offset: number, count: number): void {
  checkRange(image, image.size(), offset, count);
  const unit = image.clusterSize ?? image.granularity;
  if (offset % unit !== 0 || (count % unit !== 0 && offset + count !== image.size())) {
    throw new CommandError('Invalid argument');
  }
}

/** -s source_file: the file's bytes, repeated to fill `count`; problems go to stderr. */
async function fillFromFile(s: IoSession, file: string, count: number): Promise<Uint8Array | null> {
  let data: Uint8Array;
  try {
    data = await readFile(file);
  } catch (e) {
    s.output.err(`${file}: ${describeErrno(e)}`);
    return null;
  }
  if (data.length === 0) {
    s.output.err(`${file}: file is empty`);
    return null;
  }
  const buf = new Uint8Array(count);
  for (let pos = 0; pos < count; pos += data.length) buf.set(data.subarray(0, count - pos), pos);
  return buf;
}

/** readv/writev operands: an offset and one or more buffer lengths, added up. */
function offsetAndLengths(s: IoSession, cmd: string, operands: string[]): [number, number] {
  if (operands.length < 2) s.usage(cmd);
  const offset = cvtnum(operands[0]!);
  let total = 0;
  for (const text of operands.slice(1)) {
    const len = cvtnum(text);
    if (len > REQUEST_MAX_BYTES) throw new CommandError(`Argument '${text}' exceeds maximum size ${REQUEST_MAX_BYTES}`);
    total += len;
    if (total > REQUEST_MAX_BYTES) {
      throw new CommandError(`The total number of bytes exceed the maximum size ${REQUEST_MAX_BYTES}`);
    }
  }
  return [offset, total];
}

async function readvCommand(s: IoSession, args: string[]): Promise<boolean> {
  const p = getopt('readv', args, 'CP:qv');
  const patternText = value(p, 'P');
  const pattern = patternText === undefined ? undefined : parsePattern(patternText);
  const [offset, count] = offsetAndLengths(s, 'readv', p.operands);
  checkInside(s, 'readv', offset, count);
  const buf = new Uint8Array(count);
  const seconds = await request(s, 'readv', () => s.image.read(offset, buf));
  let ok = true;
  if (pattern !== undefined && buf.some((b) => b !== pattern)) {
    s.print(`Pattern verification failed at offset ${offset}, ${count} bytes`);
    ok = false;
  }
  if (has(p, 'q')) return ok;
  if (has(p, 'v')) dumpBuffer(s, buf, offset);
  report(s, 'read', seconds, offset, count, has(p, 'C'));
  return ok;
}

async function writevCommand(s: IoSession, args: string[]): Promise<boolean> {
  const p = getopt('writev', args, 'CfqP:');
  const patternText = value(p, 'P');
  const pattern = patternText === undefined ? DEFAULT_WRITE_PATTERN : parsePattern(patternText);
  const [offset, count] = offsetAndLengths(s, 'writev', p.operands);
  const fua = has(p, 'f') || s.options.writeThrough === true;
  checkInside(s, 'writev', offset, count);
  const buf = new Uint8Array(count).fill(pattern);
  const seconds = await request(s, 'writev', () => s.image.write(offset, buf, { fua }));
  if (!has(p, 'q')) report(s, 'wrote', seconds, offset, count, has(p, 'C'));
  return true;
}

async function discardCommand(s: IoSession, args: string[]): Promise<boolean> {
  const p = getopt('discard', args, 'Cq');
  const [offset, count] = offsetAndCount(s, 'discard', p.operands, '');
  const seconds = await request(s, 'discard', () => s.image.discard(offset, count));
  if (!has(p, 'q')) report(s, 'discard', seconds, offset, count, has(p, 'C'));
  return true;
}

/** Which ranges the image's top layer allocates (qemu-io asks bdrv_is_allocated, not the chain). */
async function mapCommand(s: IoSession): Promise<boolean> {
  const size = s.image.size();
  let offset = 0;
  while (offset < size) {
    let allocated: boolean;
    let num: number;
    try {
      const first = await s.image.blockStatus(offset, size - offset);
      allocated = first.allocated;
      num = first.length;
      while (offset + num < size) {
        const next = await s.image.blockStatus(offset + num, size - offset - num);
        if (next.allocated !== allocated) break;
        num += next.length;
      }
    } catch (e) {
      s.output.err(`tsemu: Failed to get allocation status: ${describeFailure(e)}`);
      return false;
    }
    const state = allocated ? '    allocated' : 'not allocated';
    s.print(`${cvtstr(num)} (0x${num.toString(16)}) bytes ${state} at offset ${cvtstr(offset)} (0x${offset.toString(16)})`);
    offset += num;
  }
  return true;
}

/** qcow2's vm state offset: the guest size rounded up to what one L2 table maps. */
function vmStateOffset(image: ImageNode): number {
  if (image.driver !== 'qcow2' || !image.clusterSize) return 0;
  const extended = image.formatSpecific?.()?.data['extended-l2'] === true;
  const perTable = image.clusterSize / (extended ? 16 : 8);
  const span = image.clusterSize * perTable;
  return Math.ceil(image.size() / span) * span;
}

/** QEMU's dump of format-specific information: "    key name: value", nested indented. */
function dumpObject(s: IoSession, value: unknown, indent: number): void {
  const entries: Array<[string, unknown]> = Array.isArray(value)
    ? value.map((v, i) => [`[${i}]`, v])
    : Object.entries(value as Record<string, unknown>).map(([k, v]) => [k.replace(/-/g, ' '), v]);
  for (const [key, v] of entries) {
    const pad = ' '.repeat(indent * 4);
    if (v !== null && typeof v === 'object') {
      s.print(`${pad}${key}:`);
      dumpObject(s, v, indent + 1);
    } else {
      s.print(`${pad}${key}: ${String(v)}`);
    }
  }
}

async function infoCommand(s: IoSession): Promise<boolean> {
  s.print(`format name: ${s.image.driver}`);
  s.print(`cluster size: ${cvtstr(s.image.clusterSize ?? 0)}`);
  s.print(`vm state offset: ${cvtstr(vmStateOffset(s.image))}`);
  const specific = s.image.formatSpecific?.();
  if (specific) {
    s.print('Format specific information:');
    dumpObject(s, specific.data, 1);
  }
  return true;
}

async function sleepCommand(_s: IoSession, args: string[]): Promise<boolean> {
  if (!/^[0-9]+$/.test(args[0]!)) throw new CommandError(`${args[0]} is not a valid number`);
  await sleep(Number(args[0]));
  return true;
}

/** alloc offset [count]: how many bytes of the range the top layer allocates (count 512 by default). */
async function allocCommand(s: IoSession, args: string[]): Promise<boolean> {
  const start = cvtnum(args[0]!);
  let count = args.length === 2 ? cvtnum(args[1]!) : 512;
  let offset = start;
  let remaining = count;
  let allocated = 0;
  while (remaining > 0) {
    const size = s.image.size();
    if (offset >= size) {
      count -= remaining;
      break;
    }
    let st: BlockExtent;
    try {
      st = await s.image.blockStatus(offset, Math.min(remaining, size - offset));
    } catch (e) {
      throw new CommandError(`is_allocated failed: ${describeFailure(e)}`);
    }
    offset += st.length;
    remaining -= st.length;
    if (st.allocated) allocated += st.length;
  }
  s.print(`${allocated}/${count} bytes allocated at offset ${cvtstr(start)}`);
  return true;
}

const PREALLOCATION_MODES: readonly Preallocation[] = ['off', 'metadata', 'falloc', 'full'];

/** truncate [-m prealloc_mode] off: resize the image (growing or shrinking); errors go to stderr. */
async function truncateCommand(s: IoSession, args: string[]): Promise<boolean> {
  const p = getopt('truncate', args, 'm:');
  const mode = value(p, 'm') ?? 'off';
  if (!(PREALLOCATION_MODES as readonly string[]).includes(mode)) {
    s.output.err(`tsemu: Invalid preallocation mode '${mode}'`);
    return false;
  }
  if (p.operands.length !== 1) s.usage('truncate');
  const size = cvtnum(p.operands[0]!);
  try {
    await s.image.truncate(size, { preallocation: mode as Preallocation, shrink: true });
  } catch (e) {
    s.output.err(`tsemu: ${(e as Error).message}`);
    return false;
  }
  return true;
}

async function helpCommand(s: IoSession, args: string[]): Promise<boolean> {
  const list = args.length === 0 ? COMMANDS : COMMANDS.filter((c) => c.name === args[0] || c.alias === args[0]);
  if (list.length === 0) throw new CommandError(`command ${args[0]} not found`);
  for (const c of list) s.print(`${c.usage} -- ${c.oneline}`);
  if (args.length === 0) s.print('\nUse \'help commandname\' for extended help.');
  return true;
}

const COMMANDS: readonly CommandDef[] = [
  {
    name: 'alloc', usage: 'alloc offset [count]', argmin: 1, argmax: 2,
    oneline: 'checks if offset is allocated in the file', run: allocCommand,
  },
  {
    name: 'discard', alias: 'd', usage: 'discard [-Cq] off len', argmin: 2, argmax: -1, writes: true,
    oneline: 'discards a number of bytes at a specified offset', run: discardCommand,
  },
  {
    name: 'flush', alias: 'f', usage: 'flush', argmin: 0, argmax: 0,
    oneline: 'flush all in-core file state to disk', run: async (s) => {
      await request(s, 'flush', () => s.image.flush());
      return true;
    },
  },
  { name: 'help', usage: 'help [command]', argmin: 0, argmax: 1, oneline: 'help for one or all commands', run: helpCommand },
  { name: 'info', usage: 'info', argmin: 0, argmax: 0, oneline: 'prints information about the current file', run: infoCommand },
  {
    name: 'length', usage: 'length', argmin: 0, argmax: 0, oneline: 'gets the length of the current file',
    run: async (s) => {
      s.print(cvtstr(s.image.size()));
      return true;
    },
  },
  { name: 'map', usage: 'map ', argmin: 0, argmax: 0, oneline: 'prints the allocated areas of a file', run: mapCommand },
  { name: 'quit', alias: 'q', usage: 'quit', argmin: 0, argmax: 0, oneline: 'exit the program', quits: true },
  {
    name: 'read', alias: 'r', usage: 'read [-abCqv] [-P pattern [-s off] [-l len]] off len', argmin: 2, argmax: -1,
    oneline: 'reads a number of bytes at a specified offset', run: readCommand,
  },
  {
    name: 'readv', usage: 'readv [-Cqv] [-P pattern] off len [len..]', argmin: 2, argmax: -1,
    oneline: 'reads a number of bytes at a specified offset', run: readvCommand,
  },
  { name: 'sleep', usage: 'sleep', argmin: 1, argmax: 1, oneline: 'waits for the given value in milliseconds', run: sleepCommand },
  {
    name: 'truncate', usage: 'truncate [-m prealloc_mode] off', argmin: 1, argmax: 3, writes: true,
    oneline: 'truncates the current file at the given offset', run: truncateCommand,
  },
  {
    name: 'write', alias: 'w', usage: 'write [-bcCfnquz] [-P pattern | -s source_file] off len', argmin: 2, argmax: -1,
    writes: true, oneline: 'writes a number of bytes at a specified offset', run: writeCommand,
  },
  {
    name: 'writev', usage: 'writev [-Cfq] [-P pattern] off len [len..]', argmin: 2, argmax: -1, writes: true,
    oneline: 'writes a number of bytes at a specified offset', run: writevCommand,
  },
];

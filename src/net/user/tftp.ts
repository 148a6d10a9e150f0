/**
 * A read-only TFTP server (RFC 1350, with the blksize and tsize options of RFC 2347,
 * 2348 and 2349) at the user network's host addresses (IPv4 and IPv6), port 69, serving the files
 * under the tftp= folder. Each read request starts a transfer from a port of its
 * own (the server's TID); blocks go one at a time, each resent after 1 s without
 * its ACK, the transfer dropped after 5 resends. A request that carries options
 * is answered with an OACK first (block 0). Names resolve inside the folder only:
 * "..", absolute names that leave it and symbolic links that point out of it get
 * "access violation"; write requests too. At most 64 transfers at once.
 */
import { open, realpath, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { sameAddress, type IpAddress } from './ip-address.js';

const RRQ = 1;
const WRQ = 2;
const DATA = 3;
const ACK = 4;
const ERROR = 5;
const OACK = 6;
const ERR_NOT_FOUND = 1;
const ERR_ACCESS = 2;
const ERR_ILLEGAL = 4;
const ERR_OPTION = 8;
const RESEND_MS = 1000;
const MAX_RESENDS = 5;
const MAX_TRANSFERS = 64;
const FIRST_TID = 50000;

/** Where a TFTP datagram goes: the stack wraps it in UDP from the host address. */
export type TftpSend = (srcPort: number, guestAddr: IpAddress, guestPort: number, payload: Uint8Array) => void;

interface Transfer {
  file: FileHandle;
  size: number;
  blockSize: number;
  /** The block sent and waiting for its ACK (0: the OACK). */
  block: number;
  packet: Uint8Array;
  resends: number;
  timer: NodeJS.Timeout | null;
  guestAddr: IpAddress;
  guestPort: number;
  tid: number;
}

function errorPacket(code: number, message: string): Uint8Array {
  const text = Buffer.from(message);
  const p = new Uint8Array(5 + text.length);
  p[1] = ERROR;
  p[3] = code;
  p.set(text, 4);
  return p;
}

/** Splits the NUL-terminated strings of a request; null when the last one is not terminated. */
function strings(msg: Uint8Array): string[] | null {
  const out: string[] = [];
  let start = 2;
  for (let i = 2; i < msg.length; i++) {
    if (msg[i] === 0) {
      out.push(Buffer.from(msg.subarray(start, i)).toString('latin1'));
      start = i + 1;
    }
  }
  return start === msg.length ? out : null;
}

export class TftpServer {
  /** Transfers by their server port. */
  private readonly transfers = new Map<number, Transfer>();
  private nextTid = FIRST_TID;
  private closed = false;

  constructor(private readonly root: string, private readonly send: TftpSend) {}

  /** Whether a UDP port of the host address belongs to the TFTP server (69 or a transfer's). */
  owns(port: number): boolean {
    return port === 69 || this.transfers.has(port);
  }

  /** A datagram from the guest to the host address's `port`. */
  input(guestAddr: IpAddress, guestPort: number, port: number, msg: Uint8Array): void {
    if (msg.length < 4) return;
    const op = (msg[0]! << 8) | msg[1]!;
    if (port === 69) {
      if (op === RRQ) void this.start(guestAddr, guestPort, msg);
      else if (op === WRQ) this.send(69, guestAddr, guestPort, errorPacket(ERR_ACCESS, 'read-only server'));
      return;
    }
    const t = this.transfers.get(port);
    if (!t || !sameAddress(t.guestAddr, guestAddr) || t.guestPort !== guestPort) return;
    if (op === ERROR) return this.finish(t);
    if (op === ACK && ((msg[2]! << 8) | msg[3]!) === (t.block & 0xffff)) void this.sendBlock(t, t.block + 1);
  }

  private async resolve(name: string): Promise<string | null> {
    const root = await realpath(this.root);
    const wanted = path.resolve(root, `.${path.sep}${name}`);
    if (wanted !== root && !wanted.startsWith(root + path.sep)) return null;
    const real = await realpath(wanted).catch(() => wanted);
    return real === root || real.startsWith(root + path.sep) ? real : null;
  }

  private allocateTid(): number {
    for (;;) {
      const tid = this.nextTid;
      this.nextTid = tid >= 60999 ? FIRST_TID : tid + 1;
      if (!this.transfers.has(tid)) return tid;
    }
  }

  private async start(guestAddr: IpAddress, guestPort: number, msg: Uint8Array): Promise<void> {
    const fields = strings(msg);
    const reply = (p: Uint8Array): void => this.send(69, guestAddr, guestPort, p);
    if (!fields || fields.length < 2 || fields.length % 2 !== 0) return reply(errorPacket(ERR_ILLEGAL, 'malformed request'));
    if (this.transfers.size >= MAX_TRANSFERS) return reply(errorPacket(0, 'too many transfers'));
    const [name = '', mode = ''] = fields;
    if (!/^(octet|netascii)$/i.test(mode)) return reply(errorPacket(ERR_ILLEGAL, `mode '${mode}' not supported`));
    const file = await this.resolve(name);
    if (file === null) return reply(errorPacket(ERR_ACCESS, 'access violation'));
    let handle: FileHandle;
    let size: number;
    try {
      handle = await open(file, 'r');
      const st = await handle.stat();
      if (!st.isFile()) {
        await handle.close();
        return reply(errorPacket(ERR_NOT_FOUND, 'file not found'));
      }
      size = st.size;
    } catch {
      return reply(errorPacket(ERR_NOT_FOUND, 'file not found'));
    }
    if (this.closed) return void handle.close();
    const options: string[] = [];
    let blockSize = 512;
    for (let i = 2; i < fields.length; i += 2) {
      const key = fields[i]!.toLowerCase();
      const value = fields[i + 1]!;
      if (key === 'blksize') {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 8) {
          await handle.close();
          return reply(errorPacket(ERR_OPTION, 'bad blksize'));
        }
        blockSize = Math.min(n, 1432); // one Ethernet frame
        options.push('blksize', String(blockSize));
      } else if (key === 'tsize') options.push('tsize', String(size));
    }
    const t: Transfer = { file: handle, size, blockSize, block: 0, packet: new Uint8Array(0), resends: 0, timer: null, guestAddr, guestPort, tid: this.allocateTid() };
    this.transfers.set(t.tid, t);
    if (options.length > 0) {
      const body = Buffer.from(options.map((s) => `${s}\0`).join(''), 'latin1');
      const oack = new Uint8Array(2 + body.length);
      oack[1] = OACK;
      oack.set(body, 2);
      this.transmit(t, 0, oack);
    } else await this.sendBlock(t, 1);
  }

  private async sendBlock(t: Transfer, block: number): Promise<void> {
    const offset = (block - 1) * t.blockSize;
    if (offset > t.size) return this.finish(t); // the short last block was acknowledged
    const packet = new Uint8Array(4 + Math.min(t.blockSize, t.size - offset));
    packet[1] = DATA;
    packet[2] = (block >> 8) & 255;
    packet[3] = block & 255;
    try {
      await t.file.read(packet, 4, packet.length - 4, offset);
    } catch {
      this.send(t.tid, t.guestAddr, t.guestPort, errorPacket(0, 'read error'));
      return this.finish(t);
    }
    if (this.transfers.get(t.tid) === t) this.transmit(t, block, packet);
  }

  private transmit(t: Transfer, block: number, packet: Uint8Array): void {
    t.block = block;
    t.packet = packet;
    t.resends = 0;
    this.send(t.tid, t.guestAddr, t.guestPort, packet);
    this.arm(t);
  }

  private arm(t: Transfer): void {
    if (t.timer) clearTimeout(t.timer);
    t.timer = setTimeout(() => {
      if (++t.resends > MAX_RESENDS) return this.finish(t);
      this.send(t.tid, t.guestAddr, t.guestPort, t.packet);
      this.arm(t);
    }, RESEND_MS);
  }

  private finish(t: Transfer): void {
    if (this.transfers.get(t.tid) !== t) return;
    this.transfers.delete(t.tid);
    if (t.timer) clearTimeout(t.timer);
    void t.file.close();
  }

  close(): void {
    this.closed = true;
    for (const t of [...this.transfers.values()]) this.finish(t);
  }
}

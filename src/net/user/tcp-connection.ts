/**
 * One TCP connection between the guest and a host stream. The guest talks real TCP
 * to this object; the host side is an ordinary net.Socket (or a command's stdio for
 * a guest forward: any Duplex that emits 'connect' once usable), so the bytes are relayed
 * and the two TCP sessions are independent (a splice, as in slirp and passt).
 *
 * States: connecting (guest SYN received, host connect pending: the guest gets a
 * SYN-ACK only once the host accepted, or a RST if it refused), syn-sent (a host
 * forward accepted a host connection and sent the guest a SYN), syn-rcvd (SYN-ACK
 * sent, waiting for the guest's ACK), open, closed. Closing is tracked by four flags:
 * the host ended its side (we send FIN after the queued data), our FIN was sent and
 * acknowledged, the guest sent FIN (the host socket is ended). Both FINs done, or a
 * RST either way, closes the connection.
 *
 * Toward the guest: MSS and window scaling negotiated in the SYNs (our MSS 1460
 * over IPv4, 1440 over IPv6, shift 7); our receive window is the room left in a 4 MiB allowance minus what the
 * host socket still buffers, so a slow host reader closes the guest's window (a
 * window update follows when the socket drains). Sending: bytes from the host wait
 * in a queue (copied in: the host socket may reuse its read buffer; the socket is
 * paused while the queue is near 4 MiB) and leave as segments within
 * the guest's window and a NewReno congestion window (slow start, halving on three
 * duplicate ACKs with a fast retransmit, each partial ACK in recovery resending the
 * next hole, one segment after a timeout; at most 512 segments, so a burst fits
 * a tap's backlog).
 * Retransmission timeout per RFC 6298 (RTT samples from one timed segment at a time,
 * never from a resent one; 200 ms to 60 s, doubling on each timeout); a zero window
 * is probed with one byte on the same timer. A SYN goes 5 times, data 12 times before
 * the connection is reset. Receiving: data beyond a hole waits in a reassembly
 * (within the window) and leaves once the hole is filled; each such segment gets a
 * duplicate ACK with SACK blocks when the guest offered SACK (we always offer it).
 * As a sender we keep the guest's SACK blocks as a scoreboard: in fast recovery each
 * duplicate or partial ACK resends the next hole below the highest SACKed byte
 * (without SACK, the first unacknowledged segment); a timeout forgets the board.
 * ACKs for in-order data are delayed (delayed-ack.ts: every second full segment, at
 * the end of the turn, else within 5 ms); TCP's immediate ACKs go at once: out-of-order
 * or old data, a filled hole, the guest's FIN, data while our last window said zero
 * (a window probe), a window update when the host socket drains, and pushed (PSH) data
 * the host socket could not take at once, the moment the socket has written it all (a
 * pushed segment the socket takes at once is acknowledged like any other: an ACK per
 * small pushed write is what keeps a Nagle sender from merging them). In-order data for the
 * host is gathered the same way: the segments of one burst (one tap read batch)
 * leave in one socket write at the end of the turn (process.nextTick), not one
 * write (and one system call) per segment; the bytes gathered count against the
 * receive window like those the socket still buffers.
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ByteQueue } from './byte-queue.js';
import { DelayedAck } from './delayed-ack.js';
import { Reassembly } from './reassembly.js';
import { sameAddress, type IpAddress } from './ip-address.js';
import { OutPacket, PROTO_TCP, type InPacket } from './packet.js';

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;

/** Our MSS: the 1500-byte MTU less the IP and TCP headers (IPv4 20 bytes, IPv6 40). */
export const mssFor = (addr: IpAddress): number => (typeof addr === 'number' ? 1460 : 1440);
const OUR_WSCALE = 7;
const RCV_ALLOWANCE = 4 << 20;
const SND_QUEUE_LIMIT = 4 << 20;
/** The most one host read brings (a socket's 64 KiB read): the host is paused while one more would not fit the limit. */
const HOST_READ_MAX = 64 << 10;
/** The congestion window's ceiling in segments: far above what a host link needs, below a tap's backlog (1000 frames). */
const MAX_CWND_SEGMENTS = 512;
const RTO_INITIAL = 1000;
const RTO_MIN = 200;
const RTO_MAX = 60_000;
const SYN_TRIES = 5;
const DATA_TRIES = 12;

export type TcpState = 'connecting' | 'syn-sent' | 'syn-rcvd' | 'open' | 'closed';

/** What a connection needs from the stack. */
export interface TcpOutput {
  emit(packet: OutPacket): void;
  /** The consumer cuts large IPv4 segments itself (OutPacket.gsoSize): data may leave in segments of many MSS. */
  readonly largeSegments?: boolean;
}

/** The most payload one large segment carries: a 64 KiB IP packet less the IP and TCP headers, in whole MSS. */
const largeSegmentLimit = (mss: number): number => Math.floor((65535 - 20 - 20) / mss) * mss;

/** The guest's SYN options. */
export interface SynOptions {
  mss: number;
  /** The window shift the guest announced, or -1 when it did not offer scaling. */
  wscale: number;
  /** The guest takes SACK blocks (SACK-permitted option). */
  sack: boolean;
}

/**
 * Calls fn(kind, at, length) for each option of the TCP header at `tcp` (at: the option's
 * first byte); end-of-list stops the walk, no-ops are skipped, and a hostile option list
 * (a length past the header or below 2) ends the walk, never the host.
 */
function forEachTcpOption(view: DataView, tcp: number, headerLength: number, fn: (kind: number, at: number, length: number) => void): void {
  const end = tcp + headerLength;
  for (let i = tcp + 20; i < end; ) {
    const kind = view.getUint8(i);
    if (kind === 0) break;
    if (kind === 1) { i++; continue; }
    if (i + 1 >= end) break;
    const len = view.getUint8(i + 1);
    if (len < 2 || i + len > end) break;
    fn(kind, i, len);
    i += len;
  }
}

/** Reads MSS (capped at `maxMss`) and window scale from a SYN's options. */
export function readSynOptions(view: DataView, tcp: number, headerLength: number, maxMss: number): SynOptions {
  const out: SynOptions = { mss: 536, wscale: -1, sack: false };
  forEachTcpOption(view, tcp, headerLength, (kind, i, len) => {
    if (kind === 2 && len === 4) out.mss = view.getUint16(i + 2);
    if (kind === 3 && len === 3) out.wscale = Math.min(view.getUint8(i + 2), 14);
    if (kind === 4 && len === 2) out.sack = true;
  });
  out.mss = Math.max(256, Math.min(out.mss, maxMss));
  return out;
}

/** Builds a TCP segment without a connection (resets to unknown flows). */
export function tcpSegment(
  src: IpAddress, srcPort: number, dst: IpAddress, dstPort: number,
  seq: number, ack: number, flags: number, window: number, optionsAndData = 0, optionBytes = 0,
): OutPacket {
  const p = new OutPacket(PROTO_TCP, src, dst, 20 + optionsAndData);
  const v = p.view;
  const t = p.l4;
  v.setUint16(t, srcPort);
  v.setUint16(t + 2, dstPort);
  v.setUint32(t + 4, seq >>> 0);
  v.setUint32(t + 8, flags & ACK ? ack >>> 0 : 0);
  v.setUint8(t + 12, ((20 + optionBytes) / 4) << 4);
  v.setUint8(t + 13, flags);
  v.setUint16(t + 14, window);
  return p;
}

export class TcpConnection {
  state: TcpState;
  private readonly iss = (Math.random() * 0x100000000) >>> 0;
  private sndUna = this.iss;
  private sndNxt = this.iss;
  private sndMax = this.iss;
  private sndWnd = 0;
  private sndShift = 0;
  private rcvShift = 0;
  private mss = 536;
  private rcvNxt = 0;
  private cwnd = 0;
  private ssthresh = 0x7fffffff;
  private readonly queue = new ByteQueue();
  private readonly outOfOrder = new Reassembly(RCV_ALLOWANCE);
  private sackOk = false;
  private hostEnded = false;
  private finSent = false;
  private finAcked = false;
  private guestFin = false;
  private rto = RTO_INITIAL;
  private srtt = 0;
  private rttvar = 0;
  private rttSeq = -1;
  private rttStart = 0;
  private timer: NodeJS.Timeout | null = null;
  private deadline = 0;
  private tries = 0;
  private dupAcks = 0;
  /** In fast recovery until everything sent before it began (up to recoverSeq) is acknowledged. */
  private recovering = false;
  private recoverSeq = 0;
  /** The guest's SACK scoreboard: ranges above sndUna it holds, sorted, merged. */
  private sacked: [number, number][] = [];
  /** In recovery, where the search for the next hole to resend starts. */
  private retransmitNext = 0;
  private readonly acks: DelayedAck;
  /** The window field of the last segment we sent was zero: the guest may only probe it. */
  private windowWasZero = false;
  /** Data gathered for the host includes a pushed (PSH) segment. */
  private gatheredPush = false;
  /** Pushed data waits in the host socket's buffer: ACK once the socket has written it all. */
  private pushBuffered = false;
  /** In-order guest data not yet written to the host socket (flushed at the end of the turn). */
  private gathered: Uint8Array[] = [];
  private gatheredBytes = 0;
  private hostPaused = false;

  constructor(
    private readonly out: TcpOutput,
    readonly guestAddr: IpAddress,
    readonly guestPort: number,
    /** The address and port the guest sees the other end as. */
    readonly peerAddr: IpAddress,
    readonly peerPort: number,
    private readonly socket: Duplex,
    private readonly onClosed: (c: TcpConnection) => void,
    guestSyn?: { seq: number; options: SynOptions },
  ) {
    this.acks = new DelayedAck(mssFor(guestAddr), () => this.sendAck());
    if (guestSyn) {
      this.state = 'connecting';
      this.rcvNxt = (guestSyn.seq + 1) >>> 0;
      this.applySynOptions(guestSyn.options);
      socket.once('connect', () => {
        this.state = 'syn-rcvd';
        this.sendSyn();
      });
    } else {
      this.state = 'syn-sent';
      socket.pause();
      this.sendSyn();
    }
    socket.on('data', (chunk: Buffer) => this.fromHost(chunk));
    socket.on('end', () => {
      this.hostEnded = true;
      this.output();
    });
    socket.on('drain', () => this.sendAck());
    socket.on('error', () => this.reset());
    socket.on('close', () => {
      if (this.state !== 'closed' && !this.hostEnded) this.reset();
    });
  }

  /** Whether this is the connection of guestAddr:guestPort with peerAddr:peerPort. */
  is(guestAddr: IpAddress, guestPort: number, peerAddr: IpAddress, peerPort: number): boolean {
    return guestPort === this.guestPort && peerPort === this.peerPort && sameAddress(guestAddr, this.guestAddr) && sameAddress(peerAddr, this.peerAddr);
  }

  private applySynOptions(options: SynOptions): void {
    this.mss = options.mss;
    this.cwnd = 10 * this.mss;
    this.sackOk = options.sack;
    if (options.wscale >= 0) {
      this.sndShift = options.wscale;
      this.rcvShift = OUR_WSCALE;
    }
  }

  /** Our receive window as the 16-bit field value. */
  private window(): number {
    const free = RCV_ALLOWANCE - this.socket.writableLength - this.gatheredBytes;
    return free <= 0 ? 0 : Math.min(0xffff, free >>> this.rcvShift);
  }

  /** A segment toward the guest; one that carries our ACK acknowledges all received so far. */
  private segment(seq: number, flags: number, length = 0, optionBytes = 0): OutPacket {
    const window = this.window();
    this.windowWasZero = window === 0;
    if (flags & ACK) this.acks.sent();
    return tcpSegment(this.peerAddr, this.peerPort, this.guestAddr, this.guestPort, seq, this.rcvNxt, flags, window, length + optionBytes, optionBytes);
  }

  private sendSyn(): void {
    // SYN carries MSS and (when the guest offered them, or we are asking) the window shift and SACK-permitted.
    const asking = this.state === 'syn-sent';
    const offerScale = asking || this.rcvShift > 0;
    const offerSack = asking || this.sackOk;
    const p = this.segment(this.iss, asking ? SYN : SYN | ACK, 0, 4 + (offerScale ? 4 : 0) + (offerSack ? 4 : 0));
    let o = p.l4 + 20;
    p.view.setUint32(o, (2 << 24) | (4 << 16) | mssFor(this.guestAddr));
    if (offerScale) p.view.setUint32((o += 4), (1 << 24) | (3 << 16) | (3 << 8) | OUR_WSCALE);
    if (offerSack) p.view.setUint32((o += 4), (1 << 24) | (1 << 16) | (4 << 8) | 2);
    p.view.setUint16(p.l4 + 14, 0xffff); // a SYN's window is never scaled
    this.sndNxt = this.sndMax = (this.iss + 1) >>> 0;
    this.out.emit(p);
    this.armTimer();
  }

  /** A pure ACK, with SACK blocks for the out-of-order data held when the guest takes them. */
  private sendAck(): void {
    if (this.state !== 'open') return;
    const ranges = this.sackOk ? this.outOfOrder.ranges(3) : [];
    const p = this.segment(this.sndNxt, ACK, 0, ranges.length > 0 ? 4 + 8 * ranges.length : 0);
    if (ranges.length > 0) {
      let o = p.l4 + 20;
      p.view.setUint32(o, (1 << 24) | (1 << 16) | (5 << 8) | (2 + 8 * ranges.length));
      for (const [start, end] of ranges) {
        p.view.setUint32((o += 4), start);
        p.view.setUint32((o += 4), end);
      }
    }
    this.out.emit(p);
  }

  /** The most payload one segment carries: the MSS, or many when the consumer cuts large IPv4 segments. */
  private get segmentLimit(): number {
    return this.out.largeSegments && typeof this.guestAddr === 'number' ? largeSegmentLimit(this.mss) : this.mss;
  }

  private sendData(seq: number, queueOffset: number, length: number): void {
    const push = queueOffset + length === this.queue.length ? PSH : 0;
    const p = this.segment(seq, ACK | push, length);
    if (length > this.mss) p.gsoSize = this.mss;
    this.queue.copyOut(queueOffset, length, p.frame, p.l4 + 20);
    this.out.emit(p);
  }

  private fromHost(chunk: Buffer): void {
    this.queue.push(chunk);
    if (this.queue.length > SND_QUEUE_LIMIT - HOST_READ_MAX && !this.hostPaused) {
      this.hostPaused = true;
      this.socket.pause();
    }
    this.output();
  }

  /** Sends what the windows allow, then FIN once the host has ended and everything is out. */
  private output(): void {
    if (this.state !== 'open') return;
    for (;;) {
      const inflight = (this.sndNxt - this.sndUna) | 0;
      const unsent = this.queue.length - inflight;
      if (unsent <= 0) break;
      const room = Math.min(this.sndWnd, this.cwnd) - inflight;
      if (room <= 0) break;
      const length = Math.min(unsent, room, this.segmentLimit);
      if (this.rttSeq < 0) {
        this.rttSeq = (this.sndNxt + length) >>> 0;
        this.rttStart = performance.now();
      }
      this.sendData(this.sndNxt, inflight, length);
      this.advanceSndNxt(length);
    }
    if (this.hostEnded && !this.finSent && ((this.sndNxt - this.sndUna) | 0) === this.queue.length) {
      this.out.emit(this.segment(this.sndNxt, FIN | ACK));
      this.finSent = true;
      this.advanceSndNxt(1);
    }
    if (this.sndNxt !== this.sndUna || (this.queue.length > 0 && this.sndWnd === 0)) this.armTimer();
  }

  private advanceSndNxt(count: number): void {
    this.sndNxt = (this.sndNxt + count) >>> 0;
    if (((this.sndNxt - this.sndMax) | 0) > 0) this.sndMax = this.sndNxt;
  }

  private armTimer(): void {
    this.deadline = performance.now() + this.rto;
    if (!this.timer) this.timer = setTimeout(() => this.onTimer(), this.rto);
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onTimer(): void {
    this.timer = null;
    if (this.state === 'closed' || this.state === 'connecting') return;
    const early = this.deadline - performance.now();
    if (early > 1) {
      this.timer = setTimeout(() => this.onTimer(), early);
      return;
    }
    this.rto = Math.min(this.rto * 2, RTO_MAX);
    this.rttSeq = -1;
    if (this.state === 'syn-sent' || this.state === 'syn-rcvd') {
      if (++this.tries >= SYN_TRIES) return this.reset();
      return this.sendSyn();
    }
    const outstanding = this.sndUna !== this.sndMax;
    if (!outstanding && !(this.queue.length > 0 && this.sndWnd === 0)) return;
    if (outstanding && ++this.tries >= DATA_TRIES) return this.reset();
    this.ssthresh = Math.max(((this.sndMax - this.sndUna) | 0) >>> 1, 2 * this.mss);
    this.cwnd = this.mss;
    this.recovering = false;
    this.sacked = [];
    this.sndNxt = this.sndUna;
    this.finSent = false;
    if (this.sndWnd === 0 && this.queue.length > 0) {
      this.sendData(this.sndUna, 0, 1); // zero-window probe
      this.advanceSndNxt(1);
      this.armTimer();
    } else this.output();
  }

  /** A segment from the guest for this connection (checksum and header already checked). */
  input(p: InPacket, headerLength: number): void {
    const v = p.view;
    const t = p.l4;
    const seq = v.getUint32(t + 4);
    const ack = v.getUint32(t + 8);
    const flags = v.getUint8(t + 13);
    const window = v.getUint16(t + 14);
    const dataLength = p.l4Length - headerLength;
    if (flags & RST) {
      // Accept a reset only inside the receive window (a blind reset must guess the sequence).
      if (this.state === 'syn-sent' ? ack === this.sndNxt : ((seq - this.rcvNxt) | 0) >= 0 && ((seq - this.rcvNxt) | 0) < RCV_ALLOWANCE) {
        this.close(true);
      }
      return;
    }
    switch (this.state) {
      case 'closed':
      case 'connecting':
        return; // the guest resends its SYN while the host connect is pending
      case 'syn-sent':
        if ((flags & (SYN | ACK)) !== (SYN | ACK) || ack !== this.sndNxt) return;
        this.rcvNxt = (seq + 1) >>> 0;
        this.applySynOptions(readSynOptions(v, t, headerLength, mssFor(this.guestAddr)));
        this.sndUna = ack;
        this.sndWnd = window;
        this.established();
        this.sendAck();
        return this.output();
      case 'syn-rcvd':
        if (flags & SYN) return this.sendSyn(); // our SYN-ACK was lost
        if (!(flags & ACK) || ack !== this.sndNxt) return;
        this.sndUna = ack;
        this.established();
        break;
      case 'open':
        if (flags & SYN) return this.sendAck();
        break;
    }
    if (flags & ACK && this.sackOk && headerLength > 20) this.readSackBlocks(v, t, headerLength);
    if (flags & ACK) this.onAck(ack, window << this.sndShift, dataLength === 0 && !(flags & FIN));
    if ((dataLength > 0 || flags & FIN) && !this.guestFin) this.receive(p.frame.subarray(t + headerLength, t + headerLength + dataLength), seq, flags);
    else if (dataLength > 0) this.sendAck(); // data after the guest's FIN: a resend
    if (this.guestFin && this.finAcked) this.close(false);
  }

  /** Data (and FIN) from the guest: in-order bytes go to the host, later ones wait in the reassembly. */
  private receive(data: Uint8Array, seq: number, flags: number): void {
    const fin = (flags & FIN) !== 0;
    const skip = (this.rcvNxt - seq) | 0; // bytes already received (a resend overlapping new data)
    if (skip < 0) {
      if (-skip < RCV_ALLOWANCE) this.outOfOrder.add(this.rcvNxt, seq, data); // a FIN waits for its resend
      return this.sendAck(); // a hole before it: duplicate ACK (with SACK blocks)
    }
    if (skip > data.length || (skip === data.length && !fin)) return this.sendAck(); // all old
    const hadHole = !this.outOfOrder.empty;
    const probed = this.windowWasZero;
    const before = this.rcvNxt;
    if (skip < data.length) {
      if (flags & PSH) this.gatheredPush = true;
      this.toHost(data.subarray(skip));
      this.rcvNxt = (this.rcvNxt + data.length - skip) >>> 0;
      for (const chunk of this.outOfOrder.take(this.rcvNxt)) {
        this.toHost(chunk);
        this.rcvNxt = (this.rcvNxt + chunk.length) >>> 0;
      }
    }
    if (fin && ((seq + data.length - this.rcvNxt) | 0) === 0) {
      this.rcvNxt = (this.rcvNxt + 1) >>> 0;
      this.guestFin = true;
      this.flushToHost();
      this.socket.end();
      this.sendAck();
    } else if (hadHole || probed) this.sendAck(); // a filled hole, or data into a window we said was closed
    else this.acks.received((this.rcvNxt - before) >>> 0);
  }

  /** Gathers in-order bytes for the host; the first of a turn schedules the one write. */
  private toHost(bytes: Uint8Array): void {
    if (this.gathered.length === 0) process.nextTick(() => this.flushToHost());
    this.gathered.push(bytes);
    this.gatheredBytes += bytes.length;
  }

  /** Writes what was gathered as one chunk (a copy when there are several). */
  private flushToHost(): void {
    const chunks = this.gathered;
    if (chunks.length === 0) return;
    const total = this.gatheredBytes;
    const pushed = this.gatheredPush;
    this.gathered = [];
    this.gatheredBytes = 0;
    this.gatheredPush = false;
    if (this.socket.destroyed || this.socket.writableEnded) return; // reset, or ended after a flush
    this.socket.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total), pushed ? this.onPushedWritten : undefined);
    if (pushed && this.socket.writableLength > 0) this.pushBuffered = true;
  }

  /** A pushed chunk left the host socket's buffer: if it had to wait there and the buffer is now empty, ACK at once. */
  private readonly onPushedWritten = (): void => {
    if (!this.pushBuffered || this.socket.writableLength > 0) return;
    this.pushBuffered = false;
    if (this.acks.pending) this.sendAck();
  };

  private established(): void {
    this.state = 'open';
    this.stopTimer();
    this.tries = 0;
    this.rto = RTO_INITIAL;
    this.socket.resume();
  }

  private onAck(ack: number, window: number, pureAck: boolean): void {
    const acked = (ack - this.sndUna) | 0;
    if (acked > 0 && ((this.sndMax - ack) | 0) >= 0) {
      const finSeq = (this.sndUna + this.queue.length) >>> 0;
      let dataAcked = acked;
      if (this.finSent && ((ack - finSeq) | 0) === 1) {
        this.finAcked = true;
        dataAcked = this.queue.length;
      }
      this.queue.drop(dataAcked);
      this.sndUna = ack;
      this.pruneSacked();
      if (((this.sndNxt - ack) | 0) < 0) this.sndNxt = ack;
      if (this.rttSeq >= 0 && ((ack - this.rttSeq) | 0) >= 0) {
        this.sampleRtt(performance.now() - this.rttStart);
        this.rttSeq = -1;
      }
      if (this.recovering && ((ack - this.recoverSeq) | 0) < 0) {
        // A partial ACK in fast recovery (NewReno): the next hole is resent at once.
        this.cwnd = Math.max(this.cwnd - dataAcked + this.mss, this.mss);
        if (this.sacked.length === 0) this.retransmitNext = this.sndUna;
        this.resendHole();
      } else if (this.recovering) {
        this.recovering = false;
        this.cwnd = this.ssthresh;
      } else {
        const growth = this.cwnd < this.ssthresh ? Math.min(acked, this.mss) : Math.max(1, Math.floor((this.mss * this.mss) / this.cwnd));
        this.cwnd = Math.min(this.cwnd + growth, MAX_CWND_SEGMENTS * this.mss);
      }
      this.dupAcks = 0;
      this.tries = 0;
      if (this.sndUna === this.sndMax) this.stopTimer();
      else this.armTimer();
      if (this.hostPaused && this.queue.length < SND_QUEUE_LIMIT / 2) {
        this.hostPaused = false;
        this.socket.resume();
      }
    } else if (acked === 0 && pureAck && this.sndUna !== this.sndMax && window === this.sndWnd) {
      if (++this.dupAcks === 3 && !this.recovering) {
        this.ssthresh = Math.max(((this.sndMax - this.sndUna) | 0) >>> 1, 2 * this.mss);
        this.cwnd = this.ssthresh + 3 * this.mss;
        this.recovering = true;
        this.recoverSeq = this.sndMax;
        this.retransmitNext = this.sndUna;
        this.resendHole();
      } else if (this.recovering) {
        this.cwnd += this.mss; // each duplicate ACK: a segment has left the network
        if (this.sacked.length > 0) this.resendHole();
      }
    }
    this.sndWnd = window;
    this.output();
  }

  /**
   * Resends the next segment known lost from retransmitNext on: with SACK, the next
   * range the guest does not hold below its highest SACKed byte; without, only the
   * first unacknowledged segment.
   */
  private resendHole(): void {
    let from = Math.max((this.retransmitNext - this.sndUna) | 0, 0);
    let limit = -1;
    if (this.sacked.length === 0) {
      if (from > 0) return;
      limit = this.queue.length;
    }
    for (const [start, end] of this.sacked) {
      const s = (start - this.sndUna) | 0;
      const e = (end - this.sndUna) | 0;
      if (from >= s && from < e) from = e;
      else if (from < s) {
        limit = s;
        break;
      }
    }
    const length = Math.min(this.mss, limit - from, this.queue.length - from);
    if (limit < 0 || length <= 0) return;
    this.rttSeq = -1;
    this.sendData((this.sndUna + from) >>> 0, from, length);
    this.retransmitNext = (this.sndUna + from + length) >>> 0;
  }

  /** Adds the SACK blocks of a guest ACK to the scoreboard (blocks outside what was sent are ignored). */
  private readSackBlocks(view: DataView, tcp: number, headerLength: number): void {
    forEachTcpOption(view, tcp, headerLength, (kind, i, len) => {
      if (kind !== 5) return;
      for (let b = i + 2; b + 8 <= i + len; b += 8) this.addSacked(view.getUint32(b), view.getUint32(b + 4));
    });
  }

  private addSacked(start: number, end: number): void {
    if (((start - this.sndUna) | 0) <= 0 || ((end - start) | 0) <= 0 || ((this.sndMax - end) | 0) < 0) return;
    const at = (x: number): number => (x - this.sndUna) | 0;
    const merged: [number, number][] = [];
    let block: [number, number] = [start, end];
    let placed = false;
    for (const r of this.sacked) {
      if (at(r[1]) < at(block[0])) merged.push(r);
      else if (at(r[0]) > at(block[1])) {
        if (!placed) merged.push(block);
        placed = true;
        merged.push(r);
      } else block = [at(r[0]) < at(block[0]) ? r[0] : block[0], at(r[1]) > at(block[1]) ? r[1] : block[1]];
    }
    if (!placed) merged.push(block);
    this.sacked = merged;
  }

  /** Drops what the cumulative ACK now covers from the scoreboard. */
  private pruneSacked(): void {
    if (this.sacked.length === 0) return;
    this.sacked = this.sacked.filter(([, end]) => ((end - this.sndUna) | 0) > 0);
    const first = this.sacked[0];
    if (first && ((first[0] - this.sndUna) | 0) < 0) first[0] = this.sndUna;
  }

  private sampleRtt(ms: number): void {
    if (this.srtt === 0) {
      this.srtt = ms;
      this.rttvar = ms / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - ms);
      this.srtt = 0.875 * this.srtt + 0.125 * ms;
    }
    this.rto = Math.min(RTO_MAX, Math.max(RTO_MIN, this.srtt + 4 * this.rttvar));
  }

  /** Resets the guest's side and drops the host's: for host errors and give-ups. */
  reset(): void {
    if (this.state === 'closed') return;
    if (this.state !== 'syn-sent') this.out.emit(this.segment(this.sndNxt, RST | ACK));
    this.close(true);
  }

  /** Ends the connection; `abort` resets the host socket at once instead of letting it flush. */
  close(abort: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopTimer();
    this.acks.stop();
    if (!abort) {
      this.flushToHost();
      this.socket.end();
    }
    else if (this.socket instanceof Socket && ['open', 'readOnly', 'writeOnly'].includes(this.socket.readyState)) {
      this.socket.resetAndDestroy(); // the host peer sees the reset too
    } else this.socket.destroy();
    this.onClosed(this);
  }
}

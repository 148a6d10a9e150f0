/**
 * Delayed acknowledgement of one TCP connection's in-order received data (RFC 1122
 * 4.2.3.2, RFC 9293 3.8.6.3): an ACK goes out once at least two full-sized segments
 * are unacknowledged, else within ACK_DELAY_MS of the first unacknowledged byte. Any
 * segment that carries our ACK (a pure ACK, data, FIN) clears what is pending.
 *
 * Why delay at all: each ACK the user stack sends costs a guest an interrupt, and a
 * guest with Nagle on holds its next small write until its last small segment is
 * acknowledged; a short delay lets it merge small writes into full segments, which
 * we then acknowledge every second one.
 * Why ACK_DELAY_MS is 5 ms, not Linux's 40 ms minimum: the NAT hop's round trip is
 * well under a millisecond, and a guest that waits on Nagle for our ACK stalls for
 * the whole delay (a request written in two pieces would wait 40 ms); 5 ms is enough
 * for a slow (emulated) guest to write the next KiB or for a host peer on the same
 * machine to answer (its data carries the ACK), and far below a guest's minimum
 * retransmission timeout (200 ms), so a delayed ACK never causes a resend.
 *
 * "Full-sized" is the largest segment seen so far (the guest's effective MSS, which its
 * TCP options may shrink below ours), at least 536 bytes (RFC 9293's default MSS), at
 * most `maxSegment`. Two full segments arriving in one turn of the event loop get
 * their ACK at the end of that turn (a microtask, queued by the first segment that
 * makes it due), so the segments of one burst (one tap read batch, one virtio-net
 * notify) still share one ACK, and the ACK reaches a virtio-net card before the card
 * decides on its interrupt for the transmit completions of that burst (also a
 * microtask, queued later): the guest takes one interrupt for both instead of two
 * (each interrupt costs a tsemu guest several vCPU/main-thread round trips).
 * The timer is lazy: it is not cleared when an ACK leaves early; it finds nothing
 * pending, or waits on until the deadline of what arrived since (one timer per
 * connection at most, no clearTimeout per ACK). The immediate ACKs TCP requires (out
 * of order data, a filled hole, FIN, window updates) are the connection's to send;
 * they clear this too.
 */
export const ACK_DELAY_MS = 5;
const MIN_FULL_SEGMENT = 536;

export class DelayedAck {
  /** In-order payload bytes received since our last ACK. */
  private unacked = 0;
  private fullSegment = MIN_FULL_SEGMENT;
  private timer: NodeJS.Timeout | null = null;
  /** When the oldest unacknowledged byte's ACK is due (performance.now()). */
  private deadline = 0;
  private endOfTurnScheduled = false;

  constructor(
    private readonly maxSegment: number,
    /** Sends a pure ACK (which calls sent()). */
    private readonly sendAck: () => void,
  ) {}

  /** Whether received data waits for its ACK. */
  get pending(): boolean {
    return this.unacked > 0;
  }

  /** In-order data of `length` bytes was received and accepted. */
  received(length: number): void {
    if (length > this.fullSegment) this.fullSegment = Math.min(length, this.maxSegment);
    if (this.unacked === 0) this.deadline = performance.now() + ACK_DELAY_MS;
    this.unacked += length;
    if (this.unacked >= 2 * this.fullSegment) this.atEndOfTurn();
    else if (this.timer === null) this.timer = setTimeout(this.onTimer, ACK_DELAY_MS);
  }

  /** A segment carrying our ACK of everything received left. */
  sent(): void {
    this.unacked = 0;
  }

  /** The connection closed: no ACK is due any more. */
  stop(): void {
    this.unacked = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private atEndOfTurn(): void {
    if (this.endOfTurnScheduled) return;
    this.endOfTurnScheduled = true;
    queueMicrotask(this.turnEnded);
  }

  private readonly turnEnded = (): void => {
    this.endOfTurnScheduled = false;
    if (this.pending) this.sendAck();
  };

  private readonly onTimer = (): void => {
    this.timer = null;
    if (!this.pending) return;
    const early = this.deadline - performance.now();
    if (early >= 1) this.timer = setTimeout(this.onTimer, early);
    else this.sendAck();
  };
}

/**
 * How an open VHDX image changes its metadata: header updates and BAT updates
 * through the log, in the order the specification asks for.
 *
 * Headers: an update writes the next sequence number into the slot that is not
 * current and flushes, so a crash leaves one valid header or the other. The
 * first change of a session (beginSession) gives the file new FileWriteGuid and
 * DataWriteGuid values before anything else is written.
 *
 * BAT updates (commitBat): the changed 4 KiB BAT sectors are taken as they are
 * (the node sets an entry only once its block's data is written), that data is
 * flushed, then the sectors go into the log as one entry (as many entries as the
 * log's size needs), the log is flushed, and only then are the sectors written
 * in place. The entries name the file size from before that first flush. A log "generation" starts at the log's beginning with
 * a fresh LogGuid recorded in the header; its entries follow one another, each
 * naming the generation's first entry as its tail, so a replay after a crash
 * applies them all in order (applying one twice is harmless). When the next
 * entry would not fit, the in-place writes so far are flushed and a new
 * generation starts. end() flushes the in-place writes and clears the LogGuid:
 * a closed image has an empty log.
 */
import { randomUUID } from 'node:crypto';
import { ImageFormatError } from '../../node.js';
import type { ProtocolNode } from '../../protocols/protocol.js';
import { BAT_SECTOR, type Bat } from './bat.js';
import { HEADER_OFFSETS, serializeHeader, type VhdxHeader, ZERO_GUID } from './layout.js';
import { buildLogEntry, logEntryBytes } from './log.js';

export class VhdxJournal {
  private sessionStarted = false;
  /** Where the next log entry goes, and its sequence number (generation active when logGuid is set). */
  private logHead = 0;
  private sequence = 1;
  /** Data sectors one log entry can carry. */
  private readonly maxSectorsPerEntry: number;

  constructor(
    private readonly file: ProtocolNode,
    private header: VhdxHeader,
    private slot: number,
  ) {
    let n = Math.max(0, header.logLength / BAT_SECTOR - 2);
    while (n > 0 && logEntryBytes(n) > header.logLength) n--;
    this.maxSectorsPerEntry = n;
  }

  get current(): Readonly<VhdxHeader> { return this.header; }

  /** Writes the header with `changes` and the next sequence number into the other slot, then flushes. */
  async updateHeader(changes: Partial<VhdxHeader>): Promise<void> {
    if (this.header.sequence >= 2n ** 64n - 1n) throw new ImageFormatError(`${this.file.filename}: the VHDX header sequence number is exhausted`);
    const next = { ...this.header, ...changes, sequence: this.header.sequence + 1n };
    const slot = 1 - this.slot;
    await this.file.write(HEADER_OFFSETS[slot], serializeHeader(next));
    await this.file.flush();
    this.header = next;
    this.slot = slot;
  }

  /** Before the first write of a session: new FileWriteGuid and DataWriteGuid. */
  async beginSession(): Promise<void> {
    if (this.sessionStarted) return;
    this.sessionStarted = true;
    await this.updateHeader({ fileWriteGuid: randomUUID(), dataWriteGuid: randomUUID() });
  }

  /** Commits the changed sectors of `bat`, stored at `batOffset`, through the log (see the header comment). */
  async commitBat(bat: Bat, batOffset: number): Promise<void> {
    if (!bat.hasDirty()) return;
    if (this.maxSectorsPerEntry === 0) throw new Error(`${this.file.filename}: the VHDX log is too small to record a BAT update`);
    await this.beginSession();
    // The table as it is now: its entries name only data already written, which the
    // flush makes durable before the log names it. Later changes wait for the next commit.
    const sectors = bat.takeDirtySectors();
    const size = this.file.size();
    await this.file.flush();
    for (let first = 0; first < sectors.length; first += this.maxSectorsPerEntry) {
      const piece = sectors.slice(first, first + this.maxSectorsPerEntry);
      const bytes = logEntryBytes(piece.length);
      if (this.header.logGuid === ZERO_GUID || this.logHead + bytes > this.header.logLength) {
        await this.file.flush();
        await this.updateHeader({ logGuid: randomUUID() });
        this.logHead = 0;
      }
      const entry = buildLogEntry({
        logGuid: this.header.logGuid,
        sequence: this.sequence,
        tail: 0,
        flushedFileOffset: size,
        lastFileOffset: size,
        writes: piece.map((s) => ({ fileOffset: batOffset + s.sector * BAT_SECTOR, data: s.data })),
      });
      await this.file.write(this.header.logOffset + this.logHead, entry);
      this.logHead += bytes;
      this.sequence++;
      await this.file.flush();
      for (const s of piece) await this.file.write(batOffset + s.sector * BAT_SECTOR, s.data);
    }
  }

  /** Makes the in-place writes durable and empties the log (LogGuid zero). */
  async end(): Promise<void> {
    if (this.header.logGuid === ZERO_GUID) return;
    await this.file.flush();
    await this.updateHeader({ logGuid: ZERO_GUID });
  }
}

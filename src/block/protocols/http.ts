/**
 * The `http` and `https` protocols (QEMU's curl block driver): a read-only node
 * over a remote file read with HTTP range requests, so every format driver can
 * sit on a URL (`tsemu img info https://host/disk.qcow2`).
 *
 * Opening: options come from the name (http-options.ts). A HEAD request gives
 * the size (Content-Length) and range support (Accept-Ranges: bytes), following
 * redirects; when it proves neither, a GET of the range 0-0 asks directly (206
 * with a Content-Range total). A server that answers ranges with the whole file
 * is refused with QEMU's message "Server does not support 'range' (byte ranges).".
 * Open errors read "HTTP: Error opening file: …" (QEMU: "CURL: …").
 *
 * Reading: through the readahead cache (http-readahead.ts); each fetch is a GET
 * with a Range header on a pooled keep-alive connection (http-transport.ts). A
 * dropped connection, a short body, a stalled answer or a 5xx/408/429 answer is tried
 * again up to RETRIES times with doubling pauses from RETRY_PAUSE_MS; then the
 * read fails naming the URL, the offset and the last cause.
 *
 * Limits: read-only, as QEMU's curl driver is: opening for writing or creating
 * fails naming the driver; block status says all data; "disk size" is unknown.
 */
import { type BlockExtent, checkRange } from '../node.js';
import { parseHttpOptions, type HttpDriverName, type HttpOptions } from './http-options.js';
import { type HttpAnswer, HttpError, HttpTransport } from './http-transport.js';
import { ReadaheadCache } from './http-readahead.js';
import { ReadOnlyProtocolNode } from './read-only-node.js';
import type { ProtocolNode, ProtocolOpenOptions } from './protocol.js';

const RETRIES = 4;
const RETRY_PAUSE_MS = 100;
const MAX_REDIRECTS = 8;
const RANGE_ERROR = "Server does not support 'range' (byte ranges).";

/** An answer status worth asking again for. */
function transientStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

export class HttpNode extends ReadOnlyProtocolNode implements ProtocolNode {
  readonly granularity = 512;
  private readonly cache: ReadaheadCache;

  private constructor(
    readonly driver: HttpDriverName,
    readonly filename: string,
    readonly forceShare: boolean,
    private readonly url: URL,
    private readonly headers: Record<string, string>,
    private readonly transport: HttpTransport,
    private readonly length: number,
    readahead: number,
  ) {
    super();
    this.cache = new ReadaheadCache(length, readahead, (offset, buf) => this.fetchRange(offset, buf));
  }

  static async open(name: string, opts: ProtocolOpenOptions = {}): Promise<HttpNode> {
    const o = parseHttpOptions(name);
    if (opts.create) throw new Error(`Protocol driver '${o.driver}' does not support image creation`);
    if (!(opts.readOnly ?? false)) throw new Error(`${o.driver} driver does not support writes`);
    const transport = new HttpTransport({ sslverify: o.sslverify, timeoutMs: o.timeoutMs });
    const headers = requestHeaders(o);
    try {
      const { url, size } = await probe(transport, o.url, headers);
      return new HttpNode(o.driver, o.url.href, opts.forceShare ?? false, url, headers, transport, size, o.readahead);
    } catch (e) {
      transport.close();
      throw new Error(`HTTP: Error opening file: ${(e as Error).message}`);
    }
  }

  size(): number {
    return this.length;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this, this.length, offset, buf.length);
    if (buf.length > 0) await this.cache.read(offset, buf);
  }

  /** One range GET, tried again on transient failures. */
  private async fetchRange(offset: number, buf: Uint8Array): Promise<void> {
    const headers = { ...this.headers, Range: `bytes=${offset}-${offset + buf.length - 1}` };
    try {
      await withRetries(async () => {
        const answer = await send(this.transport, this.url, 'GET', headers, buf);
        if (answer.status === 200) throw new HttpError(RANGE_ERROR, false);
        if (answer.status !== 206) throw statusError(answer);
        const start = /^bytes (\d+)-/.exec(String(answer.headers['content-range']))?.[1];
        if (start === undefined || Number(start) !== offset) {
          throw new HttpError(`the server answered range ${offset}- with Content-Range '${answer.headers['content-range'] ?? ''}'`, false);
        }
      });
    } catch (e) {
      throw new Error(`${this.filename}: read of ${buf.length} bytes at offset ${offset} failed: ${(e as Error).message}`);
    }
  }

  protected writeRefusal(): string {
    return `${this.filename}: ${this.driver} driver does not support writes`;
  }

  /** Nothing is known about a remote file's holes: everything is data. */
  async blockStatus(offset: number, length: number): Promise<BlockExtent> {
    checkRange(this, this.length, offset, length);
    return { offset, length, allocated: true, data: true, zero: false, compressed: false, hostOffset: offset };
  }

  /** Unknown ("disk size: unavailable"). */
  async allocatedSize(): Promise<number> {
    return -1;
  }

  async close(): Promise<void> {
    this.transport.close();
  }
}

function requestHeaders(o: HttpOptions): Record<string, string> {
  const headers: Record<string, string> = { Accept: '*/*', 'User-Agent': 'tsemu' };
  if (o.cookie !== undefined) headers.Cookie = o.cookie;
  if (o.username !== undefined || o.password !== undefined) {
    headers.Authorization = `Basic ${Buffer.from(`${o.username ?? ''}:${o.password ?? ''}`).toString('base64')}`;
  }
  return headers;
}

/** The URL after redirects and the resource's size; throws unless range requests work. */
async function probe(transport: HttpTransport, start: URL, headers: Record<string, string>): Promise<{ url: URL; size: number }> {
  let url = start;
  for (let hops = 0; ; hops++) {
    const answer = await withRetries(() => send(transport, url, 'HEAD', headers));
    const location = answer.headers.location;
    if (answer.status >= 300 && answer.status < 400 && location) {
      if (hops === MAX_REDIRECTS) throw new HttpError(`more than ${MAX_REDIRECTS} redirects`, false);
      url = new URL(location, url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HttpError(`redirect to '${url.href}' is not HTTP`, false);
      continue;
    }
    const length = Number(answer.headers['content-length']);
    const ranges = /\bbytes\b/i.test(String(answer.headers['accept-ranges'] ?? ''));
    if (answer.status >= 200 && answer.status < 300 && ranges && answer.headers['content-length'] !== undefined && Number.isSafeInteger(length)) {
      return { url, size: length };
    }
    if (answer.status >= 400 && answer.status !== 405 && answer.status !== 501) throw statusError(answer);
    return { url, size: await probeRange(transport, url, headers) };
  }
}

/** Size from a GET of the range 0-0 (servers that do not say Accept-Ranges, or refuse HEAD). */
async function probeRange(transport: HttpTransport, url: URL, headers: Record<string, string>): Promise<number> {
  const answer = await withRetries(() => send(transport, url, 'GET', { ...headers, Range: 'bytes=0-0' }, new Uint8Array(1)));
  const contentRange = String(answer.headers['content-range'] ?? '');
  if (answer.status === 416 && /^bytes \*\/0$/.test(contentRange)) return 0;
  if (answer.status === 200) throw new HttpError(RANGE_ERROR, false);
  if (answer.status !== 206) throw statusError(answer);
  const total = /^bytes \d+-\d+\/(\d+)$/.exec(contentRange)?.[1];
  if (total === undefined) throw new HttpError("Server didn't report file size.", false);
  return Number(total);
}

function statusError(answer: HttpAnswer): HttpError {
  return new HttpError(`HTTP ${answer.status} ${answer.statusText}`.trimEnd(), transientStatus(answer.status));
}

/** One request; a transient error status becomes a transient HttpError, to be retried. */
async function send(transport: HttpTransport, url: URL, method: 'HEAD' | 'GET', headers: Record<string, string>, body?: Uint8Array): Promise<HttpAnswer> {
  const answer = await transport.request(url, method, headers, body);
  if (transientStatus(answer.status)) throw statusError(answer);
  return answer;
}

/** Runs `attempt`, again after a transient failure, with doubling pauses. */
async function withRetries<T>(attempt: () => Promise<T>): Promise<T> {
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (e) {
      if (!(e instanceof HttpError) || !e.transient) throw e;
      if (tries === RETRIES) throw new HttpError(`${e.message} (after ${RETRIES + 1} attempts)`, false);
      await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS * 2 ** tries));
    }
  }
}

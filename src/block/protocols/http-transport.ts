/**
 * HTTP/1.1 requests for the http protocol driver, on undici: one Agent per
 * driver node (and scheme) keeps a pool of keep-alive connections per origin (at most
 * MAX_SOCKETS, one request at a time on each), reused across requests.
 *
 * request() sends one HEAD or GET and settles with the status and headers. A GET
 * answered 206 streams its body straight into the caller's buffer, which must
 * be the body's exact size; any other answer is not read: its body is destroyed,
 * which drops the connection (a server that ignores a Range header would
 * otherwise send the whole file). Every failure is an HttpError whose
 * `transient` says whether trying again may help: a connection reset or closed
 * early, a body shorter than announced, or an answer that stalls for the timeout
 * (undici's headersTimeout, counted from when a connection takes the request,
 * and bodyTimeout, restarted by every piece of the body) are transient; a refused
 * connection, an unknown host or a certificate the server cannot prove are not.
 * undici and node:http are loaded on the first request, so commands that never
 * touch HTTP do not pay for initialising them. HTTPS connections that verify the
 * server trust the certificate authorities tls-trust.ts names.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import type { Agent, Dispatcher } from 'undici';
import { trustedSecureContext } from './tls-trust.js';

export interface HttpTransportOptions {
  sslverify: boolean;
  /** How long a request may wait for the next byte of its answer, in milliseconds; 0 for ever. */
  timeoutMs: number;
}

export interface HttpAnswer {
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
}

export class HttpError extends Error {
  constructor(message: string, readonly transient: boolean) {
    super(message);
    this.name = 'HttpError';
  }
}

const MAX_SOCKETS = 8;

/** Error codes (socket errors and undici's) after which a new attempt may well succeed. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_CLOSED',
]);

interface Connections {
  agent: Agent;
  statusCodes: Record<number, string | undefined>;
}

export class HttpTransport {
  /** One agent per scheme (made on its first request: only HTTPS needs the trusted certificates). */
  private readonly pools = new Map<string, Promise<Connections>>();

  constructor(private readonly opts: HttpTransportOptions) {}

  private connections(url: URL): Promise<Connections> {
    let pool = this.pools.get(url.protocol);
    if (pool === undefined) {
      pool = this.openPool(url.protocol === 'https:');
      this.pools.set(url.protocol, pool);
    }
    return pool;
  }

  private async openPool(https: boolean): Promise<Connections> {
    const [{ Agent }, secureContext] = await Promise.all([
      import('undici'),
      https && this.opts.sslverify ? trustedSecureContext() : undefined,
    ]);
    const { STATUS_CODES } = createRequire(import.meta.url)('node:http') as typeof import('node:http');
    const agent = new Agent({
      connections: MAX_SOCKETS,
      pipelining: 1,
      headersTimeout: this.opts.timeoutMs,
      bodyTimeout: this.opts.timeoutMs,
      connect: { rejectUnauthorized: this.opts.sslverify, ...(secureContext && { secureContext }) },
    });
    return { agent, statusCodes: STATUS_CODES };
  }

  /** One request; with `body`, a 206 answer's body fills it exactly. */
  async request(url: URL, method: 'HEAD' | 'GET', headers: Record<string, string>, body?: Uint8Array): Promise<HttpAnswer> {
    let res: Dispatcher.ResponseData;
    let statusCodes: Connections['statusCodes'];
    try {
      const pool = await this.connections(url);
      statusCodes = pool.statusCodes;
      res = await pool.agent.request({ origin: url.origin, path: `${url.pathname}${url.search}`, method, headers });
    } catch (e) {
      throw this.describeError(e as Error);
    }
    const answer: HttpAnswer = {
      status: res.statusCode,
      statusText: statusCodes[res.statusCode] ?? '',
      headers: res.headers as IncomingHttpHeaders,
    };
    if (method === 'GET' && answer.status === 206 && body) {
      await receiveBody(res.body, body).catch((e: Error) => {
        throw e instanceof HttpError ? e : this.describeError(e);
      });
    } else if (method === 'HEAD') {
      await res.body.dump().catch(() => undefined);
    } else {
      // Not a body we asked for: drop the connection rather than download it.
      discard(res.body);
    }
    return answer;
  }

  /** Closes the pooled connections. */
  close(): void {
    for (const pool of this.pools.values()) void pool.then(({ agent }) => agent.destroy()).catch(() => undefined);
    this.pools.clear();
  }

  private describeError(e: Error): HttpError {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (TLS_VERIFY.test(code)) {
      return new HttpError(`server certificate verification failed: ${e.message} (sslverify=off skips the check)`, false);
    }
    if (code === 'ECONNREFUSED') return new HttpError(`connection refused (${e.message})`, false);
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new HttpError(`no answer for ${this.opts.timeoutMs / 1000} s`, true);
    }
    return new HttpError(e.message || code, TRANSIENT_CODES.has(code));
  }
}

async function receiveBody(stream: Dispatcher.ResponseData['body'], body: Uint8Array): Promise<void> {
  let got = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (got + chunk.length > body.length) {
      discard(stream);
      throw new HttpError(`the server sent more than the ${body.length} bytes asked for`, false);
    }
    body.set(chunk, got);
    got += chunk.length;
  }
  if (got !== body.length) throw new HttpError(`the answer ended after ${got} of ${body.length} bytes`, true);
}

/** Destroys an answer's body; undici reports that as an abort error, which nobody is waiting for. */
function discard(stream: Dispatcher.ResponseData['body']): void {
  stream.on('error', () => undefined);
  stream.destroy();
}

const TLS_VERIFY = /CERT|SIGNATURE|ISSUER|ALTNAME|VERIFY/;

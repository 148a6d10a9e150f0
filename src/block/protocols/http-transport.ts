/**
 * HTTP/1.1 requests for the http protocol driver: a pool of keep-alive
 * connections per scheme (at most MAX_SOCKETS each, reused across requests), one
 * request at a time per connection.
 *
 * request() sends one HEAD or GET and settles with the status and headers. A GET
 * answered 206 streams its body straight into the caller's buffer, which must
 * be the body's exact size; any other answer is not read: the connection is
 * dropped instead (a server that ignores a Range header would otherwise send the
 * whole file). Every failure is an HttpError whose `transient` says whether trying
 * again may help: a connection reset or closed early, a body shorter than
 * announced, or an answer that stalls for the timeout (counted from when a
 * connection takes the request, restarted by every byte that arrives) are
 * transient; a refused connection, an unknown host or a certificate the server
 * cannot prove are not.
 *
 * Built on node:http / node:https agents, because undici is not among the
 * project's installed dependencies; this module is the only one that knows.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';

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

/** Socket errors after which a new connection may well succeed. */
const TRANSIENT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE']);

export class HttpTransport {
  private readonly agents = new Map<string, http.Agent>();

  constructor(private readonly opts: HttpTransportOptions) {}

  /** One request; with `body`, a 206 answer's body fills it exactly. */
  request(url: URL, method: 'HEAD' | 'GET', headers: Record<string, string>, body?: Uint8Array): Promise<HttpAnswer> {
    return new Promise<HttpAnswer>((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (err: Error | null, answer?: HttpAnswer): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          req.destroy();
          reject(err);
        } else resolve(answer!);
      };
      const req = mod.request(url, { method, headers, agent: this.agent(url.protocol) }, (res) => {
        const answer: HttpAnswer = { status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: res.headers };
        timer?.refresh();
        res.on('data', () => timer?.refresh());
        if (method === 'HEAD') {
          res.resume();
          res.on('end', () => finish(null, answer));
        } else if (answer.status === 206 && body) {
          receiveBody(res, body, (err) => finish(err, answer));
        } else {
          // Not a body we asked for: drop the connection rather than download it.
          res.destroy();
          finish(null, answer);
        }
        res.on('error', (e) => finish(describeSocketError(e)));
      });
      // The clock starts when a pooled connection takes the request (not while it
      // waits for one) and restarts with every piece of the answer.
      const { timeoutMs } = this.opts;
      req.on('socket', () => {
        if (timeoutMs > 0) timer = setTimeout(() => finish(new HttpError(`no answer for ${timeoutMs / 1000} s`, true)), timeoutMs);
      });
      req.on('error', (e) => finish(describeSocketError(e)));
      req.end();
    });
  }

  /** Closes the pooled connections. */
  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  private agent(protocol: string): http.Agent {
    let agent = this.agents.get(protocol);
    if (!agent) {
      const common = { keepAlive: true, maxSockets: MAX_SOCKETS };
      agent = protocol === 'https:'
        ? new https.Agent({ ...common, rejectUnauthorized: this.opts.sslverify })
        : new http.Agent(common);
      this.agents.set(protocol, agent);
    }
    return agent;
  }
}

function receiveBody(res: IncomingMessage, body: Uint8Array, done: (err: Error | null) => void): void {
  let got = 0;
  res.on('data', (chunk: Buffer) => {
    if (got + chunk.length > body.length) {
      done(new HttpError(`the server sent more than the ${body.length} bytes asked for`, false));
      return;
    }
    body.set(chunk, got);
    got += chunk.length;
  });
  res.on('end', () => done(got === body.length ? null : new HttpError(`the answer ended after ${got} of ${body.length} bytes`, true)));
  res.on('close', () => {
    if (!res.complete) done(new HttpError(`the connection closed after ${got} of ${body.length} bytes`, true));
  });
}

const TLS_VERIFY = /CERT|SIGNATURE|ISSUER|ALTNAME|VERIFY/;

function describeSocketError(e: Error): HttpError {
  const code = (e as NodeJS.ErrnoException).code ?? '';
  if (TLS_VERIFY.test(code)) {
    return new HttpError(`server certificate verification failed: ${e.message} (sslverify=off skips the check)`, false);
  }
  if (code === 'ECONNREFUSED') return new HttpError(`connection refused (${e.message})`, false);
  return new HttpError(e.message || code, TRANSIENT_CODES.has(code) || e.message === 'aborted' || e.message === 'socket hang up');
}

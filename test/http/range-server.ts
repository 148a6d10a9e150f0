/**
 * A small HTTP(S) file server on 127.0.0.1 for the http protocol tests: serves
 * files from a folder by path, with range requests (Accept-Ranges, 206 and
 * Content-Range) unless told not to, and with the misbehaviours the tests need:
 * dropping every Nth range answer half way through its body, never answering
 * every Nth range request, answering 503 to every GET, or demanding basic
 * authentication. It records every request's method, path and headers, and
 * counts the connections clients opened.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface RangeServerOptions {
  /** Folder whose files are served. */
  root: string;
  /** Honour Range headers and say Accept-Ranges (default true). */
  ranges?: boolean;
  /** Serve HTTPS with this key and certificate (PEM). */
  tls?: { key: string; cert: string };
  /** Cut the connection half way through every Nth range answer. */
  dropEvery?: number;
  /** Leave every Nth range request unanswered (the connection stays open until the client gives up). */
  stallEvery?: number;
  /** Answer 503 to every GET (HEAD still works). */
  failGets?: boolean;
  /** Require this Authorization header (401 without it). */
  authorization?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

export interface RangeServer {
  /** "http://127.0.0.1:PORT" (or https). */
  base: string;
  requests: RecordedRequest[];
  /** How many answers were cut or left unanswered on purpose. */
  drops: number;
  /** TCP connections accepted. */
  connections: number;
  close(): Promise<void>;
}

export async function startRangeServer(opts: RangeServerOptions): Promise<RangeServer> {
  const ranges = opts.ranges ?? true;
  let rangeAnswers = 0;
  const state: RangeServer = { base: '', requests: [], drops: 0, connections: 0, close: async () => {} };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    state.requests.push({ method: req.method ?? '', path: urlPath, headers: req.headers });
    if (opts.authorization !== undefined && req.headers.authorization !== opts.authorization) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="test"', 'Content-Length': 0 }).end();
      return;
    }
    if (opts.failGets && req.method === 'GET') {
      res.writeHead(503, { 'Content-Length': 0 }).end();
      return;
    }
    let data: Buffer;
    try {
      data = await readFile(path.join(opts.root, path.normalize(urlPath)));
    } catch {
      res.writeHead(404, { 'Content-Length': 0 }).end();
      return;
    }
    if (ranges) res.setHeader('Accept-Ranges', 'bytes');
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (!ranges || !m || req.method === 'HEAD') {
      res.writeHead(200, { 'Content-Length': data.length });
      res.end(req.method === 'HEAD' ? undefined : data);
      return;
    }
    const start = Number(m[1]);
    const end = Math.min(m[2] ? Number(m[2]) : data.length - 1, data.length - 1);
    if (start >= data.length) {
      res.writeHead(416, { 'Content-Range': `bytes */${data.length}`, 'Content-Length': 0 }).end();
      return;
    }
    const body = data.subarray(start, end + 1);
    rangeAnswers++;
    if (opts.stallEvery && rangeAnswers % opts.stallEvery === 0) {
      state.drops++;
      return;
    }
    res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${data.length}`, 'Content-Length': body.length });
    if (opts.dropEvery && rangeAnswers % opts.dropEvery === 0) {
      state.drops++;
      res.write(body.subarray(0, body.length >> 1), () => req.socket.destroy());
      return;
    }
    res.end(body);
  };

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch(() => req.socket.destroy());
  };
  const server = opts.tls ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, listener) : http.createServer(listener);
  server.on('connection', () => state.connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  state.base = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

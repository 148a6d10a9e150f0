/**
 * Serial backends: where a guest UART's bytes go and where its input comes
 * from, named with QEMU's -serial spellings:
 *
 *   stdio (mon:stdio)            the terminal, raw mode, Ctrl-A escapes (stdio.ts)
 *   file:PATH                    output written to PATH (truncated), no input (file.ts)
 *   tcp:HOST:PORT,server[,wait=off|nowait]   listen; one client at a time (tcp.ts)
 *   tcp:HOST:PORT                connect out to HOST:PORT (tcp.ts)
 *   null / none                  output dropped, no input
 *
 * A backend is created stopped, then `open()` makes it ready (a waiting tcp
 * server resolves only when its first client connects, as QEMU's wait=on does).
 * Output written while no peer is connected is dropped. `close()` releases
 * everything the backend holds (raw mode, files, sockets) and is idempotent.
 */

export interface SerialBackend {
  /** Sends guest output to the host side. */
  write(bytes: Uint8Array): void;
  /** Sets the receiver of host input (replaces an earlier one). */
  onInput(handler: (bytes: Uint8Array) => void): void;
  open(): Promise<void>;
  close(): Promise<void>;
}

export type SerialSpec =
  | { kind: 'stdio' }
  | { kind: 'null' }
  | { kind: 'file'; path: string }
  | { kind: 'tcp'; host: string; port: number; server: boolean; wait: boolean };

function parseOnOff(value: string | undefined, option: string, spec: string): boolean {
  if (value === undefined || value === 'on' || value === 'yes' || value === 'true') return true;
  if (value === 'off' || value === 'no' || value === 'false') return false;
  throw new Error(`serial '${spec}': ${option} takes on or off, not '${value}'`);
}

function parseTcp(spec: string, rest: string): SerialSpec {
  const [address, ...options] = rest.split(',');
  const colon = address.lastIndexOf(':');
  const host = colon > 0 ? address.slice(0, colon).replace(/^\[(.*)\]$/, '$1') : '0.0.0.0';
  const portText = address.slice(colon + 1);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new Error(`serial '${spec}': '${portText}' is not a TCP port`);
  let server = false;
  let wait = true;
  for (const option of options) {
    const [name, value] = option.split('=', 2);
    if (name === 'server') server = parseOnOff(value, name, spec);
    else if (name === 'wait') wait = parseOnOff(value, name, spec);
    else if (name === 'nowait') wait = false;
    else if (name !== 'nodelay') throw new Error(`serial '${spec}': unknown option '${name}'`);
  }
  return { kind: 'tcp', host, port, server, wait: server && wait };
}

/** Parses a -serial argument. */
export function parseSerialSpec(spec: string): SerialSpec {
  if (spec === 'stdio' || spec === 'mon:stdio') return { kind: 'stdio' };
  if (spec === 'null' || spec === 'none') return { kind: 'null' };
  if (spec.startsWith('file:') && spec.length > 5) return { kind: 'file', path: spec.slice(5) };
  if (spec.startsWith('tcp:')) return parseTcp(spec, spec.slice(4));
  throw new Error(`serial '${spec}': expected stdio, file:PATH, tcp:HOST:PORT[,server[,wait=off]] or null`);
}

/** The backend that drops output and never has input. */
export class NullSerial implements SerialBackend {
  write(): void {}
  onInput(): void {}
  async open(): Promise<void> {}
  async close(): Promise<void> {}
}

/**
 * Makes the serial backend a -serial argument names (backend.ts lists them).
 * The stdio backend reports C-a x through `onQuit`; a tcp server reports its
 * listening address through `onListening` (the CLI prints it, as QEMU does).
 */
import type net from 'node:net';
import { NullSerial, parseSerialSpec, type SerialBackend } from './backend.js';
import { FileSerial } from './file.js';
import { StdioSerial } from './stdio.js';
import { TcpSerial } from './tcp.js';

export interface SerialHooks {
  onQuit: () => void;
  onListening?: (address: net.AddressInfo) => void;
}

export function createSerialBackend(spec: string, hooks: SerialHooks): SerialBackend {
  const parsed = parseSerialSpec(spec);
  switch (parsed.kind) {
    case 'stdio':
      return new StdioSerial(hooks.onQuit);
    case 'null':
      return new NullSerial();
    case 'file':
      return new FileSerial(parsed.path);
    case 'tcp':
      return new TcpSerial({ ...parsed, onListening: hooks.onListening });
  }
}

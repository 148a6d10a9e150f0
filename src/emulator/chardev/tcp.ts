/**
 * A TCP socket as a serial console.
 *
 * Server (tcp:HOST:PORT,server[,wait=off]): listens on HOST:PORT and serves one
 * client at a time; a second client is refused until the first leaves. With
 * wait=on (QEMU's default for servers) open() resolves only when the first
 * client connects, so no early boot output is lost; with wait=off it resolves
 * once listening. Output while no client is connected is dropped.
 *
 * Client (tcp:HOST:PORT): open() connects and fails with a clear error when
 * the peer is not there; when the peer goes away, output is dropped.
 *
 * Output of one event-loop turn goes out in one write (coalesce.ts). No telnet
 * negotiation, no reconnect for clients. close() closes the client
 * connection and the listener.
 */
import net from 'node:net';
import type { SerialBackend } from './backend.js';
import { OutputCoalescer } from './coalesce.js';

export interface TcpSerialOptions {
  host: string;
  port: number;
  server: boolean;
  wait: boolean;
  /** Told what the server listens on once it does (the port matters when 0 was asked). */
  onListening?: (address: net.AddressInfo) => void;
}

export class TcpSerial implements SerialBackend {
  private inputHandler: (bytes: Uint8Array) => void = () => {};
  private client: net.Socket | null = null;
  private listener: net.Server | null = null;
  private readonly out = new OutputCoalescer((bytes) => {
    if (this.client && !this.client.destroyed) this.client.write(bytes);
  });

  constructor(private readonly options: TcpSerialOptions) {}

  write(bytes: Uint8Array): void {
    if (this.client && !this.client.destroyed) this.out.write(bytes);
  }

  onInput(handler: (bytes: Uint8Array) => void): void {
    this.inputHandler = handler;
  }

  /** The address the server listens on (after open()). */
  address(): net.AddressInfo | null {
    return (this.listener?.address() as net.AddressInfo | null) ?? null;
  }

  private attach(socket: net.Socket): void {
    this.client = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.inputHandler(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (this.client === socket) this.client = null;
    });
  }

  async open(): Promise<void> {
    if (this.options.server) await this.listen();
    else await this.connect();
  }

  private connect(): Promise<void> {
    const { host, port } = this.options;
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.once('error', (err) => reject(new Error(`serial: cannot connect to ${host}:${port}: ${err.message}`)));
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        this.attach(socket);
        resolve();
      });
    });
  }

  private listen(): Promise<void> {
    const { host, port, wait } = this.options;
    return new Promise((resolve, reject) => {
      const listener = net.createServer((socket) => {
        if (this.client) {
          socket.destroy();
          return;
        }
        this.attach(socket);
        if (wait) resolve();
      });
      this.listener = listener;
      listener.once('error', (err) => reject(new Error(`serial: cannot listen on ${host}:${port}: ${err.message}`)));
      listener.listen({ host, port }, () => {
        const address = listener.address() as net.AddressInfo;
        this.options.onListening?.(address);
        if (!wait) resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.out.flush();
    const client = this.client;
    this.client = null;
    if (client && !client.destroyed) await new Promise<void>((resolve) => client.end(() => resolve()));
    client?.destroy();
    const listener = this.listener;
    this.listener = null;
    if (listener) await new Promise<void>((resolve) => listener.close(() => resolve()));
  }
}

/**
 * Live copies of the audit log for a SIEM to follow: a JSON-lines file, and syslog (RFC 5424) over
 * UDP or TCP (RFC 6587 octet counting). Each record is sent once it is committed to the store,
 * as the same JSON object that `drawbridge audit export` writes, hashes included.
 *
 * Guarantees: a sink never holds up the gateway nor loses a record from the store (the store is
 * the log; sinks are copies): a sink that cannot keep up or whose peer is away keeps at most
 * MAX_QUEUED records, drops the oldest beyond that and says how many it dropped; a TCP sink
 * reconnects (after 1 s, then up to 30 s between tries) and sends what it kept.
 *
 * Known limits: UDP may lose datagrams on the way, and a syslog server may cut long ones; a
 * record dropped from a sink is still in the store and in every export.
 */

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createWriteStream, type WriteStream } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { AuditRecord } from '../store/index.ts';

export interface AuditSink {
  send(records: readonly AuditRecord[]): void;
  close(): Promise<void>;
}

export type SinkConfig =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'syslog'; readonly transport: 'udp' | 'tcp'; readonly host: string; readonly port: number; readonly facility: number };

/** Records kept for a sink whose peer is away, at most. */
export const MAX_QUEUED = 10_000;

/** The record as one JSON line: what `audit export` writes. */
export function exportLine(r: AuditRecord): string {
  return JSON.stringify({
    seq: r.seq,
    time: new Date(r.at).toISOString(),
    at: r.at,
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    outcome: r.outcome,
    details: r.details,
    prev_hash: r.prevHash,
    hash: r.hash,
  });
}

const SEVERITY = { success: 6, failure: 4 } as const; // informational, warning

/** RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG (MSG: the export line, in UTF-8 with a BOM). */
export function syslogMessage(r: AuditRecord, facility: number, host = hostname()): string {
  const printable = (text: string, max: number) => text.replace(/[^\x21-\x7e]/g, '_').slice(0, max) || '-';
  const pri = facility * 8 + SEVERITY[r.outcome];
  return `<${pri}>1 ${new Date(r.at).toISOString()} ${printable(host, 255)} drawbridge ${process.pid} ${printable(r.action, 32)} - \uFEFF${exportLine(r)}`;
}

export function openSink(config: SinkConfig, log?: Logger): AuditSink {
  if (config.kind === 'file') return new FileSink(config.path);
  return config.transport === 'udp' ? new UdpSink(config, log) : new TcpSink(config, log);
}

class FileSink implements AuditSink {
  readonly #out: WriteStream;
  constructor(path: string) {
    this.#out = createWriteStream(path, { flags: 'a', mode: 0o600 });
  }
  send(records: readonly AuditRecord[]): void {
    this.#out.write(records.map((r) => `${exportLine(r)}\n`).join(''));
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.#out.end(resolve));
  }
}

type Syslog = Extract<SinkConfig, { kind: 'syslog' }>;

class UdpSink implements AuditSink {
  readonly #config: Syslog;
  readonly #socket: UdpSocket;
  constructor(config: Syslog, log?: Logger) {
    this.#config = config;
    this.#socket = createSocket(config.host.includes(':') ? 'udp6' : 'udp4');
    this.#socket.on('error', (error) => log?.warn({ err: error }, 'audit syslog sink (udp)'));
    this.#socket.unref();
  }
  send(records: readonly AuditRecord[]): void {
    for (const r of records) this.#socket.send(syslogMessage(r, this.#config.facility), this.#config.port, this.#config.host);
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}

class TcpSink implements AuditSink {
  readonly #config: Syslog;
  readonly #log: Logger | undefined;
  #socket: Socket | undefined;
  #connected = false;
  #queue: string[] = [];
  #dropped = 0;
  #retryMs = 1000;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(config: Syslog, log?: Logger) {
    this.#config = config;
    this.#log = log;
    this.#connect();
  }

  send(records: readonly AuditRecord[]): void {
    for (const r of records) {
      const message = Buffer.from(syslogMessage(r, this.#config.facility));
      // RFC 6587 octet counting: the length in bytes, a space, the message.
      this.#queue.push(`${message.length} ${message.toString()}`);
    }
    if (this.#queue.length > MAX_QUEUED) {
      this.#dropped += this.#queue.length - MAX_QUEUED;
      this.#queue.splice(0, this.#queue.length - MAX_QUEUED);
    }
    this.#flush();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    const socket = this.#socket;
    if (!socket) return;
    await new Promise<void>((resolve) => socket.end(resolve));
    socket.destroy();
  }

  #connect(): void {
    const socket = connect({ host: this.#config.host, port: this.#config.port });
    this.#socket = socket;
    socket.unref();
    socket.on('connect', () => {
      this.#connected = true;
      this.#retryMs = 1000;
      this.#flush();
    });
    socket.on('error', (error) => this.#log?.warn({ err: error }, 'audit syslog sink (tcp)'));
    socket.on('close', () => {
      this.#connected = false;
      if (this.#closed) return;
      this.#retry = setTimeout(() => this.#connect(), this.#retryMs);
      this.#retry.unref();
      this.#retryMs = Math.min(30_000, this.#retryMs * 2);
    });
  }

  #flush(): void {
    if (!this.#connected || this.#queue.length === 0) return;
    if (this.#dropped > 0) {
      this.#log?.warn(
        { dropped: this.#dropped },
        'audit syslog sink (tcp): records dropped while the peer was away (they are in the store)',
      );
      this.#dropped = 0;
    }
    this.#socket!.write(this.#queue.join(''));
    this.#queue = [];
  }
}

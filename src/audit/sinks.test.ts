import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { AuditRecord } from '../store/index.ts';
import { exportLine, openSink, syslogMessage } from './sinks.ts';

const record = (seq: number, outcome: 'success' | 'failure' = 'success'): AuditRecord => ({
  seq,
  at: Date.UTC(2026, 11, 4, 16, 2, 11, 187),
  actor: 'alice',
  action: 'grant.issued',
  subject: `grt_${seq}`,
  outcome,
  details: { connection: 'orders', note: 'caf\u00e9' },
  prevHash: '0'.repeat(64),
  hash: 'a'.repeat(64),
});

/** `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - BOM MSG` */
const RFC5424 = /^<(\d+)>1 (\S+) (\S+) drawbridge (\d+) (\S+) - \uFEFF(.*)$/s;

describe('syslog messages (RFC 5424)', () => {
  it('carries the facility and a severity by outcome, the time, the action as MSGID, and the export line', () => {
    const m = RFC5424.exec(syslogMessage(record(1), 10, 'gw-1'))!;
    assert.ok(m);
    assert.equal(Number(m[1]), 10 * 8 + 6);
    assert.equal(m[2], '2026-12-04T16:02:11.187Z');
    assert.equal(m[3], 'gw-1');
    assert.equal(m[5], 'grant.issued');
    assert.deepEqual(JSON.parse(m[6]!), JSON.parse(exportLine(record(1))));
    assert.equal(Number(RFC5424.exec(syslogMessage(record(2, 'failure'), 4, 'gw'))![1]), 4 * 8 + 4);
    assert.match(syslogMessage(record(3), 4, 'a host with spaces'), /^<38>1 \S+ a_host_with_spaces /);
  });
});

describe('sinks', () => {
  it('file: JSON lines appended', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drawbridge-sink-'));
    try {
      const path = join(dir, 'audit.jsonl');
      const sink = openSink({ kind: 'file', path });
      sink.send([record(1), record(2)]);
      sink.send([record(3)]);
      await sink.close();
      const lines = (await readFile(path, 'utf8')).trim().split('\n');
      assert.deepEqual(
        lines.map((l) => JSON.parse(l).seq),
        [1, 2, 3],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('syslog over UDP: one datagram a record', async () => {
    const server = createSocket('udp4');
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    const got: string[] = [];
    const arrived = new Promise<void>((resolve) =>
      server.on('message', (m) => {
        got.push(m.toString('utf8'));
        if (got.length === 2) resolve();
      }),
    );
    const sink = openSink({
      kind: 'syslog',
      transport: 'udp',
      host: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      facility: 10,
    });
    sink.send([record(1), record(2)]);
    await arrived;
    await sink.close();
    server.close();
    assert.deepEqual(
      got.map((m) => JSON.parse(RFC5424.exec(m)![6]!).seq),
      [1, 2],
    );
  });

  it('syslog over TCP: octet-counted frames, kept while the server is away and sent once it listens', async () => {
    // A port nobody listens on yet: the sink keeps what it is given and retries.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const sink = openSink({ kind: 'syslog', transport: 'tcp', host: '127.0.0.1', port, facility: 4 });
    sink.send([record(1), record(2)]);

    let received = Buffer.alloc(0);
    const server: Server = createServer((socket) => socket.on('data', (d) => (received = Buffer.concat([received, d]))));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    sink.send([record(3)]);
    for (const deadline = Date.now() + 5000; Date.now() < deadline && frames(received).length < 3;)
      await new Promise((r) => setTimeout(r, 50));
    await sink.close();
    await new Promise((resolve) => server.close(resolve));
    assert.deepEqual(
      frames(received).map((m) => JSON.parse(RFC5424.exec(m)![6]!).seq),
      [1, 2, 3],
    );
  });
});

/** RFC 6587 octet counting: `LENGTH SP MESSAGE`, the length in bytes. */
function frames(stream: Buffer): string[] {
  const out: string[] = [];
  for (let at = 0; at < stream.length;) {
    const space = stream.indexOf(0x20, at);
    if (space < 0) break;
    const length = Number(stream.toString('latin1', at, space));
    if (space + 1 + length > stream.length) break;
    out.push(stream.toString('utf8', space + 1, space + 1 + length));
    at = space + 1 + length;
  }
  return out;
}

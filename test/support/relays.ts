/**
 * TCP hops for tests that need to see or shape what crosses a connection: a tap that keeps
 * every byte one side sends, and a slicer that passes a side's bytes on a few at a time, so that
 * messages arrive split at every point.
 */

import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface Relay {
  readonly port: number;
  close(): void;
}

/**
 * Listens on a free loopback port and joins each connection to 127.0.0.1:`target`;
 * `fromTarget` passes on (or keeps) what the target sends.
 */
async function relay(target: number, fromTarget: (chunk: Buffer, client: Socket, upstream: Socket) => void): Promise<Relay & { server: Server }> {
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: target });
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => fromTarget(chunk, client, upstream));
    const end = () => (client.destroy(), upstream.destroy());
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, close: () => server.close() };
}

/** Keeps every byte the target sends its clients; `take()` returns (and forgets) them as Latin-1 text. */
export async function tap(target: number): Promise<Relay & { take(): string }> {
  let received: Buffer[] = [];
  const r = await relay(target, (chunk, client) => {
    received.push(chunk);
    client.write(chunk);
  });
  return {
    port: r.port,
    close: r.close,
    take() {
      const text = Buffer.concat(received).toString('latin1');
      received = [];
      return text;
    },
  };
}

/** Passes the target's bytes on `size` at a time, each piece in a write of its own. */
export function slicer(target: number, size = 3): Promise<Relay> {
  return relay(target, (chunk, client, upstream) => {
    upstream.pause();
    let at = 0;
    const next = (): void => {
      if (at >= chunk.length || client.destroyed) {
        upstream.resume();
        return;
      }
      client.write(chunk.subarray(at, (at += size)));
      setImmediate(next);
    };
    next();
  });
}

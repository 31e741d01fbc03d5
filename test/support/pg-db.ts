/**
 * Throwaway databases on the machine's PostgreSQL (127.0.0.1:5432, trust auth, superuser
 * postgres) for PostgreSQL integration tests, and small helpers those tests share: a client
 * logged in through the gateway, polling the recorder's store, raw cancel requests.
 *
 * Each database is named `drawbridge_<purpose>_<random hex>` and dropped WITH (FORCE), so a
 * test that leaves sessions open still cleans up.
 */

import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import pg from 'pg';
import type { MintAs, TestGateway } from './gateway.ts';

export const ADMIN = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' } as const;

/** Runs `fn` with a superuser client on `database` (default `postgres`), then ends it. */
export async function asAdmin<T>(fn: (client: pg.Client) => Promise<T>, database: string = ADMIN.database): Promise<T> {
  const client = new pg.Client({ ...ADMIN, database });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export interface ThrowawayDatabase {
  readonly name: string;
  drop(): Promise<void>;
}

export async function createDatabase(purpose: string): Promise<ThrowawayDatabase> {
  const name = `drawbridge_${purpose}_${randomBytes(4).toString('hex')}`;
  await asAdmin((client) => client.query(`CREATE DATABASE ${name}`));
  let dropped: Promise<void> | undefined;
  return {
    name,
    drop() {
      dropped ??= asAdmin(async (client) => {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      });
      return dropped;
    },
  };
}

/** A `pg` client logged in through the gateway as `principal` on `connection` with a freshly minted credential. */
export async function gatewayClient(
  gw: TestGateway,
  connection: string,
  principal = 'alice',
  extra: Partial<pg.ClientConfig> = {},
  who: MintAs = {},
): Promise<pg.Client> {
  const client = new pg.Client({
    host: gw.host,
    port: gw.pgPort,
    user: principal,
    database: connection,
    password: await gw.mint(principal, connection, undefined, who),
    ...extra,
  });
  await client.connect();
  return client;
}

/** Retries `probe` until it returns a value for which `done` holds, or fails after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 3_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Sends a CancelRequest (16 bytes) to host:port and waits until the server closes the socket. */
export function sendCancel(host: string, port: number, processId: number, secretKey: number | Buffer): Promise<void> {
  const message = Buffer.alloc(16);
  message.writeInt32BE(16, 0);
  message.writeInt32BE(80877102, 4);
  message.writeInt32BE(processId, 8);
  if (typeof secretKey === 'number') message.writeInt32BE(secretKey | 0, 12);
  else secretKey.copy(message, 12, 0, 4);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port }, () => socket.write(message));
    socket.on('error', reject);
    socket.on('data', () => {});
    socket.on('close', () => resolve());
    socket.setTimeout(5_000, () => socket.destroy(new Error('cancel request: server did not close the socket')));
  });
}

/** The SQLSTATE of a pg error, or undefined. */
export function sqlstate(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}

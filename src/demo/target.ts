/**
 * The embedded demo PostgreSQL target behind `npm start`: PGlite (PostgreSQL compiled to
 * WebAssembly, in this process) served on 127.0.0.1 over the PostgreSQL wire protocol, and
 * seeded with fictional PII (see seed.ts).
 *
 * Guarantees: listens on loopback only; seeds once (a persistent `dataDir` that already
 * has the tables is left alone); `close()` stops the listener and the database.
 *
 * Known limits: PGlite is a single PostgreSQL backend shared by all clients; see
 * pglite-server.ts for what that means (clients take turns per transaction, shared
 * session state, no TLS, no cancel, no COPY FROM STDIN, trust login as `postgres`).
 * PGlite's first start in a process takes a few seconds (WebAssembly compile).
 * Integration tests that need real PostgreSQL semantics use the machine's PostgreSQL or
 * test/support/private-postgres.ts.
 */
import { PGlite } from '@electric-sql/pglite';
import { servePGlite } from './pglite-server.ts';
import { seedSql, type SeedOptions } from './seed.ts';

export interface DemoTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  close(): Promise<void>;
}

export interface DemoTargetOptions {
  /** Persistent PGlite data directory; default in-memory. */
  dataDir?: string;
  /** TCP port on 127.0.0.1; default 0 (any free port). */
  port?: number;
  /** Concurrent client connections accepted; default 16. */
  maxConnections?: number;
  /** Sizes of the seed data (first start only). */
  seed?: SeedOptions;
}

export async function startDemoTarget(options: DemoTargetOptions = {}): Promise<DemoTarget> {
  const db = await PGlite.create(options.dataDir === undefined ? {} : { dataDir: options.dataDir });
  try {
    const existing = await db.query<{ seeded: boolean }>("SELECT to_regclass('public.customers') IS NOT NULL AS seeded");
    if (existing.rows[0]?.seeded !== true) {
      await db.exec(`BEGIN;\n${seedSql(options.seed)}\nCOMMIT;`);
    }

    const server = await servePGlite(db, {
      host: '127.0.0.1',
      port: options.port ?? 0,
      maxConnections: options.maxConnections ?? 16,
    });

    let closed: Promise<void> | undefined;
    return {
      host: server.host,
      port: server.port,
      database: 'postgres',
      user: 'postgres',
      close() {
        closed ??= (async () => {
          await server.close();
          await db.close();
        })();
        return closed;
      },
    };
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}

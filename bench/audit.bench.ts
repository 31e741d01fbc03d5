/**
 * How fast the tamper-evident audit log takes records, in-process, against both store backends
 * (SQLite in a temporary folder, a throwaway PostgreSQL database on 127.0.0.1:5432):
 * - one at a time: each append awaited before the next, so each is its own transaction (what a
 *   lone administrative command costs);
 * - many writers at once: APPENDS appends issued together, which the log commits together in
 *   transactions of what arrived in one turn of the event loop (what a busy gateway's data path
 *   gets);
 * and `audit verify` over the records written: records per second; then again once the log holds
 * LARGE_LOG records, which shows whether reading it page by page stays linear in its length, in
 * one pass and in parts side by side (one a core, at most VERIFY_THREADS, as the command does).
 *
 * Every figure counts only appends whose transaction committed (each chained to the one before);
 * the bench verifies the chain it wrote and fails if it does not hold. Durable means committed by
 * the store: SQLite in WAL mode with synchronous=NORMAL (a process crash loses nothing committed,
 * a power cut may lose the last commits), PostgreSQL as configured (fsync on by default).
 *
 * Run alone: node_modules/.bin/node bench/audit.bench.ts [--json]; `npm run bench` runs it too.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { StoreAuditLog } from '../src/audit/audit-log.ts';
import { verifyAuditLog, type VerifyOptions } from '../src/audit/verify.ts';
import { systemClock } from '../src/core/index.ts';
import { openStore, type Store } from '../src/store/index.ts';

const SEQUENTIAL = 2_000;
const APPENDS = 20_000;
/** The length of the log verified the second time, appended APPENDS at a time. */
const LARGE_LOG = 1_000_000;
/** The most parts the large log is verified in: as `drawbridge audit verify` splits it. */
const VERIFY_THREADS = Math.min(availableParallelism(), 8);
const ADMIN = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' };

export interface AuditBackendFigures {
  readonly store: 'sqlite' | 'postgres';
  /** Appends per second, each awaited before the next. */
  readonly sequentialPerSecond: number;
  /** Appends per second, APPENDS issued at once. */
  readonly concurrentPerSecond: number;
  /** Records per second through verifyAuditLog. */
  readonly verifyPerSecond: number;
  readonly records: number;
  /** Records per second through verifyAuditLog over a log of LARGE_LOG records. */
  readonly verifyLargePerSecond: number;
  /** The same, in VERIFY_THREADS parts side by side. */
  readonly verifyLargePartsPerSecond: number;
}

export interface AuditFigures {
  readonly sequential: number;
  readonly concurrent: number;
  readonly largeLog: number;
  /** The parts of `verifyLargePartsPerSecond`. */
  readonly verifyThreads: number;
  readonly backends: readonly AuditBackendFigures[];
}

const event = (i: number) => ({
  actor: `user${i % 50}`,
  action: 'command.denied' as const,
  subject: `ses_${i % 200}`,
  outcome: 'failure' as const,
  details: { policy: 'no-destructive-ddl', statement: 'DROP TABLE orders', connection: 'orders' },
});

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

async function measure(name: 'sqlite' | 'postgres', store: Store, url: string): Promise<AuditBackendFigures> {
  const audit = new StoreAuditLog(store, systemClock);
  let start = process.hrtime.bigint();
  for (let i = 0; i < SEQUENTIAL; i++) await audit.append(event(i));
  const sequentialPerSecond = SEQUENTIAL / seconds(start);
  start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: APPENDS }, (_, i) => audit.append(event(i))));
  const concurrentPerSecond = APPENDS / seconds(start);
  const verifyPerSecond = await verifyRate(name, store, SEQUENTIAL + APPENDS);
  for (let n = SEQUENTIAL + APPENDS; n < LARGE_LOG; n += APPENDS) {
    await Promise.all(Array.from({ length: Math.min(APPENDS, LARGE_LOG - n) }, (_, i) => audit.append(event(n + i))));
  }
  const verifyLargePerSecond = await verifyRate(name, store, LARGE_LOG);
  const verifyLargePartsPerSecond = await verifyRate(name, store, LARGE_LOG, { threads: VERIFY_THREADS, url });
  return {
    store: name,
    sequentialPerSecond,
    concurrentPerSecond,
    verifyPerSecond,
    records: SEQUENTIAL + APPENDS,
    verifyLargePerSecond,
    verifyLargePartsPerSecond,
  };
}

/** Records per second through verifyAuditLog; throws unless the log verifies with `records` records. */
async function verifyRate(name: string, store: Store, records: number, options?: VerifyOptions): Promise<number> {
  const start = process.hrtime.bigint();
  const report = await verifyAuditLog(store, new Map(), options);
  const perSecond = report.records / seconds(start);
  if (!report.ok || report.records !== records) {
    throw new Error(
      `audit bench (${name}): the chain written does not verify: ${JSON.stringify(report.problem)} after ${report.records} records`,
    );
  }
  return perSecond;
}

export async function measureAudit(): Promise<AuditFigures> {
  const backends: AuditBackendFigures[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-audit-bench-'));
  try {
    const url = `sqlite:${join(dir, 'state.db')}`;
    const store = await openStore(url);
    try {
      backends.push(await measure('sqlite', store, url));
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const db = `drawbridge_audit_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client(ADMIN);
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${db}`);
    const url = `postgres://${ADMIN.user}@${ADMIN.host}:${ADMIN.port}/${db}`;
    const store = await openStore(url);
    try {
      backends.push(await measure('postgres', store, url));
    } finally {
      await store.close();
    }
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.end();
  }
  return { sequential: SEQUENTIAL, concurrent: APPENDS, largeLog: LARGE_LOG, verifyThreads: VERIFY_THREADS, backends };
}

export function auditTable(f: AuditFigures): string {
  const rate = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0));
  return [
    `${'audit log, appends/s'.padEnd(24)}${'one at a time'.padEnd(16)}${'many at once'.padEnd(16)}${'verify, records/s'.padEnd(20)}${`verify at ${rate(f.largeLog)}, records/s`.padEnd(28)}in ${f.verifyThreads} parts`,
    ...f.backends.map(
      (b) =>
        `${b.store.padEnd(24)}${rate(b.sequentialPerSecond).padEnd(16)}${rate(b.concurrentPerSecond).padEnd(16)}${rate(b.verifyPerSecond).padEnd(20)}${rate(b.verifyLargePerSecond).padEnd(28)}${rate(b.verifyLargePartsPerSecond)}`,
    ),
    '',
    `one at a time: ${f.sequential} appends, each awaited (its own transaction); many at once: ${f.concurrent} appends issued together`,
    '(committed together, per turn of the event loop); every record chained and the chain verified afterwards,',
    `at ${f.sequential + f.concurrent} records and again once the log holds ${f.largeLog}, in one pass and in ${f.verifyThreads} parts side by side.`,
  ].join('\n');
}

if (import.meta.main) {
  const figures = await measureAudit();
  process.stdout.write(process.argv.includes('--json') ? `${JSON.stringify(figures, null, 2)}\n` : `${auditTable(figures)}\n`);
}

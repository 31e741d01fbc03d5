/**
 * What a statement's records cost the gateway in CPU, in-process, without sockets or a target:
 * statements go through a `LiveSession` as the PostgreSQL proxy drives one (begin, the result's
 * columns and a row for the sample, finish), with the gateway's default masking, into a SQLite
 * store with its writer thread, as `drawbridge start` sets them up; four ways: recording and the
 * statements' audit records both off (a gateway with `recording: enabled: false` and
 * `audit: statements: refused`), the recording only, the audit records only, and both (the
 * default, `acknowledge: at-once`).
 *
 * Each way runs WARMUP statements, then STATEMENTS timed ones, eight every millisecond at most (a
 * timer between them): about as many a second as a gateway gets under pgbench on a small machine,
 * so that the audit log's 5 ms commits hold about as many records as there. The timers cost the
 * gateway's thread the same in every way: `more than neither` leaves them out. CPU per statement is read per thread from Linux's
 * /proc: the gateway's own thread, the store's writer thread, and the rest of the process (V8's
 * collector and the thread pool). The figures compare builds on one machine; the pgbench parts of
 * bench/pg.bench.ts say what a client sees.
 *
 * Run alone: node_modules/.bin/node bench/records.bench.ts [--json]; `npm run bench` runs it with
 * the `audit` part (bench/pg.bench.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { StoreAuditLog } from '../src/audit/audit-log.ts';
import { DEFAULT_ACCESS_POLICY, systemClock, verifiedGrant, verifiedPrincipal, type PostgresConnection } from '../src/core/index.ts';
import { compileColumnRules, planMasking } from '../src/policy/masking/columns.ts';
import { columnNames, rowValues } from '../src/protocols/pg/commands.ts';
import { compileMasking } from '../src/policy/masking/strategies.ts';
import { NoRecorder, StoreRecorder } from '../src/recording/recorder.ts';
import { allowAllGuard, Pipeline, type SessionMasking } from '../src/session/pipeline.ts';
import { openStore } from '../src/store/index.ts';
import { encodeBackend } from '../src/wire/pg/encode.ts';

const WARMUP = 10_000;
const STATEMENTS = 60_000;
/** Statements per turn of the event loop, a turn every millisecond at most. */
const PER_TURN = 8;

export type RecordsWay = 'neither' | 'recording' | 'audit' | 'both';

export interface RecordsWayFigures {
  readonly way: RecordsWay;
  /** CPU microseconds per statement. */
  readonly gatewayThread: number;
  readonly writerThread: number;
  readonly otherThreads: number;
  readonly total: number;
}

export interface RecordsFigures {
  readonly statements: number;
  readonly ways: readonly RecordsWayFigures[];
}

const connection: PostgresConnection = {
  name: 'bench',
  type: 'postgres',
  host: '127.0.0.1',
  port: 5432,
  database: 'bench',
  user: 'bench',
  password: undefined,
  tls: 'disable',
  ca: undefined,
  access: DEFAULT_ACCESS_POLICY,
};

/** The gateway's default masking (`masking:` with no other setting). */
function defaultMasking(): SessionMasking {
  const plan = compileMasking({});
  return planMasking(plan, compileColumnRules([], plan))(connection.name);
}

/** What pgbench -S reads: a RowDescription body of one int4 column, abalance, and a DataRow body of it, "0". */
const ROW_DESCRIPTION = encodeBackend({
  type: 'RowDescription',
  fields: [{ name: 'abalance', tableOid: 16_400, columnAttr: 3, typeOid: 23, typeSize: 4, typeModifier: -1, format: 0 }],
}).subarray(5);
const ROW = encodeBackend({ type: 'DataRow', values: [Buffer.from('0')] }).subarray(5);

/** The ids of this process's worker threads (Linux: /proc). */
function workerThreads(): Set<string> {
  return new Set(
    readdirSync('/proc/self/task').filter((tid) => readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'WorkerThread'),
  );
}

/** CPU seconds of thread `tid` of this process so far. */
function threadSeconds(tid: string): number {
  // utime and stime: the 14th and 15th fields, after the command name in parentheses.
  const fields = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ
}

async function measureWay(way: RecordsWay, dir: string): Promise<RecordsWayFigures> {
  const before = workerThreads();
  const store = await openStore(`sqlite:${join(dir, `${way}.db`)}`, { writerThread: true });
  const log = pino({ level: 'warn' });
  const audit = new StoreAuditLog(store, systemClock, log);
  const recorder = way === 'recording' || way === 'both' ? new StoreRecorder(store, log) : new NoRecorder();
  const masking = defaultMasking();
  const pipeline = new Pipeline({
    guard: allowAllGuard,
    recorder,
    clock: systemClock,
    audit,
    masking: () => masking,
    auditStatements: way === 'audit' || way === 'both' ? 'all' : 'refused',
    acknowledgeAfterCommit: false,
  });
  const grant = verifiedGrant({
    id: 'grt_bench',
    principal: verifiedPrincipal('bench', 'user'),
    groups: [],
    connection: connection.name,
    expiresAt: Date.now() + 3_600_000,
  });
  const session = await pipeline.open({ protocol: 'postgres', grant, connection, clientAddress: '127.0.0.1:5000' });
  const run = async (from: number, count: number) => {
    for (let i = from; i < from + count; i++) {
      const trace = session.begin(`SELECT abalance FROM pgbench_accounts WHERE aid = ${(i * 7919) % 1_000_000};`);
      // As the PostgreSQL proxy hands them over (protocols/pg/proxy.ts `#sample`).
      if (trace.result !== undefined) trace.result.columns(columnNames(ROW_DESCRIPTION)!);
      trace.result?.row(ROW, rowValues);
      trace.rows = 1;
      trace.finish({ outcome: 'ok', rows: 1 });
      if (i % PER_TURN === PER_TURN - 1) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await audit.flush();
    await recorder.flush();
  };
  try {
    await run(0, WARMUP);
    // The store's writer: the worker thread that opening it started (named by now).
    const writerTid = [...workerThreads()].find((tid) => !before.has(tid));
    if (writerTid === undefined) throw new Error('records bench: the store started no writer thread');
    const [gateway0, writer0, process0] = [process.threadCpuUsage(), threadSeconds(writerTid), process.cpuUsage()];
    await run(WARMUP, STATEMENTS);
    const gateway = process.threadCpuUsage(gateway0);
    const writer = threadSeconds(writerTid) - writer0;
    const all = process.cpuUsage(process0);
    const perStatement = (seconds: number) => (seconds * 1e6) / STATEMENTS;
    const gatewayThread = perStatement((gateway.user + gateway.system) / 1e6);
    const total = perStatement((all.user + all.system) / 1e6);
    const writerThread = perStatement(writer);
    return { way, gatewayThread, writerThread, otherThreads: Math.max(0, total - gatewayThread - writerThread), total };
  } finally {
    session.close('bench over');
    await audit.close();
    await recorder.close();
    await store.close();
  }
}

export async function measureRecords(): Promise<RecordsFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-records-bench-'));
  try {
    const ways: RecordsWayFigures[] = [];
    for (const way of ['neither', 'recording', 'audit', 'both'] as const) ways.push(await measureWay(way, dir));
    return { statements: STATEMENTS, ways };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function recordsTable(f: RecordsFigures): string {
  const neither = f.ways.find((w) => w.way === 'neither');
  const us = (n: number) => `${n.toFixed(2)} µs`.padEnd(16);
  return [
    `${"a statement's records, CPU".padEnd(28)}${'gateway thread'.padEnd(16)}${'writer thread'.padEnd(16)}${'other threads'.padEnd(16)}${'all'.padEnd(16)}more than neither`,
    ...f.ways.map(
      (w) =>
        `${w.way.padEnd(28)}${us(w.gatewayThread)}${us(w.writerThread)}${us(w.otherThreads)}${us(w.total)}${neither ? `${(w.total - neither.total).toFixed(2)} µs` : ''}`,
    ),
    '',
    `per statement, ${f.statements} statements through a session (default masking, SQLite store with its writer thread, at-once),`,
    `${PER_TURN} every millisecond at most; recording: sessions and statements recorded; audit: every statement an audit record.`,
  ].join('\n');
}

if (import.meta.main) {
  const figures = await measureRecords();
  process.stdout.write(process.argv.includes('--json') ? `${JSON.stringify(figures, null, 2)}\n` : `${recordsTable(figures)}\n`);
}

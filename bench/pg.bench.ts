/**
 * PostgreSQL through the gateway vs direct, in one run, on this machine.
 *
 * Measures, for the same work against 127.0.0.1:5432 directly, through a bare TCP relay (a
 * child process that copies bytes and does nothing else: the floor any proxy hop costs on
 * this machine) and through a gateway that this script starts as a child process:
 *  - pgbench select-only (-S), simple and extended query protocol, 1 and 8 clients:
 *    transactions per second and average latency;
 *  - a streaming read of 2,000,000 rows of about 100 bytes with psql (a cursor-backed
 *    SELECT with FETCH_COUNT=10000, and COPY … TO STDOUT): rows per second, and the
 *    gateway process's peak resident memory while it streams.
 * And what the guardrails cost:
 *  - pgbench select-only and TPC-B (simple protocol, 1 and 8 clients) directly, through a
 *    gateway with `policy: enabled: false` and through the gateway as configured by default
 *    (the default policy pack on): TPS, and guardrails on over guardrails off;
 *  - in-process, microseconds per statement to classify and decide (bench/policy.bench.ts).
 * And what inline masking costs:
 *  - a streaming read of BENCH_ROWS rows with PII and non-PII columns (psql with FETCH_COUNT,
 *    and COPY … TO STDOUT) directly, through a gateway with `masking: enabled: false` and
 *    through the gateway as configured by default (masking on): rows per second, masking on
 *    over masking off, and each gateway's peak RSS while it streams;
 *  - in-process, values per second through the detectors (bench/masking.bench.ts).
 * And what the tamper-evident audit log takes: appends per second, one at a time and many at
 * once, against SQLite and PostgreSQL, and records per second through its verification
 * (bench/audit.bench.ts, in-process); and pgbench through a gateway that records sessions
 * and audits every statement (the default) against one with `recording: enabled: false` and
 * `audit: statements: refused`, and the default against `audit: acknowledge: after-commit`.
 * And what an agent's MCP `query` call costs (bench/mcp.bench.ts): a point SELECT and a 100-row
 * SELECT from node-postgres directly, through the gateway's PostgreSQL listener, and as the
 * `query` tool over streamable HTTP at `/mcp` with a service account's key, 1 and 8 callers:
 * calls per second and latency mean, p50 and p99.
 *
 * Needs: pgbench and psql, PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres`
 * (it creates and drops the database `drawbridge_bench`), and the gateway's CLI
 * (bin/drawbridge.js start / grant / service-accounts create). See docs/benchmarks.md.
 *
 * Usage: npm run bench [-- --json]
 * env: BENCH_SECONDS (default 10), BENCH_ROWS (default 2000000),
 *      BENCH_ROUNDS (default 1: how often each pgbench on/off comparison runs; the round with the median on/off is printed, with every round's on/off),
 *      BENCH_PARTS (default proxy,stream,guardrails,policy,masking,audit,recording,durable,mcp: which parts to run)
 *
 * Limits: client, gateway and server share one machine (2 cores on CI machines), so the
 * ratio includes the gateway competing with pgbench and PostgreSQL for CPU. The figures are
 * for comparing builds on one machine, not a capacity plan.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuditFigures } from './audit.bench.ts';
import type { MaskingFigures } from './masking.bench.ts';
import type { RecordsFigures } from './records.bench.ts';
import type { McpRow } from './mcp.bench.ts';
import type { PolicyFigures } from './policy.bench.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const NODE = existsSync(join(REPO, 'node_modules/.bin/node')) ? join(REPO, 'node_modules/.bin/node') : process.execPath;
const CLI = join(REPO, 'bin/drawbridge.js');

const SECONDS = positiveInt('BENCH_SECONDS', 10);
const ROWS = positiveInt('BENCH_ROWS', 2_000_000);
const ROUNDS = positiveInt('BENCH_ROUNDS', 1);
const SCALE = 10;
const DB = 'drawbridge_bench';
const PG = { host: '127.0.0.1', port: 5432, user: 'postgres' };
const JSON_OUTPUT = process.argv.includes('--json');

class BenchError extends Error {}

const PARTS = ['proxy', 'stream', 'guardrails', 'policy', 'masking', 'audit', 'recording', 'durable', 'mcp'] as const;
type Part = (typeof PARTS)[number];

interface Endpoint {
  readonly label: 'direct' | 'relay' | GatewayLabel;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly env: NodeJS.ProcessEnv;
}

interface PgbenchFigures {
  readonly tps: number;
  readonly latencyMs: number;
}

interface StreamFigures {
  readonly rows: number;
  readonly seconds: number;
  readonly rowsPerSecond: number;
}

interface Row {
  readonly workload: string;
  readonly kind: 'pgbench' | 'stream';
  readonly direct: PgbenchFigures | StreamFigures;
  readonly relay: PgbenchFigures | StreamFigures;
  readonly gateway: PgbenchFigures | StreamFigures;
  /** gateway / direct, throughput. */
  readonly ratio: number;
  /** bare relay / direct, throughput. */
  readonly relayRatio: number;
  readonly gatewayPeakRssBytes?: number;
}

/** The same workload directly and through two gateways that differ in one setting, off and on. */
interface OnOffRow<F extends PgbenchFigures | StreamFigures> {
  readonly workload: string;
  readonly direct: F;
  readonly off: F;
  readonly on: F;
  /** on / off, throughput (TPS or rows/s). */
  readonly onOffRatio: number;
  /** on / direct, throughput. */
  readonly onDirectRatio: number;
  /** on / off of every round, in the order run, when the comparison ran more than once (BENCH_ROUNDS); the row is the median round's. */
  readonly roundRatios?: readonly number[];
  /** Peak RSS of each gateway process during its run. */
  readonly offPeakRssBytes: number;
  readonly onPeakRssBytes: number;
  /** RSS of each gateway process when its run began. */
  readonly offStartRssBytes: number;
  readonly onStartRssBytes: number;
  /** CPU time (user and system) each gateway process spent during its run. */
  readonly offCpuSeconds: number;
  readonly onCpuSeconds: number;
}

/** pgbench directly and through gateways with the guardrails off and on. */
type GuardrailRow = OnOffRow<PgbenchFigures>;
/** A streaming read of rows with PII directly and through gateways with masking off and on. */
type MaskingRow = OnOffRow<StreamFigures>;

type Script = 'select-only' | 'tpcb';

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new BenchError(`${name} must be a positive integer, got '${raw}'`);
  return n;
}

function selectedParts(): ReadonlySet<Part> {
  const raw = process.env['BENCH_PARTS'];
  if (raw === undefined || raw.trim() === '') return new Set(PARTS);
  const names = raw.split(',').map((p) => p.trim());
  const unknown = names.filter((p) => !(PARTS as readonly string[]).includes(p));
  if (unknown.length > 0) throw new BenchError(`BENCH_PARTS: unknown part '${unknown.join("', '")}' (known: ${PARTS.join(', ')})`);
  return new Set(names as Part[]);
}

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

function exec(
  file: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: { ...process.env, ...options.env }, timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const detail = `${stderr}${stdout}`.trim().split('\n').slice(-15).join('\n');
          reject(new BenchError(`${file} ${args.join(' ')} failed: ${error.message.split('\n')[0]}\n${detail}`));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

function psqlArgs(e: Endpoint, ...rest: string[]): string[] {
  return ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', e.host, '-p', String(e.port), '-U', e.user, '-d', e.database, ...rest];
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

// --- Gateway process and its memory ---------------------------------------------------------

/** USER_HZ of Linux, the unit of /proc/<pid>/stat times (100 on every common kernel). */
const CLOCK_TICKS = 100;

class GatewayProcess {
  private peakRss = 0;
  private phasePeakRss = 0;
  private sampler: NodeJS.Timeout | undefined;
  private exited: string | undefined;

  readonly child: ChildProcess;
  readonly logFile: string;

  private constructor(child: ChildProcess, logFile: string) {
    this.child = child;
    this.logFile = logFile;
    child.once('exit', (code, signal) => {
      this.exited = `exited with ${signal ?? `code ${String(code)}`}`;
    });
    this.sampler = setInterval(() => this.sample(), 100);
    this.sampler.unref();
  }

  static start(configFile: string, logFile: string): GatewayProcess {
    const out = createWriteStream(logFile);
    // As the drawbridge command runs it (its first line): see bin/drawbridge.js.
    const child = spawn(NODE, ['--liftoff-only', CLI, 'start', '--config', configFile], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    return new GatewayProcess(child, logFile);
  }

  get exitReason(): string | undefined {
    return this.exited;
  }

  private status(): string | undefined {
    if (this.child.pid === undefined || this.exited !== undefined) return undefined;
    try {
      return readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    } catch {
      return undefined;
    }
  }

  private field(name: 'VmRSS' | 'VmHWM'): number {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(this.status() ?? '');
    return m?.[1] === undefined ? 0 : Number(m[1]) * 1024;
  }

  sample(): void {
    const rss = this.field('VmRSS');
    this.peakRss = Math.max(this.peakRss, rss);
    this.phasePeakRss = Math.max(this.phasePeakRss, rss);
  }

  /** Starts a new phase and returns the peak RSS seen in the previous one. */
  resetPhase(): number {
    this.sample();
    const peak = this.phasePeakRss;
    this.phasePeakRss = this.field('VmRSS');
    return peak;
  }

  /** CPU time (user and system) the process has spent so far, from /proc/<pid>/stat (in ticks of 1/100 s). */
  cpuSeconds(): number {
    if (this.child.pid === undefined || this.exited !== undefined) return 0;
    try {
      // After "(comm)": state is field 3; utime and stime are fields 14 and 15.
      const fields = readFileSync(`/proc/${this.child.pid}/stat`, 'utf8')
        .replace(/^.*\) /s, '')
        .split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    } catch {
      return 0;
    }
  }

  memory(): { peakRssBytes: number; hwmBytes: number; rssBytes: number } {
    this.sample();
    return { peakRssBytes: this.peakRss, hwmBytes: this.field('VmHWM'), rssBytes: this.field('VmRSS') };
  }

  async logTail(lines = 30): Promise<string> {
    try {
      return (await readFile(this.logFile, 'utf8')).trim().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = undefined;
    if (this.exited !== undefined || this.child.exitCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }
}

// --- Workloads ------------------------------------------------------------------------------

/**
 * select-only is `-S`; tpcb is pgbench's default script (BEGIN, three UPDATEs with a WHERE on the
 * key, a SELECT, an INSERT, END). Either way with -n: the tables are initialised once, up front.
 */
async function pgbench(
  e: Endpoint,
  mode: 'simple' | 'extended',
  clients: number,
  script: Script = 'select-only',
  seconds = SECONDS,
): Promise<PgbenchFigures> {
  const args = [
    '-n',
    ...(script === 'select-only' ? ['-S'] : []),
    '-M',
    mode,
    '-c',
    String(clients),
    '-j',
    String(clients > 1 ? 2 : 1),
    '-T',
    String(seconds),
  ];
  // A statement refused or failing on the way aborts its client: pgbench exits non-zero, and so does the bench.
  const { stdout } = await exec('pgbench', [...args, '-h', e.host, '-p', String(e.port), '-U', e.user, e.database], {
    env: e.env,
    timeoutMs: (seconds + 60) * 1000,
  }).catch((error: unknown) => {
    throw new BenchError(`${e.label}: ${error instanceof Error ? error.message : String(error)}`);
  });
  const tps = /^tps = ([\d.]+)/m.exec(stdout)?.[1];
  const latency = /^latency average = ([\d.]+) ms/m.exec(stdout)?.[1];
  if (tps === undefined || latency === undefined) throw new BenchError(`could not read pgbench output:\n${stdout}`);
  const failed = /^number of failed transactions: (\d+)/m.exec(stdout)?.[1];
  if (failed !== undefined && failed !== '0')
    throw new BenchError(`pgbench (${e.label}) reported ${failed} failed transactions:\n${stdout}`);
  return { tps: Number(tps), latencyMs: Number(latency) };
}

/** Rows of about 100 bytes: an int4 and 90 x's, nothing to mask. */
function streamSelect(rows: number): string {
  return `SELECT g, repeat('x', 90) FROM generate_series(1, ${rows}) g`;
}

const STREAM_SELECT = streamSelect(ROWS);

type StreamHow = 'select' | 'copy';

/** psql reading `select` through a cursor (FETCH_COUNT) or as COPY … TO STDOUT; to stdout unless `output` says. */
function streamArgs(e: Endpoint, how: StreamHow, select: string, output?: string): string[] {
  const to = output === undefined ? [] : ['-o', output];
  return how === 'select'
    ? psqlArgs(e, '-At', '-v', 'FETCH_COUNT=10000', '-c', select, ...to)
    : psqlArgs(e, '-c', `COPY (${select}) TO STDOUT`, ...to);
}

async function stream(e: Endpoint, how: StreamHow, select = STREAM_SELECT): Promise<StreamFigures> {
  const started = process.hrtime.bigint();
  await exec('psql', streamArgs(e, how, select, '/dev/null'), { env: e.env, timeoutMs: 1_800_000 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { rows: ROWS, seconds, rowsPerSecond: ROWS / seconds };
}

// --- Output ---------------------------------------------------------------------------------

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function rate(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return int.format(n);
}

function figures(f: PgbenchFigures | StreamFigures): string {
  return 'tps' in f ? `${int.format(f.tps)} tps ${f.latencyMs.toFixed(3)}ms` : `${rate(f.rowsPerSecond)} rows/s`;
}

function percent(ratio: number): string {
  return `${int.format(ratio * 100)}%`.padStart(14);
}

function mb(bytes: number): string {
  return `${int.format(bytes / (1024 * 1024))} MB`;
}

function table(rows: readonly Row[], memory: { peakRssBytes: number; hwmBytes: number; idleRssBytes: number }): string {
  const lines = [
    `${'workload'.padEnd(38)}${'direct'.padEnd(22)}${'bare relay'.padEnd(22)}${'gateway'.padEnd(22)}gateway/direct  relay/direct`,
    ...rows.map((r) => {
      const extra = r.gatewayPeakRssBytes === undefined ? '' : `   gateway peak RSS ${mb(r.gatewayPeakRssBytes)}`;
      return `${r.workload.padEnd(38)}${figures(r.direct).padEnd(22)}${figures(r.relay).padEnd(22)}${figures(r.gateway).padEnd(22)}${percent(r.ratio)}${percent(r.relayRatio)}${extra}`;
    }),
    '',
    'bare relay: a child process that copies bytes between client and PostgreSQL and does nothing else.',
    `gateway memory: RSS ${mb(memory.idleRssBytes)} after start; over the whole run peak RSS ${mb(memory.peakRssBytes)} (sampled every 100 ms), VmHWM ${mb(memory.hwmBytes)}`,
  ];
  return lines.join('\n');
}

/** `setting` names the columns ('guardrails' → 'guardrails off', 'guardrails on'); `withStart` adds each run's starting RSS. */
function onOffTable(
  title: string,
  setting: string,
  rows: readonly OnOffRow<PgbenchFigures | StreamFigures>[],
  footer: string,
  withStart = false,
): string {
  const rss = (peak: number, start: number): string => (withStart ? `${mb(peak)} (${mb(start)} at start)` : mb(peak));
  // Per row for streams (µs), per transaction for pgbench (µs): what the gateway's one thread spent.
  const cpu = (r: OnOffRow<PgbenchFigures | StreamFigures>): string => {
    const units = (f: PgbenchFigures | StreamFigures): number => ('tps' in f ? f.tps * SECONDS : f.rows);
    const us = (seconds: number, f: PgbenchFigures | StreamFigures) => ((seconds * 1e6) / units(f)).toFixed(2);
    return `; gateway CPU per ${'tps' in r.on ? 'transaction' : 'row'} off ${us(r.offCpuSeconds, r.off)} µs, on ${us(r.onCpuSeconds, r.on)} µs`;
  };
  const rounds = (r: OnOffRow<PgbenchFigures | StreamFigures>): string =>
    r.roundRatios ? `; on/off of each round ${r.roundRatios.map((x) => `${Math.round(x * 100)}%`).join(', ')} (this row: the median)` : '';
  const width = Math.max(38, ...rows.map((r) => r.workload.length + 2));
  return [
    `${title.padEnd(width)}${'direct'.padEnd(22)}${`${setting} off`.padEnd(22)}${`${setting} on`.padEnd(22)}        on/off     on/direct`,
    ...rows.map(
      (r) =>
        `${r.workload.padEnd(width)}${figures(r.direct).padEnd(22)}${figures(r.off).padEnd(22)}${figures(r.on).padEnd(22)}${percent(r.onOffRatio)}${percent(r.onDirectRatio)}   peak RSS off ${rss(r.offPeakRssBytes, r.offStartRssBytes)}, on ${rss(r.onPeakRssBytes, r.onStartRssBytes)}${cpu(r)}${rounds(r)}`,
    ),
    '',
    footer,
  ].join('\n');
}

function machine(): string {
  return `${SECONDS} s per pgbench run, scale ${SCALE}; ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}); node ${process.version}; client, gateway and server on one machine`;
}

// --- Main -----------------------------------------------------------------------------------

let tmp: string | undefined;
/** Every gateway started and not yet stopped, for the cleanup. */
const gateways = new Set<GatewayProcess>();
let databaseCreated = false;
let cleaning: Promise<void> | undefined;
let interrupted = false;

const direct: Endpoint = { label: 'direct', ...PG, database: DB, env: {} };

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    relay?.kill();
    for (const g of gateways) await g.stop().catch(() => undefined);
    if (databaseCreated) {
      await exec('psql', psqlArgs({ ...direct, database: 'postgres' }, '-c', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`)).catch(
        (e: unknown) => log(`could not drop ${DB}: ${String(e)}`),
      );
    }
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function preflight(): Promise<void> {
  for (const tool of ['pgbench', 'psql']) {
    await exec(tool, ['--version']).catch(() => {
      throw new BenchError(`${tool} is not installed (Debian: postgresql-client, postgresql-contrib)`);
    });
  }
  if (!(await canConnect(PG.host, PG.port))) throw new BenchError(`PostgreSQL is not answering on ${PG.host}:${PG.port}`);
  if (!existsSync(CLI)) {
    throw new BenchError(`the gateway CLI ${CLI} does not exist yet: the bench needs 'drawbridge start' and 'drawbridge grant'`);
  }
}

const RELAY_SOURCE = `
const net = require('node:net');
const [port, targetPort] = process.argv.slice(1).map(Number);
net.createServer({ noDelay: true }, (client) => {
  const target = net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
  client.pipe(target).on('error', () => {});
  target.pipe(client).on('error', () => {});
  client.on('error', () => target.destroy());
  target.on('error', () => client.destroy());
}).listen(port, '127.0.0.1');
`;

let relay: ChildProcess | undefined;

/** The reference: what a hop through a process that only copies bytes costs on this machine. */
async function startRelay(): Promise<Endpoint> {
  const port = await freePort();
  relay = spawn(NODE, ['-e', RELAY_SOURCE, String(port), String(PG.port)], { stdio: 'ignore' });
  for (const deadline = Date.now() + 10_000; !(await canConnect('127.0.0.1', port));) {
    if (Date.now() > deadline) throw new BenchError('the bare relay did not start');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { label: 'relay', host: '127.0.0.1', port, user: PG.user, database: DB, env: {} };
}

interface Gateway {
  readonly endpoint: Endpoint;
  readonly process: GatewayProcess;
  readonly configFile: string;
  /** Its API, where `/mcp` is served: `http://127.0.0.1:PORT`. */
  readonly api: string;
}

/**
 * What each gateway's drawbridge.yaml says besides its store, listeners and connection, and the
 * folder (store, log) it gets under the bench's temporary folder. The default writes neither a
 * policy nor a masking section, so that gateway runs as a user's would: the default pack on,
 * masking on.
 */
const GATEWAYS = {
  gateway: { home: 'gateway', config: [] },
  'gateway, guardrails off': { home: 'gateway-policy-off', config: ['policy:', '  enabled: false'] },
  'gateway, masking off': { home: 'gateway-masking-off', config: ['masking:', '  enabled: false'] },
  'gateway, audit after-commit': { home: 'gateway-after-commit', config: ['audit:', '  acknowledge: after-commit'] },
  'gateway, recording off': {
    home: 'gateway-recording-off',
    config: ['recording:', '  enabled: false', 'audit:', '  statements: refused'],
  },
} as const satisfies Record<string, { home: string; config: readonly string[] }>;
type GatewayLabel = keyof typeof GATEWAYS;

async function startGateway(dir: string, label: GatewayLabel): Promise<Gateway> {
  const home = join(dir, GATEWAYS[label].home);
  await mkdir(home);
  const [apiPort, pgPort] = [await freePort(), await freePort()];
  const config = join(home, 'drawbridge.yaml');
  await writeFile(
    config,
    [
      `store: sqlite:${join(home, 'state.db')}`,
      'listen:',
      `  api: 127.0.0.1:${apiPort}`,
      `  postgres: 127.0.0.1:${pgPort}`,
      ...GATEWAYS[label].config,
      'connections:',
      '  - name: bench',
      '    type: postgres',
      `    host: ${PG.host}`,
      `    port: ${PG.port}`,
      `    database: ${DB}`,
      `    user: ${PG.user}`,
      '    tls: disable',
      '',
    ].join('\n'),
  );

  log(`starting the ${label} (postgres listener 127.0.0.1:${pgPort})`);
  const gateway = GatewayProcess.start(config, join(home, 'gateway.log'));
  gateways.add(gateway);
  const deadline = Date.now() + 20_000;
  while (!(await canConnect('127.0.0.1', pgPort))) {
    if (gateway.exitReason !== undefined) {
      throw new BenchError(`the ${label} ${gateway.exitReason} before listening; its log:\n${await gateway.logTail()}`);
    }
    if (Date.now() > deadline)
      throw new BenchError(`the ${label} did not listen on 127.0.0.1:${pgPort} within 20 s; its log:\n${await gateway.logTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const { stdout } = await exec(NODE, [CLI, 'grant', '--config', config, '--principal', 'bench', '--connection', 'bench', '--ttl', '1h']);
  const credential = stdout.split('\n')[0]?.trim() ?? '';
  if (!credential.startsWith('dbr_'))
    throw new BenchError(`'drawbridge grant' did not print a dbr_ credential on its first line:\n${stdout}`);

  const endpoint: Endpoint = {
    label,
    host: '127.0.0.1',
    port: pgPort,
    user: 'bench',
    database: 'bench',
    env: { PGPASSWORD: credential },
  };
  const { stdout: probe } = await exec('psql', psqlArgs(endpoint, '-At', '-c', 'SELECT count(*) FROM pgbench_branches'), {
    env: endpoint.env,
  }).catch(async (e: unknown) => {
    throw new BenchError(`a query through the ${label} failed: ${String(e)}\nits log:\n${await gateway.logTail()}`);
  });
  if (probe.trim() !== String(SCALE))
    throw new BenchError(`through the ${label}, pgbench_branches has '${probe.trim()}' rows, expected ${SCALE}`);
  return { endpoint, process: gateway, configFile: config, api: `http://127.0.0.1:${apiPort}` };
}

/** Runs `work` and returns its result with the gateway's peak RSS while it ran, and its RSS when it began. */
/** `work` with the gateway watched: its result, the gateway's peak RSS and RSS at the start, and the CPU seconds it spent. */
async function watched<T>(g: Gateway, work: () => Promise<T>): Promise<[T, number, number, number]> {
  g.process.resetPhase();
  const start = g.process.memory().rssBytes;
  const cpu = g.process.cpuSeconds();
  const result = await work();
  return [result, g.process.resetPhase(), start, g.process.cpuSeconds() - cpu];
}

async function stopGateway(g: Gateway): Promise<void> {
  await g.process.stop();
  gateways.delete(g.process);
}

function pgbenchWorkload(script: Script, mode: 'simple' | 'extended', clients: number): string {
  return `pgbench ${script === 'select-only' ? '-S' : 'TPC-B'} ${mode}, ${clients} client${clients > 1 ? 's' : ''}`;
}

function throughput(f: PgbenchFigures | StreamFigures): number {
  return 'tps' in f ? f.tps : f.rowsPerSecond;
}

/** The same work directly, through the bare relay and through the gateway (watching its memory). */
async function proxyRow(
  workload: string,
  kind: Row['kind'],
  relayed: Endpoint,
  through: Gateway,
  run: (e: Endpoint) => Promise<PgbenchFigures | StreamFigures>,
): Promise<Row> {
  const d = await run(direct);
  const r = await run(relayed);
  const [g, peak] = await watched(through, () => run(through.endpoint));
  const ratio = throughput(g) / throughput(d);
  return { workload, kind, direct: d, relay: r, gateway: g, ratio, relayRatio: throughput(r) / throughput(d), gatewayPeakRssBytes: peak };
}

async function proxyRows(relayed: Endpoint, through: Gateway): Promise<Row[]> {
  const rows: Row[] = [];
  for (const mode of ['simple', 'extended'] as const) {
    for (const clients of [1, 8]) {
      const workload = pgbenchWorkload('select-only', mode, clients);
      log(`${workload}: direct, bare relay, gateway (${SECONDS} s each)`);
      rows.push(await proxyRow(workload, 'pgbench', relayed, through, (e) => pgbench(e, mode, clients)));
    }
  }
  return rows;
}

async function streamRows(relayed: Endpoint, through: Gateway): Promise<Row[]> {
  const rows: Row[] = [];
  for (const how of ['select', 'copy'] as const) {
    const workload = how === 'select' ? `stream ${int.format(ROWS)} rows (FETCH_COUNT)` : `COPY ${int.format(ROWS)} rows TO STDOUT`;
    log(`${workload}: direct, bare relay, gateway`);
    rows.push(await proxyRow(workload, 'stream', relayed, through, (e) => stream(e, how)));
  }
  return rows;
}

/** Harmless whatever happens (it deletes nothing), and the default pack refuses it: no WHERE that filters. */
const GUARDRAIL_PROBE = 'DELETE FROM pgbench_history WHERE 1 = 2';

/** The policy named in the refusal psql printed for `sql`, or undefined when the statement ran. */
async function refusal(e: Endpoint, sql: string): Promise<string | undefined> {
  try {
    await exec('psql', psqlArgs(e, '-c', sql), { env: e.env });
    return undefined;
  } catch (error) {
    const refused = /blocked by policy "[^"]+"/.exec(String(error))?.[0];
    if (refused === undefined) throw error;
    return refused;
  }
}

/** pgbench -S and TPC-B, simple protocol, 1 and 8 clients: direct, guardrails off, guardrails on. */
async function guardrailRows(onGateway: Gateway, offGateway: Gateway): Promise<GuardrailRow[]> {
  const [on, off] = [onGateway.endpoint, offGateway.endpoint];
  // Figures are only worth printing if "on" and "off" are what they say.
  if ((await refusal(on, GUARDRAIL_PROBE)) === undefined)
    throw new BenchError(`the gateway with the default configuration ran '${GUARDRAIL_PROBE}': its guardrails are not on`);
  const offRefused = await refusal(off, GUARDRAIL_PROBE);
  if (offRefused !== undefined)
    throw new BenchError(
      `the gateway with 'policy: enabled: false' refused '${GUARDRAIL_PROBE}' (${offRefused}): its guardrails are not off`,
    );

  return pgbenchOnOff('guardrails', onGateway, offGateway);
}

/** pgbench select-only and TPC-B (simple protocol, 1 and 8 clients) directly, with a setting off and on. */
async function pgbenchOnOff(setting: string, onGateway: Gateway, offGateway: Gateway): Promise<OnOffRow<PgbenchFigures>[]> {
  // A short TPC-B through each first: it warms both up alike and fails early if the pack refuses any of its statements.
  for (const e of [offGateway.endpoint, onGateway.endpoint]) await pgbench(e, 'simple', 1, 'tpcb', 1);
  const rows: OnOffRow<PgbenchFigures>[] = [];
  for (const script of ['select-only', 'tpcb'] as const) {
    for (const clients of [1, 8]) {
      const workload = pgbenchWorkload(script, 'simple', clients);
      log(
        `${workload}: direct, ${setting} off, ${setting} on (${SECONDS} s each${ROUNDS > 1 ? `, ${ROUNDS} rounds, every other one on before off` : ''})`,
      );
      const rounds: OnOffRow<PgbenchFigures>[] = [];
      for (let round = 0; round < ROUNDS; round++)
        rounds.push(await onOffRow(workload, offGateway, onGateway, (e) => pgbench(e, 'simple', clients, script), round % 2 === 1));
      rows.push(medianRound(rounds));
    }
  }
  return rows;
}

/** The round whose on/off is the median (the lower middle one for an even count), with every round's on/off. */
function medianRound(rounds: readonly OnOffRow<PgbenchFigures>[]): OnOffRow<PgbenchFigures> {
  if (rounds.length === 1) return rounds[0]!;
  const sorted = [...rounds].sort((a, b) => a.onOffRatio - b.onOffRatio);
  return { ...sorted[Math.floor((sorted.length - 1) / 2)]!, roundRatios: rounds.map((r) => r.onOffRatio) };
}

/** How many sessions a gateway's store has recorded, read as an administrator would. */
async function recordedSessions(g: Gateway): Promise<number> {
  const { stdout } = await exec(NODE, [CLI, 'sessions', 'list', '--config', g.configFile, '--limit', '1000', '--json']);
  return (JSON.parse(stdout) as { sessions: unknown[] }).sessions.length;
}

/**
 * pgbench through the gateway recording sessions and putting every statement in the audit log
 * (the default), and through one that records no session and audits refusals only.
 */
async function recordingRows(onGateway: Gateway, offGateway: Gateway): Promise<OnOffRow<PgbenchFigures>[]> {
  // Figures are only worth printing if "on" and "off" are what they say.
  const [before, none] = [await recordedSessions(onGateway), await recordedSessions(offGateway)];
  await exec('psql', psqlArgs(onGateway.endpoint, '-c', 'select 1'), { env: onGateway.endpoint.env });
  await exec('psql', psqlArgs(offGateway.endpoint, '-c', 'select 1'), { env: offGateway.endpoint.env });
  await new Promise((r) => setTimeout(r, 500)); // the recorder writes every 200 ms
  if ((await recordedSessions(onGateway)) <= before) throw new BenchError('the gateway with the default configuration recorded no session');
  if ((await recordedSessions(offGateway)) !== none)
    throw new BenchError("the gateway with 'recording: enabled: false' recorded a session");
  return pgbenchOnOff('recording', onGateway, offGateway);
}

/**
 * The same work directly, through the gateway with a setting off, then with it on (watching each
 * one's memory); with `onFirst`, on before off, so that rounds taken in turns cancel a machine
 * that speeds up or slows down as they run.
 */
async function onOffRow<F extends PgbenchFigures | StreamFigures>(
  workload: string,
  offGateway: Gateway,
  onGateway: Gateway,
  run: (e: Endpoint) => Promise<F>,
  onFirst = false,
): Promise<OnOffRow<F>> {
  const d = await run(direct);
  const [first, second] = onFirst ? [onGateway, offGateway] : [offGateway, onGateway];
  const firstRun = await watched(first, () => run(first.endpoint));
  const secondRun = await watched(second, () => run(second.endpoint));
  const [[f, offPeakRssBytes, offStartRssBytes, offCpuSeconds], [n, onPeakRssBytes, onStartRssBytes, onCpuSeconds]] = onFirst
    ? [secondRun, firstRun]
    : [firstRun, secondRun];
  return {
    workload,
    direct: d,
    off: f,
    on: n,
    onOffRatio: throughput(n) / throughput(f),
    onDirectRatio: throughput(n) / throughput(d),
    offPeakRssBytes,
    onPeakRssBytes,
    offStartRssBytes,
    onStartRssBytes,
    offCpuSeconds,
    onCpuSeconds,
  };
}

/** Comes back as sent through a gateway that does not mask, and must not through one that does. */
const MASKING_PROBE = 'user1@example.com';

/** What psql prints for `how` of `select`, as text. */
async function read(e: Endpoint, how: StreamHow, select: string): Promise<string> {
  return (await exec('psql', streamArgs(e, how, select), { env: e.env })).stdout;
}

/** What the masking part streams: a query of `rows` rows, and the columns (from 0) whose every value must come back masked. */
interface MaskingData {
  readonly name: string;
  readonly select: (rows: number) => string;
  readonly piiColumns: readonly number[];
}

/** Fails unless the gateway with masking on masks the probe and the one with masking off does not. */
async function checkProbe(on: Endpoint, off: Endpoint): Promise<void> {
  const probe = `SELECT '${MASKING_PROBE}'`;
  const [onProbe, offProbe] = [(await read(on, 'select', probe)).trim(), (await read(off, 'select', probe)).trim()];
  if (onProbe.includes(MASKING_PROBE))
    throw new BenchError(`the gateway with the default configuration answered '${onProbe}' to ${probe}: it does not mask`);
  if (offProbe !== MASKING_PROBE)
    throw new BenchError(`the gateway with 'masking: enabled: false' answered '${offProbe}' to ${probe}: it masks`);
}

/**
 * Fails unless a few rows of the workload itself, both ways (rows and COPY), come back as read
 * directly through masking off, and through masking on with exactly the PII columns changed.
 */
async function checkRows(on: Endpoint, off: Endpoint, select: string, piiColumns: readonly number[]): Promise<void> {
  for (const how of ['select', 'copy'] as const) {
    const separator = how === 'select' ? '|' : '\t';
    const [d, f, n] = [await read(direct, how, select), await read(off, how, select), await read(on, how, select)];
    if (f !== d) throw new BenchError(`${how}: the gateway with masking off changed the rows:\ndirect:\n${d}\nmasking off:\n${f}`);
    const [directLines, onLines] = [d.trim().split('\n'), n.trim().split('\n')];
    const wrong = directLines.some((line, i) => {
      const [want, got] = [line.split(separator), onLines[i]?.split(separator) ?? []];
      return got.length !== want.length || want.some((v, c) => (piiColumns.includes(c) ? got[c] === v : got[c] !== v));
    });
    if (wrong || onLines.length !== directLines.length)
      throw new BenchError(
        `${how}: the gateway with masking on did not mask exactly columns [${piiColumns.join(', ')}]:\ndirect:\n${d}\nmasking on:\n${n}`,
      );
  }
}

/** Each data set streamed with FETCH_COUNT and as COPY: direct, masking off, masking on. */
async function maskingRows(onGateway: Gateway, offGateway: Gateway, data: readonly MaskingData[]): Promise<MaskingRow[]> {
  const [on, off] = [onGateway.endpoint, offGateway.endpoint];
  // Figures are only worth printing if "on" and "off" are what they say.
  await checkProbe(on, off);
  for (const d of data) await checkRows(on, off, d.select(3), d.piiColumns);

  const rows: MaskingRow[] = [];
  for (const { name, select } of data) {
    const query = select(ROWS);
    for (const how of ['select', 'copy'] as const) {
      const workload =
        how === 'select' ? `stream ${int.format(ROWS)} rows ${name} (FETCH_COUNT)` : `COPY ${int.format(ROWS)} rows ${name} TO STDOUT`;
      log(`${workload}: direct, masking off, masking on`);
      rows.push(await onOffRow(workload, offGateway, onGateway, (e) => stream(e, how, query)));
    }
  }
  return rows;
}

/** Sessions PostgreSQL has started on the bench database so far (psql's own is on `postgres`, not counted). */
async function benchSessions(): Promise<number> {
  const sql = `SELECT sessions FROM pg_stat_database WHERE datname = '${DB}'`;
  const { stdout } = await exec('psql', psqlArgs({ ...direct, database: 'postgres' }, '-At', '-c', sql));
  return Number(stdout.trim());
}

/**
 * A point SELECT and a 100-row SELECT from node-postgres directly and through the gateway's
 * listener, and as an agent's `query` tool call through its `/mcp`, with the key of a service
 * account the bench creates in the gateway's store.
 */
async function mcpRows(through: Gateway): Promise<{ rows: McpRow[]; table: string }> {
  const { stdout } = await exec(NODE, [
    CLI,
    'service-accounts',
    'create',
    'bench-agent',
    '--connections',
    'bench',
    '--config',
    through.configFile,
  ]);
  const key = stdout.split('\n')[0]?.trim() ?? '';
  if (!key.startsWith('dbr_sak_'))
    throw new BenchError(`'drawbridge service-accounts create' did not print a dbr_sak_ key on its first line:\n${stdout}`);
  const { measureMcp, mcpTable } = await import('./mcp.bench.ts');
  const { host, port, user, database } = through.endpoint;
  const rows = await measureMcp({
    direct: { host: PG.host, port: PG.port, user: PG.user, database: DB },
    gateway: { host, port, user, database, password: through.endpoint.env['PGPASSWORD'] },
    mcp: { url: `${through.api}/mcp`, key, connection: 'bench' },
    accounts: SCALE * 100_000,
    seconds: SECONDS,
    watch: async (work) => {
      const [result, , , cpu] = await watched(through, work);
      return [result, cpu];
    },
    sessions: benchSessions,
    log,
    fail: (message) => new BenchError(message),
  });
  return { rows, table: mcpTable(rows) };
}

async function main(): Promise<void> {
  const parts = selectedParts();
  // In-process and first, while this bench has started nothing else that uses the CPUs.
  // Imported only when asked for: it loads both WASM modules into this process.
  let policy: { figures: PolicyFigures; table: string } | undefined;
  if (parts.has('policy')) {
    log('guardrails in-process: classify, decide, guard cold and cached');
    const { measurePolicy, policyTable } = await import('./policy.bench.ts');
    const figures = await measurePolicy();
    policy = { figures, table: policyTable(figures) };
  }
  let audit: { figures: AuditFigures; table: string } | undefined;
  let records: { figures: RecordsFigures; table: string } | undefined;
  if (parts.has('audit')) {
    log('audit log in-process: appends per second on SQLite and PostgreSQL, and verification');
    const { measureAudit, auditTable } = await import('./audit.bench.ts');
    const figures = await measureAudit();
    audit = { figures, table: auditTable(figures) };
    log("a statement's records in-process: CPU per statement, per thread, recording and audit off and on");
    const { measureRecords, recordsTable } = await import('./records.bench.ts');
    const costs = await measureRecords();
    records = { figures: costs, table: recordsTable(costs) };
  }
  const maskingBench = parts.has('masking') ? await import('./masking.bench.ts') : undefined;
  let detectors: { figures: MaskingFigures; table: string } | undefined;
  if (maskingBench) {
    log('masking in-process: values per second through the detectors');
    const figures = maskingBench.measureMasking();
    detectors = { figures, table: maskingBench.maskingTable(figures) };
  }

  const rows: Row[] = [];
  let guardrails: GuardrailRow[] = [];
  let recording: OnOffRow<PgbenchFigures>[] = [];
  let durable: OnOffRow<PgbenchFigures>[] = [];
  let masking: MaskingRow[] = [];
  let mcp: { rows: McpRow[]; table: string } | undefined;
  let memory: { peakRssBytes: number; hwmBytes: number; rssBytes: number; idleRssBytes: number } | undefined;
  const throughPgbench =
    parts.has('proxy') ||
    parts.has('stream') ||
    parts.has('guardrails') ||
    parts.has('masking') ||
    parts.has('recording') ||
    parts.has('durable') ||
    parts.has('mcp');
  if (throughPgbench) {
    await preflight();
    tmp = await mkdtemp(join(tmpdir(), 'drawbridge-bench-'));

    log(`creating database ${DB} (pgbench scale ${SCALE})`);
    const admin = { ...direct, database: 'postgres' };
    await exec('psql', psqlArgs(admin, '-c', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`));
    await exec('psql', psqlArgs(admin, '-c', `CREATE DATABASE ${DB}`));
    databaseCreated = true;
    await exec('pgbench', ['-i', '-q', '-s', String(SCALE), '-h', PG.host, '-p', String(PG.port), '-U', PG.user, DB], {
      timeoutMs: 600_000,
    });

    const relayed = parts.has('proxy') || parts.has('stream') ? await startRelay() : undefined;
    const gateway = await startGateway(tmp, 'gateway');
    const idleRssBytes = gateway.process.memory().rssBytes;

    if (relayed && parts.has('proxy')) rows.push(...(await proxyRows(relayed, gateway)));
    if (relayed && parts.has('stream')) rows.push(...(await streamRows(relayed, gateway)));
    if (parts.has('guardrails')) {
      const off = await startGateway(tmp, 'gateway, guardrails off');
      guardrails = await guardrailRows(gateway, off);
      await stopGateway(off);
    }
    if (parts.has('recording')) {
      const off = await startGateway(tmp, 'gateway, recording off');
      recording = await recordingRows(gateway, off);
      await stopGateway(off);
    }
    if (parts.has('durable')) {
      const strict = await startGateway(tmp, 'gateway, audit after-commit');
      durable = await pgbenchOnOff('after-commit', strict, gateway);
      await stopGateway(strict);
    }
    if (maskingBench) {
      const off = await startGateway(tmp, 'gateway, masking off');
      masking = await maskingRows(gateway, off, [
        { name: 'with PII', select: maskingBench.piiSelect, piiColumns: maskingBench.PII_COLUMNS },
        { name: 'without PII', select: streamSelect, piiColumns: [] },
      ]);
      await stopGateway(off);
    }
    if (parts.has('mcp')) mcp = await mcpRows(gateway);

    const exit = gateway.process.exitReason;
    if (exit !== undefined) throw new BenchError(`the gateway ${exit} during the run; its log:\n${await gateway.process.logTail()}`);
    memory = { ...gateway.process.memory(), idleRssBytes };
  }

  if (JSON_OUTPUT) {
    const pgbenchVersion = throughPgbench ? (await exec('pgbench', ['--version'])).stdout.trim() : undefined;
    process.stdout.write(
      `${JSON.stringify(
        {
          seconds: SECONDS,
          scale: SCALE,
          streamRows: ROWS,
          parts: [...parts],
          environment: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, pgbench: pgbenchVersion },
          results: rows,
          gatewayMemory: memory ?? null,
          guardrails,
          policy: policy?.figures ?? null,
          masking,
          maskingDetectors: detectors?.figures ?? null,
          audit: audit?.figures ?? null,
          statementRecords: records?.figures ?? null,
          recording,
          durable,
          mcp: mcp?.rows ?? [],
        },
        null,
        2,
      )}\n`,
    );
  } else {
    const sections = [
      ...(rows.length > 0 && memory ? [table(rows, memory)] : []),
      ...(guardrails.length > 0
        ? [
            onOffTable(
              'guardrails through the gateway',
              'guardrails',
              guardrails,
              'guardrails on: the default policy pack (no policy section in drawbridge.yaml); off: policy: enabled: false. Target: on/off >= 90%.',
            ),
          ]
        : []),
      ...(policy ? [policy.table] : []),
      ...(masking.length > 0
        ? [
            onOffTable(
              'masking through the gateway',
              'masking',
              masking,
              'masking on: the default configuration (no masking section in drawbridge.yaml); off: masking: enabled: false. Target: on/off >= 60%, flat RSS.',
              true,
            ),
          ]
        : []),
      ...(detectors ? [detectors.table] : []),
      ...(audit ? [audit.table] : []),
      ...(records ? [records.table] : []),
      ...(recording.length > 0
        ? [
            onOffTable(
              'recording through the gateway',
              'recording',
              recording,
              'recording on: the default configuration (sessions, statements and their first results recorded; every statement an audit record, committed within 5 ms); off: recording: enabled: false, audit: statements: refused (sessions and refusals stay in the audit log). Target: on/off >= 85%.',
            ),
          ]
        : []),
      ...(durable.length > 0
        ? [
            onOffTable(
              'answering after the audit commit',
              'after-commit',
              durable,
              'after-commit on: audit.acknowledge: after-commit (a statement is answered once its audit record is committed); off: the default (at-once, committed within 5 ms). No target: what the stronger guarantee costs.',
            ),
          ]
        : []),
      ...(mcp ? [mcp.table] : []),
      machine(),
    ];
    process.stdout.write(`${sections.join('\n\n')}\n`);
  }
}

try {
  await main();
} catch (error) {
  // After SIGINT the interrupted clients' failures are noise, not a result: say nothing.
  if (!interrupted) {
    const message = error instanceof BenchError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`\nbench failed: ${message}\n`);
    process.exitCode = 1;
  }
} finally {
  await cleanup();
}

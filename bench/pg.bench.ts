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
 *
 * Needs: pgbench and psql, PostgreSQL on 127.0.0.1:5432 with trust auth for `postgres`
 * (it creates and drops the database `drawbridge_bench`), and the gateway's CLI
 * (bin/drawbridge.js start / grant). See docs/benchmarks.md.
 *
 * Usage: npm run bench [-- --json]     env: BENCH_SECONDS (default 10), BENCH_ROWS (default 2000000)
 *
 * Limits: client, gateway and server share one machine (2 cores on CI machines), so the
 * ratio includes the gateway competing with pgbench and PostgreSQL for CPU. The figures are
 * for comparing builds on one machine, not a capacity plan.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const NODE = existsSync(join(REPO, 'node_modules/.bin/node')) ? join(REPO, 'node_modules/.bin/node') : process.execPath;
const CLI = join(REPO, 'bin/drawbridge.js');

const SECONDS = positiveInt('BENCH_SECONDS', 10);
const ROWS = positiveInt('BENCH_ROWS', 2_000_000);
const SCALE = 10;
const DB = 'drawbridge_bench';
const PG = { host: '127.0.0.1', port: 5432, user: 'postgres' };
const JSON_OUTPUT = process.argv.includes('--json');

class BenchError extends Error {}

interface Endpoint {
  readonly label: 'direct' | 'relay' | 'gateway';
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

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new BenchError(`${name} must be a positive integer, got '${raw}'`);
  return n;
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
    const child = spawn(NODE, [CLI, 'start', '--config', configFile], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
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

async function pgbench(e: Endpoint, mode: 'simple' | 'extended', clients: number): Promise<PgbenchFigures> {
  const args = ['-n', '-S', '-M', mode, '-c', String(clients), '-j', String(clients > 1 ? 2 : 1), '-T', String(SECONDS)];
  const { stdout } = await exec('pgbench', [...args, '-h', e.host, '-p', String(e.port), '-U', e.user, e.database], {
    env: e.env,
    timeoutMs: (SECONDS + 60) * 1000,
  });
  const tps = /^tps = ([\d.]+)/m.exec(stdout)?.[1];
  const latency = /^latency average = ([\d.]+) ms/m.exec(stdout)?.[1];
  if (tps === undefined || latency === undefined) throw new BenchError(`could not read pgbench output:\n${stdout}`);
  const failed = /^number of failed transactions: (\d+)/m.exec(stdout)?.[1];
  if (failed !== undefined && failed !== '0')
    throw new BenchError(`pgbench (${e.label}) reported ${failed} failed transactions:\n${stdout}`);
  return { tps: Number(tps), latencyMs: Number(latency) };
}

const STREAM_SELECT = `SELECT g, repeat('x', 90) FROM generate_series(1, ${ROWS}) g`;

async function stream(e: Endpoint, how: 'select' | 'copy'): Promise<StreamFigures> {
  const args =
    how === 'select'
      ? psqlArgs(e, '-At', '-v', 'FETCH_COUNT=10000', '-c', STREAM_SELECT, '-o', '/dev/null')
      : psqlArgs(e, '-c', `COPY (${STREAM_SELECT}) TO STDOUT`, '-o', '/dev/null');
  const started = process.hrtime.bigint();
  await exec('psql', args, { env: e.env, timeoutMs: 600_000 });
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

function figures(row: Row, side: 'direct' | 'relay' | 'gateway'): string {
  const f = row[side];
  return 'tps' in f ? `${int.format(f.tps)} tps ${f.latencyMs.toFixed(3)}ms` : `${rate(f.rowsPerSecond)} rows/s`;
}

function table(rows: readonly Row[], memory: { peakRssBytes: number; hwmBytes: number; idleRssBytes: number }): string {
  const mb = (b: number): string => `${int.format(b / (1024 * 1024))} MB`;
  const lines = [
    `${'workload'.padEnd(38)}${'direct'.padEnd(22)}${'bare relay'.padEnd(22)}${'gateway'.padEnd(22)}gateway/direct  relay/direct`,
    ...rows.map((r) => {
      const ratio = `${int.format(r.ratio * 100)}%`.padStart(14);
      const relayRatio = `${int.format(r.relayRatio * 100)}%`.padStart(14);
      const extra = r.gatewayPeakRssBytes === undefined ? '' : `   gateway peak RSS ${mb(r.gatewayPeakRssBytes)}`;
      return `${r.workload.padEnd(38)}${figures(r, 'direct').padEnd(22)}${figures(r, 'relay').padEnd(22)}${figures(r, 'gateway').padEnd(22)}${ratio}${relayRatio}${extra}`;
    }),
    '',
    'bare relay: a child process that copies bytes between client and PostgreSQL and does nothing else.',
    `gateway memory: RSS ${mb(memory.idleRssBytes)} after start; over the whole run peak RSS ${mb(memory.peakRssBytes)} (sampled every 100 ms), VmHWM ${mb(memory.hwmBytes)}`,
    `${SECONDS} s per pgbench run, scale ${SCALE}; ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}); node ${process.version}; client, gateway and server on one machine`,
  ];
  return lines.join('\n');
}

// --- Main -----------------------------------------------------------------------------------

let tmp: string | undefined;
let gateway: GatewayProcess | undefined;
let databaseCreated = false;
let cleaning: Promise<void> | undefined;
let interrupted = false;

const direct: Endpoint = { label: 'direct', ...PG, database: DB, env: {} };

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    relay?.kill();
    await gateway?.stop().catch(() => undefined);
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

async function startGateway(dir: string): Promise<Endpoint> {
  const [apiPort, pgPort] = [await freePort(), await freePort()];
  const config = join(dir, 'drawbridge.yaml');
  await writeFile(
    config,
    [
      `store: sqlite:${join(dir, 'state.db')}`,
      'listen:',
      `  api: 127.0.0.1:${apiPort}`,
      `  postgres: 127.0.0.1:${pgPort}`,
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

  log(`starting the gateway (postgres listener 127.0.0.1:${pgPort})`);
  gateway = GatewayProcess.start(config, join(dir, 'gateway.log'));
  const deadline = Date.now() + 20_000;
  while (!(await canConnect('127.0.0.1', pgPort))) {
    if (gateway.exitReason !== undefined) {
      throw new BenchError(`the gateway ${gateway.exitReason} before listening; its log:\n${await gateway.logTail()}`);
    }
    if (Date.now() > deadline)
      throw new BenchError(`the gateway did not listen on 127.0.0.1:${pgPort} within 20 s; its log:\n${await gateway.logTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const { stdout } = await exec(NODE, [CLI, 'grant', '--config', config, '--principal', 'bench', '--connection', 'bench', '--ttl', '1h']);
  const credential = stdout.split('\n')[0]?.trim() ?? '';
  if (!credential.startsWith('dbr_'))
    throw new BenchError(`'drawbridge grant' did not print a dbr_ credential on its first line:\n${stdout}`);

  const endpoint: Endpoint = {
    label: 'gateway',
    host: '127.0.0.1',
    port: pgPort,
    user: 'bench',
    database: 'bench',
    env: { PGPASSWORD: credential },
  };
  const { stdout: probe } = await exec('psql', psqlArgs(endpoint, '-At', '-c', 'SELECT count(*) FROM pgbench_branches'), {
    env: endpoint.env,
  }).catch(async (e: unknown) => {
    throw new BenchError(`a query through the gateway failed: ${String(e)}\ngateway log:\n${await gateway?.logTail()}`);
  });
  if (probe.trim() !== String(SCALE))
    throw new BenchError(`through the gateway, pgbench_branches has '${probe.trim()}' rows, expected ${SCALE}`);
  return endpoint;
}

async function main(): Promise<void> {
  await preflight();
  tmp = await mkdtemp(join(tmpdir(), 'drawbridge-bench-'));

  log(`creating database ${DB} (pgbench scale ${SCALE})`);
  const admin = { ...direct, database: 'postgres' };
  await exec('psql', psqlArgs(admin, '-c', `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`));
  await exec('psql', psqlArgs(admin, '-c', `CREATE DATABASE ${DB}`));
  databaseCreated = true;
  await exec('pgbench', ['-i', '-q', '-s', String(SCALE), '-h', PG.host, '-p', String(PG.port), '-U', PG.user, DB], { timeoutMs: 600_000 });

  const relayed = await startRelay();
  const through = await startGateway(tmp);
  const gw = gateway as GatewayProcess;
  const idleRssBytes = gw.memory().rssBytes;
  const rows: Row[] = [];

  for (const mode of ['simple', 'extended'] as const) {
    for (const clients of [1, 8]) {
      const workload = `pgbench -S ${mode}, ${clients} client${clients > 1 ? 's' : ''}`;
      log(`${workload}: direct, bare relay, gateway (${SECONDS} s each)`);
      const d = await pgbench(direct, mode, clients);
      const r = await pgbench(relayed, mode, clients);
      const g = await pgbench(through, mode, clients);
      rows.push({ workload, kind: 'pgbench', direct: d, relay: r, gateway: g, ratio: g.tps / d.tps, relayRatio: r.tps / d.tps });
    }
  }

  for (const how of ['select', 'copy'] as const) {
    const workload = how === 'select' ? `stream ${int.format(ROWS)} rows (FETCH_COUNT)` : `COPY ${int.format(ROWS)} rows TO STDOUT`;
    log(`${workload}: direct, bare relay, gateway`);
    const d = await stream(direct, how);
    const r = await stream(relayed, how);
    gw.resetPhase();
    const g = await stream(through, how);
    const peak = gw.resetPhase();
    rows.push({
      workload,
      kind: 'stream',
      direct: d,
      relay: r,
      gateway: g,
      ratio: g.rowsPerSecond / d.rowsPerSecond,
      relayRatio: r.rowsPerSecond / d.rowsPerSecond,
      gatewayPeakRssBytes: peak,
    });
  }

  if (gw.exitReason !== undefined) throw new BenchError(`the gateway ${gw.exitReason} during the run; its log:\n${await gw.logTail()}`);
  const memory = { ...gw.memory(), idleRssBytes };

  if (JSON_OUTPUT) {
    const pgbenchVersion = (await exec('pgbench', ['--version'])).stdout.trim();
    process.stdout.write(
      `${JSON.stringify(
        {
          seconds: SECONDS,
          scale: SCALE,
          streamRows: ROWS,
          environment: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, pgbench: pgbenchVersion },
          results: rows,
          gatewayMemory: memory,
        },
        null,
        2,
      )}\n`,
    );
  } else {
    process.stdout.write(`${table(rows, memory)}\n`);
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

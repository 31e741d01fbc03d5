/**
 * What an agent's `query` tool call costs, against the same statement from node-postgres
 * directly and through the gateway's PostgreSQL listener: the `mcp` part of bench/pg.bench.ts,
 * which starts the gateway, mints the credential and the service-account key, and hands them
 * here. Not a bench of its own: it needs that gateway.
 *
 * Each workload runs on each path for BENCH_SECONDS with 1 caller and with 8 concurrent ones,
 * each caller sending its next call when its last one is answered; every call's latency is
 * kept, for the mean, median and 99th percentile. A call counts only when it returned the rows
 * it should: an error, a refusal or a held statement fails the bench.
 *
 * An MCP call pays what an agent pays: an HTTP POST with the key, JSON-RPC, the tool's
 * arguments checked, the statement run by the gateway as a client of its own listener (with a
 * cursor: extended protocol), the result rendered as a text table and as JSON, and the SDK
 * client's work in this process. Node-postgres sends each statement with the simple protocol,
 * as `client.query(text)` does.
 *
 * Limits: the callers run in this process, on the machine the gateway and PostgreSQL use, so
 * the MCP client's CPU competes with the gateway's. All MCP callers are one agent (one key, one
 * grant), as parallel tool calls of one agent would be: with 8 in flight the figures include
 * how the gateway reuses the sessions it keeps per grant (`sessionsOpened` counts the logins).
 */

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import pg from 'pg';

export type McpPath = 'direct' | 'gateway pg' | 'MCP';

/** Where each path goes, and how the gateway is watched while a path runs through it. */
export interface McpTargets {
  readonly direct: pg.ClientConfig;
  /** The gateway's PostgreSQL listener, logged in with a `drawbridge grant` credential. */
  readonly gateway: pg.ClientConfig;
  /** The gateway's `/mcp`, a service account's key, and the connection its queries name. */
  readonly mcp: { readonly url: string; readonly key: string; readonly connection: string };
  /** Rows in pgbench_accounts (aid runs from 1 to this). */
  readonly accounts: number;
  readonly seconds: number;
  /** `work` with the gateway's CPU seconds while it ran. */
  readonly watch: <T>(work: () => Promise<T>) => Promise<[T, number]>;
  /** Sessions PostgreSQL has had on the bench database so far: a login through the gateway is one. */
  readonly sessions: () => Promise<number>;
  readonly log: (message: string) => void;
  readonly fail: (message: string) => Error;
}

export interface CallFigures {
  readonly calls: number;
  readonly seconds: number;
  readonly callsPerSecond: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU this process (the callers) spent per call. */
  readonly clientCpuUs: number;
  /** CPU the gateway spent per call; 0 for direct. */
  readonly gatewayCpuUs: number;
  /** Sessions PostgreSQL started on the bench database during the run: logins through the gateway. */
  readonly sessionsOpened: number;
}

export interface McpRow {
  readonly workload: string;
  readonly callers: number;
  readonly direct: CallFigures;
  readonly gateway: CallFigures;
  readonly mcp: CallFigures;
  /** gateway pg / direct, calls per second. */
  readonly gatewayRatio: number;
  /** MCP / direct, calls per second. */
  readonly mcpRatio: number;
}

interface Workload {
  readonly name: string;
  readonly rows: number;
  readonly sql: (accounts: number) => string;
}

const random = (n: number) => 1 + Math.floor(Math.random() * n);

const WORKLOADS: readonly Workload[] = [
  { name: 'point SELECT', rows: 1, sql: (n) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${random(n)}` },
  {
    name: '100-row SELECT',
    rows: 100,
    sql: (n) => {
      const from = random(n - 99);
      return `SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid BETWEEN ${from} AND ${from + 99}`;
    },
  },
];

const CALLERS = [1, 8] as const;
/**
 * Before anything is timed, each path runs each workload with all callers this long: the MCP
 * path (HTTP, the SDK, zod, the gateway as client and server of its own listener) takes seconds
 * of calls to reach its rate: one caller on a fresh gateway got 40 to 80 calls answered in the
 * first second and 110 to 250 a second from the fifth on (the 2-core machine, busy). Then each
 * run is preceded by SETTLE_SECONDS with its own callers.
 */
const WARM_UP_SECONDS = 3;
const SETTLE_SECONDS = 1;

/** One caller: runs a statement and says how many rows came back. */
interface Caller {
  run(sql: string): Promise<number>;
  close(): Promise<void>;
}

async function pgCaller(config: pg.ClientConfig): Promise<Caller> {
  const client = new pg.Client(config);
  await client.connect();
  return {
    run: async (sql) => (await client.query(sql)).rows.length,
    close: () => client.end(),
  };
}

type ToolResult = { content?: { type: string; text?: string }[]; structuredContent?: Record<string, unknown>; isError?: boolean };

/** An agent's MCP client, connected (`initialize`) with the service account's key. */
async function agent(t: McpTargets): Promise<Client> {
  const client = new Client({ name: 'drawbridge-bench', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(t.mcp.url), { requestInit: { headers: { authorization: `Bearer ${t.mcp.key}` } } }),
  );
  return client;
}

async function mcpCaller(t: McpTargets): Promise<Caller> {
  const client = await agent(t);
  return {
    run: async (sql) => {
      const result = (await client.callTool({
        name: 'query',
        arguments: { connection: t.mcp.connection, sql, max_rows: 100 },
      })) as ToolResult;
      const rows = result.structuredContent?.['rows'];
      if (result.isError || result.structuredContent?.['status'] !== 'done' || !Array.isArray(rows))
        throw t.fail(`the query tool answered ${JSON.stringify(result).slice(0, 500)}`);
      return rows.length;
    },
    close: () => client.close(),
  };
}

/** Asks for access once, as an agent would before its first query; every caller then shares the grant. */
async function requestAccess(t: McpTargets): Promise<void> {
  const caller = await agent(t);
  try {
    const result = (await caller.callTool({
      name: 'request_access',
      arguments: { connection: t.mcp.connection, reason: 'benchmark', duration: '1h' },
    })) as ToolResult;
    if (result.structuredContent?.['status'] !== 'granted')
      throw t.fail(`request_access did not grant access at once: ${JSON.stringify(result).slice(0, 500)}`);
  } finally {
    await caller.close();
  }
}

/** Each caller calls until `seconds` have passed; every call's latency kept. */
async function drive(callers: readonly Caller[], workload: Workload, accounts: number, seconds: number, fail: McpTargets['fail']) {
  const latencies: number[] = [];
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(Math.round(seconds * 1e9));
  await Promise.all(
    callers.map(async (caller) => {
      while (process.hrtime.bigint() < deadline) {
        const sql = workload.sql(accounts);
        const t0 = process.hrtime.bigint();
        const rows = await caller.run(sql);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (rows !== workload.rows) throw fail(`${workload.name}: ${rows} rows came back for ${sql}, expected ${workload.rows}`);
      }
    }),
  );
  return { latencies, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

async function measure(t: McpTargets, path: McpPath, callers: readonly Caller[], workload: Workload): Promise<CallFigures> {
  await drive(callers, workload, t.accounts, Math.min(SETTLE_SECONDS, t.seconds), t.fail);
  const sessionsBefore = await t.sessions();
  const cpu = process.cpuUsage();
  const timed = () => drive(callers, workload, t.accounts, t.seconds, t.fail);
  const [run, gatewayCpu] = path === 'direct' ? [await timed(), 0] : await t.watch(timed);
  const used = process.cpuUsage(cpu);
  const sessionsOpened = (await t.sessions()) - sessionsBefore;
  const sorted = Float64Array.from(run.latencies).sort();
  const calls = sorted.length;
  const at = (q: number) => sorted[Math.min(calls - 1, Math.max(0, Math.ceil(q * calls) - 1))] ?? 0;
  return {
    calls,
    seconds: run.seconds,
    callsPerSecond: calls / run.seconds,
    meanMs: sorted.reduce((a, b) => a + b, 0) / calls,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    clientCpuUs: (used.user + used.system) / calls,
    gatewayCpuUs: (gatewayCpu * 1e6) / calls,
    sessionsOpened,
  };
}

/** Each workload with 1 and 8 callers: directly, through the gateway's listener, through MCP. */
export async function measureMcp(t: McpTargets): Promise<McpRow[]> {
  await requestAccess(t);
  const most = Math.max(...CALLERS);
  const open = (make: () => Promise<Caller>) => Promise.all(Array.from({ length: most }, make));
  const paths: [McpPath, Caller[]][] = [
    ['direct', await open(() => pgCaller(t.direct))],
    ['gateway pg', await open(() => pgCaller(t.gateway))],
    ['MCP', await open(() => mcpCaller(t))],
  ];
  try {
    t.log(`warming up: each workload on each path, ${most} callers, ${Math.min(WARM_UP_SECONDS, t.seconds)} s each`);
    for (const workload of WORKLOADS) {
      for (const [, callers] of paths) await drive(callers, workload, t.accounts, Math.min(WARM_UP_SECONDS, t.seconds), t.fail);
    }
    const rows: McpRow[] = [];
    for (const workload of WORKLOADS) {
      for (const n of CALLERS) {
        t.log(`${workload.name}, ${n} caller${n > 1 ? 's' : ''}: direct, gateway pg, MCP (${t.seconds} s each)`);
        const figures: CallFigures[] = [];
        for (const [path, callers] of paths) figures.push(await measure(t, path, callers.slice(0, n), workload));
        const [d, g, m] = figures as [CallFigures, CallFigures, CallFigures];
        rows.push({
          workload: workload.name,
          callers: n,
          direct: d,
          gateway: g,
          mcp: m,
          gatewayRatio: g.callsPerSecond / d.callsPerSecond,
          mcpRatio: m.callsPerSecond / d.callsPerSecond,
        });
      }
    }
    return rows;
  } finally {
    for (const [, callers] of paths) await Promise.all(callers.map((c) => c.close().catch(() => undefined)));
  }
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const ms = (n: number) => (n >= 10 ? n.toFixed(1) : n.toFixed(2));

function cell(f: CallFigures): string {
  return `${int.format(f.callsPerSecond)}/s ${ms(f.meanMs)}/${ms(f.p50Ms)}/${ms(f.p99Ms)}`;
}

export function mcpTable(rows: readonly McpRow[]): string {
  const width = 30;
  const pct = (r: number) => `${int.format(r * 100)}%`.padStart(15);
  const us = (n: number) => int.format(n);
  return [
    `${'MCP query against node-postgres'.padEnd(34)}${'direct'.padEnd(width)}${'gateway pg'.padEnd(width)}${'MCP'.padEnd(width)} gateway/direct     MCP/direct`,
    ...rows.map((r) => {
      const workload = `${r.workload}, ${r.callers} caller${r.callers > 1 ? 's' : ''}`;
      const cpu = `gateway CPU per call ${us(r.gateway.gatewayCpuUs)} µs (pg), ${us(r.mcp.gatewayCpuUs)} µs (MCP); callers' ${us(r.direct.clientCpuUs)}, ${us(r.gateway.clientCpuUs)}, ${us(r.mcp.clientCpuUs)} µs`;
      const logins = `sessions opened ${int.format(r.gateway.sessionsOpened)} (pg), ${int.format(r.mcp.sessionsOpened)} (MCP)`;
      return `${workload.padEnd(34)}${cell(r.direct).padEnd(width)}${cell(r.gateway).padEnd(width)}${cell(r.mcp).padEnd(width)}${pct(r.gatewayRatio)}${pct(r.mcpRatio)}   ${cpu}; ${logins}`;
    }),
    '',
    'Each cell: calls/s, then latency mean/p50/p99 in ms. Ratios: calls/s over direct. direct and gateway pg: node-postgres, client.query(text);',
    'MCP: the SDK client over streamable HTTP, the query tool (max_rows 100), one service account and one grant for all callers.',
    "gateway CPU per call: the gateway process's user and system time (/proc, 10 ms ticks) over the calls; callers': this process's, direct, pg, MCP.",
    'sessions opened: sessions PostgreSQL started on the bench database during the run, each a login through the gateway.',
  ].join('\n');
}

/**
 * What the guardrails cost per statement, in-process, without sockets: microseconds to
 * classify a statement (libpg-query), to decide it (Cedar, the default pack), and to go through
 * the `PolicyGuard` the gateway uses, with a cold and with a warm verdict cache.
 *
 * The statements are a mix of what clients send: pgbench's select-only SELECT (also the SELECT
 * of its TPC-B script), the TPC-B UPDATE and INSERT, a join over a CTE, and an ALTER TABLE (a
 * DDL the default pack refuses, so that the mix has a refusal). Every sample uses other literal
 * values, as pgbench does; literals do not change a statement's shape, so they do not defeat
 * the cache.
 *
 * - classify: `classify(text)` alone.
 * - decide: `engine.decide(...)` alone, on the statement already classified.
 * - guard, cold: `guard.decide(...)` on a guard that has never seen the shape (a new guard per
 *   sample): shape + classify + decide + storing the verdict.
 * - guard, cached: the same guard again with new literals: shape + lookup. UPDATE, DELETE and
 *   MERGE are not cached by shape (whether a WHERE filters may depend on its literals): for
 *   the UPDATE this is shape + classify + a lookup by classification, without Cedar.
 *
 * Each call is timed on its own with `process.hrtime.bigint()` (about 0.1 µs of the figure is
 * the timer), after a warm-up, so that a p99 can be read. One thread, nothing else in flight:
 * the floor of what a statement costs the gateway, not a throughput.
 *
 * Run alone: node_modules/.bin/node bench/policy.bench.ts [--json]; `npm run bench` runs it too (bench/pg.bench.ts).
 */
import { DEFAULT_ACCESS_POLICY, systemClock, verifiedGrant, verifiedPrincipal, type Verdict } from '../src/core/index.ts';
import { PolicyEngine, type PolicyRequest } from '../src/policy/cedar/engine.ts';
import { PolicyGuard } from '../src/policy/guard.ts';
import { classify, initClassifier } from '../src/policy/sql/pg-classifier.ts';
import type { SessionInfo } from '../src/session/pipeline.ts';

const WARMUP = 300;
const SAMPLES = 2000;

/** Mean and 99th percentile of one measurement, in microseconds. */
export interface Micros {
  readonly meanUs: number;
  readonly p99Us: number;
}

export interface PolicyStatementFigures {
  readonly statement: string;
  /** The guard's verdict under the default pack. */
  readonly verdict: Verdict['outcome'];
  readonly classify: Micros;
  readonly decide: Micros;
  readonly guardCold: Micros;
  readonly guardCached: Micros;
}

export interface PolicyFigures {
  readonly samplesPerStatement: number;
  /** One-off costs at start: loading the parser's WASM and the default pack. */
  readonly startup: { readonly initClassifierMs: number; readonly defaultPackMs: number };
  readonly statements: readonly PolicyStatementFigures[];
  /** Every sample of every statement together (each statement weighs the same). */
  readonly mix: Omit<PolicyStatementFigures, 'statement' | 'verdict'>;
}

/** `i` varies the literals from one sample to the next. */
const MIX: readonly { readonly name: string; readonly verdict: Verdict['outcome']; readonly text: (i: number) => string }[] = [
  {
    name: 'pgbench -S / TPC-B SELECT',
    verdict: 'allow',
    text: (i) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid(i)};`,
  },
  {
    name: 'TPC-B UPDATE',
    verdict: 'allow',
    text: (i) => `UPDATE pgbench_accounts SET abalance = abalance + ${delta(i)} WHERE aid = ${aid(i)};`,
  },
  {
    name: 'TPC-B INSERT',
    verdict: 'allow',
    text: (i) =>
      `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${1 + (i % 100)}, ${1 + (i % 10)}, ${aid(i)}, ${delta(i)}, CURRENT_TIMESTAMP);`,
  },
  {
    name: 'join with a CTE',
    verdict: 'allow',
    text: (i) =>
      `WITH recent AS (SELECT aid, sum(delta) AS total FROM pgbench_history WHERE mtime > now() - interval '${1 + (i % 24)} hours' GROUP BY aid) ` +
      `SELECT a.aid, a.abalance, r.total, b.bbalance FROM pgbench_accounts a JOIN recent r ON r.aid = a.aid ` +
      `JOIN pgbench_branches b ON b.bid = a.bid WHERE b.bid = ${1 + (i % 10)} ORDER BY r.total DESC LIMIT ${10 + (i % 90)}`,
  },
  {
    name: 'DDL (ALTER TABLE, refused)',
    verdict: 'deny',
    text: (i) => `ALTER TABLE pgbench_history ADD COLUMN note text DEFAULT 'note ${i}'`,
  },
];

function aid(i: number): number {
  return 1 + ((i * 7919) % 1_000_000);
}

function delta(i: number): number {
  return ((i * 37) % 10_001) - 5000;
}

function session(): SessionInfo {
  const now = systemClock.now();
  const principal = verifiedPrincipal('bench', 'user');
  return {
    id: 'bench',
    protocol: 'postgres',
    grant: verifiedGrant({ id: 'bench', principal, groups: [], connection: 'bench', expiresAt: now + 3_600_000 }),
    connection: {
      name: 'bench',
      type: 'postgres',
      host: '127.0.0.1',
      port: 5432,
      database: 'bench',
      user: 'postgres',
      password: undefined,
      tls: 'disable',
      ca: undefined,
      access: DEFAULT_ACCESS_POLICY,
    },
    clientAddress: '127.0.0.1',
    startedAt: now,
  };
}

const MEASURES = ['classify', 'decide', 'guardCold', 'guardCached'] as const;
type Measure = (typeof MEASURES)[number];
type Runners = Record<Measure, (i: number) => unknown>;

/** Times `run(i)` for i in [WARMUP, WARMUP + SAMPLES), each call on its own, in µs. */
function time(run: (i: number) => unknown): Float64Array {
  const samples = new Float64Array(SAMPLES);
  for (let i = 0; i < SAMPLES; i++) {
    const started = process.hrtime.bigint();
    run(WARMUP + i);
    samples[i] = Number(process.hrtime.bigint() - started) / 1000;
  }
  return samples;
}

function micros(samples: Float64Array): Micros {
  const sorted = Float64Array.from(samples).sort();
  const sum = sorted.reduce((a, b) => a + b, 0);
  return { meanUs: sum / sorted.length, p99Us: sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] ?? 0 };
}

function summary(samples: Record<Measure, Float64Array>): Record<Measure, Micros> {
  return Object.fromEntries(MEASURES.map((m) => [m, micros(samples[m])])) as Record<Measure, Micros>;
}

function concat(parts: readonly Float64Array[]): Float64Array {
  const all = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

export async function measurePolicy(): Promise<PolicyFigures> {
  let started = performance.now();
  await initClassifier();
  const initClassifierMs = performance.now() - started;
  started = performance.now();
  const engine = PolicyEngine.defaultPack();
  const defaultPackMs = performance.now() - started;

  const info = session();
  const principal: PolicyRequest['principal'] = { name: 'bench', kind: 'user', groups: [] };
  const connection: PolicyRequest['connection'] = { name: 'bench', type: 'postgres' };
  const count = WARMUP + SAMPLES;

  const prepared = MIX.map(({ name, verdict, text }): { name: string; verdict: Verdict['outcome']; run: Runners } => {
    const texts = Array.from({ length: count }, (_, i) => text(i));
    const classes = texts.map((t) => {
      const c = classify(t);
      const first = c.statements[0];
      if (c.parseError !== undefined || first === undefined) throw new Error(`${name} does not parse: ${c.parseError ?? 'no statement'}`);
      return first;
    });
    const freshGuards = Array.from({ length: count }, () => new PolicyGuard(() => engine, systemClock));
    const warmGuard = new PolicyGuard(() => engine, systemClock);
    const got = warmGuard.decide(info, { kind: 'query', text: texts[0]! });
    // A figure for a path the gateway would not take is no figure: check the verdict first.
    if (got.outcome !== verdict) throw new Error(`${name}: the default pack answered ${got.outcome}, expected ${verdict}`);
    const run: Runners = {
      classify: (i) => classify(texts[i]!),
      decide: (i) => engine.decide({ principal, connection, statement: classes[i]!, statementCount: 1, now: systemClock.now() }),
      guardCold: (i) => freshGuards[i]!.decide(info, { kind: 'query', text: texts[i]! }),
      guardCached: (i) => warmGuard.decide(info, { kind: 'query', text: texts[i]! }),
    };
    return { name, verdict, run };
  });

  // Warm every path up before timing any (JIT, and the WASM tiers of both modules).
  for (const { run } of prepared) for (const m of MEASURES) for (let i = 0; i < WARMUP; i++) run[m](i);

  const measured = prepared.map(({ name, verdict, run }) => ({
    name,
    verdict,
    samples: Object.fromEntries(MEASURES.map((m) => [m, time(run[m])])) as Record<Measure, Float64Array>,
  }));
  const mix = Object.fromEntries(MEASURES.map((m) => [m, concat(measured.map((s) => s.samples[m]))])) as Record<Measure, Float64Array>;

  return {
    samplesPerStatement: SAMPLES,
    startup: { initClassifierMs, defaultPackMs },
    statements: measured.map(({ name, verdict, samples }) => ({ statement: name, verdict, ...summary(samples) })),
    mix: summary(mix),
  };
}

export function policyTable(figures: PolicyFigures): string {
  const us = (m: Micros): string => `${m.meanUs.toFixed(1)} / ${m.p99Us.toFixed(1)}`.padEnd(18);
  const line = (name: string, verdict: string, f: PolicyFigures['mix']): string =>
    `${name.padEnd(30)}${verdict.padEnd(8)}${us(f.classify)}${us(f.decide)}${us(f.guardCold)}${us(f.guardCached)}`;
  return [
    `${'guardrails in-process, µs'.padEnd(30)}${'verdict'.padEnd(8)}${'classify'.padEnd(18)}${'decide'.padEnd(18)}${'guard, cold'.padEnd(18)}guard, cached`,
    ...figures.statements.map((s) => line(s.statement, s.verdict, s)),
    line('mix (all of the above)', '', figures.mix),
    '',
    `µs per statement, mean / p99 over ${figures.samplesPerStatement} samples each, one thread; the TPC-B UPDATE is cached by classification, not by shape (cached = classify + lookup).`,
    `startup: initClassifier() ${figures.startup.initClassifierMs.toFixed(0)} ms, PolicyEngine.defaultPack() ${figures.startup.defaultPackMs.toFixed(0)} ms`,
  ].join('\n');
}

if (import.meta.main) {
  const figures = await measurePolicy();
  process.stdout.write(process.argv.includes('--json') ? `${JSON.stringify(figures, null, 2)}\n` : `${policyTable(figures)}\n`);
}

/**
 * `drawbridge sessions list | show | replay` for auditors on the gateway's host: who connected to
 * what, when and for how long, and what each session ran, in order, with each statement's outcome
 * (refused by policy, failed, ran), its time and its rows. Statement texts and errors are as
 * recorded: masked for masked sessions. Readable tables on a terminal (coloured when stdout is
 * one, through the pager when longer than the screen: cli/pager.ts, `--no-pager`), `--json` for
 * scripts. `drawbridge sessions prune` applies the recording retention limits
 * once, as the local administrator (recording/retention.ts).
 */

import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { StoreAuditLog } from '../audit/audit-log.ts';
import { systemClock } from '../core/index.ts';
import { formatDuration, parseDuration, pointInTime } from '../core/duration.ts';
import type { RecordedResult } from '../recording/result-sample.ts';
import {
  applyRetention,
  describeLimits,
  formatBytes,
  hasLimits,
  type RetentionLimits,
  type RetentionReport,
} from '../recording/retention.ts';
import type { SessionRecord, StatementRecord, Store } from '../store/index.ts';
import { options, optionsAndArguments, UsageError, withLocalStore } from './args.ts';
import { columnWidths, table } from './identity.ts';
import { pagedOutput, type Output } from './pager.ts';

export async function runSessions(args: readonly string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case 'list':
      return list(rest);
    case 'show':
      return show(rest, 'table');
    case 'replay':
      return show(rest, 'transcript');
    case 'prune':
      return prune(rest);
    default:
      throw new UsageError(verb ? `unknown sessions verb "${verb}"` : 'sessions needs a verb: list, show, replay or prune');
  }
}

const color = (code: number) => (text: string) => (process.stdout.isTTY && !process.env['NO_COLOR'] ? `\x1b[${code}m${text}\x1b[0m` : text);
const dim = color(2);
const red = color(31);
const green = color(32);
const cyan = color(36);

const iso = (ms: number): string => new Date(ms).toISOString();
const clock = (ms: number): string => iso(ms).replace('T', ' ').slice(0, 19);

async function list(args: readonly string[]): Promise<number> {
  const values = options(args, {
    config: { type: 'string' },
    principal: { type: 'string' },
    connection: { type: 'string' },
    since: { type: 'string' },
    before: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
    'no-pager': { type: 'boolean' },
  });
  if (!values.config) throw new UsageError('sessions list needs --config FILE');
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--limit must be 1 to 1000');
  const before = values.before === undefined ? undefined : cursor(values.before);
  const sessions = await withLocalStore(values.config, (store) =>
    store.listSessions({
      principal: values.principal,
      connection: values.connection,
      since: values.since === undefined ? undefined : pointInTime(values.since, Date.now()),
      before,
      limit,
    }),
  );
  const next = sessions.length === limit ? `${sessions.at(-1)!.startedAt}:${sessions.at(-1)!.id}` : null;
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ sessions, next })}\n`);
    return 0;
  }
  if (sessions.length === 0) {
    process.stdout.write('no sessions\n');
    return 0;
  }
  const rows = sessions.map((s) => [
    s.id,
    s.principal,
    s.connection,
    clock(s.startedAt),
    s.endedAt === undefined ? 'live' : formatDuration(s.endedAt - s.startedAt),
    s.endReason ?? '',
  ]);
  const out = pagedOutput({ off: values['no-pager'] });
  out.write(table(['SESSION', 'PRINCIPAL', 'CONNECTION', 'STARTED (UTC)', 'DURATION', 'END'], rows));
  if (next) out.write(dim(`more: add --before ${next}\n`));
  await out.close();
  return 0;
}

function cursor(text: string): { startedAt: number; id: string } {
  const m = /^(\d+):(.+)$/.exec(text);
  if (!m) throw new UsageError(`--before takes the cursor that "sessions list" printed (got "${text}")`);
  return { startedAt: Number(m[1]), id: m[2]! };
}

async function show(args: readonly string[], as: 'table' | 'transcript'): Promise<number> {
  const { values, positionals } = optionsAndArguments(args, {
    config: { type: 'string' },
    json: { type: 'boolean' },
    pace: { type: 'boolean' },
    rows: { type: 'string' },
    'no-pager': { type: 'boolean' },
  });
  if (!values.config) throw new UsageError(`sessions ${as === 'table' ? 'show' : 'replay'} needs --config FILE`);
  const [id] = positionals;
  if (!id || positionals.length > 1) throw new UsageError(`sessions ${as === 'table' ? 'show' : 'replay'} needs one SESSION id`);
  const rows = values.rows === undefined ? 10 : Number(values.rows);
  if (!Number.isInteger(rows) || rows < 0) throw new UsageError('--rows must be a whole number');
  const found = await withLocalStore(values.config, async (store) => {
    const session = await store.getSession(id);
    if (session === undefined) return false;
    // A page of statements at a time, written as it comes: memory does not grow with the session.
    const statements = statementPages(store, id);
    if (values.json) {
      await put(process.stdout, `{"session":${JSON.stringify(session)},"statements":[`);
      let first = true;
      for await (const page of statements) {
        await put(process.stdout, `${first ? '' : ','}${page.map((s) => JSON.stringify(s)).join(',')}`);
        first = false;
      }
      await put(process.stdout, ']}\n');
      return true;
    }
    // A paced replay is watched as it plays: never held back for a pager.
    const out = pagedOutput({ off: values['no-pager'] || values.pace });
    try {
      if (as === 'table') await statementTable(out, session, statements);
      else await transcript(out, session, statements, values.pace === true, rows);
    } finally {
      await out.close();
    }
    return true;
  });
  if (!found) {
    process.stderr.write(`drawbridge: no session ${id}\n`);
    return 1;
  }
  return 0;
}

/** Writes, then waits while the output holds more than it takes at once (a slow reader, the pager): memory stays flat. */
async function put(out: NodeJS.WritableStream, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

/** Statements read from the store at a time. */
const STATEMENT_PAGE = 1000;

/** A session's statements in seq order, a page at a time. */
async function* statementPages(store: Store, id: string): AsyncGenerator<StatementRecord[]> {
  for (let after: number | undefined; ;) {
    const page = await store.listStatements(id, { afterSeq: after, limit: STATEMENT_PAGE });
    if (page.length > 0) yield page;
    if (page.length < STATEMENT_PAGE) return;
    after = page.at(-1)!.seq;
  }
}

/** One line per statement under one header; a column widens when a later page needs it to. */
async function statementTable(out: Output, session: SessionRecord, pages: AsyncIterable<readonly StatementRecord[]>): Promise<void> {
  out.write(header(session));
  const head = ['#', 'AT', 'TOOK', 'OUTCOME', 'ROWS', 'STATEMENT', 'ERROR'];
  let widths: number[] | undefined;
  for await (const page of pages) {
    if (out.quit) return;
    const lines = page.map((s) => [
      String(s.seq),
      `+${seconds(s.startedAt - session.startedAt)}`,
      `${s.durationMs.toFixed(1)} ms`,
      s.outcome,
      s.rows === undefined ? '' : String(s.rows),
      oneLine(s.text, 80),
      s.errorMessage ? `${s.errorCode ?? ''} ${s.errorMessage}`.trim() : '',
    ]);
    const text = table(head, lines, widths);
    // The header once, at the top.
    await put(out, widths === undefined ? text : text.slice(text.indexOf('\n') + 1));
    widths = columnWidths(head, lines, widths);
  }
  if (widths === undefined) out.write('no statements\n');
}

/**
 * Deletes the recordings past the configured limits (`recording.retention`), or past `--older-than`
 * instead when given, once; `--dry-run` says what would go and deletes nothing.
 */
async function prune(args: readonly string[]): Promise<number> {
  const values = options(args, {
    config: { type: 'string' },
    'older-than': { type: 'string' },
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (!values.config) throw new UsageError('sessions prune needs --config FILE');
  let olderThan: number | undefined;
  if (values['older-than'] !== undefined) {
    try {
      olderThan = parseDuration(values['older-than']);
    } catch (error) {
      throw new UsageError(`--older-than: ${(error as Error).message}`);
    }
  }
  const dryRun = values['dry-run'] === true;
  const configFile = values.config;
  const report = await withLocalStore(configFile, async (store, config) => {
    const limits: RetentionLimits = olderThan !== undefined ? { maxAgeMs: olderThan } : config.recording.retention;
    if (!hasLimits(limits)) {
      throw new UsageError(
        `nothing to prune by: ${configFile} sets neither recording.retention.max_age nor max_size (recordings are kept forever); give --older-than DURATION`,
      );
    }
    const audit = new StoreAuditLog(store, systemClock);
    try {
      return await applyRetention(store, audit, systemClock, limits, { actor: 'local-admin', dryRun });
    } finally {
      await audit.close();
    }
  });
  process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : describePrune(report));
  return 0;
}

function describePrune(r: RetentionReport): string {
  const limits = describeLimits(r.limits);
  const held = r.usage === undefined ? '' : `; the recordings hold ${formatBytes(r.usage.bytes)}`;
  if (r.sessions === 0) return `nothing to delete: no ended session is past ${limits}${held}\n`;
  const what = `${r.sessions} ended session${r.sessions === 1 ? '' : 's'} (${r.statements} statement${r.statements === 1 ? '' : 's'}, ${formatBytes(r.bytes)})`;
  const span = `started from ${iso(r.oldestStartedAt!)}, ended up to ${iso(r.newestEndedAt!)}`;
  const lines = [`${r.dryRun ? 'would delete' : 'deleted'} ${what} by ${r.reason} (${limits}${held}): ${span}`];
  if (r.dryRun) lines.push(dim('nothing was deleted (--dry-run)'));
  else lines.push(dim('on record in the audit log as recording.deleted; the audit log itself is never deleted'));
  if (r.stillOverLimit) lines.push(`the recordings are still over max_size: live sessions hold the rest`);
  return `${lines.join('\n')}\n`;
}

function header(s: SessionRecord): string {
  const end = s.endedAt === undefined ? 'still live' : `ended ${iso(s.endedAt)} (${s.endReason ?? 'no reason recorded'})`;
  return `session ${s.id}: ${s.principal} on ${s.connection} (${s.protocol}) from ${s.clientAddress}\nstarted ${iso(s.startedAt)}, ${end}; grant ${s.grantId}\n\n`;
}

/** The session as its client saw it, statement by statement; with `pace`, at the recorded gaps (at most 2 s each). */
async function transcript(
  out: Output,
  s: SessionRecord,
  pages: AsyncIterable<readonly StatementRecord[]>,
  pace: boolean,
  rows: number,
): Promise<void> {
  const prompt = `${s.principal}@${s.connection}=>`;
  out.write(dim(`-- ${s.id}: ${s.principal} on ${s.connection} from ${s.clientAddress}, ${iso(s.startedAt)}\n`));
  let last = s.startedAt;
  for await (const st of statementsOf(pages)) {
    if (out.quit) return;
    if (pace) await sleep(Math.min(2000, Math.max(0, st.startedAt - last)));
    last = st.startedAt;
    const at = `[+${seconds(st.startedAt - s.startedAt)}]`;
    let text = `${dim(at)} ${cyan(prompt)} ${st.text.trimEnd().replace(/\n/g, `\n${' '.repeat(at.length + 1)}`)}\n`;
    const pad = ' '.repeat(at.length + 1);
    const took = `${st.durationMs.toFixed(1)} ms`;
    if (st.outcome === 'ok') {
      text += `${pad}${green('ok')}${st.rows === undefined ? '' : `, ${st.rows} row${st.rows === 1 ? '' : 's'}`}, ${took}\n`;
      if (st.result && st.result.columns.length > 0) text += resultTable(st.result, rows, pad);
    } else {
      const label = st.outcome === 'denied' ? 'REFUSED' : st.outcome === 'cancelled' ? 'CANCELLED' : 'ERROR';
      text += `${pad}${red(`${label}${st.errorCode ? ` ${st.errorCode}` : ''}`)}: ${st.errorMessage ?? ''} ${dim(`(${took})`)}\n`;
    }
    await put(out, text);
  }
  const end = s.endedAt === undefined ? 'still live' : `ended +${seconds(s.endedAt - s.startedAt)}: ${s.endReason ?? 'no reason recorded'}`;
  out.write(dim(`-- ${end}\n`));
}

async function* statementsOf(pages: AsyncIterable<readonly StatementRecord[]>): AsyncGenerator<StatementRecord> {
  for await (const page of pages) yield* page;
}

/** The first `max` rows of a recorded result, aligned like psql's, indented by `pad`. */
function resultTable(result: RecordedResult, max: number, pad: string): string {
  const shown = result.rows.slice(0, max).map((r) => r.map((v) => (v === null ? '' : oneLine(v, 60))));
  const lines = table(result.columns, shown)
    .trimEnd()
    .split('\n')
    .map((l) => `${pad}${dim('|')} ${l}`);
  const more = result.rows.length - shown.length;
  const notes = [
    ...(more > 0 ? [`${more} more row${more === 1 ? '' : 's'} recorded (--rows)`] : []),
    ...(result.truncated ? ['the recording keeps only the first part of the result'] : []),
  ];
  return `${[...lines, ...notes.map((n) => `${pad}${dim(`| (${n})`)}`)].join('\n')}\n`;
}

/** `12.345s`, or `4m02.500s` past a minute. */
function seconds(ms: number): string {
  const total = Math.max(0, ms) / 1000;
  const minutes = Math.floor(total / 60);
  const rest = (total - minutes * 60).toFixed(3);
  return minutes > 0 ? `${minutes}m${rest.padStart(6, '0')}s` : `${rest}s`;
}

function oneLine(text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

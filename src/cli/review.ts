/**
 * `drawbridge access review`: who can reach which connection, what they were granted and what they
 * used over a window, with the rights never used flagged (docs/review.md); and a reviewer's
 * decision on one principal's access to one connection:
 *
 *   drawbridge access review [--since 30d] [--until DATE] [--principal P] [--connection C] [--unused] [--json]
 *   drawbridge access review certify PRINCIPAL CONNECTION --note TEXT [--json]
 *   drawbridge access review revoke PRINCIPAL CONNECTION --note TEXT [--json]
 *
 * With `--config FILE` on the gateway's host, on its store as the local administrator (the policies
 * the config names decide "what policy allows"); without, through a running gateway's API as the
 * logged-in reviewer. A readable table on a terminal (through the pager when longer than the
 * screen), `--json` for scripts.
 */

import { StoreAuditLog } from '../audit/audit-log.ts';
import { pointInTime } from '../core/duration.ts';
import { systemClock } from '../core/index.ts';
import { Credentials } from '../identity/credentials.ts';
import { PolicyError } from '../policy/cedar/engine.ts';
import { LivePolicy } from '../policy/live-policy.ts';
import {
  AccessReview,
  decisionView,
  ReviewError,
  windowLength,
  type DecisionInput,
  type DecisionView,
  type ReviewQuery,
} from '../review/access-review.ts';
import type { ReviewReport, ReviewRow } from '../review/report.ts';
import { ApiClient } from './api-client.ts';
import { optionsAndArguments, UsageError, withLocalStore } from './args.ts';
import { table } from './identity.ts';
import { pagedOutput } from './pager.ts';

const ADMIN = 'local-admin';

export async function runReview(args: readonly string[]): Promise<number> {
  try {
    return await review(args);
  } catch (error) {
    if (!(error instanceof ReviewError)) throw error;
    if (error.code === 'invalid-window') throw new UsageError(error.message);
    process.stderr.write(`drawbridge: ${error.message}\n`);
    return 1;
  }
}

async function review(args: readonly string[]): Promise<number> {
  const { values, positionals } = optionsAndArguments(args, {
    config: { type: 'string' },
    gateway: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
    principal: { type: 'string' },
    connection: { type: 'string' },
    unused: { type: 'boolean' },
    note: { type: 'string' },
    json: { type: 'boolean' },
    'no-pager': { type: 'boolean' },
  });
  if (values.config !== undefined && values.gateway !== undefined)
    throw new UsageError('access review takes --config FILE or --gateway URL, not both');
  const [verb, ...names] = positionals;
  if (verb === undefined) {
    if (values.note !== undefined) throw new UsageError('--note is for access review certify|revoke');
    const now = Date.now();
    const when = (text: string | undefined, name: string) => {
      if (text === undefined) return undefined;
      try {
        return pointInTime(text, now);
      } catch (error) {
        throw new UsageError(`--${name}: ${(error as Error).message}`);
      }
    };
    const query: ReviewQuery = {
      since: when(values.since, 'since'),
      until: when(values.until, 'until'),
      principal: values.principal,
      connection: values.connection,
      unused: values.unused ?? false,
    };
    const report = values.config !== undefined ? await local(values.config, (review) => review.report(query)) : await remoteReport(values);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return 0;
    }
    const out = pagedOutput({ off: values['no-pager'] });
    out.write(renderReport(report));
    await out.close();
    return 0;
  }
  if (verb !== 'certify' && verb !== 'revoke') throw new UsageError(`unknown access review verb "${verb}" (certify or revoke)`);
  const [principal, connection] = names;
  if (principal === undefined || connection === undefined || names.length > 2) {
    throw new UsageError(`access review ${verb} needs PRINCIPAL CONNECTION and --note TEXT`);
  }
  if (values.note === undefined) throw new UsageError(`access review ${verb} needs --note TEXT: why the access is kept or taken away`);
  for (const filter of ['since', 'until', 'principal', 'connection', 'unused'] as const) {
    if (values[filter] !== undefined) throw new UsageError(`--${filter} is for the report, not for access review ${verb}`);
  }
  const input: DecisionInput = { principal, connection, note: values.note };
  const decided: DecisionView =
    values.config !== undefined
      ? decisionView(await local(values.config, (review) => review[verb](input, ADMIN)))
      : (await (await ApiClient.open(values.gateway)).call<DecisionView>('POST', `/api/access/review/${verb}`, input)).body;
  if (values.json) {
    process.stdout.write(`${JSON.stringify(decided)}\n`);
    return 0;
  }
  if (decided.decision === 'certified') {
    process.stdout.write(`certified ${decided.principal}'s access to ${decided.connection} (${decided.id}): ${decided.note}\n`);
  } else {
    process.stdout.write(`revoked ${decided.principal}'s access to ${decided.connection} (${decided.id}): ${decided.note}\n`);
    process.stdout.write(
      decided.grantsRevoked.length === 0
        ? 'no live grant to end\n'
        : `ended ${decided.grantsRevoked.join(', ')}; their live sessions end within seconds\n`,
    );
  }
  return 0;
}

/** On the gateway's store, as the local administrator, with the policies its config names. */
async function local<T>(configFile: string, run: (review: AccessReview) => Promise<T>): Promise<T> {
  return withLocalStore(configFile, async (store, config) => {
    let policy: LivePolicy | undefined;
    try {
      policy = config.policy.enabled ? await LivePolicy.load(config.policy.files) : undefined;
    } catch (error) {
      if (error instanceof PolicyError) throw new UsageError(`cannot load the policies: ${error.message}`);
      throw error;
    }
    const audit = new StoreAuditLog(store, systemClock);
    try {
      const review = new AccessReview({
        store,
        credentials: new Credentials(store, systemClock, audit),
        audit,
        clock: systemClock,
        connections: config.connections,
        policy: () => policy?.engine,
      });
      return await run(review);
    } finally {
      await audit.close();
    }
  });
}

async function remoteReport(values: {
  gateway?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  principal?: string | undefined;
  connection?: string | undefined;
  unused?: boolean | undefined;
}): Promise<ReviewReport> {
  const query = new URLSearchParams();
  for (const name of ['since', 'until', 'principal', 'connection'] as const) {
    const value = values[name];
    if (value !== undefined) query.set(name, value);
  }
  if (values.unused) query.set('unused', 'true');
  const client = await ApiClient.open(values.gateway);
  const suffix = query.size > 0 ? `?${query}` : '';
  return (await client.call<ReviewReport>('GET', `/api/access/review${suffix}`)).body;
}

/** The report as a person reads it on a terminal: one line per principal and connection, then the flags. */
export function renderReport(report: ReviewReport): string {
  const { summary } = report;
  const policy = report.policy.enabled ? `policies ${report.policy.version?.slice(0, 12)}` : 'guardrails off';
  const lines = [
    `access review of ${report.since} to ${report.until} (${windowLength(report)}), ${policy}`,
    `${summary.rows} rows, ${summary.flagged} flagged, ${summary.certified} certified, ${summary.revoked} revoked${report.truncated ? '; usage is a lower bound (more distinct statements than the review reads)' : ''}`,
    '',
  ];
  if (report.rows.length === 0) return `${lines.join('\n')}\nnothing to review\n`;
  const rows = report.rows.map((r) => [
    r.principal,
    r.connection,
    access(r),
    allows(r),
    grants(r),
    used(r),
    tables(r),
    r.decision ? `${r.decision.decision} by ${r.decision.by} ${r.decision.at.slice(0, 10)}` : '—',
  ]);
  let text = `${lines.join('\n')}\n${table(['PRINCIPAL', 'CONNECTION', 'ACCESS', 'POLICY ALLOWS', 'GRANTS', 'USED', 'TABLES', 'DECISION'], rows)}`;
  text += '(policy allows: ? held for approval, kinds denied left out; tables: * written)\n';
  const flagged = report.rows.filter((r) => r.flags.length > 0);
  if (flagged.length > 0) {
    text += '\nflags (rights never used):\n';
    for (const r of flagged) {
      text += `  ${r.principal} on ${r.connection}\n`;
      for (const f of r.flags) text += `    ${f.code}: ${f.message}\n      → ${f.suggestion}\n`;
    }
  }
  return text;
}

function access(r: ReviewRow): string {
  switch (r.access.via) {
    case 'at-once':
      return `at once, ${r.access.maxDuration}`;
    case 'approval':
      return `approval (${r.access.approvers}), ${r.access.maxDuration}`;
    case 'grant-only':
      return 'grant only';
    case 'none':
      return r.account === 'disabled' ? 'none (disabled)' : 'none';
  }
}

/** `read write ddl code`, `read insert update delete?`: the kinds not denied, `?` when held for approval. */
function allows(r: ReviewRow): string {
  if (r.statements.length === 0) return '—';
  const of = new Map(r.statements.map((s) => [s.kind, s.outcome]));
  const shown = (kind: string, outcome: string | undefined) =>
    outcome === 'allow' ? kind : outcome === 'approval' ? `${kind}?` : undefined;
  const writes = ['insert', 'update', 'delete'] as const;
  const sameWrite = writes.every((k) => of.get(k) === of.get('insert'));
  const parts = [
    shown('read', of.get('read')),
    ...(sameWrite ? [shown('write', of.get('insert'))] : writes.map((k) => shown(k, of.get(k)))),
    shown('ddl', of.get('ddl')),
    shown('admin', of.get('admin')),
    shown('code', of.get('code')),
  ].filter((p) => p !== undefined);
  return parts.length === 0 ? 'nothing' : parts.join(' ');
}

function grants(r: ReviewRow): string {
  const g = r.grants;
  if (g.issued === 0 && g.live === 0) return '—';
  return `${g.issued}${g.unused > 0 ? ` (${g.unused} unused)` : ''}${g.live > 0 ? `, ${g.live} live` : ''}`;
}

function used(r: ReviewRow): string {
  const u = r.usage;
  if (u.sessions === 0) return '—';
  const categories = Object.entries(u.byCategory)
    .filter(([, n]) => n > 0)
    .map(([c, n]) => `${n} ${c}`);
  return [`${u.sessions} session${u.sessions === 1 ? '' : 's'}`, ...categories, ...(u.refused > 0 ? [`${u.refused} refused`] : [])].join(
    ', ',
  );
}

function tables(r: ReviewRow): string {
  const all = [
    ...new Set([...r.usage.tablesWritten.map((t) => `${t}*`), ...r.usage.tablesRead.filter((t) => !r.usage.tablesWritten.includes(t))]),
  ];
  if (all.length === 0) return '—';
  return all.length <= 3 ? all.join(', ') : `${all.slice(0, 3).join(', ')} +${all.length - 3}`;
}

/**
 * `drawbridge approvals …`: the approvals inbox of a running gateway, through its API as the
 * logged-in principal (or DRAWBRIDGE_TOKEN): list the requests (pending ones by default), show
 * one, approve or deny it, and `list --watch` to follow requests and decisions as they happen
 * (the API's Server-Sent Events stream). Tables on a terminal (the list through the pager when
 * it is longer than the screen), JSON with `--json` (`--watch --json`: one JSON line per event).
 *
 * Known limit: `--watch` reconnects after 2 s when the stream breaks (a gateway that restarts);
 * what happened in between is not replayed, the list printed first is not refreshed.
 */

import { ApiClient, ApiProblem } from './api-client.ts';
import { optionsAndArguments, UsageError } from './args.ts';
import { table } from './identity.ts';
import { pagedOutput } from './pager.ts';

/** An approval as the API shows it (src/approvals/view.ts). */
interface Approval {
  id: number;
  kind: 'statement' | 'access';
  status: 'pending' | 'approved' | 'denied' | 'expired' | 'cancelled';
  requester: string;
  connection: string;
  session: string | null;
  statement: string | null;
  params: (string | null)[] | null;
  policy: string | null;
  reason: string;
  approvers: string;
  preview: { rows?: number; text?: string; error?: string } | null;
  request: string | null;
  duration: string | null;
  createdAt: string;
  expiresAt: string;
  decidedAt: string | null;
  decidedBy: string | null;
  decisionReason: string | null;
  url: string;
}

const STATUSES = ['pending', 'approved', 'denied', 'expired', 'cancelled'];

const SPEC = {
  gateway: { type: 'string' },
  status: { type: 'string' },
  all: { type: 'boolean' },
  limit: { type: 'string' },
  before: { type: 'string' },
  watch: { type: 'boolean' },
  reason: { type: 'string' },
  json: { type: 'boolean' },
  'no-pager': { type: 'boolean' },
} as const;

export async function runApprovals(args: readonly string[]): Promise<number> {
  const [verb, ...rest] = args;
  const { values, positionals } = optionsAndArguments(rest, SPEC);
  switch (verb) {
    case 'list':
      if (positionals.length > 0) throw new UsageError(`approvals list takes no argument (got "${positionals[0]}")`);
      return list(values);
    case 'show':
      return show(idOf(verb, positionals), values);
    case 'approve':
    case 'deny':
      return decide(verb, idOf(verb, positionals), values);
    default:
      throw new UsageError(verb === undefined ? 'approvals needs a verb: list, show, approve or deny' : `unknown approvals verb "${verb}"`);
  }
}

type Values = ReturnType<typeof optionsAndArguments<typeof SPEC>>['values'];

function idOf(verb: string, positionals: readonly string[]): number {
  const text = positionals[0]?.replace(/^#/, '');
  if (positionals.length !== 1 || !/^\d{1,15}$/.test(text ?? ''))
    throw new UsageError(`approvals ${verb} takes one approval number (42 or #42)`);
  return Number(text);
}

async function list(values: Values): Promise<number> {
  if (values.status !== undefined && !STATUSES.includes(values.status)) {
    throw new UsageError(`--status is one of ${STATUSES.join(', ')}`);
  }
  if (values.status !== undefined && values.all) throw new UsageError('--status and --all do not go together');
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--limit must be 1 to 1000');
  const status = values.all ? undefined : (values.status ?? 'pending');
  const client = await ApiClient.open(values.gateway);
  const query = new URLSearchParams({
    ...(status ? { status } : {}),
    limit: String(limit),
    ...(values.before ? { before: values.before } : {}),
  });
  const { body } = await client.call<{ approvals: Approval[]; next: string | null }>('GET', `/api/approvals?${query}`);
  if (values.json && !values.watch) {
    process.stdout.write(`${JSON.stringify(body)}\n`);
    return 0;
  }
  if (!values.json) {
    // A list that is followed by a watch is written as it is: the pager would hold the events.
    const out = pagedOutput({ off: values['no-pager'] || values.watch });
    if (body.approvals.length === 0) out.write(status ? `no ${status} approvals\n` : 'no approvals\n');
    else {
      out.write(
        table(
          ['#', 'STATUS', 'REQUESTER', 'CONNECTION', 'REQUEST', 'BLAST RADIUS', 'CREATED (UTC)'],
          body.approvals.map((a) => [
            String(a.id),
            a.status,
            a.requester,
            a.connection,
            cut(what(a), 60),
            a.preview?.text ?? (a.preview?.error ? 'unknown' : ''),
            when(a.createdAt),
          ]),
        ),
      );
      if (body.next) out.write(`more: add --before ${body.next}\n`);
    }
    await out.close();
  }
  if (!values.watch) return 0;
  return watch(client, values.json ?? false);
}

/** Follows the stream until Ctrl-C: one line per request and decision. */
async function watch(client: ApiClient, json: boolean): Promise<number> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  if (!json) process.stderr.write('watching for requests and decisions (Ctrl-C to stop)\n');
  try {
    while (!stop.signal.aborted) {
      try {
        for await (const { event, data } of client.events('/api/approvals/stream', stop.signal)) {
          if (event !== 'approval') continue;
          process.stdout.write(json ? `${data}\n` : `${eventLine(JSON.parse(data) as Approval)}\n`);
        }
      } catch (error) {
        // A refusal (the token expired, say) will not get better by trying again.
        if (!(error instanceof ApiProblem) || error.status !== 0) throw error;
        process.stderr.write(`drawbridge: ${error.message}\n`);
      }
      if (stop.signal.aborted) break;
      process.stderr.write('drawbridge: the stream ended; reconnecting in 2 s\n');
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function show(id: number, values: Values): Promise<number> {
  const client = await ApiClient.open(values.gateway);
  const { body: a } = await client.call<Approval>('GET', `/api/approvals/${id}`);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(a)}\n`);
    return 0;
  }
  process.stdout.write(describe(a));
  return 0;
}

async function decide(verb: 'approve' | 'deny', id: number, values: Values): Promise<number> {
  const reason = values.reason?.trim();
  if (verb === 'deny' && !reason) throw new UsageError('approvals deny needs --reason TEXT, which the requester is told');
  const client = await ApiClient.open(values.gateway);
  const { body: a } = await client.call<Approval>('POST', `/api/approvals/${id}/${verb}`, reason ? { reason } : {});
  if (values.json) {
    process.stdout.write(`${JSON.stringify(a)}\n`);
    return 0;
  }
  if (a.status === 'approved') {
    process.stdout.write(
      a.kind === 'access'
        ? `approved #${a.id}: ${a.requester} picks up the credential with \`drawbridge access credential ${a.request}\`\n`
        : `approved #${a.id}: ${a.requester}'s statement runs now, once\n`,
    );
  } else {
    process.stdout.write(`denied #${a.id}: ${a.requester} is told "${a.decisionReason}"\n`);
  }
  return 0;
}

/** What is asked, on one line: the statement, or the access. */
function what(a: Approval): string {
  if (a.kind === 'access') return `access for ${a.duration ?? '?'}: ${a.reason}`;
  return (a.statement ?? '').replace(/\s+/g, ' ').trim();
}

const cut = (text: string, width: number): string => (text.length > width ? `${text.slice(0, width - 1)}…` : text);

const when = (iso: string): string => iso.replace('T', ' ').slice(0, 19);

/** One line per event of the stream. */
export function eventLine(a: Approval): string {
  const at = when(a.decidedAt ?? a.createdAt).slice(11);
  if (a.status === 'pending') {
    const preview = a.preview?.text ? ` — ${a.preview.text}` : '';
    return `${at}  #${a.id} requested by ${a.requester} on ${a.connection}: ${cut(what(a), 100)}${preview} (${a.approvers} decides: ${a.url})`;
  }
  const by = a.status === 'approved' || a.status === 'denied' ? ` by ${a.decidedBy}` : '';
  return `${at}  #${a.id} ${a.status}${by}${a.decisionReason ? `: ${a.decisionReason}` : ''}`;
}

/** `approvals show`: every field a decision needs, one per line. */
function describe(a: Approval): string {
  const lines: string[] = [`approval #${a.id}  ${a.status}  (${a.kind === 'access' ? 'access request' : 'held statement'})`];
  const field = (name: string, value: string) => lines.push(`${`${name}:`.padEnd(12)} ${value}`);
  field('requester', a.requester);
  field('connection', a.session ? `${a.connection} (session ${a.session})` : a.connection);
  if (a.kind === 'access') {
    field('duration', a.duration ?? '?');
    field('reason', a.reason);
    if (a.request) field('request', a.request);
  } else {
    lines.push('statement:');
    for (const line of (a.statement ?? '').split('\n')) lines.push(`    ${line}`);
    if (a.params && a.params.length > 0) {
      field('params', a.params.map((p, i) => `$${i + 1} = ${p === null ? 'NULL' : `'${p}'`}`).join(', '));
    }
    field('why', a.reason);
  }
  if (a.preview) field('preview', a.preview.text ? `${a.preview.text} (estimate)` : `unknown (${a.preview.error ?? 'no estimate'})`);
  field('approvers', a.approvers);
  field('created', `${when(a.createdAt)} UTC, expires ${when(a.expiresAt)} UTC`);
  if (a.decidedAt) {
    field('decided', `${a.status} by ${a.decidedBy ?? '?'} at ${when(a.decidedAt)} UTC${a.decisionReason ? `: ${a.decisionReason}` : ''}`);
  }
  field('url', a.url);
  return `${lines.join('\n')}\n`;
}

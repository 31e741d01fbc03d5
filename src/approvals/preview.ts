/**
 * The blast-radius preview of a held statement: how many rows the target's planner expects an
 * UPDATE, DELETE, MERGE or INSERT to change, from `EXPLAIN (FORMAT JSON)`, so that an approver
 * reads "about 1,204 rows would change" beside the statement.
 *
 * What it guarantees:
 * - The statement itself never runs: only EXPLAIN (without ANALYZE), in one extended-protocol
 *   query (which takes exactly one statement, so text after a `;` cannot ride along), inside a
 *   READ ONLY transaction that is rolled back, on a session whose transactions default to read
 *   only, with a statement and a lock timeout.
 * - It is bounded: about `timeoutMs` (default 2 s) from start to answer, connecting included;
 *   then the connection is dropped and the answer is `{error}`. It never throws: a preview that
 *   fails is `{error}`, and the request goes on without an estimate.
 * - It runs on its own short connection with the gateway's credentials for the target (those of
 *   the connection's config), never in the client's session.
 *
 * Known limits: the number is the planner's estimate from the table statistics, not a count: it
 * can be far off on tables that were never analyzed. Parameters bound in binary format are
 * passed as their `\x…` hex text, which the target may refuse (then there is no estimate).
 * Statements of other kinds get no preview (undefined).
 */

import pg from 'pg';
import type { Connection } from '../core/index.ts';
import type { Preview } from './view.ts';

export const DEFAULT_PREVIEW_TIMEOUT_MS = 2000;

/** Statements that EXPLAIN can tell the changed rows of: those that start so (after comments). */
const MODIFYING = /^(?:update|delete|merge|insert|with)\b/i;

/** The statement with its leading whitespace, comments and parentheses taken off. */
function lead(text: string): string {
  let rest = text;
  for (;;) {
    const trimmed = rest.replace(/^[\s(]+/, '');
    if (trimmed.startsWith('--')) {
      const end = trimmed.indexOf('\n');
      rest = end < 0 ? '' : trimmed.slice(end + 1);
    } else if (trimmed.startsWith('/*')) {
      const end = trimmed.indexOf('*/');
      rest = end < 0 ? '' : trimmed.slice(end + 2);
    } else {
      return trimmed;
    }
  }
}

export function isPreviewable(statement: string): boolean {
  return MODIFYING.test(lead(statement));
}

interface PlanNode {
  readonly 'Node Type'?: string;
  readonly 'Parent Relationship'?: string;
  readonly 'Plan Rows'?: number;
  readonly Plans?: readonly PlanNode[];
}

/**
 * The rows the plan would change: the estimated rows fed to each ModifyTable (its outer child),
 * summed over every one (a statement with data-modifying CTEs has several); undefined when the
 * plan changes nothing.
 */
export function changedRows(plan: unknown): number | undefined {
  const root = (Array.isArray(plan) ? plan[0] : plan) as { Plan?: PlanNode } | undefined;
  let total: number | undefined;
  const visit = (node: PlanNode | undefined): void => {
    if (!node) return;
    if (node['Node Type'] === 'ModifyTable') {
      const child = node.Plans?.find((p) => p['Parent Relationship'] === 'Outer') ?? node.Plans?.[0];
      total = (total ?? 0) + (child?.['Plan Rows'] ?? 0);
    }
    for (const sub of node.Plans ?? []) visit(sub);
  };
  visit(root?.Plan);
  return total;
}

export function previewText(rows: number): string {
  return `about ${rows.toLocaleString('en-US')} ${rows === 1 ? 'row' : 'rows'} would change`;
}

export interface PreviewRequest {
  readonly connection: string;
  readonly statement: string;
  readonly params?: readonly (string | null)[] | undefined;
}

/**
 * What EXPLAIN says `statement` would change on `target`; undefined for a statement of another
 * kind, `{error}` when the target could not tell in time.
 */
export async function explainPreview(
  target: Connection,
  statement: string,
  params: readonly (string | null)[] | undefined,
  timeoutMs = DEFAULT_PREVIEW_TIMEOUT_MS,
): Promise<Preview | undefined> {
  if (!isPreviewable(statement)) return undefined;
  const client = new pg.Client({
    host: target.host,
    port: target.port,
    database: target.database,
    user: target.user,
    ...(target.password !== undefined ? { password: target.password } : {}),
    ssl:
      target.tls === 'disable'
        ? false
        : {
            rejectUnauthorized: target.tls === 'verify-full',
            ...(target.ca !== undefined ? { ca: target.ca } : {}),
          },
    connectionTimeoutMillis: timeoutMs,
    application_name: 'drawbridge-preview',
    // Belt and braces: every transaction of this session is read only, and nothing waits long.
    options: `-c default_transaction_read_only=on -c statement_timeout=${timeoutMs} -c lock_timeout=${timeoutMs}`,
  });
  client.on('error', () => {}); // a connection dropped at the deadline is expected
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Preview | undefined>((resolve) => {
    timer = setTimeout(() => resolve({ error: `the target did not answer EXPLAIN within ${timeoutMs} ms` }), timeoutMs + 250);
  });
  const explained = (async (): Promise<Preview | undefined> => {
    await client.connect();
    await client.query('BEGIN READ ONLY');
    try {
      const result = await client.query({
        text: `EXPLAIN (FORMAT JSON) ${statement}`,
        values: params === undefined ? [] : [...params],
        // One statement only, whatever the text holds (the simple protocol would run them all).
        queryMode: 'extended',
      } as pg.QueryConfig);
      const plan = (result.rows[0] as Record<string, unknown> | undefined)?.['QUERY PLAN'];
      const rows = changedRows(typeof plan === 'string' ? (JSON.parse(plan) as unknown) : plan);
      // A WITH … SELECT that changes nothing: nothing to preview.
      return rows === undefined ? undefined : { rows: Math.round(rows), text: previewText(Math.round(rows)) };
    } finally {
      await client.query('ROLLBACK').catch(() => {});
    }
  })().catch((error: unknown): Preview => ({ error: `EXPLAIN failed: ${(error as Error).message}` }));
  try {
    return await Promise.race([explained, deadline]);
  } finally {
    clearTimeout(timer);
    void client.end().catch(() => {});
  }
}

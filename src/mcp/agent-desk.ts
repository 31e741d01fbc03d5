/**
 * The MCP server agents use: list the connections they may use, ask for access (with a plan or
 * without), see what they may read, run queries, follow approvals, and finish a plan. Each tool
 * is a thin verb over what the API and the data path already do (identity/access.ts,
 * approvals/, mcp/queries.ts): an agent gets no right here that psql would not have.
 *
 * The desk keeps, per principal, the grants it got through MCP (their credentials never leave
 * the gateway) and the statements it left waiting for approval, with their outcome once
 * decided. Both live in this gateway's memory: after a restart an agent asks for access again.
 */

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { Approvals } from '../approvals/approvals.ts';
import { formatDuration, parseDuration } from '../core/duration.ts';
import type { Clock, Connection } from '../core/index.ts';
import type { AuthenticatedPrincipal } from '../identity/accounts.ts';
import { AccessError, type AccessRequests, type Granted } from '../identity/access.ts';
import type { PolicyEngine } from '../policy/cedar/engine.ts';
import { decideSql } from '../policy/guard.ts';
import { parsePlanSteps, PlanError } from '../policy/plan.ts';
import type { Store } from '../store/index.ts';
import { VERSION } from '../version.ts';
import { DEFAULT_MAX_ROWS, MAX_ROWS, type AgentGrant, type GatewayQueries, type QueryOutcome } from './queries.ts';
import { renderTable } from './table.ts';

export interface AgentDeskDeps {
  readonly connections: readonly Connection[];
  readonly access: AccessRequests;
  readonly approvals: Approvals;
  readonly store: Store;
  readonly queries: GatewayQueries;
  /** The policies in force (describe_connection shows what they let the agent read); undefined: no policy. */
  readonly engine: () => PolicyEngine | undefined;
  readonly clock: Clock;
}

interface HeldQuery {
  readonly connection: string;
  readonly sql: string;
  outcome: QueryOutcome | undefined;
}

/** One JSON Schema validator for every server (each would build its own Ajv). */
const VALIDATOR = new AjvJsonSchemaValidator();

/** Statements an agent left waiting, kept per principal; the oldest go first past this many. */
const MAX_HELD = 100;
/**
 * Statements of one principal that may wait for approval at once: each keeps a session (and a
 * target connection) until it is decided, so an agent cannot tie up the target by leaving many.
 */
export const MAX_WAITING = 10;

const COLUMNS_SQL = `SELECT table_schema, table_name, column_name, data_type
  FROM information_schema.columns
 WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg\\_%'
 ORDER BY table_schema, table_name, ordinal_position`;

const planShape = z.object({
  steps: z
    .array(
      z.object({
        actions: z.array(z.string()).describe('What the step does: select, insert, update, delete, ... or read, write'),
        tables: z.array(z.string()).describe('The tables it reads or writes'),
        template: z.string().optional().describe('Optional: the one statement shape it runs, e.g. UPDATE refunds SET status = $1 WHERE id = $2'),
      }),
    )
    .describe('The operations the agent intends; the grant will allow these and nothing else'),
});

/** Each tool's arguments, made once (a server is made per request). */
const INPUT = {
  requestAccess: {
    connection: z.string(),
    reason: z.string().describe('Why: a ticket, an incident, the task'),
    duration: z.string().optional().describe('How long, e.g. 15m, 1h (default 15m, or the connection maximum if shorter)'),
    plan: planShape.optional(),
  },
  connection: { connection: z.string() },
  query: {
    connection: z.string(),
    sql: z.string(),
    max_rows: z.number().int().min(1).max(MAX_ROWS).optional().describe(`Rows to return at most (default ${DEFAULT_MAX_ROWS})`),
  },
  approval: { approval: z.number().int().min(1) },
  plan: { plan: z.string().describe('The plan id request_access gave') },
};

export class AgentDesk {
  readonly #deps: AgentDeskDeps;
  /** principal → connection → the grant it uses there. */
  readonly #grants = new Map<string, Map<string, AgentGrant>>();
  /** principal → approval id → the statement held. */
  readonly #held = new Map<string, Map<number, HeldQuery>>();
  /** principal → how many of its statements wait for a decision now. */
  readonly #waiting = new Map<string, number>();

  constructor(deps: AgentDeskDeps) {
    this.#deps = deps;
  }

  /** An MCP server for one authenticated caller: every tool acts as that principal. */
  server(who: AuthenticatedPrincipal): McpServer {
    const server = new McpServer({ name: 'drawbridge', version: VERSION }, { capabilities: { tools: {} }, jsonSchemaValidator: VALIDATOR });
    const tool = <Shape extends z.ZodRawShape>(
      name: string,
      description: string,
      input: Shape,
      run: (args: z.infer<z.ZodObject<Shape>>) => Promise<CallToolResult>,
      readOnly = false,
    ) =>
      server.registerTool(name, { description, inputSchema: input, annotations: { readOnlyHint: readOnly, openWorldHint: false } }, (async (
        args: z.infer<z.ZodObject<Shape>>,
      ) => {
        try {
          return await run(args);
        } catch (error) {
          if (error instanceof AccessError || error instanceof PlanError) return refused(error.message);
          throw error;
        }
      }) as never);

    tool('list_connections', 'The connections you may ask access to, how access is given there, and the grants you hold.', {}, async () => {
      const now = this.#deps.clock.now();
      const list = this.#usable(who).map((c) => {
        const grant = this.#grant(who, c.name, now);
        return {
          name: c.name,
          type: c.type,
          approval: c.access.approval,
          maxDuration: formatDuration(Math.min(c.access.maxDurationMs, who.maxGrantMs ?? Infinity)),
          grant: grant ? { id: grant.id, expiresAt: new Date(grant.expiresAt).toISOString() } : null,
        };
      });
      const lines = list.map(
        (c) =>
          `${c.name} (${c.type}): ${c.approval === 'required' ? 'access needs approval' : 'access granted on request'}, at most ${c.maxDuration}` +
          (c.grant ? ` — you have access until ${c.grant.expiresAt}` : ''),
      );
      return ok(lines.length > 0 ? lines.join('\n') : 'There is no connection you may ask access to.', { connections: list });
    }, true);

    tool(
      'request_access',
      'Ask for short-lived access to a connection, with a reason. With a plan, a person approves the plan once and the grant then allows what the plan covers and nothing else, until finish_plan or its time runs out.',
      INPUT.requestAccess,
      async ({ connection, reason, duration, plan }) => {
        let durationMs: number | undefined;
        try {
          durationMs = duration === undefined ? undefined : parseDuration(duration);
        } catch (error) {
          return refused((error as Error).message);
        }
        const steps = plan && parsePlanSteps(plan.steps);
        const outcome = await this.#deps.access.request(who, { connection, reason, durationMs, plan: steps });
        if (outcome.status === 'granted') {
          this.#keep(who, outcome);
          return ok(`Access to ${connection} granted until ${new Date(outcome.expiresAt).toISOString()}. Run statements with the query tool.`, {
            status: 'granted',
            grant: outcome.grant,
            expiresAt: new Date(outcome.expiresAt).toISOString(),
          });
        }
        const what = steps ? `Plan ${outcome.request}` : `Access request ${outcome.request}`;
        return ok(
          `${what} waits for approval${outcome.approval === undefined ? '' : ` #${outcome.approval} (${outcome.url})`}. ` +
            `Call approval_status with approval ${outcome.approval ?? '?'} to pick up the grant once it is approved.`,
          { status: 'pending', request: outcome.request, approval: outcome.approval ?? null, url: outcome.url ?? null, plan: steps ? outcome.request : null },
        );
      },
    );

    tool(
      'describe_connection',
      'The tables and columns you may read on a connection you have access to (read through the gateway, as your queries are).',
      INPUT.connection,
      async ({ connection }) => {
        const grant = this.#grant(who, connection, this.#deps.clock.now());
        if (!grant) return refused(noGrant(connection));
        const result = await this.#deps.queries.run(grant, COLUMNS_SQL, 10_000);
        if (result.status !== 'done') {
          return result.status === 'error' ? failed(this.#checked(who, grant, result)) : refused('reading the catalog was held for approval');
        }
        const engine = this.#deps.engine();
        const plan = (await this.#deps.store.getGrant(grant.id))?.plan;
        const tables = new Map<string, { name: string; access: 'allowed' | 'needs approval'; columns: { name: string; type: string }[] }>();
        for (const [schema, table, column, type] of result.rows) {
          const name = schema === 'public' ? table! : `${schema}.${table}`;
          let entry = tables.get(name);
          if (!entry) {
            const access = engine ? readable(engine, who, connection, `SELECT * FROM ${sqlName(name)}`, plan, this.#deps.clock.now()) : 'allowed';
            if (access === 'denied') continue;
            tables.set(name, (entry = { name, access, columns: [] }));
          }
          entry.columns.push({ name: column ?? '', type: type ?? '' });
        }
        const list = [...tables.values()];
        const text = list
          .map((t) => `${t.name}${t.access === 'allowed' ? '' : ' (reading needs approval)'}: ${t.columns.map((c) => `${c.name} ${c.type}`).join(', ')}`)
          .join('\n');
        return ok(text === '' ? `There is no table you may read on ${connection}.` : text, { tables: list });
      },
      true,
    );

    tool(
      'query',
      'Run one SQL statement on a connection you have access to, through the same guardrails, approvals, masking and recording as any client. A statement held for approval returns its approval id at once: call approval_status with it for the result.',
      INPUT.query,
      async ({ connection, sql, max_rows }) => {
        const grant = this.#grant(who, connection, this.#deps.clock.now());
        if (!grant) return refused(noGrant(connection));
        const name = who.principal.name;
        const started = await this.#deps.queries.run(grant, sql, max_rows ?? DEFAULT_MAX_ROWS);
        if (started.status !== 'pending') return outcomeResult(this.#checked(who, grant, started));
        const waiting = this.#waiting.get(name) ?? 0;
        if (waiting >= MAX_WAITING) {
          started.withdraw();
          return refused(
            `${waiting} of your statements wait for approval: follow them with approval_status before you run more (approval #${started.approval} was withdrawn)`,
          );
        }
        const held: HeldQuery = { connection, sql, outcome: undefined };
        this.#remember(who, started.approval, held);
        this.#waiting.set(name, (this.#waiting.get(name) ?? 0) + 1);
        void started.outcome.then((outcome) => {
          held.outcome = outcome;
          const left = (this.#waiting.get(name) ?? 1) - 1;
          if (left > 0) this.#waiting.set(name, left);
          else this.#waiting.delete(name);
        });
        return ok(
          `Held for approval #${started.approval} (${started.url}): ${started.message.replace(/^waiting for approval #\d+ \([^)]*\): /, '')}. ` +
            `Call approval_status with approval ${started.approval} for the result once a person decides.`,
          { status: 'pending', approval: started.approval, url: started.url },
        );
      },
    );

    tool(
      'approval_status',
      'Where one of your approvals stands: a held statement (its result once decided) or an access request or plan (its grant once approved).',
      INPUT.approval,
      async ({ approval: id }) => {
        const approval = await this.#deps.approvals.get(id);
        if (!approval || approval.requester !== who.principal.name) return refused(`there is no approval #${id} of yours`);
        const decided = approval.decidedBy === undefined ? '' : ` by ${approval.decidedBy}${approval.decisionReason ? `: ${approval.decisionReason}` : ''}`;
        if (approval.kind === 'access') {
          if (approval.status !== 'approved' || approval.requestId === undefined)
            return ok(`Approval #${id} is ${approval.status}${decided}.`, { status: approval.status });
          const request = await this.#deps.store.getAccessRequest(approval.requestId);
          const kept = request?.grantId !== undefined && this.#grant(who, approval.connection, this.#deps.clock.now())?.id === request.grantId;
          const grant = kept ? undefined : await this.#deps.access.credential(who, approval.requestId);
          if (grant) this.#keep(who, grant);
          const expiresAt = grant?.expiresAt ?? this.#grant(who, approval.connection, this.#deps.clock.now())?.expiresAt;
          return ok(
            `Approved${decided}: you have access to ${approval.connection}${expiresAt ? ` until ${new Date(expiresAt).toISOString()}` : ''}. Run statements with the query tool.`,
            { status: 'granted', connection: approval.connection, expiresAt: expiresAt ? new Date(expiresAt).toISOString() : null },
          );
        }
        const held = this.#held.get(who.principal.name)?.get(id);
        if (held?.outcome) {
          this.#held.get(who.principal.name)?.delete(id);
          return outcomeResult(held.outcome, `Approval #${id} was ${approval.status}${decided}.`);
        }
        if (approval.status === 'pending') return ok(`Approval #${id} is pending: nobody has decided yet.`, { status: 'pending' });
        return ok(`Approval #${id} is ${approval.status}${decided}.${held ? ' The statement is running.' : ''}`, {
          status: held ? 'running' : approval.status,
        });
      },
      true,
    );

    tool(
      'finish_plan',
      'Mark your plan done: its grant ends now (a plan still waiting for approval is withdrawn).',
      INPUT.plan,
      async ({ plan }) => {
        const finished = await this.#deps.access.finishPlan(who, plan);
        const mine = this.#grants.get(who.principal.name);
        for (const [connection, grant] of mine ?? []) {
          if (grant.id === finished.grant) {
            mine!.delete(connection);
            await this.#deps.queries.closeGrant(grant.id);
          }
        }
        const text =
          finished.status === 'withdrawn'
            ? `Plan ${plan} was withdrawn before anyone approved it.`
            : finished.status === 'finished'
              ? `Plan ${plan} is done; its grant has ended.`
              : `Plan ${plan} was already over.`;
        return ok(text, { status: finished.status });
      },
    );
    return server;
  }

  /** Connections this principal may ask for. */
  #usable(who: AuthenticatedPrincipal): Connection[] {
    return this.#deps.connections.filter((c) => who.connections === undefined || who.connections.includes(c.name));
  }

  #grant(who: AuthenticatedPrincipal, connection: string, now: number): AgentGrant | undefined {
    const mine = this.#grants.get(who.principal.name);
    const grant = mine?.get(connection);
    if (grant && grant.expiresAt <= now) {
      mine!.delete(connection);
      void this.#deps.queries.closeGrant(grant.id);
      return undefined;
    }
    return grant;
  }

  /**
   * A login the gateway refused (28xxx) or a session it ended (57P01: the grant was revoked or
   * expired) means the grant is over: it is forgotten, and the agent told to ask again.
   */
  #checked<T extends QueryOutcome>(who: AuthenticatedPrincipal, grant: AgentGrant, outcome: T): T {
    if (outcome.status !== 'error' || !(outcome.code.startsWith('28') || outcome.code === '57P01')) return outcome;
    const mine = this.#grants.get(who.principal.name);
    if (mine?.get(grant.connection)?.id === grant.id) mine.delete(grant.connection);
    void this.#deps.queries.closeGrant(grant.id);
    return { ...outcome, message: `${outcome.message} — your access to ${grant.connection} has ended: ask again with request_access` };
  }

  #keep(who: AuthenticatedPrincipal, granted: Granted): void {
    const name = who.principal.name;
    let mine = this.#grants.get(name);
    if (!mine) this.#grants.set(name, (mine = new Map()));
    const before = mine.get(granted.connection);
    if (before) void this.#deps.queries.closeGrant(before.id);
    mine.set(granted.connection, {
      id: granted.grant,
      principal: name,
      connection: granted.connection,
      credential: granted.credential,
      expiresAt: granted.expiresAt,
    });
  }

  #remember(who: AuthenticatedPrincipal, approval: number, held: HeldQuery): void {
    let mine = this.#held.get(who.principal.name);
    if (!mine) this.#held.set(who.principal.name, (mine = new Map()));
    if (mine.size >= MAX_HELD) mine.delete(mine.keys().next().value!);
    mine.set(approval, held);
  }

  async close(): Promise<void> {
    await this.#deps.queries.close();
  }
}

/** Whether policy lets this caller read `sql`'s table under its grant (and plan). */
function readable(
  engine: PolicyEngine,
  who: AuthenticatedPrincipal,
  connection: string,
  sql: string,
  plan: Parameters<typeof decideSql>[3],
  now: number,
): 'allowed' | 'needs approval' | 'denied' {
  const asker = {
    principal: { name: who.principal.name, kind: who.principal.kind, groups: who.groups },
    connection: { name: connection, type: 'postgres' as const },
    now,
  };
  const { verdict } = decideSql(engine, asker, sql, plan);
  return verdict.outcome === 'allow' ? 'allowed' : verdict.outcome === 'hold' ? 'needs approval' : 'denied';
}

/** `orders` or `billing.refunds` as SQL: each part quoted. */
const sqlName = (name: string) =>
  name
    .split('.')
    .map((part) => `"${part.replace(/"/g, '""')}"`)
    .join('.');

const noGrant = (connection: string) => `you have no access to ${connection} now: ask with request_access first`;

function ok(text: string, structured: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent: structured };
}

function refused(text: string): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true };
}

function failed(outcome: Extract<QueryOutcome, { status: 'error' }>): CallToolResult {
  return {
    content: [{ type: 'text', text: `ERROR ${outcome.code}: ${outcome.message}` }],
    structuredContent: { status: 'error', code: outcome.code, message: outcome.message },
    isError: true,
  };
}

function outcomeResult(outcome: QueryOutcome, before = ''): CallToolResult {
  if (outcome.status === 'error') {
    const result = failed(outcome);
    return before === '' ? result : { ...result, content: [{ type: 'text', text: `${before} ERROR ${outcome.code}: ${outcome.message}` }] };
  }
  const table = renderTable(outcome);
  return ok(before === '' ? table : `${before}\n${table}`, {
    status: 'done',
    command: outcome.command,
    columns: outcome.columns,
    rows: outcome.rows,
    rowCount: outcome.rowCount,
    truncated: outcome.truncated,
  });
}

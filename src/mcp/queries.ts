/**
 * How an agent's query runs: as a PostgreSQL client of this gateway's own listener, logged in
 * with the agent's grant like psql would be. So it goes through exactly what every session
 * goes through (guardrails, plan, approvals, masking, recording, audit), and nothing here
 * decides or masks anything itself.
 *
 * A statement held for approval is not waited on: the gateway's NOTICE names the approval, the
 * caller gets `pending` with its id at once, and the statement's outcome when it is decided
 * (`pending.outcome`). Results come back as text, as the gateway sent them (masked), at most
 * `maxRows` rows (read with a cursor: the rest is never fetched).
 *
 * Sessions are reused: a grant keeps up to MAX_IDLE logged-in clients, each logged out after
 * IDLE_MS unused (so that an agent's parallel calls do not log in each time, and an idle agent
 * holds no session); a held statement keeps its own until it ends. Everything of a grant is
 * closed when it ends (`closeGrant`).
 */

import pg from 'pg';
import Cursor from 'pg-cursor';

export const DEFAULT_MAX_ROWS = 100;
export const MAX_ROWS = 1000;
const MAX_IDLE = 8;
const IDLE_MS = 60_000;
/** How long a login to the gateway may take. */
const CONNECT_TIMEOUT_MS = 10_000;
const APPROVAL_NOTICE = /^waiting for approval #(\d+) \(([^)\s]+)\)/;

export interface AgentGrant {
  readonly id: string;
  readonly principal: string;
  readonly connection: string;
  /** The grant's gateway credential: it never leaves the gateway. */
  readonly credential: string;
  readonly expiresAt: number;
}

export type QueryOutcome =
  | {
      readonly status: 'done';
      /** The command tag's verb (`SELECT`, `UPDATE`, ...). */
      readonly command: string;
      readonly columns: readonly string[];
      readonly rows: readonly (readonly (string | null)[])[];
      /** Rows the statement returned or changed, as the target counted them; null when it did not say (rows were left unread). */
      readonly rowCount: number | null;
      /** More rows were there than `maxRows`. */
      readonly truncated: boolean;
    }
  | { readonly status: 'error'; readonly code: string; readonly message: string };

export type QueryStart =
  | QueryOutcome
  | {
      readonly status: 'pending';
      readonly approval: number;
      readonly url: string;
      readonly message: string;
      /** Settles when the approval is decided and the statement ran (or was refused). */
      readonly outcome: Promise<QueryOutcome>;
      /** Leaves the session: the gateway cancels the approval (its client left), and `outcome` settles as an error. */
      readonly withdraw: () => void;
    };

/** Every value as the text the gateway sent: nothing is parsed, so what was masked stays as it was. */
const AS_TEXT = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export class GatewayQueries {
  readonly #address: () => { host: string; port: number } | undefined;
  readonly #idle = new Map<string, pg.Client[]>();
  readonly #busy = new Map<string, Set<pg.Client>>();
  /** Clients logged out or dropped: never reused. */
  readonly #gone = new WeakSet<pg.Client>();
  /** The logout timer of each idle client. */
  readonly #idleTimers = new Map<pg.Client, NodeJS.Timeout>();

  /** `address`: where this gateway's PostgreSQL listener is (undefined: it has none). */
  constructor(address: () => { host: string; port: number } | undefined) {
    this.#address = address;
  }

  async run(grant: AgentGrant, sql: string, maxRows: number): Promise<QueryStart> {
    let client: pg.Client;
    try {
      client = await this.#client(grant);
    } catch (error) {
      return failure(error);
    }
    let held: ((start: QueryStart) => void) | undefined;
    const started = new Promise<QueryStart>((resolve) => (held = resolve));
    const onNotice = (notice: { message?: string }) => {
      const match = APPROVAL_NOTICE.exec(notice.message ?? '');
      if (match && held) {
        const withdraw = () => {
          this.#drop(grant.id, client);
          void client.end().catch(() => undefined);
        };
        held({ status: 'pending', approval: Number(match[1]), url: match[2]!, message: notice.message!, outcome, withdraw });
      }
    };
    client.on('notice', onNotice);
    const outcome = this.#read(client, sql, maxRows).finally(() => {
      client.off('notice', onNotice);
      this.#release(grant, client);
    });
    return Promise.race([outcome, started]);
  }

  async #read(client: pg.Client, sql: string, maxRows: number): Promise<QueryOutcome> {
    const cursor = client.query(new Cursor(sql, undefined, { rowMode: 'array', types: AS_TEXT }));
    try {
      const rows = await new Promise<{ rows: (string | null)[][]; result: pg.QueryResult }>((resolve, reject) =>
        cursor.read(maxRows + 1, (error, rows, result) => (error ? reject(error) : resolve({ rows: rows as (string | null)[][], result }))),
      );
      const truncated = rows.rows.length > maxRows;
      return {
        status: 'done',
        command: rows.result.command ?? '',
        columns: (rows.result.fields ?? []).map((f) => f.name),
        rows: truncated ? rows.rows.slice(0, maxRows) : rows.rows,
        rowCount: truncated ? null : (rows.result.rowCount ?? rows.rows.length),
        truncated,
      };
    } catch (error) {
      return failure(error);
    } finally {
      await new Promise<void>((resolve) => cursor.close(() => resolve()));
    }
  }

  async #client(grant: AgentGrant): Promise<pg.Client> {
    const idle = this.#idle.get(grant.id)?.pop();
    if (idle) this.#stopTimer(idle);
    const client = idle ?? (await this.#connect(grant));
    let busy = this.#busy.get(grant.id);
    if (!busy) this.#busy.set(grant.id, (busy = new Set()));
    busy.add(client);
    return client;
  }

  async #connect(grant: AgentGrant): Promise<pg.Client> {
    const address = this.#address();
    if (!address) throw new QueryError('08001', 'this gateway has no PostgreSQL listener to run queries through');
    const client = new pg.Client({
      host: address.host,
      port: address.port,
      user: grant.principal,
      database: grant.connection,
      password: grant.credential,
      application_name: 'drawbridge-mcp',
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    // A session the gateway ends (grant revoked or expired) is dropped, not thrown.
    client.on('error', () => this.#drop(grant.id, client));
    client.on('end', () => this.#drop(grant.id, client));
    await client.connect();
    return client;
  }

  #release(grant: AgentGrant, client: pg.Client): void {
    if (this.#gone.has(client)) return;
    const busy = this.#busy.get(grant.id);
    if (!busy?.delete(client)) return; // dropped meanwhile
    const idle = this.#idle.get(grant.id) ?? [];
    if (idle.length >= MAX_IDLE) {
      void client.end().catch(() => undefined);
      return;
    }
    idle.push(client);
    this.#idle.set(grant.id, idle);
    const timer = setTimeout(() => {
      this.#drop(grant.id, client);
      void client.end().catch(() => undefined);
    }, IDLE_MS);
    timer.unref();
    this.#idleTimers.set(client, timer);
  }

  #stopTimer(client: pg.Client): void {
    clearTimeout(this.#idleTimers.get(client));
    this.#idleTimers.delete(client);
  }

  #drop(grantId: string, client: pg.Client): void {
    this.#gone.add(client);
    this.#stopTimer(client);
    this.#busy.get(grantId)?.delete(client);
    const idle = this.#idle.get(grantId);
    if (idle?.includes(client)) idle.splice(idle.indexOf(client), 1);
  }

  /** Logs out every session of a grant (it ended, or its plan is done). */
  async closeGrant(grantId: string): Promise<void> {
    const clients = [...(this.#idle.get(grantId) ?? []), ...(this.#busy.get(grantId) ?? [])];
    this.#idle.delete(grantId);
    this.#busy.delete(grantId);
    for (const client of clients) this.#stopTimer(client);
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }

  async close(): Promise<void> {
    await Promise.all([...new Set([...this.#idle.keys(), ...this.#busy.keys()])].map((id) => this.closeGrant(id)));
  }
}

class QueryError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** What the gateway (or the target, through it) said, with its SQLSTATE. */
function failure(error: unknown): QueryOutcome {
  const e = error as { code?: unknown; message?: unknown };
  return {
    status: 'error',
    code: typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : '08006',
    message: typeof e.message === 'string' ? e.message : String(error),
  };
}

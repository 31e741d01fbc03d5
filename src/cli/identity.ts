/**
 * The commands of a person or an agent, against a running gateway's API: log in and out, who
 * am I, the connections, and asking for access. Output is for a terminal, or JSON with --json.
 */

import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { ApiClient, ApiProblem, forgetSession, saveSession } from './api-client.ts';
import { options, readPassword, UsageError } from './args.ts';
import { parse as parseYaml } from 'yaml';

interface Issued {
  token: string;
  refreshToken: string;
  expiresAt: string;
  refreshExpiresAt: string;
  principal: string;
}

/**
 * With `--user NAME`, a local account's password; without, the gateway's OIDC provider (device
 * flow, or `--browser` for the authorization code flow). Either way a gateway session is saved.
 */
export async function login(args: readonly string[]): Promise<number> {
  const values = options(args, {
    gateway: { type: 'string' },
    user: { type: 'string' },
    'password-stdin': { type: 'boolean' },
    browser: { type: 'boolean' },
  });
  if (!values.user) {
    if (values['password-stdin']) throw new UsageError('--password-stdin is for a local account: add --user NAME');
    const client = await ApiClient.open(values.gateway, { ...process.env, DRAWBRIDGE_TOKEN: '' });
    // Loaded on demand: the OIDC client library is only for this command, not for the gateway.
    const { oidcLogin, OidcLoginError } = await import('./oidc-login.ts');
    let issued: Issued;
    try {
      issued = await oidcLogin(client.gateway, { browser: values.browser ?? false });
    } catch (error) {
      if (!(error instanceof OidcLoginError)) throw error;
      process.stderr.write(`drawbridge: ${error.message}\n`);
      return 1;
    }
    const file = await saveSession({ gateway: client.gateway, ...issued });
    process.stdout.write(`logged in to ${client.gateway} as ${issued.principal} until ${issued.expiresAt} (session saved in ${file})\n`);
    return 0;
  }
  if (values.browser) throw new UsageError('--browser is for OIDC sign-in: leave out --user');
  const password = values['password-stdin'] ? await readPassword() : await prompt(`password for ${values.user}: `);
  const client = await ApiClient.open(values.gateway, { ...process.env, DRAWBRIDGE_TOKEN: '' });
  const anonymous = ApiClient.anonymous(client.gateway);
  const { body } = await anonymous.call<Issued>('POST', '/api/auth/login', { username: values.user, password });
  const file = await saveSession({ gateway: anonymous.gateway, ...body });
  process.stdout.write(`logged in to ${anonymous.gateway} as ${body.principal} until ${body.expiresAt} (session saved in ${file})\n`);
  return 0;
}

export async function logout(args: readonly string[]): Promise<number> {
  const values = options(args, { gateway: { type: 'string' } });
  const client = await ApiClient.open(values.gateway);
  if (client.loggedIn) await client.call('POST', '/api/auth/logout').catch(() => undefined);
  await forgetSession();
  process.stdout.write('logged out\n');
  return 0;
}

export async function whoami(args: readonly string[]): Promise<number> {
  const values = options(args, { gateway: { type: 'string' }, json: { type: 'boolean' } });
  const client = await ApiClient.open(values.gateway);
  const { body } = await client.call<{ name: string; kind: string; roles: string[]; groups: string[]; via: string }>('GET', '/api/whoami');
  if (values.json) process.stdout.write(`${JSON.stringify(body)}\n`);
  else
    process.stdout.write(
      `${body.name} (${body.kind}) roles: ${body.roles.join(', ') || 'none'}; groups: ${body.groups.join(', ') || 'none'}; via ${body.via}\n`,
    );
  return 0;
}

export async function connections(args: readonly string[]): Promise<number> {
  const values = options(args, { gateway: { type: 'string' }, json: { type: 'boolean' } });
  const client = await ApiClient.open(values.gateway);
  const { body } = await client.call<{ name: string; type: string; maxDuration: string; approval: string }[]>('GET', '/api/connections');
  if (values.json) process.stdout.write(`${JSON.stringify(body)}\n`);
  else
    process.stdout.write(
      table(
        ['CONNECTION', 'TYPE', 'MAX DURATION', 'APPROVAL'],
        body.map((c) => [c.name, c.type, c.maxDuration, c.approval]),
      ),
    );
  return 0;
}

interface Granted {
  status: 'granted';
  grant: string;
  connection: string;
  credential: string;
  expiresAt: string;
  connect: { psql: string; jdbc: string; env: Record<string, string> } | null;
}

export async function requestAccess(connection: string | undefined, args: readonly string[]): Promise<number> {
  const values = options(args, {
    gateway: { type: 'string' },
    duration: { type: 'string' },
    reason: { type: 'string' },
    plan: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (!connection) throw new UsageError('access request needs a CONNECTION');
  if (!values.reason) throw new UsageError('access request needs --reason TEXT (a ticket, an incident, a task)');
  const plan = values.plan === undefined ? undefined : await readPlan(values.plan);
  const client = await ApiClient.open(values.gateway);
  const { status, body } = await client.call<
    Granted | { status: 'pending'; request: string; duration: string; approval: number | null; url: string | null }
  >('POST', '/api/access/requests', {
    connection,
    reason: values.reason,
    ...(values.duration ? { duration: values.duration } : {}),
    ...(plan ? { plan } : {}),
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(body)}\n`);
    return 0;
  }
  if (status === 202 || body.status === 'pending') {
    const pending = body as { request: string; duration: string; approval: number | null; url: string | null };
    const where = pending.approval === null ? '' : `: approval #${pending.approval}${pending.url ? ` (${pending.url})` : ''}`;
    process.stdout.write(`request ${pending.request} for ${connection} (${pending.duration}) waits for an approver${where}\n`);
    process.stdout.write(`once approved: drawbridge access credential ${pending.request}\n`);
    if (plan) process.stdout.write(`when the work is done: drawbridge access finish ${pending.request}\n`);
    return 0;
  }
  printGranted(body as Granted);
  return 0;
}

/** A plan file (YAML or JSON): `steps:` as a list, or the list itself. */
async function readPlan(file: string): Promise<{ steps: unknown }> {
  let parsed: unknown;
  try {
    parsed = parseYaml(await readFile(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`cannot read the plan ${file}: ${(error as Error).message}`);
  }
  const steps = Array.isArray(parsed) ? parsed : (parsed as { steps?: unknown } | null)?.steps;
  if (!Array.isArray(steps)) throw new UsageError(`${file}: a plan is a list of steps ({actions, tables, template?}), or steps: [...]`);
  return { steps };
}

/** `access finish PLAN`: one's plan is done; its grant ends (a plan still waiting is withdrawn). */
export async function finishPlan(plan: string | undefined, args: readonly string[]): Promise<number> {
  const values = options(args, { gateway: { type: 'string' }, json: { type: 'boolean' } });
  if (!plan) throw new UsageError('access finish needs the PLAN id that `access request --plan` printed');
  const client = await ApiClient.open(values.gateway);
  const { body } = await client.call<{ plan: string; status: string; grant: string | null }>(
    'POST',
    `/api/access/plans/${encodeURIComponent(plan)}/finish`,
  );
  if (values.json) process.stdout.write(`${JSON.stringify(body)}\n`);
  else
    process.stdout.write(
      body.status === 'finished'
        ? `plan ${plan} is done: grant ${body.grant ?? '(never picked up)'} has ended\n`
        : body.status === 'withdrawn'
          ? `plan ${plan} was withdrawn before anyone approved it\n`
          : `plan ${plan} was already over\n`,
    );
  return 0;
}

/** `access credential REQUEST`: the credential of one's approved request, picked up once. */
export async function accessCredential(request: string | undefined, args: readonly string[]): Promise<number> {
  const values = options(args, { gateway: { type: 'string' }, json: { type: 'boolean' } });
  if (!request) throw new UsageError('access credential needs the REQUEST id that `access request` printed');
  const client = await ApiClient.open(values.gateway);
  const { body } = await client.call<Granted>('POST', `/api/access/requests/${encodeURIComponent(request)}/credential`);
  if (values.json) process.stdout.write(`${JSON.stringify(body)}\n`);
  else printGranted(body);
  return 0;
}

/** The credential alone on the first line, then where it works. */
function printGranted(granted: Granted): void {
  process.stdout.write(`${granted.credential}\n`);
  process.stdout.write(`grant ${granted.grant} on ${granted.connection}, expires ${granted.expiresAt}\n`);
  if (granted.connect) {
    process.stdout.write(`  psql "${granted.connect.psql}"\n`);
    process.stdout.write(`  JDBC: ${granted.connect.jdbc}\n`);
    process.stdout.write(
      `  env:  ${Object.entries(granted.connect.env)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}\n`,
    );
  }
}

export async function listGrantsRemote(args: readonly string[]): Promise<number> {
  const values = options(args, {
    gateway: { type: 'string' },
    principal: { type: 'string' },
    connection: { type: 'string' },
    all: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  const client = await ApiClient.open(values.gateway);
  const query = new URLSearchParams({
    ...(values.principal ? { principal: values.principal } : {}),
    ...(values.connection ? { connection: values.connection } : {}),
    ...(values.all ? { all: 'true' } : {}),
  });
  const body = await everyPage<{
    grant: string;
    principal: string;
    connection: string;
    state: string;
    expiresAt: string;
    reason: string | null;
  }>(client, '/api/access/grants', query, 'grants', 'before');
  if (values.json) process.stdout.write(`${JSON.stringify(body)}\n`);
  else if (body.length === 0) process.stdout.write(values.all ? 'no grants\n' : 'no live grants\n');
  else
    process.stdout.write(
      table(
        ['GRANT', 'PRINCIPAL', 'CONNECTION', 'STATE', 'EXPIRES', 'REASON'],
        body.map((g) => [g.grant, g.principal, g.connection, g.state, g.expiresAt, g.reason ?? '']),
      ),
    );
  return 0;
}

export async function revokeRemote(grant: string | undefined, args: readonly string[]): Promise<number> {
  const values = options(args, {
    gateway: { type: 'string' },
    principal: { type: 'string' },
    reason: { type: 'string' },
    json: { type: 'boolean' },
  });
  if ((grant === undefined) === (values.principal === undefined))
    throw new UsageError('access revoke takes one grant id, or --principal NAME');
  const client = await ApiClient.open(values.gateway);
  let revoked: string[];
  if (values.principal !== undefined) {
    revoked = (
      await client.call<{ revoked: string[] }>('POST', '/api/access/revocations', {
        principal: values.principal,
        ...(values.reason ? { reason: values.reason } : {}),
      })
    ).body.revoked;
  } else {
    await client.call(
      'DELETE',
      `/api/access/grants/${encodeURIComponent(grant!)}${values.reason ? `?reason=${encodeURIComponent(values.reason)}` : ''}`,
    );
    revoked = [grant!];
  }
  if (values.json) process.stdout.write(`${JSON.stringify({ revoked })}\n`);
  else {
    for (const id of revoked) process.stdout.write(`revoked ${id}\n`);
    if (revoked.length > 0) process.stdout.write('its live sessions end within seconds\n');
    else process.stdout.write(`${values.principal} has no live grant\n`);
  }
  return 0;
}

/** Every item of a paged list route (`{<key>: [...], next}`), page after page. */
export async function everyPage<T>(
  client: ApiClient,
  path: string,
  query: URLSearchParams,
  key: string,
  cursor: 'before' | 'after',
): Promise<T[]> {
  const items: T[] = [];
  const params = new URLSearchParams(query);
  params.set('limit', '1000');
  for (;;) {
    const { body } = await client.call<Record<string, unknown> & { next: string | null }>('GET', `${path}?${params}`);
    items.push(...(body[key] as T[]));
    if (body.next === null) return items;
    params.set(cursor, body.next);
  }
}

/** API refusals as a person wants to read them; exit 1. */
export function explainProblem(error: unknown): number | undefined {
  if (!(error instanceof ApiProblem)) return undefined;
  const hint = error.status === 401 ? ' (log in with `drawbridge login`, or set DRAWBRIDGE_TOKEN)' : '';
  process.stderr.write(`drawbridge: ${error.message}${hint}\n`);
  return 1;
}

export function table(head: readonly string[], rows: readonly (readonly string[])[], atLeast?: readonly number[]): string {
  const widths = columnWidths(head, rows, atLeast);
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}

/** The width of each column of `table`: its widest cell, and at least `atLeast` (a table printed a page at a time). */
export function columnWidths(head: readonly string[], rows: readonly (readonly string[])[], atLeast: readonly number[] = []): number[] {
  return head.map((h, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? '').length), Math.max(h.length, atLeast[i] ?? 0)));
}

/** Asks on the terminal without echoing what is typed. */
function prompt(question: string): Promise<string> {
  if (!process.stdin.isTTY) throw new UsageError('no terminal to ask the password on: use --password-stdin');
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const output = rl as unknown as { _writeToOutput: (text: string) => void };
    process.stderr.write(question);
    output._writeToOutput = () => {};
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
  });
}

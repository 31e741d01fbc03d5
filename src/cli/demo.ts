/**
 * `npm start`: the gateway on its embedded store, in front of an embedded demo PostgreSQL
 * (PGlite) holding fictional customers and payments, with a self-signed TLS certificate and a
 * credential for the demo principal, printed as ready-to-paste connection strings.
 */

import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConfig } from '../config/index.ts';
import { startDemoTarget } from '../demo/target.ts';
import { startGateway } from '../main.ts';
import { selfSignedPair } from '../tls/selfsigned.ts';
import { connectionStrings, dialableHost } from '../protocols/pg/connection-strings.ts';
import { untilSignal } from './main.ts';

const DEMO_PRINCIPAL = 'demo';
const DEMO_CONNECTION = 'demo';
const DEMO_AGENT = 'demo-agent';

export async function runDemo(args: readonly string[]): Promise<number> {
  const { values } = parseArgs({ args: [...args], options: { dir: { type: 'string' }, 'log-level': { type: 'string' } } });
  const dir = values.dir ?? '.drawbridge';
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const certFile = join(dir, 'demo-tls.crt');
  const keyFile = join(dir, 'demo-tls.key');
  await ensureCertificate(certFile, keyFile);
  const target = await startDemoTarget({ dataDir: join(dir, 'demo-target') });
  const yaml = `
store: sqlite:${join(dir, 'state.db')}
listen:
  api: 127.0.0.1:7070
  postgres: 127.0.0.1:15432
tls:
  cert: ${certFile}
  key: ${keyFile}
log:
  level: ${values['log-level'] ?? 'warn'}
connections:
  - name: ${DEMO_CONNECTION}
    type: postgres
    host: ${target.host}
    port: ${target.port}
    database: ${target.database}
    user: ${target.user}
    tls: disable
`;
  const config = parseConfig(yaml, join(process.cwd(), 'demo.yaml'));
  const gateway = await startGateway(config);
  const minted = await gateway.credentials.mint({
    principal: DEMO_PRINCIPAL,
    connection: DEMO_CONNECTION,
    ttlMs: 8 * 3_600_000,
    grantedBy: 'demo',
    reason: 'demo session',
  });
  // A demo administrator for the API and the CLI, with a fresh password at every start.
  const password = randomBytes(12).toString('base64url');
  if (!(await gateway.accounts.get(DEMO_PRINCIPAL))) {
    await gateway.accounts.createUser({ name: DEMO_PRINCIPAL, password, roles: ['admin'] }, 'demo');
  } else {
    await gateway.accounts.setPassword(DEMO_PRINCIPAL, password, 'demo');
  }
  // A service account for trying the MCP server, with a new key at every start.
  const agentKey = (await gateway.accounts.get(DEMO_AGENT))
    ? await gateway.accounts.rotateKey(DEMO_AGENT, 'demo')
    : (await gateway.accounts.createServiceAccount({ name: DEMO_AGENT, maxGrantMs: 3_600_000 }, 'demo')).key;
  const pg = gateway.addresses.postgres!;
  const connect = connectionStrings({ host: pg.address, port: pg.port }, DEMO_PRINCIPAL, DEMO_CONNECTION, minted.credential, {
    sslmode: 'require',
  });
  const api = `http://${dialableHost(gateway.addresses.api.address)}:${gateway.addresses.api.port}`;
  process.stdout.write(
    [
      '',
      'Drawbridge is running with a demo PostgreSQL behind it (tables customers and payments, fictional PII).',
      `Credential for principal "${DEMO_PRINCIPAL}", valid until ${new Date(minted.expiresAt).toISOString()}:`,
      '',
      `  psql "${connect.psql}"`,
      `  JDBC: ${connect.jdbc}`,
      `  env:  ${Object.entries(connect.env)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
      '',
      'Or ask for access the way people and agents do (the demo account is an admin; its password changes at every start):',
      '',
      `  echo ${password} | npx drawbridge login --user ${DEMO_PRINCIPAL} --password-stdin --gateway ${api}`,
      `  npx drawbridge access request ${DEMO_CONNECTION} --duration 30m --reason "trying Drawbridge"`,
      '',
      `An AI agent uses the MCP server with the key of the service account ${DEMO_AGENT} (new at every start; docs/mcp.md):`,
      '',
      `  claude mcp add drawbridge --env DRAWBRIDGE_TOKEN=${agentKey} --env DRAWBRIDGE_GATEWAY=${api} -- npx drawbridge mcp`,
      `  or streamable HTTP: ${api}/mcp with the header "Authorization: Bearer ${agentKey}"`,
      '',
      `Web UI: ${api}/   (sign in as ${DEMO_PRINCIPAL} with the password ${password})`,
      `API: ${api}/healthz   Stop with Ctrl-C.`,
      '',
    ].join('\n'),
  );
  await untilSignal();
  await gateway.close();
  await target.close();
  return 0;
}

async function ensureCertificate(certFile: string, keyFile: string): Promise<void> {
  const existing = await readFile(certFile, 'utf8').catch(() => undefined);
  if (existing) return;
  const pair = await selfSignedPair({ commonName: 'drawbridge-demo' });
  await writeFile(keyFile, pair.key, { mode: 0o600 });
  await writeFile(certFile, pair.cert, { mode: 0o644 });
}

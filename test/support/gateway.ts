/**
 * Starts a gateway in this process for an integration test: its own temp folder, SQLite store
 * and free ports, in front of the given connections (by default the machine's PostgreSQL).
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig, type Config } from '../../src/config/index.ts';
import { DEFAULT_ACCESS_POLICY, type PostgresConnection } from '../../src/core/index.ts';
import { startGateway, type Gateway } from '../../src/main.ts';
import type { Guard } from '../../src/session/pipeline.ts';

export interface TestGatewayOptions {
  readonly connections?: readonly Partial<PostgresConnection>[];
  readonly tls?: { readonly cert: string; readonly key: string };
  readonly auth?: 'scram-sha-256' | 'password';
  readonly maxMessageLength?: number;
  readonly store?: string;
  readonly guard?: Guard;
  /**
   * The Cedar policies in force: the texts of policy files, or 'default-pack' (the product's
   * default). Default: one policy that permits every action, fast-path calls and unmasked
   * results included, so that suites about the protocol run through the policy guard without
   * being refused, and see their data as the target sends it.
   */
  readonly policies?: readonly string[] | 'default-pack';
  /** Top-level YAML lines appended to the generated config (an `oidc:` section, say). */
  readonly extraYaml?: readonly string[];
}

export interface MintAs {
  readonly kind?: 'user' | 'service-account';
  readonly groups?: readonly string[];
}

export interface TestGateway {
  readonly host: string;
  readonly pgPort: number;
  readonly apiPort: number;
  readonly gateway: Gateway;
  readonly config: Config;
  readonly configFile: string;
  readonly dir: string;
  /** A credential for `principal`, a user in no group unless `who` says otherwise. */
  mint(principal: string, connection: string, ttlMs?: number, who?: MintAs): Promise<string>;
  close(): Promise<void>;
}

export const LOCAL_POSTGRES: PostgresConnection = {
  name: 'local',
  type: 'postgres',
  host: '127.0.0.1',
  port: 5432,
  database: 'postgres',
  user: 'postgres',
  password: undefined,
  tls: 'disable',
  ca: undefined,
  access: DEFAULT_ACCESS_POLICY,
};

export const PERMIT_ALL = '@id("test-permit-all")\npermit (principal, action, resource);\n';

/** Holds every UPDATE for the approval of a member of the group `dba` (approvals' tests). */
export const HOLD_UPDATES = `
@id("updates-need-a-dba")
@reason("an UPDATE")
@approval("dba")
forbid (principal, action == Drawbridge::Action::"sql:update", resource);
`;

export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-test-'));
  const connections = (options.connections ?? [{}]).map((partial) => ({ ...LOCAL_POSTGRES, ...partial }));
  const files: string[] = [];
  const yaml = [
    `store: ${options.store ?? `sqlite:${join(dir, 'state.db')}`}`,
    'listen:',
    '  api: 127.0.0.1:0',
    '  postgres: 127.0.0.1:0',
    'log:',
    `  level: ${process.env.DRAWBRIDGE_TEST_LOG ?? 'silent'}`,
    'postgres:',
    `  auth: ${options.auth ?? 'scram-sha-256'}`,
    ...(options.maxMessageLength ? [`  max_message_length: ${options.maxMessageLength}`] : []),
  ];
  if (options.tls) {
    await writeFile(join(dir, 'tls.crt'), options.tls.cert);
    await writeFile(join(dir, 'tls.key'), options.tls.key);
    yaml.push('tls:', '  cert: tls.crt', '  key: tls.key');
  }
  yaml.push('connections:');
  for (const [index, connection] of connections.entries()) {
    yaml.push(
      `  - name: ${connection.name}`,
      '    type: postgres',
      `    host: "${connection.host}"`,
      `    port: ${connection.port}`,
      `    database: ${connection.database}`,
      `    user: ${connection.user}`,
      `    tls: ${connection.tls}`,
    );
    if (connection.password !== undefined) yaml.push(`    password: "${connection.password}"`);
    if (connection.ca !== undefined) {
      const file = join(dir, `ca-${index}.pem`);
      files.push(file);
      await writeFile(file, connection.ca);
      yaml.push(`    ca: ${file}`);
    }
    const access = connection.access ?? DEFAULT_ACCESS_POLICY;
    yaml.push('    access:', `      max_duration: ${access.maxDurationMs}ms`, `      approval: ${access.approval}`);
    if (access.approvers !== undefined) yaml.push(`      approvers: ${access.approvers}`);
  }
  const policies = options.policies ?? [PERMIT_ALL];
  if (policies !== 'default-pack') {
    yaml.push('policy:', '  files:');
    for (const [index, text] of policies.entries()) {
      const file = join(dir, `policy-${index}.cedar`);
      await writeFile(file, text);
      yaml.push(`    - ${file}`);
    }
  }
  yaml.push(...(options.extraYaml ?? []));
  // On disk too, for tests that run the administrative commands against this gateway's store.
  const configFile = join(dir, 'drawbridge.yaml');
  await writeFile(configFile, yaml.join('\n'));
  const config = parseConfig(yaml.join('\n'), configFile, {});
  const gateway = await startGateway(config, {
    log: pino({ level: config.log.level }),
    ...(options.guard ? { guard: options.guard } : {}),
  });
  return {
    host: '127.0.0.1',
    pgPort: gateway.addresses.postgres!.port,
    apiPort: gateway.addresses.api.port,
    gateway,
    config,
    configFile,
    dir,
    async mint(principal, connection, ttlMs = 600_000, who = {}) {
      const minted = await gateway.credentials.mint({
        principal,
        principalKind: who.kind,
        groups: who.groups,
        connection,
        ttlMs,
        grantedBy: 'test',
      });
      return minted.credential;
    },
    async close() {
      await gateway.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

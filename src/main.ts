/**
 * The composition root: the only module that names concrete implementations. `startGateway`
 * wires config, store, identity, the session pipeline and every enabled listener.
 */

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { pino, type Logger } from 'pino';
import { identityRoutes } from './api/identity-routes.ts';
import { oidcRoutes } from './api/oidc-routes.ts';
import { serviceAccountRoutes } from './api/service-account-routes.ts';
import { policyRoutes } from './api/policy-routes.ts';
import { approvalRoutes } from './api/approval-routes.ts';
import { auditRoutes } from './api/audit-routes.ts';
import { Approvals } from './approvals/approvals.ts';
import { explainPreview } from './approvals/preview.ts';
import { Webhooks } from './approvals/webhooks.ts';
import { sessionRoutes } from './api/session-routes.ts';
import { reviewRoutes } from './api/review-routes.ts';
import { AccessReview } from './review/access-review.ts';
import { serveWebUi, WEB_ROOT } from './api/web-ui.ts';
import { keyId } from './audit/chain.ts';
import { buildApi } from './api/server.ts';
import { AccessRequests } from './identity/access.ts';
import { Accounts } from './identity/accounts.ts';
import { BearerAuthenticator, lazyOidcVerifier } from './identity/bearer.ts';
import { GatewaySessions } from './identity/gateway-sessions.ts';
import type { Config } from './config/index.ts';
import { systemClock, type Clock } from './core/index.ts';
import { Credentials } from './identity/credentials.ts';
import { BufferPool } from './net/pooled-reads.ts';
import { CancelKeys } from './protocols/pg/cancel-keys.ts';
import { servePgClient } from './protocols/pg/frontend.ts';
import { AgentDesk } from './mcp/agent-desk.ts';
import { serveMcp } from './mcp/http.ts';
import { GatewayQueries } from './mcp/queries.ts';
import { NoRecorder, StoreRecorder } from './recording/recorder.ts';
import { RecordingRetention, type RetentionReport } from './recording/retention.ts';
import { StoreAuditLog } from './audit/audit-log.ts';
import { AuditCheckpoints, loadSigningKey } from './audit/checkpoints.ts';
import { openSink } from './audit/sinks.ts';
import { allowAllGuard, Pipeline, type Guard, type PipelineDeps } from './session/pipeline.ts';
import { PolicyError, type PolicyEngine } from './policy/cedar/engine.ts';
import { MaskingConfigError } from './policy/masking/detectors.ts';
import { compileColumnRules, planMasking } from './policy/masking/columns.ts';
import { compileMasking, type MaskingConfig } from './policy/masking/strategies.ts';
import { PolicyGuard } from './policy/guard.ts';
import { LivePolicy, type ReloadOutcome } from './policy/live-policy.ts';
import { GrantWatch, type GrantWatchOptions } from './session/grant-watch.ts';
import { openStore, type Store } from './store/index.ts';
import { VERSION } from './version.ts';

export interface Gateway {
  readonly store: Store;
  readonly credentials: Credentials;
  readonly accounts: Accounts;
  /** Held statements and access requests waiting for a person's decision. */
  readonly approvals: Approvals;
  /** Looks for revoked grants now, instead of at the next interval. */
  pollRevocations(): Promise<void>;
  /** Applies `recording.retention` now, instead of at the next interval; undefined when the run failed (logged). */
  applyRetention(): Promise<RetentionReport | undefined>;
  /** The policies in force; undefined when the config turns guardrails off or a test guard is used. */
  readonly policy: LivePolicy | undefined;
  /** Reads the policy files now, instead of at the next look (SIGHUP). */
  reloadPolicy(): Promise<ReloadOutcome>;
  readonly addresses: { readonly api: AddressInfo; readonly postgres: AddressInfo | undefined };
  close(): Promise<void>;
}

export interface GatewayOptions {
  readonly log?: Logger;
  readonly clock?: Clock;
  /** Decides on every command instead of the configured policy (tests). */
  readonly guard?: Guard;
  readonly grantWatch?: GrantWatchOptions;
}

export async function startGateway(config: Config, options: GatewayOptions = {}): Promise<Gateway> {
  const log = options.log ?? pino({ level: config.log.level });
  const clock = options.clock ?? systemClock;
  for (const warning of config.warnings) log.warn(warning);
  if (!process.execArgv.includes('--liftoff-only')) {
    log.warn(
      'node runs without --liftoff-only: compiling the SQL parser will take about 500 MB more for a moment once statements come; the drawbridge command passes it (docs/policy.md#memory)',
    );
  }
  const store = await openStore(config.store, {
    // A statement answered only once its record is committed waits less for a commit made on the
    // gateway's own thread than for one handed to another thread and back (docs/benchmarks.md).
    writerThread: config.audit.acknowledge === 'at-once',
    onWriterThreadFailure: (error) =>
      log.error({ err: error }, "the store's writer thread failed: audit records and statements are written on the gateway's thread again"),
  });
  const audit = new StoreAuditLog(
    store,
    clock,
    log,
    config.audit.sinks.map((sink) => openSink(sink, log)),
  );
  /** On the way out: every audit record committed and copied to the sinks, then the store closed. */
  const closeStore = async () => {
    await audit.close();
    await store.close();
  };
  const credentials = new Credentials(store, clock, audit);
  const recorder = config.recording.enabled ? new StoreRecorder(store, log) : new NoRecorder();
  let policy: LivePolicy | undefined;
  try {
    policy = options.guard || !config.policy.enabled ? undefined : await watchPolicy(config.policy.files, audit, log);
  } catch (error) {
    await closeStore();
    if (error instanceof PolicyError) throw new StartupError(`cannot load the policies: ${error.message}`, { cause: error });
    throw error;
  }
  const guard = options.guard ?? (policy ? await PolicyGuard.create(() => policy.engine, clock) : allowAllGuard);
  let masking: ReturnType<typeof maskingFor>;
  try {
    masking = maskingFor(config, () => policy?.engine, audit);
  } catch (error) {
    policy?.stop();
    await closeStore();
    if (error instanceof MaskingConfigError)
      throw new StartupError(`${config.file ?? 'config'}: masking.${error.message}`, { cause: error });
    throw error;
  }
  let signingKey: KeyObject;
  try {
    signingKey = loadSigningKey(config.audit.signingKeyFile);
  } catch (error) {
    policy?.stop();
    await closeStore();
    throw new StartupError(`cannot load the audit signing key ${config.audit.signingKeyFile}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const checkpoints = new AuditCheckpoints(store, signingKey, clock, log);
  checkpoints.start(config.audit.checkpointIntervalMs);
  let apiBase = `http://${config.listen.api.host}:${config.listen.api.port}`;
  const connections = new Map(config.connections.map((connection) => [connection.name, connection]));
  const approvals = new Approvals({
    store,
    audit,
    clock,
    log,
    timeoutMs: config.approvals.timeoutMs,
    accessTimeoutMs: config.approvals.accessTimeoutMs,
    baseUrl: () => config.approvals.url ?? apiBase,
    // The blast-radius preview: EXPLAIN on the target, on a connection of its own (never the client's).
    preview: async ({ connection, statement, params }) => {
      const target = connections.get(connection);
      return target && explainPreview(target, statement, params);
    },
  });
  const webhooks = new Webhooks({ targets: config.approvals.webhooks, clock, log, url: (id) => approvals.url(id) });
  if (config.approvals.webhooks.length > 0) approvals.listen((_event, approval) => webhooks.notify(approval));
  const pipeline = new Pipeline({
    approvals,
    guard,
    recorder,
    clock,
    audit,
    masking,
    resultBytes: config.recording.maxResultBytes,
    auditStatements: config.audit.statements,
    acknowledgeAfterCommit: config.audit.acknowledge === 'after-commit',
  });
  const grantWatch = new GrantWatch(
    { revokedSince: (since) => store.listRevokedSince(since), claimExpired: (now) => store.claimExpiredGrants(now, 100) },
    audit,
    pipeline,
    clock,
    log,
    options.grantWatch,
  );
  grantWatch.start();
  // Recordings past the configured age or size are deleted on a timer; with no limit, kept forever.
  const retention = new RecordingRetention(store, audit, clock, log, config.recording.retention);
  retention.start();
  const sockets = new Set<Socket>();

  let pgServer: Server | undefined;
  if (config.listen.postgres) {
    const tls = config.tls && {
      context: createSecureContext({ cert: config.tls.cert, key: config.tls.key }),
      certificateDer: new X509Certificate(config.tls.cert).raw,
    };
    const deps = {
      options: {
        tls,
        auth: config.postgres.auth,
        maxMessageLength: config.postgres.maxMessageLength,
        loginTimeoutMs: 30_000,
        targetTimeoutMs: 10_000,
      },
      credentials,
      connection: (name: string) => connections.get(name),
      pipeline,
      cancelKeys: new CancelKeys(),
      // 64 KiB reads, the most a socket read gives; 64 of them kept for reuse (4 MiB).
      readBuffers: new BufferPool(64 * 1024, 64),
      log: log.child({ protocol: 'postgres' }),
    };
    pgServer = createServer({ noDelay: true }, (socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      servePgClient(socket, deps);
    });
  }

  /** Where PostgreSQL clients reach this gateway, once it listens. */
  const postgresAddress = () => {
    const bound = pgServer?.address() as AddressInfo | null | undefined;
    return bound ? { host: bound.address, port: bound.port } : undefined;
  };
  const accounts = new Accounts(store, clock, audit, credentials);
  const sessions = new GatewaySessions(store, clock, audit, accounts);
  const bearer = new BearerAuthenticator({
    sessions,
    accounts,
    oidc:
      config.oidc &&
      lazyOidcVerifier(
        {
          issuer: config.oidc.issuer,
          audience: config.oidc.audience,
          allowedClientIds: config.oidc.allowedClientIds,
          groupsClaim: config.oidc.groupsClaim,
          ...(config.oidc.usernameClaim ? { usernameClaim: config.oidc.usernameClaim } : {}),
          ...(config.oidc.algorithms ? { algorithms: config.oidc.algorithms } : {}),
        },
        { clock },
      ),
    roleGroups: config.oidc?.roleGroups ?? { admin: [], approver: [], auditor: [], user: [] },
  });
  const access = new AccessRequests({ credentials, store, connection: (name) => connections.get(name), clock, audit, approvals });
  const api = buildApi({
    version: VERSION,
    authenticate: (authorization) => bearer.authenticate(authorization),
    onError: (error) => log.error({ err: error }, 'API request failed'),
    routes: identityRoutes({
      accounts,
      sessions,
      credentials,
      access,
      store,
      clock,
      connections: config.connections,
      postgres: postgresAddress,
    }).concat(
      serviceAccountRoutes({ accounts, store, clock, connections: config.connections.map((c) => c.name) }),
      oidcRoutes({ oidc: config.oidc, sessions }),
      policyRoutes({ policy, connections: config.connections, clock }),
      auditRoutes({ store, storeUrl: config.store, clock, trusted: new Map([[keyId(signingKey), createPublicKey(signingKey)]]) }),
      sessionRoutes({ store, clock }),
      approvalRoutes({ approvals, authenticate: (authorization) => bearer.authenticate(authorization) }),
      reviewRoutes({
        review: new AccessReview({ store, credentials, audit, clock, connections: config.connections, policy: () => policy?.engine }),
        clock,
      }),
    ),
  });
  // Agents' MCP server: their queries run as clients of the PostgreSQL listener above, through the same pipeline.
  const agentDesk = new AgentDesk({
    connections: config.connections,
    access,
    approvals,
    store,
    clock,
    engine: () => policy?.engine,
    queries: new GatewayQueries(postgresAddress),
  });
  serveMcp(api, agentDesk, (authorization) => bearer.authenticate(authorization));
  serveWebUi(api, { root: WEB_ROOT, oidcIssuer: config.oidc?.issuer });
  try {
    if (pgServer) await listen(pgServer, config.listen.postgres!, 'PostgreSQL clients');
    await api.ready();
    await listen(api.server, config.listen.api, 'the API');
  } catch (error) {
    pgServer?.close();
    await approvals.close();
    await webhooks.close(0);
    await grantWatch.stop();
    await retention.stop();
    policy?.stop();
    await checkpoints.close();
    await closeStore();
    throw error;
  }
  const apiAddress = api.server.address() as AddressInfo;
  apiBase = `http://${apiAddress.family === 'IPv6' ? `[${apiAddress.address}]` : apiAddress.address}:${apiAddress.port}`;
  const pgAddress = pgServer?.address() as AddressInfo | undefined;
  log.info(
    { api: `${apiAddress.address}:${apiAddress.port}`, postgres: pgAddress && `${pgAddress.address}:${pgAddress.port}` },
    'drawbridge started',
  );

  return {
    store,
    credentials,
    accounts,
    approvals,
    pollRevocations: () => grantWatch.poll(),
    applyRetention: () => retention.run(),
    policy,
    reloadPolicy: async () => (policy ? policy.reload() : 'unchanged'),
    addresses: { api: apiAddress, postgres: pgAddress },
    async close() {
      await agentDesk.close();
      await approvals.close();
      // The cancellations of the held statements go out too, within a second.
      await webhooks.close();
      await grantWatch.stop();
      await retention.stop();
      policy?.stop();
      pgServer?.close();
      const closed = Promise.all([...sockets].map((socket) => new Promise((resolve) => socket.once('close', resolve))));
      // Live sessions are told why they end; a client that does not hang up in a second is cut.
      pipeline.shutdown();
      const grace = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, 1000);
      await closed;
      clearTimeout(grace);
      // Sessions record their end once their sockets close: let those handlers run first.
      await new Promise((resolve) => setImmediate(resolve));
      await api.close();
      await recorder.close();
      // Every audit record committed, then the head signed a last time.
      await audit.flush();
      await checkpoints.close();
      await closeStore();
    },
  };
}

/**
 * How each session's data is masked: the configured plan, unless a policy permits the
 * principal `data:unmasked` on the connection (decided when the session opens, and on record).
 */
function maskingFor(config: Config, engine: () => PolicyEngine | undefined, audit: StoreAuditLog): PipelineDeps['masking'] {
  if (!config.masking.enabled) return undefined;
  const plan = compileMasking(config.masking.plan as MaskingConfig);
  const masking = planMasking(plan, compileColumnRules(config.masking.columns, plan));
  return (session) => {
    const mask = masking(session.connection.name);
    const { principal, groups } = session.grant;
    const exemption = engine()?.unmasked(
      { name: principal.name, kind: principal.kind, groups },
      { name: session.connection.name, type: 'postgres' },
    );
    if (!exemption?.exempt) return mask;
    audit.note({
      actor: principal.name,
      action: 'masking.exempted',
      subject: session.id,
      outcome: 'success',
      details: { connection: session.connection.name, grant: session.grant.id, policies: exemption.policies },
    });
    return undefined;
  };
}

/** Loads the policy files (or the default pack), records it, and reloads them when they change. */
async function watchPolicy(files: readonly string[], audit: StoreAuditLog, log: Logger): Promise<LivePolicy> {
  const policy = await LivePolicy.load(files);
  const source = files.length === 0 ? 'the default pack' : files.join(', ');
  log.info({ policy: policy.engine.version.slice(0, 12), files }, `guardrails from ${source}`);
  await audit.append({
    actor: 'gateway',
    action: 'policy.loaded',
    subject: policy.engine.version,
    outcome: 'success',
    details: { files: files.length === 0 ? ['default-pack'] : files },
  });
  policy.watch({
    changed: (change) => {
      log.info({ from: change.from.slice(0, 12), to: change.to.slice(0, 12), files: change.files }, 'policies reloaded');
      audit.note({ actor: 'gateway', action: 'policy.changed', subject: change.to, outcome: 'success', details: { ...change } });
    },
    failed: (error, files) => {
      log.error({ err: error }, `policies not reloaded, the ones in force stay: ${error.message}`);
      audit.note({
        actor: 'gateway',
        action: 'policy.changed',
        subject: policy.engine.version,
        outcome: 'failure',
        details: { files, error: error.message },
      });
    },
  });
  return policy;
}

/** The gateway cannot start as configured (a port taken, a store that cannot be opened). */
export class StartupError extends Error {
  override name = 'StartupError';
}

function listen(server: Server, address: { host: string; port: number }, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (error: NodeJS.ErrnoException) => {
      const reason =
        error.code === 'EADDRINUSE' ? 'the address is already in use' : error.code === 'EACCES' ? 'permission denied' : error.message;
      reject(new StartupError(`cannot listen for ${what} on ${address.host}:${address.port}: ${reason}`, { cause: error }));
    };
    server.once('error', fail);
    server.listen(address.port, address.host, () => (server.off('error', fail), resolve()));
  });
}

/**
 * Loads drawbridge.yaml into one deeply frozen `Config`, validated once at start.
 *
 * Guarantees: every problem in the file is reported at once, each on its own line as
 * `file:line:col: path: reason`; unknown keys are errors; `${env:…}`/`${file:…}` references
 * and every file the config names (TLS certificate and key, CA) are read here, so that a
 * running gateway never fails later on a missing secret. Insecure but valid choices are
 * returned as `warnings` for the caller to print loudly.
 *
 * Limits: values that came from a secret reference are never echoed in messages, but the
 * reference itself (`${env:NAME}`) is.
 */

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { isIP } from 'node:net';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { DEFAULT_ACCESS_POLICY, type PostgresConnection } from '../core/index.ts';
import { errorCode, resolveReferences, type Env } from './references.ts';
import { describe, fileSchema, SYSLOG_FACILITIES, type ConfigFile, type HostPort, type LogLevel, type PostgresAuth } from './schema.ts';
import type { SinkConfig } from '../audit/sinks.ts';
import { DEFAULT_RESULT_BYTES } from '../recording/result-sample.ts';

export type { HostPort, LogLevel, PostgresAuth } from './schema.ts';
export type { Env } from './references.ts';

export interface Config {
  /** Absolute path of the file this came from; undefined for the built-in defaults. */
  readonly file: string | undefined;
  /** `sqlite:<path>`, `sqlite::memory:` or `postgres://…`; relative sqlite paths are resolved. */
  readonly store: string;
  readonly listen: {
    readonly api: HostPort;
    /** undefined: the PostgreSQL listener is disabled. */
    readonly postgres: HostPort | undefined;
  };
  /** PEM texts of the certificate and key served to clients that ask for TLS. */
  readonly tls: { readonly cert: string; readonly key: string } | undefined;
  readonly postgres: { readonly auth: PostgresAuth; readonly maxMessageLength: number };
  readonly log: { readonly level: LogLevel };
  readonly connections: readonly PostgresConnection[];
  /** The company's identity provider, when people and agents sign in with it. */
  readonly oidc: OidcConfig | undefined;
  readonly policy: PolicyConfig;
  readonly masking: MaskingSettings;
  readonly audit: AuditSettings;
  readonly approvals: {
    /** How long a held statement waits for a decision before it is refused. */
    readonly timeoutMs: number;
    /** How long an access request (`access.approval: required`) waits for a decision. */
    readonly accessTimeoutMs: number;
    /** Where people open the web UI, for the links in notices and messages; default: the API's address. */
    readonly url: string | undefined;
    /** Where each request and decision is POSTed (approvals/webhooks.ts). */
    readonly webhooks: readonly ApprovalWebhook[];
  };
  readonly recording: {
    /** false: sessions and statements are not recorded (a loud warning at start); audit events still are. */
    readonly enabled: boolean;
    /** What a masked session's recording keeps of each statement's result, in bytes of values; 0: nothing. */
    readonly maxResultBytes: number;
    readonly retention: RetentionSettings;
  };
  /** Insecure but valid choices, formatted like errors; print them loudly at start. */
  readonly warnings: readonly string[];
}

export interface MaskingSettings {
  /** false: results leave the gateway as the target sent them (a loud warning at start). */
  readonly enabled: boolean;
  /** Checked and compiled when the gateway starts (policy/masking); the shape of MaskingConfig. */
  readonly plan: {
    readonly defaultCountry?: string;
    readonly strategies?: Readonly<Record<string, 'partial' | 'full' | 'hash' | 'null'>>;
    readonly salt?: string;
    readonly custom?: readonly {
      readonly name: string;
      readonly pattern: string;
      readonly flags?: string;
      readonly validator?: 'luhn' | 'iban';
    }[];
  };
  /** Column rules, in order (policy/masking/columns.ts). */
  readonly columns: readonly {
    readonly column: string;
    readonly connection?: string;
    readonly action: 'mask' | 'null' | 'never';
    readonly strategy?: 'partial' | 'full' | 'hash';
  }[];
}

export interface AuditSettings {
  /**
   * Absolute path of the PEM Ed25519 private key that signs the audit log's checkpoints; the
   * gateway creates it (0600) on first start when it is missing. Default: next to the SQLite
   * store, or `.drawbridge/` beside the configuration file.
   */
  readonly signingKeyFile: string;
  /** How often the head of the log is signed when it moved. */
  readonly checkpointIntervalMs: number;
  /** Live copies of the log (audit/sinks.ts). */
  readonly sinks: readonly SinkConfig[];
  /** Which statements are audit records: every one sent to a target and every refused one, or only the refused. */
  readonly statements: 'all' | 'refused';
  /** Whether a client hears a statement is done only once its audit records are committed (`after-commit`), or within the commit delay of it (`at-once`, the default). */
  readonly acknowledge: 'after-commit' | 'at-once';
}

/** When recordings are deleted (recording/retention.ts); neither limit set: kept forever. */
export interface RetentionSettings {
  /** Sessions that ended longer ago than this are deleted with their statements. */
  readonly maxAgeMs: number | undefined;
  /** When the recordings hold more bytes than this (as the store counts them), the oldest ended sessions go first. */
  readonly maxBytes: number | undefined;
  /** How often the gateway applies the limits. */
  readonly intervalMs: number;
}

export const DEFAULT_RETENTION_INTERVAL_MS = 3_600_000;

export const DEFAULT_CHECKPOINT_INTERVAL_MS = 10_000;
export const DEFAULT_APPROVAL_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_ACCESS_APPROVAL_TIMEOUT_MS = 60 * 60_000;
/** The group whose members decide access requests of a connection that names none. */
export const DEFAULT_ACCESS_APPROVERS = 'approvers';

export interface ApprovalWebhook {
  readonly url: string;
  /** Signs each JSON payload (HMAC-SHA256); undefined: not signed. */
  readonly secret: string | undefined;
  readonly format: 'json' | 'slack';
}
export const SIGNING_KEY_FILE = 'audit-signing-key.pem';

export interface PolicyConfig {
  /** false: every statement is allowed (a loud warning at start). */
  readonly enabled: boolean;
  /** Absolute paths of the Cedar policy files; empty: the shipped default pack. */
  readonly files: readonly string[];
}

export interface OidcConfig {
  readonly issuer: string;
  readonly audience: string;
  /** The client the CLI and web UI log in as (authorization code with PKCE, device flow). */
  readonly clientId: string | undefined;
  /** Clients whose client-credentials tokens (agents, CI) are accepted. */
  readonly allowedClientIds: readonly string[];
  readonly groupsClaim: string;
  readonly usernameClaim: string | undefined;
  readonly algorithms: readonly string[] | undefined;
  /** IdP groups that carry each gateway role. */
  readonly roleGroups: Readonly<Record<'admin' | 'approver' | 'auditor' | 'user', readonly string[]>>;
}

export const DEFAULT_STORE = 'sqlite:./.drawbridge/state.db';
export const DEFAULT_API_LISTEN: HostPort = Object.freeze({ host: '127.0.0.1', port: 7070 });
export const DEFAULT_POSTGRES_LISTEN: HostPort = Object.freeze({ host: '127.0.0.1', port: 15432 });
export const DEFAULT_POSTGRES_AUTH: PostgresAuth = 'scram-sha-256';
export const DEFAULT_MAX_MESSAGE_LENGTH = 64 * 1024 * 1024;
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';
export const DEFAULT_TARGET_PORT = 5432;

/** The configuration used when no file is given. The store path is relative to the process cwd. */
export const defaultConfig: Config = deepFreeze({
  file: undefined,
  store: DEFAULT_STORE,
  listen: { api: { ...DEFAULT_API_LISTEN }, postgres: { ...DEFAULT_POSTGRES_LISTEN } },
  tls: undefined,
  postgres: { auth: DEFAULT_POSTGRES_AUTH, maxMessageLength: DEFAULT_MAX_MESSAGE_LENGTH },
  log: { level: DEFAULT_LOG_LEVEL },
  connections: [],
  oidc: undefined,
  policy: { enabled: true, files: [] },
  masking: { enabled: true, plan: {}, columns: [] },
  audit: {
    signingKeyFile: defaultSigningKeyFile(DEFAULT_STORE, resolve('.')),
    checkpointIntervalMs: DEFAULT_CHECKPOINT_INTERVAL_MS,
    sinks: [],
    statements: 'all',
    acknowledge: 'at-once',
  },
  approvals: { timeoutMs: DEFAULT_APPROVAL_TIMEOUT_MS, accessTimeoutMs: DEFAULT_ACCESS_APPROVAL_TIMEOUT_MS, url: undefined, webhooks: [] },
  recording: {
    enabled: true,
    maxResultBytes: DEFAULT_RESULT_BYTES,
    retention: { maxAgeMs: undefined, maxBytes: undefined, intervalMs: DEFAULT_RETENTION_INTERVAL_MS },
  },
  warnings: [],
});

/** Every problem found in a config file, one per line in `message` and in `errors`. */
export class ConfigError extends Error {
  readonly errors: readonly string[];
  constructor(errors: readonly string[]) {
    super(errors.join('\n'));
    this.name = 'ConfigError';
    this.errors = Object.freeze([...errors]);
  }
}

export interface ParseOptions {
  /**
   * Leave the targets' passwords out where their references cannot be resolved: for the
   * administrative commands, which act on the store and never log in to a target.
   */
  readonly withoutTargetSecrets?: boolean;
}

export async function loadConfig(path: string, env: Env = process.env, options: ParseOptions = {}): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`${path}: cannot read the config file (${errorCode(err)})`]);
  }
  return parseConfig(text, path, env, options);
}

type Path = readonly (string | number)[];

interface Problem {
  readonly offset: number | undefined;
  readonly text: string;
}

/** `file` names the file in messages and anchors relative paths (its folder). */
export function parseConfig(text: string, file: string, env: Env = process.env, options: ParseOptions = {}): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const where = (offset: number | undefined): string => {
    if (offset === undefined) return file;
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  const render = (problems: readonly Problem[]): string[] =>
    [...problems]
      .map((p, i) => ({ ...p, i }))
      .sort((a, b) => (a.offset ?? Infinity) - (b.offset ?? Infinity) || a.i - b.i)
      .map((p) => `${where(p.offset)}: ${p.text}`);

  if (doc.errors.length > 0) {
    throw new ConfigError(
      render(doc.errors.map((e) => ({ offset: e.pos[0], text: e.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '') }))),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError([`${file}: ${err instanceof Error ? err.message : String(err)}`]);
  }
  raw ??= {};

  const dir = dirname(resolve(file));
  const problems: Problem[] = [];
  const at = (path: Path, reason: string, key = false): void => {
    problems.push({ offset: locate(doc, path, key), text: path.length > 0 ? `${formatPath(path)}: ${reason}` : reason });
  };

  // Secrets by reference first, so that validation sees what the gateway will use.
  const originals = new Map<string, string>();
  const failedReferences = new Set<string>();
  const substitute = (value: unknown, path: Path): unknown => {
    if (typeof value === 'string') {
      const r = resolveReferences(value, env, dir);
      const targetSecret = path.length === 3 && path[0] === 'connections' && path[2] === 'password';
      if (!r.ok && targetSecret && options.withoutTargetSecrets) return undefined;
      if (!r.ok) {
        at(path, r.reason);
        failedReferences.add(formatPath(path));
        return undefined;
      }
      if (r.substituted) originals.set(formatPath(path), value);
      return r.value;
    }
    if (Array.isArray(value)) return value.map((v, i) => substitute(v, [...path, i]));
    if (typeof value === 'object' && value !== null) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, [...path, k])]));
    }
    return value;
  };
  const resolved = substitute(raw, []);

  checkConnections(resolved, at);
  const parsed = fileSchema.safeParse(resolved);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) at([...path, key], unknownKey(key), true);
        continue;
      }
      // A reference that failed already said why; "is required" on top of it is noise.
      if (failedReferences.has(formatPath(path))) continue;
      let reason = issue.message;
      if (issue.code === 'custom' && issue.params !== undefined && 'got' in issue.params) {
        const original = originals.get(formatPath(path));
        reason += original === undefined ? `, got ${describe(issue.params.got)}` : `, got the value of ${JSON.stringify(original)}`;
      }
      at(path, reason);
    }
    throw new ConfigError(render(problems));
  }
  // The shape is right: read the files it names even if a reference failed, to report all.
  const config = build(parsed.data, resolve(file), dir, at);
  if (problems.length > 0) throw new ConfigError(render(problems));

  const warnings: Problem[] = [];
  const warn = (path: Path, reason: string): void => {
    warnings.push({ offset: locate(doc, path, false), text: `${formatPath(path)}: ${reason}` });
  };
  checkInsecure(config, warn);
  return deepFreeze({ ...config, warnings: render(warnings) });
}

function build(
  f: ConfigFile,
  file: string,
  dir: string,
  at: (path: Path, reason: string, key?: boolean) => void,
): Omit<Config, 'warnings'> {
  const pem = (value: string, path: Path, marker: RegExp, what: string): string => {
    // An inline PEM (for example from ${file:…} or ${env:…}) is taken as is.
    let text = value;
    if (!value.trimStart().startsWith('-----BEGIN')) {
      const full = resolve(dir, value);
      try {
        text = readFileSync(full, 'utf8');
      } catch (err) {
        at(path, `cannot read ${full} (${errorCode(err)})`);
        return '';
      }
    }
    if (!marker.test(text)) at(path, `expected a PEM ${what}`);
    return text;
  };

  let tls: Config['tls'];
  if (f.tls !== undefined) {
    tls = {
      cert: pem(f.tls.cert, ['tls', 'cert'], /-----BEGIN CERTIFICATE-----/, 'certificate'),
      key: pem(f.tls.key, ['tls', 'key'], /-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'private key'),
    };
  }

  const connections = (f.connections ?? []).map((c, i): PostgresConnection => {
    const tlsMode = c.tls ?? 'disable';
    const ca = c.ca === undefined ? undefined : pem(c.ca, ['connections', i, 'ca'], /-----BEGIN CERTIFICATE-----/, 'certificate');
    return {
      name: c.name,
      type: c.type,
      host: c.host,
      port: c.port ?? DEFAULT_TARGET_PORT,
      database: c.database,
      user: c.user,
      password: c.password,
      tls: tlsMode,
      ca,
      access: {
        maxDurationMs: c.access?.max_duration ?? DEFAULT_ACCESS_POLICY.maxDurationMs,
        approval: c.access?.approval ?? DEFAULT_ACCESS_POLICY.approval,
        approvers: c.access?.approvers ?? DEFAULT_ACCESS_APPROVERS,
      },
    };
  });

  const oidc: Config['oidc'] = f.oidc && {
    issuer: f.oidc.issuer,
    audience: f.oidc.audience,
    clientId: f.oidc.client_id,
    allowedClientIds: f.oidc.allowed_client_ids ?? [],
    groupsClaim: f.oidc.groups_claim ?? 'groups',
    usernameClaim: f.oidc.username_claim,
    algorithms: f.oidc.algorithms,
    roleGroups: {
      admin: f.oidc.role_groups?.admin ?? [],
      approver: f.oidc.role_groups?.approver ?? [],
      auditor: f.oidc.role_groups?.auditor ?? [],
      user: f.oidc.role_groups?.user ?? [],
    },
  };

  // Policy files are read here so that a missing one stops the start; the gateway parses and
  // validates them against the policy schema (and reloads them when they change).
  const policyFiles = (f.policy?.files ?? []).map((name, i) => {
    const full = resolve(dir, name);
    try {
      readFileSync(full, 'utf8');
    } catch (err) {
      at(['policy', 'files', i], `cannot read ${full} (${errorCode(err)})`);
    }
    return full;
  });

  const store = resolveStore(f.store, dir);
  return {
    file,
    store,
    listen:
      f.listen === undefined
        ? { api: { ...DEFAULT_API_LISTEN }, postgres: { ...DEFAULT_POSTGRES_LISTEN } }
        : { api: f.listen.api ?? { ...DEFAULT_API_LISTEN }, postgres: f.listen.postgres },
    tls,
    postgres: {
      auth: f.postgres?.auth ?? DEFAULT_POSTGRES_AUTH,
      maxMessageLength: f.postgres?.max_message_length ?? DEFAULT_MAX_MESSAGE_LENGTH,
    },
    log: { level: f.log?.level ?? DEFAULT_LOG_LEVEL },
    connections,
    oidc,
    policy: { enabled: f.policy?.enabled ?? true, files: policyFiles },
    masking: {
      enabled: f.masking?.enabled ?? true,
      plan: {
        ...(f.masking?.default_country ? { defaultCountry: f.masking.default_country } : {}),
        ...(f.masking?.strategies ? { strategies: f.masking.strategies } : {}),
        ...(f.masking?.salt ? { salt: f.masking.salt } : {}),
        ...(f.masking?.custom
          ? {
              custom: f.masking.custom.map((c) => ({
                name: c.name,
                pattern: c.pattern,
                ...(c.flags ? { flags: c.flags } : {}),
                ...(c.validator ? { validator: c.validator } : {}),
              })),
            }
          : {}),
      },
      columns: (f.masking?.columns ?? []).map((c) => ({
        column: c.column,
        action: c.action,
        ...(c.connection ? { connection: c.connection } : {}),
        ...(c.strategy ? { strategy: c.strategy } : {}),
      })),
    },
    recording: {
      enabled: f.recording?.enabled ?? true,
      maxResultBytes: f.recording?.max_result_size ?? DEFAULT_RESULT_BYTES,
      retention: {
        maxAgeMs: f.recording?.retention?.max_age,
        maxBytes: f.recording?.retention?.max_size,
        intervalMs: f.recording?.retention?.interval ?? DEFAULT_RETENTION_INTERVAL_MS,
      },
    },
    approvals: {
      timeoutMs: f.approvals?.timeout ?? DEFAULT_APPROVAL_TIMEOUT_MS,
      accessTimeoutMs: f.approvals?.access_timeout ?? DEFAULT_ACCESS_APPROVAL_TIMEOUT_MS,
      url: f.approvals?.url,
      webhooks: (f.approvals?.webhooks ?? []).map((w) => ({ url: w.url, secret: w.secret, format: w.format ?? 'json' })),
    },
    audit: {
      signingKeyFile: f.audit?.signing_key === undefined ? defaultSigningKeyFile(store, dir) : resolve(dir, f.audit.signing_key),
      checkpointIntervalMs: f.audit?.checkpoint_interval ?? DEFAULT_CHECKPOINT_INTERVAL_MS,
      statements: f.audit?.statements ?? 'all',
      acknowledge: f.audit?.acknowledge ?? 'at-once',
      sinks: (f.audit?.sinks ?? []).flatMap((sink, i): SinkConfig[] => {
        if ((sink.file === undefined) === (sink.syslog === undefined)) {
          at(['audit', 'sinks', i], 'needs exactly one of file or syslog');
          return [];
        }
        if (sink.file !== undefined) {
          if (sink.facility !== undefined) at(['audit', 'sinks', i, 'facility'], 'is only for syslog');
          return [{ kind: 'file', path: resolve(dir, sink.file) }];
        }
        return [{ kind: 'syslog', ...sink.syslog!, facility: SYSLOG_FACILITIES[sink.facility ?? 'authpriv']! }];
      }),
    },
  };
}

/** Beside the SQLite store's file; for any other store, in `.drawbridge/` beside the configuration. */
function defaultSigningKeyFile(store: string, dir: string): string {
  const path = store.startsWith('sqlite:') ? store.slice('sqlite:'.length) : ':memory:';
  // The store path is already resolved as the store is (a default one against the process cwd).
  return path === ':memory:' ? resolve(dir, '.drawbridge', SIGNING_KEY_FILE) : join(dirname(resolve(path)), SIGNING_KEY_FILE);
}

/**
 * Checks across fields of the connection list. They run on the unvalidated data, next to
 * the schema, so that one run reports them together with every other problem.
 */
function checkConnections(data: unknown, at: (path: Path, reason: string) => void): void {
  if (typeof data !== 'object' || data === null || !('connections' in data) || !Array.isArray(data.connections)) return;
  const seen = new Map<string, number>();
  data.connections.forEach((c: unknown, i: number) => {
    if (typeof c !== 'object' || c === null) return;
    const entry = c as Record<string, unknown>;
    if (typeof entry.name === 'string') {
      // Case-insensitive: "Orders" and "orders" side by side is a mistake waiting to happen.
      const lower = entry.name.toLowerCase();
      const first = seen.get(lower);
      if (first === undefined) seen.set(lower, i);
      else at(['connections', i, 'name'], `duplicate connection name ${JSON.stringify(entry.name)} (also connections[${first}].name)`);
    }
    const tls = entry.tls ?? 'disable';
    if (entry.ca !== undefined && entry.ca !== null && tls !== 'verify-full') {
      at(['connections', i, 'ca'], `is only used with tls: verify-full (tls is ${describe(tls)})`);
    }
    if (typeof entry.host === 'string' && entry.host.startsWith('/') && tls !== 'disable') {
      at(['connections', i, 'tls'], `must be "disable" for a Unix socket (PostgreSQL has no TLS on Unix sockets)`);
    }
  });
}

/** A relative sqlite path written in the file is relative to the file's folder, like every other path. */
function resolveStore(store: string | undefined, dir: string): string {
  if (store === undefined) return DEFAULT_STORE;
  if (!store.startsWith('sqlite:')) return store;
  const path = store.slice('sqlite:'.length);
  if (path === ':memory:' || isAbsolute(path)) return store;
  return `sqlite:${resolve(dir, path)}`;
}

function checkInsecure(config: Omit<Config, 'warnings'>, warn: (path: Path, reason: string) => void): void {
  for (const [i, hook] of config.approvals.webhooks.entries()) {
    if (hook.format === 'json' && hook.secret === undefined) {
      warn(['approvals', 'webhooks', i, 'secret'], 'not set: the receiver cannot tell the payloads are from this gateway');
    }
  }
  if (!config.masking.enabled) {
    warn(['masking', 'enabled'], 'false: results leave the gateway unmasked, sensitive values included');
  }
  if (!config.recording.enabled) {
    warn(['recording', 'enabled'], 'false: sessions and the statements they run are not recorded (audit events still are)');
  }
  if (config.audit.statements === 'refused') {
    warn(['audit', 'statements'], 'refused: statements that run are not in the audit log (only in the recording)');
  }
  if (!config.policy.enabled) {
    warn(['policy', 'enabled'], 'false: guardrails are off, every statement a grant holder sends reaches the target');
  }
  const listeners = [
    ['api', config.listen.api],
    ['postgres', config.listen.postgres],
  ] as const;
  for (const [name, l] of listeners) {
    if (l !== undefined && config.tls === undefined && !isLoopback(l.host)) {
      warn(
        ['listen', name],
        `${formatHostPort(l)} is reachable from other hosts and no tls is configured: credentials and data cross the network in cleartext`,
      );
    }
  }
  if (config.postgres.auth === 'password' && config.tls === undefined) {
    warn(
      ['postgres', 'auth'],
      'cleartext password authentication with no tls configured: only loopback clients can log in, and their passwords are not encrypted',
    );
  }
  config.connections.forEach((c, i) => {
    if (c.tls === 'disable' && !isLoopback(c.host)) {
      warn(
        ['connections', i, 'tls'],
        `"disable" (the default) sends the target password and all data to ${c.host}, which is not a loopback address, in cleartext; use verify-full`,
      );
    }
  });
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost') || h.startsWith('/')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h) || h === '0:0:0:0:0:0:0:1';
  return false;
}

function formatHostPort(l: HostPort): string {
  return l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
}

export function formatPath(path: Path): string {
  let out = '';
  for (const s of path) out += typeof s === 'number' ? `[${s}]` : out === '' ? s : `.${s}`;
  return out;
}

/** Offset of the YAML node at `path` (its key when `key`), or of its nearest existing ancestor. */
function locate(doc: Document, path: Path, key: boolean): number | undefined {
  let node: unknown = doc.contents;
  let best: number | undefined = rangeStart(node);
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (pair === undefined) return best;
      const keyStart = rangeStart(pair.key);
      if (i === path.length - 1 && key) return keyStart ?? best;
      node = pair.value;
      best = rangeStart(node) ?? keyStart ?? best;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (node === undefined) return best;
      best = rangeStart(node) ?? best;
    } else {
      return best;
    }
  }
  return best;
}

function rangeStart(node: unknown): number | undefined {
  if (typeof node === 'object' && node !== null && 'range' in node) {
    const range = (node as Node).range;
    return range?.[0];
  }
  return undefined;
}

const KNOWN_KEYS = [
  'store',
  'listen',
  'api',
  'postgres',
  'tls',
  'cert',
  'key',
  'auth',
  'max_message_length',
  'log',
  'level',
  'connections',
  'name',
  'type',
  'host',
  'port',
  'database',
  'user',
  'password',
  'ca',
  'policy',
  'enabled',
  'files',
  'masking',
  'default_country',
  'strategies',
  'salt',
  'custom',
  'pattern',
  'flags',
  'validator',
  'columns',
  'column',
  'action',
  'strategy',
  'audit',
  'signing_key',
  'checkpoint_interval',
  'sinks',
  'file',
  'syslog',
  'facility',
  'statements',
  'acknowledge',
  'recording',
  'max_result_size',
  'approvals',
  'timeout',
  'access_timeout',
  'url',
  'webhooks',
  'secret',
  'format',
  'approvers',
];

function unknownKey(key: string): string {
  const close = KNOWN_KEYS.filter((k) => distance(k, key.toLowerCase()) <= Math.min(2, Math.ceil(k.length / 4)));
  return close.length > 0 ? `unknown key (did you mean ${close.map((k) => JSON.stringify(k)).join(' or ')}?)` : 'unknown key';
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  let before = prev;
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
      // A swap of two neighbours ("levle") is one typo, not two.
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        cur[j] = Math.min(cur[j] ?? 0, (before[j - 2] ?? 0) + 1);
      }
    }
    before = prev;
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

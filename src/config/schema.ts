/**
 * The shape of drawbridge.yaml, as zod schemas. Leaves are custom validators so that every
 * message reads the same way ("expected …, got …") and names what was actually written.
 * Objects are strict: an unknown key is an error, because a typo in a security setting
 * must not silently fall back to a default.
 */

import { parseDuration } from '../core/duration.ts';
import { z } from 'zod';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const POSTGRES_AUTH = ['scram-sha-256', 'password'] as const;
export type PostgresAuth = (typeof POSTGRES_AUTH)[number];

export const TLS_MODES = ['disable', 'require', 'verify-full'] as const;

export const CONNECTION_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/i;

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
export const MIN_MESSAGE_LENGTH = 1 * KiB;
export const MAX_MESSAGE_LENGTH = 1 * GiB;

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** How a value reads in an error message. */
export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

/**
 * A required leaf: `parse` returns the value or undefined when it does not fit `expected`.
 * The "got …" part travels in params so that the formatter can hide values that came
 * from a secret reference.
 */
function leaf<T>(expected: string, parse: (v: unknown) => T | undefined) {
  return z.unknown().transform((v, ctx): T => {
    if (v === undefined || v === null) {
      ctx.addIssue({ code: 'custom', message: 'is required' });
      return z.NEVER;
    }
    const out = parse(v);
    if (out === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected ${expected}`, params: { got: v } });
      return z.NEVER;
    }
    return out;
  });
}

/** An optional leaf: absent and YAML null (`key:` with nothing after it) both mean "not set". */
function optional<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null ? undefined : v), schema.optional());
}

function object<S extends z.ZodRawShape>(shape: S) {
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'invalid_type' ? `expected a mapping, got ${describe(iss.input)}` : undefined),
  });
}

function toInteger(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  // Values from ${env:…} arrive as strings.
  if (typeof v === 'string' && /^[0-9]+$/.test(v)) return Number(v);
  return undefined;
}

const text = leaf('a non-empty string', (v) => (typeof v === 'string' && v !== '' ? v : undefined));

const hostName = leaf('a host name, an IP address or the absolute path of a Unix socket directory', (v) =>
  typeof v === 'string' && v !== '' && (v.startsWith('/') ? !/\s/.test(v) : !/[\s/]/.test(v)) ? v : undefined,
);

const port = leaf('an integer from 1 to 65535', (v) => {
  const n = toInteger(v);
  return n !== undefined && n >= 1 && n <= 65535 ? n : undefined;
});

function oneOf<const T extends readonly string[]>(values: T) {
  return leaf(`one of ${values.join(', ')}`, (v) =>
    typeof v === 'string' && (values as readonly string[]).includes(v) ? (v as T[number]) : undefined,
  );
}

/** "host:port", "[v6]:port", or a bare port (loopback). Port 0 asks for any free port. */
export function parseListenAddress(v: unknown): HostPort | undefined {
  const bare = toInteger(v);
  if (bare !== undefined) return bare <= 65535 ? { host: '127.0.0.1', port: bare } : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^(?:\[([0-9a-fA-F:.%a-zA-Z]+)\]|([^\s:[\]/]+)):([0-9]{1,5})$/.exec(v);
  if (!m) return undefined;
  const p = Number(m[3]);
  if (p > 65535) return undefined;
  return { host: (m[1] ?? m[2]) as string, port: p };
}

const listenAddress = leaf('host:port with a port from 0 to 65535 (quote IPv6 as "[::1]:7070")', parseListenAddress);

export function parseSize(v: unknown): number | undefined {
  const whole = toInteger(v);
  if (whole !== undefined) return whole;
  if (typeof v !== 'string') return undefined;
  const m = /^([0-9]+)\s*(B|KiB|MiB|GiB|TiB)$/.exec(v.trim());
  if (!m) return undefined;
  const unit = { B: 1, KiB, MiB, GiB, TiB: 1024 * GiB }[m[2] as 'B' | 'KiB' | 'MiB' | 'GiB' | 'TiB'];
  const n = Number(m[1]) * unit;
  return Number.isSafeInteger(n) ? n : undefined;
}

const messageLength = leaf('a size from 1KiB to 1GiB (an integer number of bytes, or e.g. 64MiB)', (v) => {
  const n = parseSize(v);
  return n !== undefined && n >= MIN_MESSAGE_LENGTH && n <= MAX_MESSAGE_LENGTH ? n : undefined;
});

/** What a recording keeps of a statement's result: 0 (nothing) to 16MiB. */
const resultSize = leaf('a size from 0 to 16MiB (an integer number of bytes, or e.g. 64KiB)', (v) => {
  const n = parseSize(v);
  return n !== undefined && n >= 0 && n <= 16 * 1024 * 1024 ? n : undefined;
});

/** How much the recordings may hold before the oldest go: at least 1MiB (less is more likely a typo than a wish). */
const recordingsSize = leaf('a size of at least 1MiB, such as 500MiB or 10GiB (or an integer number of bytes)', (v) => {
  const n = parseSize(v);
  return n !== undefined && n >= MiB ? n : undefined;
});

/** A duration from `min` to `max` (epoch-millisecond arithmetic stays exact far beyond 100 years). */
function durationBetween(expected: string, min: number, max: number) {
  return leaf(expected, (v) => {
    if (typeof v !== 'string') return undefined;
    try {
      const ms = parseDuration(v);
      return ms >= min && ms <= max ? ms : undefined;
    } catch {
      return undefined;
    }
  });
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

const retention = object({
  max_age: optional(durationBetween('a duration from 1h to 36500d, such as 30d or 90d', HOUR_MS, 36_500 * DAY_MS)),
  max_size: optional(recordingsSize),
  interval: optional(durationBetween('a duration from 1m to 7d, such as 1h', 60_000, 7 * DAY_MS)),
});

const storeUrl = leaf('sqlite:<path>, "sqlite::memory:" (quoted) or postgres://user:password@host:port/database', (v) => {
  if (typeof v !== 'string') return undefined;
  if (/^sqlite:.+/.test(v)) return v;
  if (/^postgres(ql)?:\/\/.+/.test(v)) return v;
  return undefined;
});

const connectionName = leaf('a name of 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit', (v) =>
  typeof v === 'string' && CONNECTION_NAME.test(v) ? v : undefined,
);

const duration = leaf('a duration such as 15m, 1h or 8h (at most 366d)', (v) => {
  if (typeof v !== 'string') return undefined;
  try {
    const ms = parseDuration(v);
    return ms <= 366 * 86_400_000 ? ms : undefined;
  } catch {
    return undefined;
  }
});

export const APPROVAL_MODES = ['none', 'required'] as const;
export const GATEWAY_ROLES = ['admin', 'approver', 'auditor', 'user'] as const;

const url = leaf('an http(s) URL', (v) => {
  if (typeof v !== 'string') return undefined;
  try {
    const parsed = new URL(v);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? v : undefined;
  } catch {
    return undefined;
  }
});

const names = z.array(text);

// Values from ${env:…} arrive as strings.
const flag = leaf('true or false', (v) => (typeof v === 'boolean' ? v : v === 'true' ? true : v === 'false' ? false : undefined));

const oidc = object({
  issuer: url,
  audience: text,
  client_id: optional(text),
  allowed_client_ids: optional(names),
  groups_claim: optional(text),
  username_claim: optional(text),
  algorithms: optional(names),
  role_groups: optional(object({ admin: optional(names), approver: optional(names), auditor: optional(names), user: optional(names) })),
});

const connection = object({
  name: connectionName,
  type: oneOf(['postgres'] as const),
  host: hostName,
  port: optional(port),
  database: text,
  user: text,
  password: optional(leaf('a string', (v) => (typeof v === 'string' ? v : undefined))),
  tls: optional(oneOf(TLS_MODES)),
  ca: optional(text),
  access: optional(object({ max_duration: optional(duration), approval: optional(oneOf(APPROVAL_MODES)), approvers: optional(text) })),
});

/** RFC 5424 facilities by name. */
export const SYSLOG_FACILITIES: Readonly<Record<string, number>> = Object.freeze({
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
});

const syslogTarget = leaf('udp://host:port or tcp://host:port', (v) => {
  if (typeof v !== 'string') return undefined;
  const m = /^(udp|tcp):\/\/(\[[0-9a-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/i.exec(v);
  if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) return undefined;
  return { transport: m[1]!.toLowerCase() as 'udp' | 'tcp', host: m[2]!.replace(/^\[|\]$/g, ''), port: Number(m[3]) };
});

export const fileSchema = object({
  store: optional(storeUrl),
  listen: optional(
    object({
      api: optional(listenAddress),
      postgres: optional(listenAddress),
    }),
  ),
  tls: optional(object({ cert: text, key: text })),
  postgres: optional(
    object({
      auth: optional(oneOf(POSTGRES_AUTH)),
      max_message_length: optional(messageLength),
    }),
  ),
  log: optional(object({ level: optional(oneOf(LOG_LEVELS)) })),
  oidc: optional(oidc),
  masking: optional(
    object({
      enabled: optional(flag),
      default_country: optional(
        leaf('a two-letter country code such as US or DE', (v) => (typeof v === 'string' && /^[A-Z]{2}$/.test(v) ? v : undefined)),
      ),
      strategies: optional(z.record(z.string(), oneOf(['partial', 'full', 'hash', 'null'] as const))),
      salt: optional(text),
      custom: optional(
        z.array(
          object({
            name: leaf('a name of letters, digits or "-"', (v) => (typeof v === 'string' && /^[a-z0-9-]{1,40}$/i.test(v) ? v : undefined)),
            pattern: text,
            flags: optional(text),
            validator: optional(oneOf(['luhn', 'iban'] as const)),
          }),
        ),
      ),
      columns: optional(
        z.array(
          object({
            column: text,
            connection: optional(connectionName),
            action: oneOf(['mask', 'null', 'never'] as const),
            strategy: optional(oneOf(['partial', 'full', 'hash'] as const)),
          }),
        ),
      ),
    }),
  ),
  policy: optional(
    object({
      enabled: optional(flag),
      files: optional(names),
    }),
  ),
  recording: optional(object({ enabled: optional(flag), max_result_size: optional(resultSize), retention: optional(retention) })),
  approvals: optional(
    object({
      timeout: optional(duration),
      access_timeout: optional(duration),
      url: optional(text),
      webhooks: optional(z.array(object({ url, secret: optional(text), format: optional(oneOf(['json', 'slack'] as const)) }))),
    }),
  ),
  audit: optional(
    object({
      signing_key: optional(text),
      checkpoint_interval: optional(duration),
      statements: optional(oneOf(['all', 'refused'] as const)),
      acknowledge: optional(oneOf(['after-commit', 'at-once'] as const)),
      sinks: optional(
        z.array(
          object({
            file: optional(text),
            syslog: optional(syslogTarget),
            facility: optional(oneOf(Object.keys(SYSLOG_FACILITIES) as [string, ...string[]])),
          }),
        ),
      ),
    }),
  ),
  connections: optional(
    z.array(connection, {
      error: (iss) => (iss.code === 'invalid_type' ? `expected a list, got ${describe(iss.input)}` : undefined),
    }),
  ),
});

export type ConfigFile = z.output<typeof fileSchema>;

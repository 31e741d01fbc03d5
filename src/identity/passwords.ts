/**
 * Local-account passwords for the embedded mode: scrypt hashes stored as PHC strings
 * (`$scrypt$ln=15,r=8,p=1$<salt>$<hash>`, base64 without padding), a password policy for
 * setting one, and a check for records hashed with weaker parameters than today's.
 *
 * Guarantees:
 * - Passwords are NFKC-normalized before hashing and before verifying, so a composed and a
 *   decomposed "é" are the same password (the same choice `scram.ts` makes, after PostgreSQL).
 * - Hashing runs on the libuv thread pool (async `scrypt`), never on the event loop.
 * - A wrong password is `false`; a stored record that is malformed, or whose parameters are
 *   outside safe bounds, throws `PasswordHashError` instead of being verified: a tampered or
 *   weakened record fails closed, and so does one that would make us allocate gigabytes.
 *
 * Known limits: each verification costs ~32 MiB and tens of milliseconds of a thread-pool
 * thread with the defaults; rate limiting logins is the caller's job. Bounds are checked per
 * parameter, on memory (128·N·r ≤ MAX_SCRYPT_MEMORY) and on total work (N·r·p ≤ MAX_SCRYPT_WORK).
 */

import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export interface ScryptParameters {
  /** CPU/memory cost, a power of two. */
  readonly N: number;
  /** Block size. */
  readonly r: number;
  /** Parallelism. */
  readonly p: number;
  /** Derived key length, bytes. */
  readonly keyLength: number;
  /** Salt length, bytes. */
  readonly saltLength: number;
}

/** 128·N·r = 128 · 2^15 · 8 = 32 MiB per hash. */
export const DEFAULT_SCRYPT: ScryptParameters = Object.freeze({ N: 2 ** 15, r: 8, p: 1, keyLength: 32, saltLength: 16 });

/** Bounds a stored record (or caller-supplied parameters) must fall within. */
export const SCRYPT_BOUNDS = Object.freeze({
  log2N: { min: 14, max: 20 },
  r: { min: 1, max: 32 },
  p: { min: 1, max: 16 },
  keyLength: { min: 16, max: 64 },
  saltLength: { min: 16, max: 64 },
});

/** The largest 128·N·r we will allocate for one hash, whatever a record says: 256 MiB. */
export const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;
/** Bound on total work (N·r·p): 16 times the default, so that a tampered record cannot stall a login for seconds. */
export const MAX_SCRYPT_WORK = 16 * 2 ** 15 * 8;

export const MIN_PASSWORD_CHARACTERS = 12;
export const MAX_PASSWORD_BYTES = 1024;

export class PasswordHashError extends Error {
  override name = 'PasswordHashError';
}

/** A parsed PHC record. */
interface ScryptRecord {
  readonly parameters: ScryptParameters;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const DECIMAL = /^(0|[1-9][0-9]{0,2})$/;
const B64 = /^[A-Za-z0-9+/]+$/;

/**
 * The reason `password` is refused as a new password, or undefined if it is acceptable.
 * Checked on the NFKC-normalized form, which is what gets hashed.
 */
export function checkPasswordPolicy(password: string): string | undefined {
  if (LONE_SURROGATE.test(password)) return 'password contains an unpaired surrogate (not valid Unicode)';
  const normalized = password.normalize('NFKC');
  const characters = [...normalized];
  if (characters.length < MIN_PASSWORD_CHARACTERS) return `password must be at least ${MIN_PASSWORD_CHARACTERS} characters`;
  if (Buffer.byteLength(normalized, 'utf8') > MAX_PASSWORD_BYTES) return `password must be at most ${MAX_PASSWORD_BYTES} bytes of UTF-8`;
  if (characters.every((c) => c === characters[0])) return 'password must not be a single repeated character';
  return undefined;
}

/**
 * Hashes `password` (NFKC-normalized) with a fresh random salt. Does not apply the policy —
 * call `checkPasswordPolicy` when a user sets a password — but refuses passwords that are not
 * valid Unicode or longer than MAX_PASSWORD_BYTES, and parameters outside SCRYPT_BOUNDS.
 */
export async function hashPassword(password: string, parameters: ScryptParameters = DEFAULT_SCRYPT): Promise<string> {
  const log2N = checkParameters(parameters);
  const normalized = normalizePassword(password);
  if (normalized === undefined) throw new PasswordHashError(`password is not valid Unicode or longer than ${MAX_PASSWORD_BYTES} bytes`);
  const salt = randomBytes(parameters.saltLength);
  const hash = await derive(normalized, salt, parameters);
  return `$scrypt$ln=${log2N},r=${parameters.r},p=${parameters.p}$${b64(salt)}$${b64(hash)}`;
}

/**
 * Whether `password` matches the `stored` PHC record. False for a wrong password; throws
 * PasswordHashError for a record that is malformed or outside SCRYPT_BOUNDS.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  // Parse first: a bad record throws whatever the password is.
  const record = parseRecord(stored);
  const normalized = normalizePassword(password);
  // hashPassword never stores such a password, so it cannot match.
  if (normalized === undefined) return false;
  const candidate = await derive(normalized, record.salt, record.parameters);
  // Lengths are equal by construction: keyLength comes from the stored hash.
  return timingSafeEqual(candidate, record.hash);
}

/**
 * Whether `stored` was hashed with parameters other than `parameters` (so should be rehashed
 * after the next successful login). Throws PasswordHashError for a malformed record, like
 * verifyPassword.
 */
export function needsRehash(stored: string, parameters: ScryptParameters = DEFAULT_SCRYPT): boolean {
  checkParameters(parameters);
  const current = parseRecord(stored).parameters;
  return (
    current.N !== parameters.N ||
    current.r !== parameters.r ||
    current.p !== parameters.p ||
    current.keyLength !== parameters.keyLength ||
    current.saltLength !== parameters.saltLength
  );
}

/** NFKC form of `password`, or undefined if it is not valid Unicode or too long to hash. */
function normalizePassword(password: string): string | undefined {
  // NFKC can shrink a string (composition) but not by more than this; skip normalizing megabytes.
  if (password.length > MAX_PASSWORD_BYTES * 4) return undefined;
  // Buffer.from would turn every lone surrogate into U+FFFD, making distinct strings equal.
  if (LONE_SURROGATE.test(password)) return undefined;
  const normalized = password.normalize('NFKC');
  if (Buffer.byteLength(normalized, 'utf8') > MAX_PASSWORD_BYTES) return undefined;
  return normalized;
}

function derive(password: string, salt: Buffer, parameters: ScryptParameters): Promise<Buffer> {
  const { N, r, p, keyLength } = parameters;
  // OpenSSL needs 128·r·(N + 2) for V plus 128·r·p for B; the default maxmem (32 MiB) is too
  // tight for the defaults, so allow exactly what these (already bounded) parameters need.
  const options: ScryptOptions = { N, r, p, maxmem: 128 * r * (N + 2 + p) + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(Buffer.from(password, 'utf8'), salt, keyLength, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** Checks `parameters` against SCRYPT_BOUNDS; returns log2(N). Throws PasswordHashError. */
function checkParameters(parameters: ScryptParameters): number {
  const { N, r, p, keyLength, saltLength } = parameters;
  if (!Number.isSafeInteger(N) || N <= 0 || (N & (N - 1)) !== 0) throw new PasswordHashError('scrypt N must be a power of two');
  const log2N = Math.log2(N);
  inBounds('ln', log2N, SCRYPT_BOUNDS.log2N);
  inBounds('r', r, SCRYPT_BOUNDS.r);
  inBounds('p', p, SCRYPT_BOUNDS.p);
  inBounds('key length', keyLength, SCRYPT_BOUNDS.keyLength);
  inBounds('salt length', saltLength, SCRYPT_BOUNDS.saltLength);
  // Fail closed: each parameter may be in bounds and the product still allocate gigabytes.
  if (128 * N * r > MAX_SCRYPT_MEMORY) throw new PasswordHashError(`scrypt parameters need more than ${MAX_SCRYPT_MEMORY} bytes`);
  if (N * r * p > MAX_SCRYPT_WORK) throw new PasswordHashError('scrypt parameters ask for more work than this gateway allows');
  return log2N;
}

function inBounds(name: string, value: number, bounds: { readonly min: number; readonly max: number }): void {
  if (!Number.isSafeInteger(value) || value < bounds.min || value > bounds.max) {
    throw new PasswordHashError(`scrypt ${name} must be an integer from ${bounds.min} to ${bounds.max}`);
  }
}

/**
 * Parses exactly `$scrypt$ln=<d>,r=<d>,p=<d>$<salt>$<hash>`, canonical form only (no version
 * field, no reordered or extra parameters, no leading zeros, no padding): anything else is a
 * record we did not write, and fails closed.
 */
function parseRecord(stored: string): ScryptRecord {
  if (typeof stored !== 'string' || stored.length > 512) throw new PasswordHashError('stored password hash is malformed');
  const parts = stored.split('$');
  if (parts.length !== 5 || parts[0] !== '') throw new PasswordHashError('stored password hash is not a PHC string');
  const [, id, parameterText, saltText, hashText] = parts as [string, string, string, string, string];
  if (id !== 'scrypt') throw new PasswordHashError('stored password hash is not scrypt');
  const fields = parameterText.split(',');
  if (fields.length !== 3) throw new PasswordHashError('stored scrypt parameters must be ln, r, p');
  const values = (['ln', 'r', 'p'] as const).map((name, i) => {
    const [key, value, ...rest] = (fields[i] ?? '').split('=');
    if (key !== name || value === undefined || rest.length > 0 || !DECIMAL.test(value)) {
      throw new PasswordHashError(`stored scrypt parameter ${name} is missing or malformed`);
    }
    return Number(value);
  }) as [number, number, number];
  const [ln, r, p] = values;
  inBounds('ln', ln, SCRYPT_BOUNDS.log2N);
  const salt = unb64(saltText, 'salt');
  const hash = unb64(hashText, 'hash');
  const parameters: ScryptParameters = { N: 2 ** ln, r, p, keyLength: hash.length, saltLength: salt.length };
  checkParameters(parameters);
  return { parameters, salt, hash };
}

function b64(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '');
}

/** Strict unpadded base64: Buffer.from(…, 'base64') silently skips junk, so round-trip it. */
function unb64(text: string, what: string): Buffer {
  if (!B64.test(text) || text.length % 4 === 1) throw new PasswordHashError(`stored password ${what} is not base64`);
  const bytes = Buffer.from(text, 'base64');
  if (b64(bytes) !== text) throw new PasswordHashError(`stored password ${what} is not canonical base64`);
  return bytes;
}

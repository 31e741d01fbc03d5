/**
 * The tamper-evident chain over the audit log, and the signed checkpoints that bound its head.
 *
 * What it guarantees:
 * - Each record carries the SHA-256 of a canonical encoding of itself and of the hash of the
 *   record before it (`recordHash`); the first record's predecessor is GENESIS_HASH. Editing a
 *   field, removing a record, or swapping two changes a hash that the next record (or a
 *   checkpoint) holds, so `ChainVerifier` names the first record where the chain breaks.
 * - The encoding is canonical JSON (`canonicalJson`: object keys sorted, no spaces), computed from
 *   values as JSON carries them, so that anyone holding an export (JSON lines) can recompute every
 *   hash without this code.
 * - A checkpoint is an Ed25519 signature over (seq, hash, at, key id) of the head at some moment:
 *   cutting records off the end of the log (and its hash chain with them) is found when a
 *   checkpoint names a record that is no longer there, or one whose hash is not the one signed.
 *
 * Known limits: records appended after the last checkpoint can be cut off unnoticed, up to the
 * checkpoint interval (see docs/audit.md); whoever holds the signing key can forge checkpoints,
 * which is why the verifier trusts only keys given to it from outside the store.
 * Pure: no I/O, no clock.
 */

import { createHash, createPublicKey, hash, sign, verify, type KeyObject } from 'node:crypto';

/** The predecessor of the first record. */
export const GENESIS_HASH = '0'.repeat(64);

const RECORD_DOMAIN = 'drawbridge.audit.record.v1\n';
const CHECKPOINT_DOMAIN = 'drawbridge.audit.checkpoint.v1\n';

/** What the hash of a record covers: every field of it, and its predecessor's hash. */
export interface ChainedRecord {
  readonly seq: number;
  readonly at: number;
  readonly actor: string;
  readonly action: string;
  readonly subject: string;
  readonly outcome: string;
  readonly details: Readonly<Record<string, unknown>>;
}

/** A record as stored: its fields and the two hashes (null for a record written before the chain). */
export interface StoredRecord extends ChainedRecord {
  readonly prevHash: string | null;
  readonly hash: string | null;
}

/**
 * JSON with object keys sorted (by UTF-16 code units) and no whitespace: one text for one value.
 * Values are taken as JSON.stringify takes them (`toJSON` called, boxed primitives unboxed,
 * undefined, function and symbol members dropped, non-finite numbers null), so that a value and
 * what JSON.parse gives back of it have the same text: the store keeps this text as the details.
 */
export function canonicalJson(value: unknown): string {
  return encode(asJson(value, ''));
}

/** What JSON.stringify writes for `value` under `key`: its `toJSON`, or the primitive inside a box. */
function asJson(value: unknown, key: string): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return (value as { toJSON(key: string): unknown }).toJSON(key);
  if (value instanceof Number || value instanceof String || value instanceof Boolean) return value.valueOf();
  return value;
}

function encode(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + encode(asJson(value[i], String(i)));
    return `${out}]`;
  }
  const keys = Object.keys(value);
  if (sortedAndFlat(value as Record<string, unknown>, keys)) return JSON.stringify(value);
  // sort() without a comparator orders by UTF-16 code units, as canonical JSON asks.
  keys.sort();
  let out = '{';
  for (const key of keys) {
    const v = asJson((value as Record<string, unknown>)[key], key);
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
    out += `${out.length === 1 ? '' : ','}${JSON.stringify(key)}:${encode(v)}`;
  }
  return `${out}}`;
}

/**
 * An object whose keys are already in canonical order and whose members are all primitives:
 * JSON.stringify writes it as `encode` would (it drops the same members and writes the rest
 * alike), at a fraction of the cost. Every audit record's details are built this way on the data path.
 */
function sortedAndFlat(value: Record<string, unknown>, keys: readonly string[]): boolean {
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return false;
  for (let i = 0; i < keys.length; i++) {
    if (i > 0 && !(keys[i - 1]! < keys[i]!)) return false;
    const member = value[keys[i]!];
    if (typeof member === 'object' && member !== null) return false;
  }
  return true;
}

/** Hex SHA-256 of the record's canonical encoding, chained to `prevHash`. */
export function recordHash(record: ChainedRecord, prevHash: string): string {
  const { at, actor, action, subject, outcome } = record;
  return hashJson(
    numberJson(record.seq),
    numberJson(at),
    JSON.stringify(actor),
    JSON.stringify(action),
    JSON.stringify(subject),
    JSON.stringify(outcome),
    canonicalJson(record.details),
    JSON.stringify(prevHash),
  );
}

/**
 * `recordHash`, each field given as its canonical JSON text: what a store appending many records
 * works out once per field, for the hash and for what it writes.
 */
export function hashJson(
  seq: string,
  at: string,
  actor: string,
  action: string,
  subject: string,
  outcome: string,
  details: string,
  prevHash: string,
): string {
  // canonicalJson({seq, at, actor, action, subject, outcome, details, prev}), its keys written in order.
  return hash(
    'sha256',
    `${RECORD_DOMAIN}{"action":${action},"actor":${actor},"at":${at},"details":${details},"outcome":${outcome},"prev":${prevHash},"seq":${seq},"subject":${subject}}`,
  );
}

/** `canonicalJson` of a value that is nearly always a finite number (String writes those as JSON does). */
export function numberJson(value: unknown): string {
  return typeof value === 'number' && Number.isFinite(value) ? String(value) : canonicalJson(value);
}

/** Where the chain breaks, and how, naming the record. */
export interface ChainBreak {
  readonly seq: number;
  readonly reason: 'missing' | 'unchained' | 'edited' | 'out-of-order';
  readonly message: string;
}

/** What a verifier has read: how many records, the last that verified, and the first break. */
export interface ChainProgress {
  readonly records: number;
  readonly head: { readonly seq: number; readonly hash: string };
  readonly broken: ChainBreak | undefined;
}

/**
 * Reads the log in sequence order, one record at a time; the first break is kept. A verifier of
 * part of the log starts `after` the record before that part, taking it as verified: whoever
 * verified that record carries on with this one's progress (`adopt`), and so reads the same as
 * one verifier over the whole.
 */
export class ChainVerifier {
  #expectedSeq: number;
  #prev: string;
  #records = 0;
  #break: ChainBreak | undefined;

  constructor(after: { readonly seq: number; readonly hash: string } = { seq: 0, hash: GENESIS_HASH }) {
    this.#expectedSeq = after.seq + 1;
    this.#prev = after.hash;
  }

  /** What this verifier has read so far. */
  get progress(): ChainProgress {
    return { records: this.#records, head: this.head, broken: this.#break };
  }

  /**
   * Carries on with what a verifier started `after` this one's head has read: its records count
   * as read here, its head is this one's, and its break is this one's first.
   */
  adopt(next: ChainProgress): void {
    if (this.#break) return;
    this.#records += next.records;
    this.#expectedSeq = next.head.seq + 1;
    this.#prev = next.head.hash;
    this.#break = next.broken;
  }

  /** The record that broke the chain first, if any. */
  get broken(): ChainBreak | undefined {
    return this.#break;
  }

  get records(): number {
    return this.#records;
  }

  /** The last record read: its sequence number and hash. */
  get head(): { readonly seq: number; readonly hash: string } {
    return { seq: this.#expectedSeq - 1, hash: this.#prev };
  }

  /** Reads the next record; false once the chain is broken (later records prove nothing). */
  push(r: StoredRecord): boolean {
    if (this.#break) return false;
    this.#records++;
    const seq = this.#expectedSeq;
    if (r.seq !== seq) {
      this.#break =
        r.seq > seq
          ? { seq, reason: 'missing', message: `record ${seq} is missing (the log goes from ${seq - 1} to ${r.seq})` }
          : { seq: r.seq, reason: 'out-of-order', message: `record ${r.seq} comes after record ${seq - 1}` };
      return false;
    }
    if (r.hash === null || r.prevHash === null) {
      this.#break = { seq, reason: 'unchained', message: `record ${seq} carries no hash` };
      return false;
    }
    if (r.prevHash !== this.#prev) {
      this.#break = {
        seq,
        reason: 'out-of-order',
        message: `record ${seq} does not follow record ${seq - 1}: it names another predecessor (removed, replaced or reordered records)`,
      };
      return false;
    }
    if (recordHash(r, this.#prev) !== r.hash) {
      this.#break = {
        seq,
        reason: 'edited',
        message: `record ${seq} was changed after it was written: its contents do not match its hash`,
      };
      return false;
    }
    this.#prev = r.hash;
    this.#expectedSeq = seq + 1;
    return true;
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

/** A signed statement that the log's head was `hash` at `seq`, at time `at`. */
export interface Checkpoint {
  readonly seq: number;
  readonly hash: string;
  readonly at: number;
  /** Which key signed it: `keyId` of its public key. */
  readonly keyId: string;
  /** Base64 Ed25519 signature. */
  readonly signature: string;
}

/** The first 16 hex digits of the SHA-256 of the public key (SPKI, DER). */
export function keyId(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

function checkpointPayload(c: Omit<Checkpoint, 'signature'>): Buffer {
  return Buffer.from(CHECKPOINT_DOMAIN + canonicalJson({ seq: c.seq, hash: c.hash, at: c.at, key: c.keyId }));
}

export function signCheckpoint(privateKey: KeyObject, head: { seq: number; hash: string; at: number }): Checkpoint {
  const unsigned = { ...head, keyId: keyId(privateKey) };
  return { ...unsigned, signature: sign(null, checkpointPayload(unsigned), privateKey).toString('base64') };
}

/** Why a checkpoint does not hold against the keys and the records read, or undefined when it does. */
export function checkpointProblem(
  c: Checkpoint,
  trusted: ReadonlyMap<string, KeyObject>,
  hashAt: (seq: number) => string | undefined,
  lastSeq: number,
): string | undefined {
  const key = trusted.get(c.keyId);
  if (key === undefined) return `checkpoint at record ${c.seq} is signed by key ${c.keyId}, which is not a trusted key`;
  let valid = false;
  try {
    valid = verify(null, checkpointPayload(c), key, Buffer.from(c.signature, 'base64'));
  } catch {
    valid = false;
  }
  if (!valid) return `checkpoint at record ${c.seq} has a signature that does not verify (forged or edited)`;
  if (c.seq > lastSeq) {
    return `the log ends at record ${lastSeq}, but a checkpoint signed ${new Date(c.at).toISOString()} covers records up to ${c.seq}: records were cut off the end`;
  }
  if (hashAt(c.seq) !== c.hash) return `record ${c.seq} is not the record the checkpoint of ${new Date(c.at).toISOString()} signed`;
  return undefined;
}

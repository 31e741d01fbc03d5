/**
 * Signed checkpoints of the audit log's head, and the key that signs them.
 *
 * What it guarantees: while the gateway runs, the head of the log (its last record's number and
 * hash) is signed every `intervalMs` when it moved, and once more when the gateway stops, so that
 * cutting records off the end is found by `drawbridge audit verify` for every record older than
 * the last checkpoint. Several gateways on one store may sign the same head; one checkpoint per
 * record is kept. The signing key is an Ed25519 key in a PEM file, made (0600, in a 0700 folder)
 * on first start when the file is missing; its public half is written beside it (`.pub`) for
 * whoever verifies.
 *
 * Known limits: records appended after the last checkpoint can be cut off unnoticed (at most one
 * interval of them, and those of a gateway that was killed before it could sign); see
 * docs/audit.md for keeping checkpoints outside the store.
 */

import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../core/index.ts';
import type { Store } from '../store/index.ts';
import { keyId, signCheckpoint, type Checkpoint } from './chain.ts';

/** The signing key in `file` (PEM, Ed25519), made there first when the file does not exist. */
export function loadSigningKey(file: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    // 'wx': never overwrite a key another process made meanwhile; read that one instead.
    try {
      writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
      writeFileSync(`${file}.pub`, publicKey.export({ type: 'spki', format: 'pem' }).toString(), { mode: 0o644 });
    } catch (raced) {
      if ((raced as NodeJS.ErrnoException).code !== 'EEXIST') throw raced;
      pem = readFileSync(file, 'utf8');
    }
  }
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(`${file}: the audit signing key must be an Ed25519 key, not ${key.asymmetricKeyType}`);
  return key;
}

/** A public key (PEM: SPKI, or a private key whose public half is meant) by its key id. */
export function trustedKeys(pems: readonly string[]): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const pem of pems) {
    const key = createPublicKey(pem);
    keys.set(keyId(key), key);
  }
  return keys;
}

export class AuditCheckpoints {
  readonly #store: Store;
  readonly #key: KeyObject;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  #lastSeq = -1;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<Checkpoint | undefined> = Promise.resolve(undefined);

  constructor(store: Store, key: KeyObject, clock: Clock, log?: Logger) {
    this.#store = store;
    this.#key = key;
    this.#clock = clock;
    this.#log = log;
  }

  /** Signs the head every `intervalMs` when it moved. */
  start(intervalMs: number): void {
    this.#timer = setInterval(() => void this.checkpoint(), intervalMs);
    this.#timer.unref();
  }

  /** Signs the head now if it moved since the last checkpoint; the checkpoint, or undefined. */
  checkpoint(): Promise<Checkpoint | undefined> {
    this.#running = this.#running.then(() => this.#sign());
    return this.#running;
  }

  /** Stops the timer and signs the head a last time. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.checkpoint();
  }

  async #sign(): Promise<Checkpoint | undefined> {
    try {
      const head = await this.#store.auditHead();
      if (head === undefined || head.seq === this.#lastSeq) return undefined;
      const checkpoint = signCheckpoint(this.#key, { ...head, at: this.#clock.now() });
      await this.#store.insertAuditCheckpoint(checkpoint);
      this.#lastSeq = head.seq;
      // Also in the log, so that a copy of the head lives outside the store.
      this.#log?.info({ auditCheckpoint: checkpoint }, 'audit log head signed');
      return checkpoint;
    } catch (error) {
      this.#log?.error({ err: error }, 'could not sign the audit log head');
      return undefined;
    }
  }
}

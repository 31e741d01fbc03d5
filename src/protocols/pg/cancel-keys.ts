/**
 * Cancel keys. Each client gets the gateway's own BackendKeyData, never the target's: a cancel
 * request is honoured only when its key matches one the gateway handed out, and is then sent
 * to the target with the target's key. A forged or foreign key cancels nothing.
 * Known limit: the map lives in this process, so with several gateway replicas a cancel
 * request must reach the replica that holds the session.
 */

import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { PostgresConnection } from '../../core/index.ts';

export interface CancelTarget {
  readonly connection: PostgresConnection;
  readonly key: { readonly processId: number; readonly secretKey: Buffer };
}

export class CancelKeys {
  readonly #entries = new Map<number, { secretKey: Buffer; target: CancelTarget }>();

  register(target: CancelTarget): { processId: number; secretKey: Buffer } {
    let processId: number;
    do processId = randomInt(1, 2 ** 31 - 1);
    while (this.#entries.has(processId));
    const secretKey = randomBytes(4);
    this.#entries.set(processId, { secretKey, target });
    return { processId, secretKey };
  }

  find(processId: number, secretKey: Buffer): CancelTarget | undefined {
    const entry = this.#entries.get(processId);
    if (!entry || entry.secretKey.length !== secretKey.length || !timingSafeEqual(entry.secretKey, secretKey)) return undefined;
    return entry.target;
  }

  release(processId: number): void {
    this.#entries.delete(processId);
  }
}

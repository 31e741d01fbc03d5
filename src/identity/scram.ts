/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it, both sides: the server side checks
 * a client's gateway credential against stored verifiers, the client side logs the gateway in
 * to a target. Channel binding `tls-server-end-point` (RFC 5929) is supported on both sides.
 *
 * Gateway credentials are 256-bit random tokens, so the salt protects nothing that the token's
 * entropy does not already protect; it is derived from the principal and connection so that
 * every credential of a principal for a connection shares it, and the server can announce it
 * before it knows which of the principal's credentials the client holds.
 */

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export const SCRAM_ITERATIONS = 4096;

export interface ScramVerifier {
  readonly salt: Buffer;
  readonly iterations: number;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

const hmac = (key: Buffer, text: string | Buffer): Buffer => createHmac('sha256', key).update(text).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  // SASLprep, approximately: PostgreSQL normalizes with NFKC and falls back to the raw bytes.
  return pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
}

export function scramVerifier(password: string, salt: Buffer, iterations = SCRAM_ITERATIONS): ScramVerifier {
  const salted = saltedPassword(password, salt, iterations);
  return {
    salt,
    iterations,
    storedKey: sha256(hmac(salted, 'Client Key')),
    serverKey: hmac(salted, 'Server Key'),
  };
}

export function deterministicSalt(...parts: string[]): Buffer {
  return createHash('sha256')
    .update(`drawbridge-scram-salt\0${parts.join('\0')}`)
    .digest()
    .subarray(0, 16);
}

/** The `tls-server-end-point` binding: the hash of the server certificate (SHA-256 for SHA-1/MD5/SHA-256 signatures). */
export function tlsServerEndPoint(certificateDer: Buffer): Buffer {
  return sha256(certificateDer);
}

export class ScramError extends Error {
  override name = 'ScramError';
}

function attributes(message: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const part of message.split(',')) {
    if (part.length < 2 || part[1] !== '=') throw new ScramError(`malformed SCRAM attribute "${part.slice(0, 20)}"`);
    result.set(part[0]!, part.slice(2));
  }
  return result;
}

const PRINTABLE_NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;

/** Server side of one SCRAM exchange. */
export class ScramServerExchange {
  readonly #channelBinding: Buffer | undefined;
  #gs2Header = '';
  #clientFirstBare = '';
  #serverFirst = '';
  #nonce = '';

  /** `channelBinding` is the tls-server-end-point data when the client connection is TLS. */
  constructor(channelBinding: Buffer | undefined) {
    this.#channelBinding = channelBinding;
  }

  /** Takes the client-first-message, returns the server-first-message. */
  start(mechanism: string, clientFirst: string, salt: Buffer, iterations: number): string {
    const match = /^(n|y|p=[a-zA-Z0-9.-]+),(a=[^,]*)?,(.*)$/.exec(clientFirst);
    if (!match) throw new ScramError('malformed SCRAM client-first-message');
    const [, flag, authzid, bare] = match as unknown as [string, string, string | undefined, string];
    if (authzid) throw new ScramError('SCRAM authorization identities are not supported');
    if (mechanism === 'SCRAM-SHA-256-PLUS') {
      if (flag !== 'p=tls-server-end-point' || !this.#channelBinding) throw new ScramError('channel binding type not supported');
    } else if (mechanism === 'SCRAM-SHA-256') {
      // 'y' means the client could bind but thinks we cannot: a downgrade when we offered -PLUS.
      if (flag.startsWith('p=')) throw new ScramError('channel binding requested with SCRAM-SHA-256');
      if (flag === 'y' && this.#channelBinding) throw new ScramError('channel binding downgrade detected');
    } else {
      throw new ScramError(`unsupported SASL mechanism "${mechanism}"`);
    }
    const attrs = attributes(bare);
    const clientNonce = attrs.get('r');
    if (!clientNonce || !PRINTABLE_NONCE.test(clientNonce)) throw new ScramError('malformed SCRAM client nonce');
    if (attrs.has('m')) throw new ScramError('SCRAM extensions are not supported');
    this.#gs2Header = `${flag},${authzid ?? ''},`;
    this.#clientFirstBare = bare;
    this.#nonce = clientNonce + randomBytes(18).toString('base64');
    this.#serverFirst = `r=${this.#nonce},s=${salt.toString('base64')},i=${iterations}`;
    return this.#serverFirst;
  }

  /**
   * Checks the client-final-message against each candidate verifier; returns the index of the
   * one that matches and the server-final-message, or undefined when none does.
   */
  finish(clientFinal: string, candidates: readonly ScramVerifier[]): { index: number; serverFinal: string } | undefined {
    const proofAt = clientFinal.lastIndexOf(',p=');
    if (proofAt < 0) throw new ScramError('malformed SCRAM client-final-message');
    const withoutProof = clientFinal.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    const expectedBinding = Buffer.concat([
      Buffer.from(this.#gs2Header),
      this.#gs2Header.startsWith('p=') ? this.#channelBinding! : Buffer.alloc(0),
    ]).toString('base64');
    if (attrs.get('c') !== expectedBinding) throw new ScramError('SCRAM channel binding does not match');
    if (attrs.get('r') !== this.#nonce) throw new ScramError('SCRAM nonce does not match');
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64');
    if (proof.length !== 32) throw new ScramError('malformed SCRAM client proof');
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    // Every candidate is checked, whichever matches, so that timing says nothing about which did.
    let found = -1;
    candidates.forEach((candidate, index) => {
      const signature = hmac(candidate.storedKey, authMessage);
      const clientKey = Buffer.alloc(32);
      for (let i = 0; i < 32; i++) clientKey[i] = proof[i]! ^ signature[i]!;
      if (timingSafeEqual(sha256(clientKey), candidate.storedKey) && found < 0) found = index;
    });
    if (found < 0) return undefined;
    const serverSignature = hmac(candidates[found]!.serverKey, authMessage).toString('base64');
    return { index: found, serverFinal: `v=${serverSignature}` };
  }
}

/** Client side of one SCRAM exchange, for logging in to a target. */
export class ScramClientExchange {
  readonly #password: string;
  readonly #gs2Header: string;
  readonly #channelBinding: Buffer | undefined;
  readonly #clientNonce = randomBytes(18).toString('base64');
  #serverSignature: Buffer | undefined;

  readonly mechanism: 'SCRAM-SHA-256' | 'SCRAM-SHA-256-PLUS';

  /** `channelBinding` given: use SCRAM-SHA-256-PLUS; `tlsWithoutBinding`: announce 'y'. */
  constructor(password: string, offered: readonly string[], tls: { channelBinding: Buffer | undefined } | undefined) {
    this.#password = password;
    if (tls?.channelBinding && offered.includes('SCRAM-SHA-256-PLUS')) {
      this.mechanism = 'SCRAM-SHA-256-PLUS';
      this.#gs2Header = 'p=tls-server-end-point,,';
      this.#channelBinding = tls.channelBinding;
    } else if (offered.includes('SCRAM-SHA-256')) {
      this.mechanism = 'SCRAM-SHA-256';
      this.#gs2Header = tls ? 'y,,' : 'n,,';
    } else {
      throw new ScramError(`target offers no supported SASL mechanism (${offered.join(', ')})`);
    }
  }

  clientFirst(): string {
    return `${this.#gs2Header}n=,r=${this.#clientNonce}`;
  }

  clientFinal(serverFirst: string): string {
    const attrs = attributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (!nonce?.startsWith(this.#clientNonce) || !salt || !Number.isInteger(iterations) || iterations < 1 || iterations > 10_000_000) {
      throw new ScramError('malformed SCRAM server-first-message');
    }
    const salted = saltedPassword(this.#password, Buffer.from(salt, 'base64'), iterations);
    const clientKey = hmac(salted, 'Client Key');
    const binding = Buffer.concat([Buffer.from(this.#gs2Header), this.#channelBinding ?? Buffer.alloc(0)]).toString('base64');
    const withoutProof = `c=${binding},r=${nonce}`;
    const authMessage = `n=,r=${this.#clientNonce},${serverFirst},${withoutProof}`;
    const signature = hmac(sha256(clientKey), authMessage);
    const proof = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    this.#serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Fails closed: a server that cannot prove it knows the password is not our target. */
  verifyServerFinal(serverFinal: string): void {
    const attrs = attributes(serverFinal);
    if (attrs.has('e')) throw new ScramError(`target rejected SCRAM: ${attrs.get('e')}`);
    const signature = Buffer.from(attrs.get('v') ?? '', 'base64');
    if (!this.#serverSignature || signature.length !== 32 || !timingSafeEqual(signature, this.#serverSignature)) {
      throw new ScramError('target server signature does not match');
    }
  }
}

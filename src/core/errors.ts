/**
 * Stable error codes of the gateway. Every code is documented in docs/errors.md and a test
 * keeps the two in sync. A `GatewayError` is the only kind of error whose message may reach a
 * client: anything else is logged and replaced by a generic message (see `toClientError`).
 */

export type GatewayErrorCode =
  | 'auth.failed'
  | 'auth.method-not-allowed'
  | 'access.no-grant'
  | 'access.unknown-connection'
  | 'protocol.malformed'
  | 'protocol.message-too-large'
  | 'protocol.unsupported'
  | 'target.unavailable'
  | 'target.auth-failed'
  | 'target.lost'
  | 'command.denied'
  | 'command.unreadable'
  | 'session.terminated'
  | 'audit.unavailable'
  | 'internal';

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  /** Advice for the person at the client (PostgreSQL: the HINT field). */
  readonly hint: string | undefined;

  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown; hint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.hint = options?.hint;
  }
}

/** What a client may be told about any error: its own message if it is ours, nothing more otherwise. */
export function toClientError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  return new GatewayError('internal', 'internal gateway error', { cause: error });
}

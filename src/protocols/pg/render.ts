/**
 * Renders gateway errors as PostgreSQL ErrorResponse messages with a real SQLSTATE, so that
 * every client shows them the way it shows the server's own errors.
 */

import { toClientError, type GatewayErrorCode } from '../../core/index.ts';
import { errorResponse } from '../../wire/pg/index.ts';

const SQLSTATE: Record<GatewayErrorCode, string> = {
  'auth.failed': '28P01', // invalid_password
  'auth.method-not-allowed': '28000', // invalid_authorization_specification
  'access.no-grant': '28000',
  'access.unknown-connection': '3D000', // invalid_catalog_name
  'protocol.malformed': '08P01', // protocol_violation
  'protocol.message-too-large': '08P01',
  'protocol.unsupported': '0A000', // feature_not_supported
  'target.unavailable': '08001', // sqlclient_unable_to_establish_sqlconnection
  'target.auth-failed': '08001',
  'target.lost': '08006', // connection_failure
  'command.denied': '42501', // insufficient_privilege
  'command.unreadable': '22021', // character_not_in_repertoire
  'session.terminated': '57P01', // admin_shutdown
  'audit.unavailable': '58000', // system_error
  internal: 'XX000', // internal_error
};

export function sqlstateOf(code: GatewayErrorCode): string {
  return SQLSTATE[code];
}

/** A FATAL error: the client connection ends after it. */
export function renderFatal(error: unknown): Buffer {
  const clientError = toClientError(error);
  return errorResponse('FATAL', SQLSTATE[clientError.code], clientError.message, hintOf(clientError.hint));
}

/** An ERROR: the statement fails, the session goes on. */
export function renderError(error: unknown): Buffer {
  const clientError = toClientError(error);
  return errorResponse('ERROR', SQLSTATE[clientError.code], clientError.message, hintOf(clientError.hint));
}

const hintOf = (hint: string | undefined) => (hint === undefined ? undefined : { hint });

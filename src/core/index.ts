export { GatewayError, toClientError } from './errors.ts';
export type { GatewayErrorCode } from './errors.ts';
export { systemClock } from './clock.ts';
export type { Clock } from './clock.ts';
export { verifiedPrincipal, verifiedGrant } from './principal.ts';
export type { Principal, PrincipalKind, AccessGrant } from './principal.ts';
export type { Connection, PostgresConnection, TlsMode } from './connection.ts';
export { allow } from './command.ts';
export type { Command, CommandKind, Verdict } from './command.ts';
